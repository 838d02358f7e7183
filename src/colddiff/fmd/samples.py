"""Generated digits to score, read from disk: a tensor file or a folder of images."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

from colddiff import checkpoints, data

__all__ = ["load_labelled_samples", "load_samples"]

#: ``(H, W)`` of the digits the classifier scores.
DIGIT_SIZE = (28, 28)


def load_samples(path: str | os.PathLike[str]) -> Tensor:
    """Images to score from a tensor file (``torch.save`` of ``(N, 1, 28, 28)``, loaded with
    ``weights_only=True``, or of the labelled samples of :func:`load_labelled_samples`) or a
    folder of images, read as a training folder is (:class:`colddiff.data.ImageFolder`: PNG and
    JPEG files, searched recursively, in sorted order) and converted to grey; each must be one
    28x28 digit (none is resized: a resized image would score differently).

    Raises:
        ValueError: If the path is neither, or a folder's images are not all 28x28.
        colddiff.data.DatasetNotFoundError: If the folder holds no images.
        colddiff.data.DatasetCorruptError: If a folder's file cannot be decoded (named).
        colddiff.checkpoints.CheckpointError: If the tensor file is unsafe (it holds pickled
            objects other than tensors: refused, nothing in it run), a bare pickle, or corrupt.
    """
    return load_labelled_samples(path)[0]


def load_labelled_samples(path: str | os.PathLike[str]
                          ) -> tuple[Tensor, Tensor | None, tuple[str, ...] | None]:
    """``(images, labels, classes)`` from a sample file or folder (see :func:`load_samples`).

    A conditional model's samples (``colddiff sample --save-tensor``) are saved as a dict
    ``{"images": (N, 1, 28, 28), "labels": (N,), "classes": [...]}``: the class each sample was
    asked for, and the model's label set. A bare tensor or a folder has neither (``None``).

    Raises:
        ValueError: As :func:`load_samples`, or if a dict lacks ``"images"`` or its labels are
            not one per image.
    """
    path = Path(path)
    if path.is_dir():
        return _read_folder(path), None, None
    if not path.exists():
        raise ValueError(f"samples {path}: no such file or folder (give a tensor file of (N, 1, 28, 28) "
                         "images saved with torch.save, or a folder of 28x28 images)")
    if not path.is_file():
        raise ValueError(f"samples {path} is neither a tensor file nor a folder of images")
    loaded = checkpoints.safe_load(path, "cpu", what="samples file")
    if isinstance(loaded, dict) and isinstance(loaded.get("images"), Tensor):
        images, labels, classes = loaded["images"], loaded.get("labels"), loaded.get("classes")
        if labels is not None and (not isinstance(labels, Tensor) or labels.shape != (len(images),)):
            raise ValueError(f"samples {path}: its labels must be one class index per image, shape "
                             f"({len(images)},)")
        return images, labels, tuple(classes) if classes is not None else None
    if not isinstance(loaded, Tensor):
        raise ValueError(f"samples {path} must hold one tensor (or a dict of images, labels and classes), "
                         f"got {type(loaded).__name__}")
    return loaded, None, None


def _read_folder(path: Path) -> Tensor:
    """The folder's images as ``(N, 1, 28, 28)``; the message of any other size names a few."""
    folder = data.ImageFolder(path, channels=1)
    images = [folder[index] for index in range(len(folder))]
    wrong = [(file, image) for file, image in zip(folder.files, images, strict=True)
             if tuple(image.shape[-2:]) != DIGIT_SIZE]
    if wrong:
        examples = ", ".join(f"{file.relative_to(path)} ({image.shape[2]}x{image.shape[1]})"
                             for file, image in wrong[:3])
        raise ValueError(f"samples in {path} must each be one 28x28 digit; {len(wrong)} of {len(images)} "
                         f"are not: {examples}" + (", ..." if len(wrong) > 3 else ""))
    return torch.stack(images)
