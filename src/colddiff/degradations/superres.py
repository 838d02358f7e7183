"""Repeated down-sampling: Bansal et al.'s super-resolution degradation."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor
from torch.nn import functional as F

from colddiff.degradations.base import Degradation, check_images, check_timesteps
from colddiff.degradations.registry import register
from colddiff.schedules import Schedule

__all__ = ["SuperResolution"]

_MODES = ("area", "nearest")


@register("superres")
class SuperResolution(Degradation):
    """``x_t = up(down(x_0, 2^t))``: the image at ``1 / 2^t`` of its resolution, shown at full size.

    Bansal et al. (2022, section 4.3) halve the resolution once per step, and after each halving
    resize back to the original size with nearest-neighbour interpolation, until a 4x4 image is
    left for MNIST and CIFAR-10. Halving ``t`` times is one down-sampling by ``2^t``: each output
    pixel is the mean of its ``2^t x 2^t`` block (``mode="area"``) or its block's top-left pixel
    (``mode="nearest"``), and each block is then filled with that value. ``x_0`` is the
    identity.

    ``T`` is the number of halvings, so ``H`` and ``W`` must be divisible by ``2^T``: MNIST's
    28x28 allows ``T = 2`` (down to 7x7); resized to 32x32 (``image_size = 32``), ``T = 3``
    reaches Bansal's 4x4. The length of a ``schedule`` passed in is not used (the number of
    halvings is this degradation's own option), so that configs, which always pass one, work.

    There is no source and no prior: a model generates from down-sampled real images
    (``Trainer.sample`` degrades training images for it).

    Args:
        schedule: Accepted for the common constructor; its length is not used.
        num_timesteps: ``T``, the number of halvings (default 3: 32x32 down to 4x4).
        mode: ``"area"`` (block means; the default) or ``"nearest"`` (one pixel per block).
        image_shape: ``(C, H, W)`` of the images, or ``None`` for any size divisible by ``2^T``.

    Raises:
        ValueError: If ``mode`` is unknown, or ``image_shape`` is not divisible by ``2^T``.
    """

    default_num_timesteps = 3

    def __init__(self, schedule: Schedule | None = None, *, num_timesteps: int | None = None,
                 mode: Literal["area", "nearest"] = "area",
                 image_shape: tuple[int, int, int] | None = None) -> None:
        del schedule  # the number of halvings is T
        super().__init__(num_timesteps=num_timesteps, image_shape=image_shape)
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {list(_MODES)}, got {mode!r}")
        self.mode = mode
        if self.image_shape is not None:
            self._check_size(*self.image_shape[1:])

    def _check_size(self, height: int, width: int) -> None:
        largest = 2**self.num_timesteps
        if height % largest or width % largest:
            raise ValueError(
                f"superres with T = {self.num_timesteps} halvings needs image sides divisible by "
                f"2^T = {largest}, got {height}x{width}; resize the images (--image-size "
                f"{-(-max(height, width) // largest) * largest}) or use fewer halvings "
                f"(degradation_kwargs num_timesteps)")

    def degrade(self, x0: Tensor, t: Tensor | int, source: Tensor | None = None) -> Tensor:
        """Down-sample each image of ``x0`` by ``2^t`` and back (``source`` is ignored)."""
        check_images("x0", x0)
        t = check_timesteps(t, x0, self.num_timesteps)
        self._check_size(*x0.shape[-2:])
        # Every level for the whole batch, then each image's own: no data-dependent branch,
        # so no device sync (T is small: 3 levels for 32x32 down to 4x4).
        levels = [x0] + [self._resample(x0, 2**step) for step in range(1, self.num_timesteps + 1)]
        return torch.stack(levels)[t, torch.arange(x0.shape[0], device=x0.device)]

    def _resample(self, x0: Tensor, factor: int) -> Tensor:
        """``x0`` down-sampled by ``factor`` and filled back to full size, block by block."""
        small = F.avg_pool2d(x0, factor) if self.mode == "area" else x0[..., ::factor, ::factor]
        return small.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)

    def __repr__(self) -> str:
        return f"SuperResolution(num_timesteps={self.num_timesteps}, mode={self.mode!r})"
