"""The base of the multistep solvers (DPM-Solver++, UniPC): their order, the noise levels of the
visited steps and the clean-image predictions they keep from earlier steps."""

from __future__ import annotations

import math
from typing import Literal

from torch import Tensor

from colddiff.denoisers import Denoiser
from colddiff.samplers.base import Sampler
from colddiff.samplers.grids import Spacing

__all__ = ["MultistepSampler"]


class MultistepSampler(Sampler):
    """A sampler for Gaussian noise whose steps reuse the last ``order`` clean-image predictions.

    Args:
        denoiser: A denoiser for :class:`~colddiff.degradations.GaussianNoise`.
        order: 1, 2 or 3.
        spacing: The step grid, and the other options of :class:`Sampler`: ``rho``,
            ``final_denoise``, ``clip_x0`` and ``data_range`` (keywords, as there).

    Raises:
        ValueError: If the degradation is not Gaussian noise or ``order`` is not 1, 2 or 3.
    """

    def __init__(self, denoiser: Denoiser, *, order: Literal[1, 2, 3] = 2, spacing: Spacing = "trailing",
                 rho: float = 7.0, final_denoise: bool = False, clip_x0: bool = True,
                 data_range: tuple[float, float] = (0.0, 1.0)) -> None:
        super().__init__(denoiser, spacing=spacing, rho=rho, final_denoise=final_denoise, clip_x0=clip_x0,
                         data_range=data_range)
        self._alpha_bar = self.require_gaussian().schedule.alpha_bar.tolist()
        if order not in (1, 2, 3) or isinstance(order, bool):
            raise ValueError(f"order must be 1, 2 or 3, got {order!r}")
        self.order = order
        #: The last ``order`` predictions of the current run, the latest first.
        self.history: list[Tensor] = []

    def noise_levels(self, times: list[int]) -> tuple[list[float], list[float], list[float]]:
        """``(alpha_t, sigma_t, lambda_t)`` at each of ``times``: ``alpha_t = sqrt(alpha_bar_t)``,
        ``sigma_t = sqrt(1 - alpha_bar_t)`` and ``lambda_t = log(alpha_t / sigma_t)`` (``inf`` at
        ``t = 0``, where ``sigma_0 = 0``)."""
        alpha = [math.sqrt(self._alpha_bar[t]) for t in times]
        sigma = [math.sqrt(1 - self._alpha_bar[t]) for t in times]
        # alpha_t > 0 for every t (a schedule's betas are below 1); only sigma_0 is 0.
        lam = [math.log(a / s) if s > 0 else math.inf for a, s in zip(alpha, sigma, strict=True)]
        return alpha, sigma, lam

    def remember(self, x0_hat: Tensor) -> list[Tensor]:
        """Keep ``x0_hat`` as the latest of :attr:`history` and return it."""
        self.history = [x0_hat, *self.history[: self.order - 1]]
        return self.history
