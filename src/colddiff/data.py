"""MNIST and Fashion-MNIST as in-memory tensors in ``[0, 1]``.

Datasets are read through :mod:`torchvision.datasets` from a root folder chosen, in order, by
the ``root`` argument, the ``COLDDIFF_DATA_DIR`` environment variable, or a per-user cache
folder (``$XDG_CACHE_HOME/colddiff/data``, by default ``~/.cache/colddiff/data``). Missing files
are downloaded when the machine is online; offline, :class:`DatasetNotFoundError` says where to
put the IDX files.

The images are scaled exactly as ``transforms.ToTensor()`` does (``uint8 / 255``); the reference
study dropped the ``Normalize`` step, and so do we unless ``centre=True`` (which maps ``[0, 1]``
to ``[-0.5, 0.5]`` as the coursework starter did).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

__all__ = [
    "ENV_VAR",
    "DatasetNotFoundError",
    "ImageDataset",
    "data_root",
    "fashion_mnist",
    "mnist",
]

#: Environment variable naming the folder that holds ``MNIST/raw`` and ``FashionMNIST/raw``.
ENV_VAR = "COLDDIFF_DATA_DIR"

_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
          "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is neither on disk nor downloadable; the message says where to put its files."""


@dataclass(frozen=True)
class ImageDataset(Dataset[tuple[Tensor, Tensor]]):
    """Images and labels held in memory; items are ``(image, label)`` pairs.

    Attributes:
        images: Float tensor ``(N, C, H, W)``, in ``[0, 1]`` (``[-0.5, 0.5]`` when centred).
        labels: Int64 tensor ``(N,)``.
    """

    images: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.images[index], self.labels[index]


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The folder datasets are read from: ``root``, else ``$COLDDIFF_DATA_DIR``, else the user cache."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "colddiff" / "data"


def mnist(train: bool = True, root: str | os.PathLike[str] | None = None, *,
          download: bool = True, limit: int | None = None, centre: bool = False) -> ImageDataset:
    """The MNIST digits (60,000 train or 10,000 test images, ``(N, 1, 28, 28)``).

    Args:
        train: The training split if true, else the test split.
        root: Folder holding ``MNIST/raw``; see :func:`data_root` for the default.
        download: Download the files when they are missing.
        limit: Keep only the first ``limit`` images.
        centre: Shift the pixels to ``[-0.5, 0.5]``.

    Raises:
        DatasetNotFoundError: If the files are missing and cannot be downloaded.
        ValueError: If ``limit`` is not a positive integer.
    """
    return _load("MNIST", train, root, download=download, limit=limit, centre=centre)


def fashion_mnist(train: bool = True, root: str | os.PathLike[str] | None = None, *,
                  download: bool = True, limit: int | None = None,
                  centre: bool = False) -> ImageDataset:
    """Fashion-MNIST (60,000 train or 10,000 test images, ``(N, 1, 28, 28)``).

    Arguments and errors as for :func:`mnist`, with the files under ``FashionMNIST/raw``.
    """
    return _load("FashionMNIST", train, root, download=download, limit=limit, centre=centre)


def _load(name: str, train: bool, root: str | os.PathLike[str] | None, *, download: bool,
          limit: int | None, centre: bool) -> ImageDataset:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
    pixels, labels = _read(name, train, str(data_root(root).resolve()), download)
    if limit is not None:
        pixels, labels = pixels[:limit], labels[:limit]
    images = pixels.unsqueeze(1).to(torch.float32).div_(255)
    if centre:
        images.sub_(0.5)
    return ImageDataset(images, labels.clone())


@functools.lru_cache(maxsize=8)
def _read(name: str, train: bool, root: str, download: bool) -> tuple[Tensor, Tensor]:
    """The raw uint8 pixels and labels of one split (cached: files are read once per process)."""
    from torchvision import datasets

    cls = {"MNIST": datasets.MNIST, "FashionMNIST": datasets.FashionMNIST}[name]
    try:
        dataset = cls(root, train=train, download=download)
    except (RuntimeError, OSError) as error:
        raw = Path(root) / name / "raw"
        raise DatasetNotFoundError(
            f"{name} is not in {raw} and could not be downloaded "
            f"({str(error).strip().splitlines()[0]}). Put the uncompressed "
            f"IDX files ({', '.join(_FILES)}) in that folder, or point {ENV_VAR} (or root=) at a "
            f"folder holding {name}/raw."
        ) from error
    return dataset.data, dataset.targets
