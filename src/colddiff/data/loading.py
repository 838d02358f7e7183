"""One entry point for training images from any source: :func:`load` reads a dataset name, a
folder, a tensor or a ``Dataset`` into one in-memory :class:`~colddiff.data.ImageDataset`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor
from torch.utils.data import Dataset

from colddiff.data import datasets
from colddiff.data.datasets import DATASETS
from colddiff.data.folder import ImageFolder, read_folder
from colddiff.data.images import (
    ImageDataset,
    as_images,
    check_channels,
    check_limit,
    check_size,
    convert_channels,
    pil_to_tensor,
    resize,
)

__all__ = ["load"]


def load(source: str | os.PathLike[str] | Tensor | Dataset[object], *, train: bool = True,
         image_size: int | None = None, channels: int | None = None, limit: int | None = None,
         root: str | os.PathLike[str] | None = None, download: bool = True,
         on_error: Literal["raise", "skip"] = "raise", labels: Tensor | None = None) -> ImageDataset:
    """Training images from any source, as one in-memory ``(N, C, H, W)`` tensor in ``[0, 1]``,
    with their labels where the source has them: a named dataset's, a folder's subfolders (one
    per class), a dataset's ``(image, label)`` items, or ``labels`` given with a tensor.

    Args:
        source: A dataset name (:data:`DATASETS`: ``"mnist"``, ``"fashion_mnist"``,
            ``"cifar10"``), a folder of PNG and JPEG images (searched recursively; any mix of
            sizes and modes), a tensor ``(N, C, H, W)`` (or ``(N, H, W)``) in ``[0, 1]``, or a
            map-style dataset whose items are images or ``(image, label)`` pairs (tensors in
            ``[0, 1]`` or PIL images).
        train: For a named dataset: the training split if true, else the test split.
        image_size: Resize and centre-crop every image to ``image_size x image_size`` (required
            for a folder of images of different sizes).
        channels: Convert to 1 (greyscale) or 3 (RGB) channels (default: a named dataset's own,
            3 for a folder, a tensor's or dataset's own).
        limit: Keep only the first ``limit`` images.
        root: For a named dataset: see :func:`data_root`.
        download: For a named dataset: download it when missing.
        on_error: For a folder: ``"raise"`` stops at a file that cannot be decoded, naming it;
            ``"skip"`` leaves it out with a warning naming it.
        labels: For a tensor of images: their class indices ``(N,)`` (integers ``>= 0``).

    Raises:
        ValueError: If ``source`` is none of these, or an option is invalid; the message names it.
        DatasetNotFoundError: If a named dataset cannot be found or downloaded, or the folder
            holds no images.
        DatasetCorruptError: If a file cannot be decoded and ``on_error`` is ``"raise"``.
    """
    check_limit(limit)
    image_size = check_size(image_size)
    if channels is not None:
        channels = check_channels(channels)
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if labels is not None and not isinstance(source, Tensor):
        raise ValueError(f"labels is for images given as a tensor; a {type(source).__name__} source "
                         "carries its own (a dataset name's, a folder's subfolders, a dataset's items)")
    images, found, classes = _read_source(source, train=train, image_size=image_size, channels=channels,
                                          limit=limit, root=root, download=download, on_error=on_error,
                                          labels=labels)
    if channels is not None:
        images = convert_channels(images, channels)
    if image_size is not None:
        images = resize(images, image_size)
    if found is None:
        found = torch.full((len(images),), -1, dtype=torch.long)
    return ImageDataset(images, found, classes)


def _read_source(source: object, *, train: bool, image_size: int | None, channels: Literal[1, 3] | None,
                 limit: int | None, root: str | os.PathLike[str] | None, download: bool, on_error: str,
                 labels: Tensor | None) -> tuple[Tensor, Tensor | None, tuple[str, ...] | None]:
    """:func:`load`'s ``source`` read: ``(images, labels or None, class names or None)``, the
    images not yet converted to ``channels`` nor resized (but a folder's and a dataset's)."""
    if isinstance(source, str) and source in DATASETS:
        read = getattr(datasets, source)  # each named dataset's reader has its name
        dataset = read(train, root, download=download, limit=limit)
        return dataset.images, dataset.labels, dataset.classes
    if isinstance(source, (str, os.PathLike)):
        if not Path(source).expanduser().is_dir():
            raise ValueError(f"data must be one of {', '.join(DATASETS)} or a folder of images; "
                             f"{str(source)!r} is neither")
        folder = ImageFolder(source, image_size=image_size, channels=channels or 3)
        return (*read_folder(folder, limit, on_error), folder.classes or None)
    if isinstance(source, Tensor):
        return as_images("data", source[:limit] if limit is not None else source), \
            _given_labels(labels, len(source), limit), None
    if isinstance(source, Dataset) or (hasattr(source, "__len__") and hasattr(source, "__getitem__")):
        images, found = _read_dataset(source, limit, image_size, channels)  # type: ignore[arg-type]
        return images, found, _dataset_classes(source, found)
    raise ValueError(f"data must be a dataset name ({', '.join(DATASETS)}), a folder, a tensor or "
                     f"a torch Dataset, got {type(source).__name__}")


def _given_labels(labels: Tensor | None, count: int, limit: int | None) -> Tensor | None:
    """The labels given with a tensor of ``count`` images, checked, and cut to ``limit``.

    Raises:
        ValueError: If they are not one integer ``>= 0`` per image.
    """
    if labels is None:
        return None
    if not isinstance(labels, Tensor) or labels.is_floating_point() or labels.is_complex() \
            or labels.dtype == torch.bool or labels.shape != (count,):
        got = f"shape {tuple(labels.shape)}, dtype {labels.dtype}" if isinstance(labels, Tensor) \
            else type(labels).__name__
        raise ValueError(f"labels must be an integer tensor with one class index per image, shape "
                         f"({count},), got {got}")
    if count and int(labels.min()) < 0:
        raise ValueError(f"labels must be class indices >= 0, got {int(labels.min())}")
    return labels[:limit].long().cpu()


def _dataset_classes(source: object, labels: Tensor | None) -> tuple[str, ...] | None:
    """A dataset's class names (its ``classes`` attribute, as torchvision's datasets have) where
    they name every label it has."""
    names = getattr(source, "classes", None)
    if labels is None or not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        return None
    return tuple(names) if len(labels) and int(labels.min()) >= 0 and int(labels.max()) < len(names) else None


def _read_dataset(source: Dataset[object], limit: int | None, image_size: int | None,
                  channels: int | None) -> tuple[Tensor, Tensor | None]:
    """The images of a map-style dataset's first ``limit`` items, converted to ``channels`` (3
    when unset and the items mix grey and colour) and resized to ``image_size``, and their labels
    when every item has one."""
    count = len(source) if limit is None else min(limit, len(source))  # type: ignore[arg-type]
    pairs = [(item[0], item[1]) if isinstance(item, (tuple, list)) else (item, None)
             for item in (source[i] for i in range(count))]
    pictures = [_item_tensor(picture, index) for index, (picture, _) in enumerate(pairs)]
    if channels is None and len({picture.shape[0] for picture in pictures}) > 1:
        channels = 3  # a mix of grey and colour images: colour, as for a folder
    if channels is not None:
        pictures = [convert_channels(picture[None], channels)[0] for picture in pictures]
    if image_size is not None:
        pictures = [resize(picture[None], image_size)[0] for picture in pictures]
    if len({picture.shape for picture in pictures}) > 1:
        raise ValueError("the dataset's images differ in shape; pass image_size (and channels) "
                         "to bring them to one")
    images = as_images("data", torch.stack(pictures))
    found = [int(label) for _, label in pairs
             if isinstance(label, int) or (isinstance(label, Tensor) and label.numel() == 1)]
    return images, torch.tensor(found) if len(found) == len(pairs) else None


def _item_tensor(picture: object, index: int) -> Tensor:
    """One dataset item's image as a ``(C, H, W)`` float tensor (PIL images are converted)."""
    if isinstance(picture, Tensor):
        return picture if picture.ndim == 3 else picture[None]
    from PIL import Image

    if isinstance(picture, Image.Image):
        return pil_to_tensor(picture.convert("L" if picture.mode in ("1", "L", "I", "I;16", "F") else "RGB"))
    raise ValueError(f"data item {index} is a {type(picture).__name__}, not an image tensor or a PIL image")
