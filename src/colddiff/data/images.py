"""Images in memory: the :class:`ImageDataset` every source is read into, the checks of images
and of the options that shape them, and the transforms that bring images to one shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor
from torch.nn import functional as F
from torch.utils.data import Dataset

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

__all__ = ["ImageDataset", "as_images", "check_channels", "check_limit", "check_size", "convert_channels",
           "pil_to_tensor", "resize"]


@dataclass(frozen=True)
class ImageDataset(Dataset[tuple[Tensor, Tensor]]):
    """Images and labels held in memory; items are ``(image, label)`` pairs.

    Attributes:
        images: Float tensor ``(N, C, H, W)``, in ``[0, 1]`` (``[-0.5, 0.5]`` when centred).
        labels: Int64 tensor ``(N,)``: class indices, -1 where an image has no label.
        classes: The names of the classes (label ``i`` is ``classes[i]``), where the source
            names them: a named dataset's, a folder's subfolders, a dataset's ``classes``.
    """

    images: Tensor
    labels: Tensor
    classes: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.images[index], self.labels[index]


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


def convert_channels(images: Tensor, channels: int) -> Tensor:
    """``(N, C, H, W)`` images as ``channels`` channels: grey repeated into RGB, or RGB to grey
    with the ITU-R 601-2 luma weights that Pillow's ``convert("L")`` uses.

    Raises:
        ValueError: If the images have neither 1 nor 3 channels.
    """
    if images.shape[1] == channels:
        return images
    if channels == 3 and images.shape[1] == 1:
        return images.expand(-1, 3, -1, -1).contiguous()
    if channels == 1 and images.shape[1] == 3:
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype, device=images.device)
        return torch.einsum("nchw,c->nhw", images, weights)[:, None]
    raise ValueError(f"cannot convert images with {images.shape[1]} channels to {channels}; "
                     "give images with 1 or 3 channels")


def pil_to_tensor(image: PILImage) -> Tensor:
    """A Pillow image in mode ``L`` or ``RGB`` as a ``(C, H, W)`` float tensor in ``[0, 1]``."""
    pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    return pixels.view(image.height, image.width, -1).permute(2, 0, 1).to(torch.float32).div_(255)


def as_images(name: str, images: Tensor) -> Tensor:
    """``images`` checked to be a non-empty float ``(N, C, H, W)`` batch in ``[0, 1]`` (an
    ``(N, H, W)`` batch gets its channel), as float32.

    Raises:
        ValueError: Naming ``name`` and what is wrong.
    """
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


def check_limit(limit: int | None) -> None:
    """Check that ``limit`` is ``None`` or a positive integer.

    Raises:
        ValueError: If it is not.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")


def check_size(image_size: int | None) -> int | None:
    """``image_size``, checked to be ``None`` or a positive integer.

    Raises:
        ValueError: If it is not.
    """
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int)
                                   or image_size < 1):
        raise ValueError(f"image_size must be a positive integer or None, got {image_size!r}")
    return image_size


def check_channels(channels: int) -> Literal[1, 3]:
    """``channels``, checked to be 1 or 3.

    Raises:
        ValueError: If it is not.
    """
    if channels not in (1, 3) or isinstance(channels, bool):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    return channels  # type: ignore[return-value]
