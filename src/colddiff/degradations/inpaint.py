"""A growing Gaussian mask: Bansal et al.'s inpainting degradation."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from colddiff.degradations.base import Degradation, check_images, check_timesteps
from colddiff.degradations.noise import NoiseOption
from colddiff.degradations.registry import register
from colddiff.schedules import Schedule

__all__ = ["Inpaint"]

_CENTERS = ("random", "middle")


@register("inpaint")
class Inpaint(Degradation):
    """``x_t = m_t x_0 + (1 - m_t) fill``: pixels greyed out by a mask that grows with ``t``.

    Bansal et al. (2022, section 4.2) multiply the image by one more Gaussian-shaped mask per
    step: ``z_i(p) = 1 - exp(-|p - c|^2 / (2 beta_i^2))``, zero at the centre ``c`` and near one
    far from it, with widths ``beta_i`` growing linearly, so that ::

        m_t = z_1 z_2 ... z_t,   beta_i = beta_1 + beta_step (i - 1)

    (``m_0 = 1``: ``x_0`` is the identity). Their images lie in ``[-1, 1]``, so multiplying by the
    mask fades pixels to 0, mid-grey; here the masked pixels fade to ``fill``, the middle of the
    value range, whatever that range is. Their MNIST and CIFAR-10 settings are the defaults:
    ``T = 50`` steps, ``beta_1 = 1.1``, ``beta_step = 0.1`` (their ``kernel_std = 0.1``,
    ``initial_mask = 11``), and a random centre for each image (``center="random"``;
    ``"middle"``, their CelebA choice, fixes it at the image's centre). The length of a
    ``schedule`` passed in is not used: ``T`` is this degradation's option.

    Random centres are drawn as the official code draws them (arpitbansal297/Cold-Diffusion-Models,
    ``defading-diffusion-pytorch/mnist_train.py``, whose default ``fade_routine`` is
    ``'Random_Incremental'``; ``GaussianDiffusion.get_fade_kernel`` and ``q_sample`` in
    ``defading_diffusion_pytorch/defading_diffusion_gaussian.py``): uniformly over the rows
    ``-1 .. H - 1`` and, independently, the columns ``-1 .. W - 1``. (There a mask of side
    ``2N + 1`` centred at ``N`` loses its first row and column, so its centre sits at ``N - 1``,
    and is cropped to ``N x N`` from a random offset ``r`` in ``0 .. N``: the centre lands on
    pixel ``N - 1 - r``, one of ``N + 1`` positions, the first of them just outside the top or
    left border.)

    With random centres the centre of each image is the degradation's source ``(B, 2)``
    (row, column, in pixels), drawn by :meth:`sample_source`; restoring needs it
    (``sampler.sample(x_t, t_start=t, source=centres)``). There is no prior: a fully masked
    image keeps the border of the digit it came from, so generation starts from masked real
    images (``Trainer.sample`` does this).

    With ``noise`` (a level or ``T + 1`` levels, as for every :class:`~colddiff.Degradation`),
    ``x_t = m_t x_0 + (1 - m_t) fill + noise_t z``. With random centres the source is then the
    pair of the centres and the noise (one ``(B, 2 + C*H*W)`` tensor from :meth:`sample_source`):
    restoring is given it, keeps the centres and re-estimates the noise at every step
    (:meth:`~colddiff.Degradation.renoise`); centres given alone work too.

    Args:
        schedule: Accepted for the common constructor; its length is not used.
        num_timesteps: ``T`` (default 50).
        center: ``"random"`` or ``"middle"``.
        beta_start: Width ``beta_1`` of the first mask, in pixels.
        beta_step: Growth of the width per step, in pixels.
        image_shape: ``(C, H, W)`` of the images, or ``None`` for any.
        value_range: ``(low, high)`` of the pixel values; masked pixels fade to the middle.
        noise: Added noise (default 0: none).

    Raises:
        ValueError: If ``center`` is unknown or a width is not positive.
    """

    default_num_timesteps = 50
    start_is_source = False  # the source is the mask centres (and the noise)
    linear = True  # affine in x0 given the mask centres

    def __init__(self, schedule: Schedule | None = None, *, num_timesteps: int | None = None,
                 center: Literal["random", "middle"] = "random", beta_start: float = 1.1,
                 beta_step: float = 0.1, image_shape: tuple[int, int, int] | None = None,
                 value_range: tuple[float, float] = (0.0, 1.0), noise: NoiseOption = 0.0) -> None:
        del schedule  # T is this degradation's own option
        if center not in _CENTERS:
            raise ValueError(f"center must be one of {list(_CENTERS)}, got {center!r}")
        self.has_source = center == "random"  # before super().__init__, which adds the noise
        super().__init__(num_timesteps=num_timesteps, image_shape=image_shape, noise=noise)
        for name, value in (("beta_start", beta_start), ("beta_step", beta_step)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if beta_start <= 0:
            raise ValueError(f"beta_start must be > 0, got {beta_start!r}")
        self.center = center
        self.beta = beta_start + beta_step * torch.arange(self.num_timesteps, dtype=torch.float64)
        self._beta_cache: dict[tuple[torch.device, torch.dtype], Tensor] = {}
        low, high = value_range
        self.fill = (low + high) / 2

    def sample_source(self, x0: Tensor, *, generator: torch.Generator | None = None) -> Tensor | None:
        """A centre ``(row, column)`` per image, its row uniform over ``-1 .. H - 1`` and its column
        over ``-1 .. W - 1``, as the official code draws them (``None`` for ``"middle"``); with
        noise, joined to it."""
        centers = None
        if self.center == "random":
            height, width = x0.shape[-2:]
            rows = torch.randint(-1, height, (x0.shape[0],), generator=generator, device=x0.device)
            cols = torch.randint(-1, width, (x0.shape[0],), generator=generator, device=x0.device)
            centers = torch.stack([rows, cols], dim=1).to(x0.dtype)
        noise = self.draw_noise(x0, generator)
        return centers if noise is None else self.join_noise(centers, noise)

    def masks(self, t: Tensor | int, like: Tensor, centers: Tensor | None = None) -> Tensor:
        """The masks ``m_t`` ``(B, 1, H, W)`` for a batch shaped like ``like`` (1 keeps a pixel,
        0 greys it out), centred on ``centers`` ``(B, 2)`` or on the images' middle."""
        t = check_timesteps(t, like, self.num_timesteps)
        batch, height, width = like.shape[0], *like.shape[-2:]
        dtype = torch.promote_types(like.dtype, torch.float32)
        if centers is None:
            if self.center == "random":
                raise ValueError("Inpaint(center='random') needs the mask centres: pass the source "
                                 "(B, 2) that sample_source drew")
            centers = torch.empty((batch, 2), device=like.device, dtype=dtype)  # filled on the device
            centers[:, 0], centers[:, 1] = (height - 1) / 2, (width - 1) / 2
        if centers.shape != (batch, 2):
            raise ValueError(f"the mask centres must have shape ({batch}, 2), got {tuple(centers.shape)}")
        rows = torch.arange(height, device=like.device, dtype=dtype)
        cols = torch.arange(width, device=like.device, dtype=dtype)
        squared = ((rows[None, :, None] - centers[:, 0, None, None].to(dtype)) ** 2
                   + (cols[None, None, :] - centers[:, 1, None, None].to(dtype)) ** 2)  # (B, H, W)
        beta = self._beta_on(like.device, dtype)
        steps = 1 - torch.exp(-squared[:, None] / (2 * beta[None, :, None, None] ** 2))  # (B, T, H, W)
        # m_t = product of the first t masks: a running product, m_0 = 1, picked per image.
        running = torch.cat([torch.ones_like(steps[:, :1]), steps.cumprod(dim=1)], dim=1)
        return running[torch.arange(batch, device=like.device), t][:, None].to(like.dtype)

    def _beta_on(self, device: torch.device, dtype: torch.dtype) -> Tensor:
        """The widths on ``device`` (copied there once, not at every call)."""
        key = (device, dtype)
        if key not in self._beta_cache:
            self._beta_cache[key] = self.beta.to(device, dtype)
        return self._beta_cache[key]

    def degrade(self, x0: Tensor, t: Tensor | int, source: Tensor | None = None) -> Tensor:
        """Grey out each image of ``x0`` with its mask ``m_t`` (``source``: the centres, and the
        noise of a noisy inpainting)."""
        check_images("x0", x0)
        centers, noise = self.split_noise(source, x0)
        mask = self.masks(t, x0, centers)
        return self.add_noise(mask * x0 + (1 - mask) * self.fill, t, noise)

    def __repr__(self) -> str:
        return (f"Inpaint(num_timesteps={self.num_timesteps}, center={self.center!r}, "
                f"beta=[{float(self.beta[0]):g}, {float(self.beta[-1]):g}]{self.noise_repr()})")
