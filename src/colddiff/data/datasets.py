"""The datasets known by name: MNIST, Fashion-MNIST and CIFAR-10, read through
:mod:`torchvision.datasets` into an :class:`~colddiff.data.ImageDataset`, with their root folder
and the check of MNIST's IDX files."""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path

import torch
from torch import Tensor

from colddiff.data.errors import DatasetCorruptError, DatasetNotFoundError
from colddiff.data.images import ImageDataset, check_limit

__all__ = ["CLASSES", "DATASETS", "ENV_VAR", "check_idx_file", "cifar10", "data_root", "fashion_mnist",
           "mnist"]

#: The datasets known by name, with the ``(C, H, W)`` of their images.
DATASETS: dict[str, tuple[int, int, int]] = {
    "mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28), "cifar10": (3, 32, 32)}

#: The class names of the datasets known by name, in the order of their labels.
CLASSES: dict[str, tuple[str, ...]] = {
    "mnist": tuple(str(digit) for digit in range(10)),
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                "truck"),
}

#: Environment variable naming the folder that holds ``MNIST/raw`` and ``FashionMNIST/raw``.
ENV_VAR = "COLDDIFF_DATA_DIR"

_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
          "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


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
    return _load_idx("MNIST", train, root, download=download, limit=limit, centre=centre)


def fashion_mnist(train: bool = True, root: str | os.PathLike[str] | None = None, *,
                  download: bool = True, limit: int | None = None,
                  centre: bool = False) -> ImageDataset:
    """Fashion-MNIST (60,000 train or 10,000 test images, ``(N, 1, 28, 28)``).

    Arguments and errors as for :func:`mnist`, with the files under ``FashionMNIST/raw``.
    """
    return _load_idx("FashionMNIST", train, root, download=download, limit=limit, centre=centre)


def cifar10(train: bool = True, root: str | os.PathLike[str] | None = None, *,
            download: bool = True, limit: int | None = None) -> ImageDataset:
    """CIFAR-10 (50,000 train or 10,000 test colour images, ``(N, 3, 32, 32)``).

    Args:
        train: The training split if true, else the test split.
        root: Folder holding ``cifar-10-batches-py``; see :func:`data_root` for the default.
        download: Download the archive (163 MB) when it is missing.
        limit: Keep only the first ``limit`` images.

    Raises:
        DatasetNotFoundError: If the files are missing and cannot be downloaded.
        ValueError: If ``limit`` is not a positive integer.
    """
    check_limit(limit)
    pixels, labels = _read_cifar10(train, str(data_root(root).resolve()), download)
    if limit is not None:
        pixels, labels = pixels[:limit], labels[:limit]
    return ImageDataset(pixels.permute(0, 3, 1, 2).to(torch.float32).div_(255), labels.clone(),
                        CLASSES["cifar10"])


@functools.lru_cache(maxsize=2)
def _read_cifar10(train: bool, root: str, download: bool) -> tuple[Tensor, Tensor]:
    from torchvision import datasets

    try:
        dataset = datasets.CIFAR10(root, train=train, download=download)
    except (RuntimeError, OSError) as error:
        raise DatasetNotFoundError(
            f"CIFAR-10 is not in {Path(root) / 'cifar-10-batches-py'} and could not be downloaded "
            f"({str(error).strip().splitlines()[0]}). Download cifar-10-python.tar.gz from "
            f"https://www.cs.toronto.edu/~kriz/cifar.html and unpack it in {root}, or point "
            f"{ENV_VAR} (or root=) at a folder holding cifar-10-batches-py."
        ) from error
    return torch.from_numpy(dataset.data), torch.tensor(dataset.targets)


def _load_idx(name: str, train: bool, root: str | os.PathLike[str] | None, *, download: bool,
              limit: int | None, centre: bool) -> ImageDataset:
    """MNIST or Fashion-MNIST (``name`` as torchvision spells it) scaled to ``[0, 1]``."""
    check_limit(limit)
    pixels, labels = _read(name, train, str(data_root(root).resolve()), download)
    if limit is not None:
        pixels, labels = pixels[:limit], labels[:limit]
    images = pixels.unsqueeze(1).to(torch.float32).div_(255)
    if centre:
        images.sub_(0.5)
    return ImageDataset(images, labels.clone(), CLASSES["mnist" if name == "MNIST" else "fashion_mnist"])


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
