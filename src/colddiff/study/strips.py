"""The forward process as a strip of images: clean images degraded at evenly spaced steps.

``colddiff degrade`` draws it for any degradation; the reference study keeps one per model
for its figures.
"""

from __future__ import annotations

import torch
from torch import Tensor

from colddiff.degradations import Degradation

__all__ = ["forward_strip"]


def forward_strip(degradation: Degradation, x0: Tensor, frames: int, *, seed: int = 0
                  ) -> tuple[Tensor, list[int]]:
    """``x0`` degraded at ``frames`` evenly spaced steps from ``t = 0`` to ``T``, each image
    with one source for all of its frames.

    Args:
        degradation: The forward process.
        x0: ``(N, C, H, W)`` clean images.
        frames: Steps shown, at least 2 (``t = 0`` and ``t = T``).
        seed: Seed of the sources (drawn on the CPU, so the same on every device).

    Returns:
        ``(strip, times)``: the ``(N, frames, C, H, W)`` degraded images and their steps.

    Raises:
        ValueError: If ``frames`` is below 2.
    """
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 2:
        raise ValueError(f"frames must be an integer >= 2, got {frames!r}")
    source = degradation.sample_source(x0, generator=torch.Generator().manual_seed(seed))
    times = [round(degradation.num_timesteps * k / (frames - 1)) for k in range(frames)]
    return torch.stack([degradation.degrade(x0, t, source) for t in times], dim=1), times
