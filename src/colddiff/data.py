"""Training images as in-memory tensors in ``[0, 1]``: MNIST, Fashion-MNIST, CIFAR-10, a folder
of images, or any tensor or dataset (:func:`load`).

Named datasets are read through :mod:`torchvision.datasets` from a root folder chosen, in order,
by the ``root`` argument, the ``COLDDIFF_DATA_DIR`` environment variable, or a per-user cache
folder (``$XDG_CACHE_HOME/colddiff/data``, by default ``~/.cache/colddiff/data``). Missing files
are downloaded when the machine is online; offline, :class:`DatasetNotFoundError` says where to
put them.

The images are scaled exactly as ``transforms.ToTensor()`` does (``uint8 / 255``); the reference
study dropped the ``Normalize`` step, and so do we unless ``centre=True`` (which maps ``[0, 1]``
to ``[-0.5, 0.5]`` as the coursework starter did).
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor
from torch.nn import functional as F
from torch.utils.data import Dataset

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

__all__ = [
    "DATASETS",
    "ENV_VAR",
    "IMAGE_SUFFIXES",
    "IN_MEMORY_BYTES",
    "DatasetCorruptError",
    "DatasetNotFoundError",
    "ImageDataset",
    "ImageFolder",
    "cifar10",
    "data_root",
    "fashion_mnist",
    "load",
    "mnist",
    "resize",
]

#: The datasets known by name, with the ``(C, H, W)`` of their images.
DATASETS: dict[str, tuple[int, int, int]] = {
    "mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28), "cifar10": (3, 32, 32)}

#: File endings read from an image folder (case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

#: A folder whose decoded images (float32) would take more bytes than this is read lazily, by
#: :class:`ImageFolder` in ``DataLoader`` workers, instead of being held in memory.
IN_MEMORY_BYTES = 2 * 2**30

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
    _check_limit(limit)
    pixels, labels = _read_cifar10(train, str(data_root(root).resolve()), download)
    if limit is not None:
        pixels, labels = pixels[:limit], labels[:limit]
    return ImageDataset(pixels.permute(0, 3, 1, 2).to(torch.float32).div_(255), labels.clone())


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


class ImageFolder(Dataset[Tensor]):
    """The PNG and JPEG images under a folder (searched recursively, in sorted order), decoded
    on access into ``(C, H, W)`` float tensors in ``[0, 1]``.

    Args:
        path: The folder.
        image_size: Resize the shorter side to this and crop the centre square (as torchvision's
            ``Resize`` then ``CenterCrop``); ``None`` keeps each image's size.
        channels: 1 (greyscale) or 3 (RGB); every image is converted.

    Raises:
        DatasetNotFoundError: If the folder does not exist or holds no images.
    """

    def __init__(self, path: str | os.PathLike[str], *, image_size: int | None = None,
                 channels: Literal[1, 3] = 3) -> None:
        self.path = Path(path).expanduser()
        if not self.path.is_dir():
            raise DatasetNotFoundError(f"image folder {self.path} does not exist")
        self.files = sorted(file for file in self.path.rglob("*")
                            if file.suffix.lower() in IMAGE_SUFFIXES and file.is_file())
        if not self.files:
            raise DatasetNotFoundError(
                f"image folder {self.path} holds no images ({', '.join(IMAGE_SUFFIXES)}, searched "
                "recursively)")
        self.image_size = _check_size(image_size)
        self.channels = _check_channels(channels)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def image_shape(self) -> tuple[int, int, int] | None:
        """``(C, H, W)`` of every item when ``image_size`` is set, else ``None``."""
        return (self.channels, self.image_size, self.image_size) if self.image_size else None

    def verify(self, on_error: Literal["raise", "skip"] = "raise") -> ImageFolder:
        """Check that every file is an image Pillow can read (without decoding the pixels), so
        that a broken file stops the run now, or is left out, and not halfway through an epoch.

        Returns:
            ``self``, without the files left out.

        Raises:
            DatasetCorruptError: Naming the first broken file, when ``on_error`` is ``"raise"``.
            DatasetNotFoundError: If no file is left.
        """
        from PIL import Image, UnidentifiedImageError

        good = []
        for file in self.files:
            try:
                with Image.open(file) as image:
                    image.verify()
            except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as error:
                broken = DatasetCorruptError(f"image file {file} cannot be decoded: {error}")
                if on_error == "raise":
                    raise DatasetCorruptError(f"{broken}; remove it, or pass on_error='skip' "
                                              "(--on-error skip) to leave it out") from error
                warnings.warn(f"skipped {broken}", stacklevel=2)
                continue
            good.append(file)
        if not good:
            raise DatasetNotFoundError(f"image folder {self.path} holds no image that can be decoded")
        self.files = good
        return self

    def __getitem__(self, index: int) -> Tensor:
        """Image ``index``, decoded, converted and resized.

        Raises:
            DatasetCorruptError: If the file cannot be decoded (the message names it).
        """
        from PIL import Image, UnidentifiedImageError

        file = self.files[index]
        try:
            with Image.open(file) as image:
                converted = image.convert("L" if self.channels == 1 else "RGB")
        except (OSError, UnidentifiedImageError, ValueError) as error:
            raise DatasetCorruptError(f"image file {file} cannot be decoded: {error}") from error
        tensor = _pil_to_tensor(converted)
        return resize(tensor[None], self.image_size)[0] if self.image_size else tensor


def resize(images: Tensor, size: int) -> Tensor:
    """``(N, C, H, W)`` images with the shorter side resized to ``size`` (bilinear, antialiased)
    and the centre ``size x size`` square cropped, as torchvision's ``Resize(size)`` then
    ``CenterCrop(size)``; images already ``size x size`` are returned unchanged."""
    height, width = images.shape[-2:]
    if (height, width) == (size, size):
        return images
    scale = size / min(height, width)
    new_height, new_width = max(size, round(height * scale)), max(size, round(width * scale))
    resized = F.interpolate(images, size=(new_height, new_width), mode="bilinear",
                            align_corners=False, antialias=True).clamp_(0, 1)
    top, left = (new_height - size) // 2, (new_width - size) // 2
    return resized[..., top:top + size, left:left + size].contiguous()


def _convert_channels(images: Tensor, channels: int) -> Tensor:
    """``(N, C, H, W)`` images as ``channels`` channels: grey repeated into RGB, or RGB to grey
    with the ITU-R 601-2 luma weights that Pillow's ``convert("L")`` uses."""
    if images.shape[1] == channels:
        return images
    if channels == 3 and images.shape[1] == 1:
        return images.expand(-1, 3, -1, -1).contiguous()
    if channels == 1 and images.shape[1] == 3:
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype, device=images.device)
        return torch.einsum("nchw,c->nhw", images, weights)[:, None]
    raise ValueError(f"cannot convert images with {images.shape[1]} channels to {channels}; "
                     "give images with 1 or 3 channels")


