"""Where a degradation's images come from and where it draws: image sources (a tensor or a
dataset), read lazily and kept per device; rows drawn at random; the device a prior draws on."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.utils.data import Dataset

__all__ = ["ImageSource", "LazyImages", "as_image_tensor", "prior_device", "random_rows"]


ImageSource = Tensor | Dataset[Tensor] | Dataset[tuple[Tensor, ...]]
"""Images to mix in: a ``(N, C, H, W)`` tensor, or a dataset whose items are images or
``(image, ...)`` tuples."""


def as_image_tensor(name: str, images: ImageSource) -> Tensor:
    """Stack ``images`` (a tensor or a dataset) into one float ``(N, C, H, W)`` tensor.

    Raises:
        ValueError: If the result is not a non-empty 4-D float tensor; the message names ``name``.
    """
    if not isinstance(images, Tensor):
        items = [images[i] for i in range(len(images))]  # type: ignore[arg-type]
        images = torch.stack([item[0] if isinstance(item, (tuple, list)) else item for item in items])
    if images.ndim == 3:
        images = images.unsqueeze(1)
    if images.ndim != 4 or images.shape[0] == 0 or not images.is_floating_point():
        raise ValueError(
            f"{name} must hold at least one float image of shape (C, H, W); got a tensor of "
            f"shape {tuple(images.shape)} and dtype {images.dtype}"
        )
    return images


class LazyImages:
    """An image tensor made on first use by ``load`` (so that creating a degradation reads no files)."""

    def __init__(self, name: str, load: Callable[[], ImageSource] | ImageSource) -> None:
        self._name = name
        self._load = load
        self._images: Tensor | None = None
        self._on_device: dict[torch.device, Tensor] = {}

    def on(self, device: torch.device) -> Tensor:
        """The images on ``device`` (copied there once and cached)."""
        if self._images is None:
            source = self._load() if callable(self._load) else self._load
            self._images = as_image_tensor(self._name, source)
        if device not in self._on_device:
            self._on_device[device] = self._images.to(device)
        return self._on_device[device]


def prior_device(device: torch.device | str | None, generator: torch.Generator | None) -> torch.device:
    """Where :meth:`Degradation.prior` draws: on ``device``; else on the generator's device (a
    seeded start is then the same whoever asks for it); else on the CPU. Every built-in ``prior``
    follows this rule; a plugin's should too.

    Args:
        device: The device asked for, or ``None``.
        generator: The generator the prior draws from, or ``None``.

    Returns:
        The device to draw on.
    """
    if device is not None:
        return torch.device(device)
    return generator.device if generator is not None else torch.device("cpu")


def random_rows(images: Tensor, n: int, generator: torch.Generator | None) -> Tensor:
    """``n`` rows of ``images`` drawn uniformly with replacement, using ``generator``'s device."""
    device = generator.device if generator is not None else images.device
    index = torch.randint(images.shape[0], (n,), generator=generator, device=device)
    return images[index.to(images.device)]
