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
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

__all__ = [
    "ENV_VAR",
    "DatasetCorruptError",
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


class DatasetCorruptError(OSError):
    """A dataset file is on disk but damaged; the message names it and says what to do."""


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
        DatasetCorruptError: If a file is there but damaged (the message names it).
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

    raw = Path(root) / name / "raw"
    split = "train" if train else "t10k"
    for kind in ("images-idx3", "labels-idx1"):
        check_idx_file(raw / f"{split}-{kind}-ubyte")
    cls = {"MNIST": datasets.MNIST, "FashionMNIST": datasets.FashionMNIST}[name]
    try:
        dataset = cls(root, train=train, download=download)
    except (RuntimeError, OSError) as error:
        raise DatasetNotFoundError(
            f"{name} is not in {raw} and could not be downloaded "
            f"({str(error).strip().splitlines()[0]}). Put the uncompressed "
            f"IDX files ({', '.join(_FILES)}) in that folder, or point {ENV_VAR} (or root=) at a "
            f"folder holding {name}/raw."
        ) from error
    return dataset.data, dataset.targets


def check_idx_file(path: Path) -> None:
    """Check an uncompressed IDX file of ``uint8`` images or labels, if it exists.

    The header (two zero bytes, type ``0x08``, the number of dimensions, then each dimension as a
    big-endian 32-bit integer) must be well formed, images must be 28x28 and the file exactly
    as long as its header says. A missing file is left for the download to fetch.

    Raises:
        DatasetCorruptError: Naming the file, what is wrong with it, and what to do.
    """
    if not path.is_file():
        return
    size = path.stat().st_size
    dimensions = 3 if "images" in path.name else 1
    header_size = 4 + 4 * dimensions
    with open(path, "rb") as handle:
        header = handle.read(header_size)
    problem = None
    if len(header) < header_size:
        problem = f"it is {size} bytes long, shorter than an IDX header"
    elif header[:4] != bytes([0, 0, 0x08, dimensions]):
        problem = (f"its header starts with {header[:4].hex()}, not the uint8 IDX magic "
                   f"{bytes([0, 0, 0x08, dimensions]).hex()}")
    else:
        shape = [int.from_bytes(header[4 + 4 * i:8 + 4 * i], "big") for i in range(dimensions)]
        expected = header_size + math.prod(shape)
        if dimensions == 3 and shape[1:] != [28, 28]:
            problem = f"its header gives images of {shape[1]}x{shape[2]} pixels, not 28x28"
        elif size != expected:
            problem = (f"its header announces {shape[0]} items ({expected} bytes) but the file has "
                       f"{size} bytes (truncated or padded)")
    if problem is not None:
        raise DatasetCorruptError(
            f"dataset file {path} is corrupt: {problem}. Delete it so that it is downloaded again, "
            "or replace it with a good copy (the uncompressed IDX file)."
        )
