"""Repeated down-sampling: Bansal et al.'s super-resolution degradation."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor
from torch.nn import functional as F

from colddiff.degradations.base import Degradation, check_images, check_timesteps
from colddiff.degradations.noise import NoiseOption
from colddiff.degradations.registry import register
from colddiff.schedules import Schedule

__all__ = ["SuperResolution"]

_MODES = ("area", "nearest", "bicubic")


@register("superres")
class SuperResolution(Degradation):
    """``x_t = up(down(x_0, 2^t))``: the image at ``1 / 2^t`` of its resolution, shown at full size.

    Bansal et al. (2022, section 4.3) halve the resolution once per step, and after each halving
    resize back to the original size with nearest-neighbour interpolation, until a 4x4 image is
    left for MNIST and CIFAR-10. With ``mode="area"`` (the default) or ``"nearest"``, halving
    ``t`` times is one down-sampling by ``2^t``: each output pixel is the mean of its
    ``2^t x 2^t`` block (``"area"``) or its block's top-left pixel (``"nearest"``), and each
    block is then filled with that value. ``x_0`` is the identity.

    ``mode="bicubic"`` is the official code's MNIST setting (arpitbansal297/Cold-Diffusion-Models,
    ``resolution-diffusion-pytorch/runs.sh``: ``mnist_train.py --time_steps 3
    --resolution_routine 'Incremental_factor_2'``; the routine is ``GaussianDiffusion.get_funcs``
    and ``transform_func`` in ``resolution_diffusion_pytorch/resolution_diffusion_pytorch.py``).
    There each step resamples the *previous step's* full-size image: step ``t`` shrinks
    ``x_{t-1}`` to ``H / 2^t x W / 2^t`` by bicubic interpolation without antialiasing
    (``F.interpolate(..., mode="bicubic", antialias=False)``, half-pixel centres) and enlarges
    it back by nearest-neighbour (``"nearest-exact"``, the same as filling each block), so::

        x_t = up(bicubic(x_{t-1}, H / 2^t x W / 2^t))

    which is what this mode computes. (Their step index ``i = 0..T-1`` is this ``t = i + 1``.)
    Only the first halving is bicubic in effect: from ``t = 2`` on, the image already consists
    of ``2^(t-1)``-pixel blocks, and the four bicubic taps (weights ``-3/32, 19/32, 19/32,
    -3/32``) fall two on each of two neighbouring blocks, which averages them as ``"area"``
    would. Bicubic weights sum to one, so the mode commutes with any affine change of the
    value range: images in ``[0, 1]`` give the official ``[-1, 1]`` results mapped to
    ``[0, 1]``.

    ``T`` is the number of halvings, so ``H`` and ``W`` must be divisible by ``2^T``: MNIST's
    28x28 allows ``T = 2`` (down to 7x7); resized to 32x32 (``image_size = 32``), ``T = 3``
    reaches Bansal's 4x4. The length of a ``schedule`` passed in is not used (the number of
    halvings is this degradation's own option), so that configs, which always pass one, work.

    There is no source and no prior: a model generates from down-sampled real images
    (``Trainer.sample`` degrades training images for it). With ``noise`` (a level or ``T + 1``
    levels, as for every :class:`~colddiff.Degradation`), ``x_t`` also carries ``noise_t z``:
    the noise is then the source, re-estimated at every step by the ``cold`` sampler with
    ``source="estimate"``.

    Args:
        schedule: Accepted for the common constructor; its length is not used.
        num_timesteps: ``T``, the number of halvings (default 3: 32x32 down to 4x4).
        mode: ``"area"`` (block means; the default), ``"nearest"`` (one pixel per block) or
            ``"bicubic"`` (the official MNIST setting: each step resamples the previous one).
        image_shape: ``(C, H, W)`` of the images, or ``None`` for any size divisible by ``2^T``.
        noise: Added noise (default 0: none).

    Raises:
        ValueError: If ``mode`` is unknown, or ``image_shape`` is not divisible by ``2^T``.
    """

    default_num_timesteps = 3
    start_is_source = False  # its source, when noisy, is the noise
    linear = True  # every mode resamples linearly

    def __init__(self, schedule: Schedule | None = None, *, num_timesteps: int | None = None,
                 mode: Literal["area", "nearest", "bicubic"] = "area",
                 image_shape: tuple[int, int, int] | None = None, noise: NoiseOption = 0.0) -> None:
        del schedule  # the number of halvings is T
        super().__init__(num_timesteps=num_timesteps, image_shape=image_shape, noise=noise)
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
        """Down-sample each image of ``x0`` by ``2^t`` and back (``source``: the noise of a noisy
        super-resolution; ignored otherwise)."""
        check_images("x0", x0)
        t = check_timesteps(t, x0, self.num_timesteps)
        self._check_size(*x0.shape[-2:])
        # Every level for the whole batch, then each image's own: no data-dependent branch,
        # so no device sync (T is small: 3 levels for 32x32 down to 4x4).
        levels = [x0]
        for step in range(1, self.num_timesteps + 1):
            # Bicubic resamples the previous level, as the official code does; the block modes
            # down-sample x0 directly (the same as halving it step after step).
            levels.append(self._resample(levels[-1] if self.mode == "bicubic" else x0, 2**step))
        degraded = torch.stack(levels)[t, torch.arange(x0.shape[0], device=x0.device)]
        return self.add_noise(degraded, t, self.split_noise(source, x0)[1])

    def _resample(self, image: Tensor, factor: int) -> Tensor:
        """``image`` down-sampled by ``factor`` and filled back to full size, block by block."""
        if self.mode == "area":
            small = F.avg_pool2d(image, factor)
        elif self.mode == "nearest":
            small = image[..., ::factor, ::factor]
        else:
            size = (image.shape[-2] // factor, image.shape[-1] // factor)
            small = F.interpolate(image, size=size, mode="bicubic", align_corners=False, antialias=False)
        return small.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)

    def __repr__(self) -> str:
        return f"SuperResolution(num_timesteps={self.num_timesteps}, mode={self.mode!r}{self.noise_repr()})"
