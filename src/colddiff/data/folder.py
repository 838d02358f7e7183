"""A folder of PNG and JPEG images: :class:`ImageFolder` decodes them one at a time (for
``DataLoader`` workers), :func:`read_folder` all at once into memory; :func:`read_image`
decodes one image file as the folder's are."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor
from torch.utils.data import Dataset

from colddiff.data.errors import DatasetCorruptError, DatasetNotFoundError
from colddiff.data.images import check_channels, check_size, pil_to_tensor, resize

__all__ = ["IMAGE_SUFFIXES", "IN_MEMORY_BYTES", "ImageFolder", "read_folder", "read_image"]

#: File endings read from an image folder (case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

#: A folder whose decoded images (float32) would take more bytes than this is read lazily, by
#: :class:`ImageFolder` in ``DataLoader`` workers, instead of being held in memory.
IN_MEMORY_BYTES = 2 * 2**30


class ImageFolder(Dataset[Tensor]):
    """The PNG and JPEG images under a folder (searched recursively, in sorted order), decoded
    on access into ``(C, H, W)`` float tensors in ``[0, 1]``.

    The subfolders hold the classes (torchvision's ``ImageFolder`` convention): an image under
    ``PATH/cat/`` (at any depth) is of class ``"cat"``; :attr:`classes` are the subfolders'
    names in sorted order and :meth:`labels` each image's class index (-1 for an image at the top).

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
        self.image_size = check_size(image_size)
        self.channels = check_channels(channels)
        #: The names of the subfolders that hold images, sorted (empty when all are at the top);
        #: fixed here, whatever files :meth:`verify` or a limit leave out later.
        self.classes = tuple(sorted({name for name in map(self._class_of, self.files) if name is not None}))

    def __len__(self) -> int:
        return len(self.files)

    def _class_of(self, file: Path) -> str | None:
        parts = file.relative_to(self.path).parts
        return parts[0] if len(parts) > 1 else None

    def labels(self) -> Tensor:
        """Each image's class: its index in :attr:`classes`, -1 for an image at the top."""
        index = {name: i for i, name in enumerate(self.classes)}
        return torch.tensor([-1 if (name := self._class_of(file)) is None else index[name]
                             for file in self.files], dtype=torch.long)

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
                    raise _what_to_do(broken) from error
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
        return read_image(self.files[index], image_size=self.image_size, channels=self.channels)


def read_image(file: str | os.PathLike[str], *, image_size: int | None = None,
               channels: Literal[1, 3] = 3) -> Tensor:
    """One image file decoded as a folder's images are: a ``(C, H, W)`` float tensor in
    ``[0, 1]``, converted to ``channels`` and, if ``image_size`` is given, resized and
    centre-cropped to it.

    Raises:
        DatasetCorruptError: If the file cannot be decoded (the message names it).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            converted = image.convert("L" if channels == 1 else "RGB")
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise DatasetCorruptError(f"image file {file} cannot be decoded: {error}") from error
    tensor = pil_to_tensor(converted)
    return resize(tensor[None], image_size)[0] if image_size else tensor


def read_folder(folder: ImageFolder, limit: int | None, on_error: str) -> tuple[Tensor, Tensor]:
    """Decode the folder's first ``limit`` images into one ``(N, C, H, W)`` tensor, stopping at a
    broken file (``on_error="raise"``) or leaving it out with a warning (``"skip"``); with the
    labels ``(N,)`` of the images kept (:meth:`ImageFolder.labels`).

    Raises:
        DatasetCorruptError: Naming the first broken file, when ``on_error`` is ``"raise"``.
        DatasetNotFoundError: If no image can be decoded.
        ValueError: If the images differ in size (the message names two and says to pass
            ``image_size``).
    """
    decoded: list[tuple[Path, Tensor]] = []
    kept: list[int] = []
    for index, file in enumerate(folder.files):
        if limit is not None and len(decoded) == limit:
            break
        try:
            decoded.append((file, folder[index]))
            kept.append(index)
        except DatasetCorruptError as error:
            if on_error == "raise":
                raise _what_to_do(error) from error
            warnings.warn(f"skipped {error}", stacklevel=3)
    if not decoded:
        raise DatasetNotFoundError(f"image folder {folder.path} holds no image that can be decoded")
    first_file, first = decoded[0]
    other = next(((file, image) for file, image in decoded if image.shape != first.shape), None)
    if other is not None:
        examples = "; ".join(f"{file.name} {image.shape[2]}x{image.shape[1]}"
                             for file, image in ((first_file, first), other))
        raise ValueError(f"the images in {folder.path} have different sizes ({examples}); pass "
                         "image_size to resize and crop them all to one")
    return torch.stack([image for _, image in decoded]), folder.labels()[kept]


def _what_to_do(broken: DatasetCorruptError) -> DatasetCorruptError:
    """``broken``'s message with what to do about it."""
    return DatasetCorruptError(f"{broken}; remove it, or pass on_error='skip' to leave it out")
