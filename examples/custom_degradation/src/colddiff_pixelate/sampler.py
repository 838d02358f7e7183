"""A sampler plugin: Bansal et al.'s two cold-diffusion updates, blended by a damping factor.

For a deterministic degradation ``D``, Algorithm 1 steps to ``x_s = D(x0_hat, s)`` and
Algorithm 2 to ``x_s = x_t - D(x0_hat, t) + D(x0_hat, s)`` (Bansal et al. 2022, Algorithms 1
and 2). This sampler keeps a fraction ``damping`` of Algorithm 2's correction::

    x_s = D(x0_hat, s) + damping * (x_t - D(x0_hat, t))

so ``damping = 1`` is Algorithm 2 and ``damping = 0`` Algorithm 1. It is an example of the sampler
contract (``colddiff.Sampler``: implement ``step``), not a recommendation.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from colddiff import Denoiser, Sampler

__all__ = ["Damped"]


class Damped(Sampler):
    """Cold sampling with a damped Algorithm-2 correction.

    Args:
        denoiser: The trained denoiser; its degradation must be deterministic (no source).
        damping: The fraction of Algorithm 2's correction kept, in ``[0, 1]``.
        clip_x0: Clip each ``x0_hat`` to ``data_range`` (done by the base class).
        data_range: ``(low, high)`` of the data.

    Raises:
        ValueError: If ``damping`` is outside ``[0, 1]`` or the degradation has a source.
    """

    def __init__(self, denoiser: Denoiser, *, damping: float = 0.5, clip_x0: bool = True,
                 data_range: tuple[float, float] = (0.0, 1.0)) -> None:
        super().__init__(denoiser, clip_x0=clip_x0, data_range=data_range)
        if not (isinstance(damping, (int, float)) and math.isfinite(damping) and 0 <= damping <= 1):
            raise ValueError(f"damping must be a number in [0, 1], got {damping!r}")
        if denoiser.degradation.has_source:
            raise ValueError(f"Damped needs a deterministic degradation, got {denoiser.degradation!r}")
        self.damping = float(damping)

    def step(self, i: int, t: int, s: int, x_t: Tensor, x0_hat: Tensor, t_batch: Tensor,
             s_batch: Tensor, generator: torch.Generator | None) -> Tensor:
        """One step from ``t`` to ``s`` (``generator`` is unused: the update is deterministic)."""
        degrade = self.denoiser.degradation.degrade
        return degrade(x0_hat, s_batch) + self.damping * (x_t - degrade(x0_hat, t_batch))
