"""A conditional run's label set and labels: taken from the data, and checked, once.

The label set (:attr:`TrainConfig.classes <colddiff.config.TrainConfig>`) is a named dataset's
class names, a folder's class subfolders (torchvision's ``ImageFolder`` layout), a dataset's
``classes``, or ``"0"``, ``"1"``... for labels given as a tensor; it is recorded in
``config.toml`` and the checkpoints, so that a resumed run and the samples of the trained model
use the same one.
"""

from __future__ import annotations

from torch import Tensor

from colddiff import data
from colddiff.config import TrainConfig

__all__ = ["checked_labels", "data_classes", "with_classes"]


def data_classes(config: TrainConfig, given: data.ImageDataset | None = None) -> tuple[str, ...]:
    """The label set of the config's training images (``given``: images given from Python).

    Raises:
        ValueError: If the images carry no labels, or a folder has fewer than two class
            subfolders.
    """
    if given is not None:
        if given.classes is not None:
            return given.classes
        count = int(given.labels.max()) + 1 if len(given.labels) else 0
        if count < 1 or int(given.labels.min()) < 0:
            raise ValueError("conditional = true needs a label for every training image; the images given "
                             "from Python carry none: pass labels=... with a tensor of images, or a "
                             "dataset of (image, label) pairs")
        return tuple(str(label) for label in range(max(count, 2)))
    if config.dataset in data.CLASSES:
        return data.CLASSES[config.dataset]
    folder = data.ImageFolder(config.dataset)
    if len(folder.classes) < 2:
        found = f"a single class subfolder, {folder.classes[0]!r}" if folder.classes else "no class subfolder"
        raise ValueError(f"dataset {config.dataset} holds {found}; conditional = true needs one subfolder "
                         "per class, at least 2 (FOLDER/CLASS/IMAGE.png: point dataset at the folder whose "
                         "subfolders are the classes)")
    return folder.classes


def with_classes(config: TrainConfig, given: data.ImageDataset | None = None) -> TrainConfig:
    """``config`` with its label set taken from the data, for a conditional config (others are
    returned as they are).

    Raises:
        ValueError: If the data has no labels, or the config names classes other than the data's.
    """
    if not config.conditional:
        return config
    found = data_classes(config, given)
    if config.classes is None:
        return config.replace(classes=list(found))
    named = given is None or given.classes is not None
    if (named and tuple(config.classes) != found) or len(config.classes) < len(found):
        raise ValueError(f"classes {config.classes} (the config's) do not match the data's {list(found)}; "
                         "leave classes out of the config to take the data's")
    return config


def checked_labels(config: TrainConfig, labels: Tensor) -> Tensor | None:
    """The training images' ``labels`` for a conditional config, checked to name a class of
    its label set each; ``None`` for an unconditional config (labels are then not used).

    Raises:
        ValueError: If an image has no label (-1) or one outside the label set.
    """
    if not config.conditional:
        return None
    assert config.classes is not None  # with_classes has run
    missing = int((labels < 0).sum())
    if missing:
        raise ValueError(f"conditional = true needs a label for every training image; {missing} of "
                         f"{len(labels)} have none (e.g. images at the top of a folder, outside the "
                         "class subfolders)")
    if len(labels) and int(labels.max()) >= len(config.classes):
        raise ValueError(f"a training label is {int(labels.max())}, outside the {len(config.classes)} "
                         f"classes {config.classes}")
    return labels.long()
