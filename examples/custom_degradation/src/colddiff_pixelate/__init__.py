"""Pixelation as a cold-diffusion degradation (Bansal et al. 2022, section 4.4, "super-resolution").

At step ``t`` each image is average-pooled to blocks of ``sizes[t]`` pixels and scaled back up
with nearest-neighbour interpolation; ``sizes[0] = 1`` keeps the image. The degradation is
deterministic (no source), so train it with ``predict="x0"`` and sample with
:class:`colddiff.ColdSampler` (Algorithm 2 is Bansal's recommended choice). It has no prior of
its own, so sampling starts from ``degrade(x0, T)`` of real images: this is super-resolution, not
unconditional generation.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from colddiff import Degradation, Schedule
from colddiff.degradations import check_timesteps

__all__ = ["Pixelate"]


class Pixelate(Degradation):
    """Average-pool to ``sizes[t]``-pixel blocks and upsample back.

    Args:
        schedule: Passed by colddiff; its ``T`` is used unless ``num_timesteps`` is given.
        num_timesteps: ``T`` (default 6 without a schedule).
        max_block: Block size at ``t = T`` (the block grows geometrically from 1).
        image_shape: ``(C, H, W)`` of the images, or ``None`` for any.
    """

    default_num_timesteps = 6

    def __init__(self, schedule: Schedule | None = None, *, num_timesteps: int | None = None,
                 max_block: int = 14, image_shape: tuple[int, int, int] | None = None) -> None:
        super().__init__(schedule, num_timesteps=num_timesteps, image_shape=image_shape)
        if max_block < 1:
            raise ValueError(f"max_block must be >= 1, got {max_block}")
        self.sizes = [max(1, round(max_block ** (t / self.num_timesteps)))
                      for t in range(self.num_timesteps + 1)]

    def degrade(self, x0: Tensor, t: Tensor | int, source: Tensor | None = None) -> Tensor:
        """Pixelate each image of ``x0`` to its own step ``t``."""
        t = check_timesteps(t, x0, self.num_timesteps)
        out = x0.clone()
        for size in set(self.sizes) - {1}:
            chosen = torch.tensor([self.sizes[s] == size for s in t.tolist()], device=x0.device)
            if not chosen.any():
                continue
            height, width = x0.shape[-2:]
            pooled = F.avg_pool2d(x0[chosen], size, ceil_mode=True, count_include_pad=False)
            up = F.interpolate(pooled, scale_factor=size, mode="nearest")
            out[chosen] = up[..., :height, :width]
        return out

    def __repr__(self) -> str:
        return f"Pixelate(num_timesteps={self.num_timesteps}, sizes={self.sizes})"