def load(source: str | os.PathLike[str] | Tensor | Dataset[object], *, train: bool = True,
         image_size: int | None = None, channels: int | None = None, limit: int | None = None,
         root: str | os.PathLike[str] | None = None, download: bool = True,
         on_error: Literal["raise", "skip"] = "raise") -> ImageDataset:
    """Training images from any source, as one in-memory ``(N, C, H, W)`` tensor in ``[0, 1]``.

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

    Raises:
        ValueError: If ``source`` is none of these, or an option is invalid; the message names it.
        DatasetNotFoundError: If a named dataset cannot be found or downloaded, or the folder
            holds no images.
        DatasetCorruptError: If a file cannot be decoded and ``on_error`` is ``"raise"``.
    """
    _check_limit(limit)
    image_size = _check_size(image_size)
    if channels is not None:
        channels = _check_channels(channels)
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    labels: Tensor | None = None
    if isinstance(source, str) and source in DATASETS:
        named = {"mnist": mnist, "fashion_mnist": fashion_mnist}.get(source)
        dataset = (named(train, root, download=download, limit=limit) if named is not None
                   else cifar10(train, root, download=download, limit=limit))
        images, labels = dataset.images, dataset.labels
    elif isinstance(source, (str, os.PathLike)):
        if not Path(source).expanduser().is_dir():
            raise ValueError(f"data must be one of {', '.join(DATASETS)} or a folder of images; "
                             f"{str(source)!r} is neither")
        images = _read_folder(ImageFolder(source, image_size=image_size, channels=channels or 3),
                              limit, on_error)
    elif isinstance(source, Tensor):
        images = _as_images("data", source[:limit] if limit is not None else source)
    elif isinstance(source, Dataset) or (hasattr(source, "__len__") and hasattr(source, "__getitem__")):
        count = len(source) if limit is None else min(limit, len(source))  # type: ignore[arg-type]
        pairs = [(item[0], item[1]) if isinstance(item, (tuple, list)) else (item, None)
                 for item in (source[i] for i in range(count))]
        pictures = [_item_tensor(picture, index) for index, (picture, _) in enumerate(pairs)]
        if channels is None and len({picture.shape[0] for picture in pictures}) > 1:
            channels = 3  # a mix of grey and colour images: colour, as for a folder
        if channels is not None:
            pictures = [_convert_channels(picture[None], channels)[0] for picture in pictures]
        if image_size is not None:
            pictures = [resize(picture[None], image_size)[0] for picture in pictures]
        if len({picture.shape for picture in pictures}) > 1:
            raise ValueError("the dataset's images differ in shape; pass image_size (and channels) "
                             "to bring them to one")
        images = _as_images("data", torch.stack(pictures))
        found = [int(label) for _, label in pairs
                 if isinstance(label, int) or (isinstance(label, Tensor) and label.numel() == 1)]
        if len(found) == len(pairs):
            labels = torch.tensor(found)
    else:
        raise ValueError(f"data must be a dataset name ({', '.join(DATASETS)}), a folder, a tensor or "
                         f"a torch Dataset, got {type(source).__name__}")
    if channels is not None:
        images = _convert_channels(images, channels)
    if image_size is not None:
        images = resize(images, image_size)
    if labels is None:
        labels = torch.full((len(images),), -1, dtype=torch.long)
    return ImageDataset(images, labels)


def _read_folder(folder: ImageFolder, limit: int | None, on_error: str) -> Tensor:
    """Decode the folder's images, skipping or stopping at broken files; equal sizes required."""
    decoded: list[tuple[Path, Tensor]] = []
    for index, file in enumerate(folder.files):
        if limit is not None and len(decoded) == limit:
            break
        try:
            decoded.append((file, folder[index]))
        except DatasetCorruptError as error:
            if on_error == "raise":
                raise DatasetCorruptError(f"{error}; remove it, or pass on_error='skip' "
                                          "(--on-error skip) to leave it out") from error
            warnings.warn(f"skipped {error}", stacklevel=3)
    if not decoded:
        raise DatasetNotFoundError(f"image folder {folder.path} holds no image that can be decoded")
    first_file, first = decoded[0]
    other = next(((file, image) for file, image in decoded if image.shape != first.shape), None)
    if other is not None:
        examples = "; ".join(f"{file.name} {image.shape[2]}x{image.shape[1]}"
                             for file, image in ((first_file, first), other))
        raise ValueError(f"the images in {folder.path} have different sizes ({examples}); pass "
                         "image_size (--image-size) to resize and crop them all to one")
    return torch.stack([image for _, image in decoded])


def _item_tensor(picture: object, index: int) -> Tensor:
    """One dataset item's image as a ``(C, H, W)`` float tensor (PIL images are converted)."""
    if isinstance(picture, Tensor):
        return picture if picture.ndim == 3 else picture[None]
    from PIL import Image

    if isinstance(picture, Image.Image):
        return _pil_to_tensor(picture.convert("L" if picture.mode in ("1", "L", "I", "I;16", "F") else "RGB"))
    raise ValueError(f"data item {index} is a {type(picture).__name__}, not an image tensor or a PIL image")


def _pil_to_tensor(image: PILImage) -> Tensor:
    """A Pillow image in mode ``L`` or ``RGB`` as a ``(C, H, W)`` float tensor in ``[0, 1]``."""
    pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    return pixels.view(image.height, image.width, -1).permute(2, 0, 1).to(torch.float32).div_(255)


def _as_images(name: str, images: Tensor) -> Tensor:
    """``images`` checked to be a non-empty float ``(N, C, H, W)`` batch in ``[0, 1]``."""
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim == 4 and images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
        raise ValueError(f"{name} looks channels-last, (N, H, W, C) = {tuple(images.shape)}; give "
                         "(N, C, H, W), e.g. images.permute(0, 3, 1, 2)")
    if images.ndim != 4 or images.shape[0] == 0 or not images.is_floating_point():
        raise ValueError(f"{name} must be a non-empty float tensor (N, C, H, W) in [0, 1], got shape "
                         f"{tuple(images.shape)} and dtype {images.dtype}")
    low, high = float(images.min()), float(images.max())
    if low < 0 or high > 1:
        raise ValueError(f"{name} must hold values in [0, 1], got values from {low:g} to {high:g}; "
                         "scale your images (uint8 / 255)")
    return images.to(torch.float32)


def _check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")


def _check_size(image_size: int | None) -> int | None:
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int)
                                   or image_size < 1):
        raise ValueError(f"image_size must be a positive integer or None, got {image_size!r}")
    return image_size


def _check_channels(channels: int) -> Literal[1, 3]:
    if channels not in (1, 3) or isinstance(channels, bool):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    return channels  # type: ignore[return-value]


def _load(name: str, train: bool, root: str | os.PathLike[str] | None, *, download: bool,
          limit: int | None, centre: bool) -> ImageDataset:
    _check_limit(limit)
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
