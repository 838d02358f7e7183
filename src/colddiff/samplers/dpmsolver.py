"""DPM-Solver++ (2M): Lu et al. (2022), "DPM-Solver++: Fast Solver for Guided Sampling of
Diffusion Probabilistic Models", Algorithm 2 (multistep, data prediction)."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from colddiff.denoisers import Denoiser
from colddiff.samplers.base import Sampler

__all__ = ["DPMSolverSampler"]


class DPMSolverSampler(Sampler):
    """DPM-Solver++ (Lu et al. 2022, "DPM-Solver++", Algorithm 2: multistep "2M"), data prediction.

    With ``alpha_t = sqrt(alpha_bar_t)``, ``sigma_t = sqrt(1 - alpha_bar_t)``, ``lambda_t =
    log(alpha_t / sigma_t)`` and ``h = lambda_s - lambda_t``, a step from ``t`` to ``s`` is::

        x_s = (sigma_s / sigma_t) x_t - alpha_s (exp(-h) - 1) D

    with ``D = x0_hat`` (order 1, which is DDIM) or, from the second step on, ``D = (1 + 1/(2r))
    x0_hat - 1/(2r) x0_hat_prev``, ``r = h_prev / h`` (order 2). The last step, to ``t = 0`` where
    ``sigma_0 = 0``, is first order and returns ``x0_hat``. Built on the denoiser's (clipped)
    ``x0_hat``, so it works for any target. It matches diffusers' ``DPMSolverMultistepScheduler``
    (``algorithm_type="dpmsolver++"``, ``solver_type="midpoint"``, ``final_sigmas_type="zero"``,
    ``prediction_type="sample"`` fed our ``x0_hat``; its timestep ``k`` is our ``t = k + 1``).

    Args:
        denoiser: A denoiser for :class:`~colddiff.degradations.GaussianNoise`.
        order: 1 or 2.
        clip_x0: As for :class:`Sampler`.
        data_range: As for :class:`Sampler`.

    Raises:
        ValueError: If the degradation is not Gaussian noise or ``order`` is not 1 or 2.
    """

    def __init__(self, denoiser: Denoiser, *, order: Literal[1, 2] = 2, clip_x0: bool = True,
                 data_range: tuple[float, float] = (0.0, 1.0)) -> None:
        super().__init__(denoiser, clip_x0=clip_x0, data_range=data_range)
        self._alpha_bar = self.require_gaussian().schedule.alpha_bar.tolist()
        if order not in (1, 2) or isinstance(order, bool):
            raise ValueError(f"order must be 1 or 2, got {order!r}")
        self.order = order
        self._coefficients: list[tuple[float, float, float | None]] = []
        self._previous: Tensor | None = None

    def setup(self, times: list[int], x_T: Tensor, generator: torch.Generator | None) -> None:
        """Precompute ``(x_t weight, D weight, 1 / (2 r) or None for a first-order step)``."""
        alpha = [math.sqrt(self._alpha_bar[t]) for t in times]
        sigma = [math.sqrt(1 - self._alpha_bar[t]) for t in times]
        # alpha_t > 0 for every t (a schedule's betas are below 1); only sigma_0 is 0.
        lam = [math.log(a / s) if s > 0 else math.inf for a, s in zip(alpha, sigma, strict=True)]
        self._coefficients = []
        for i in range(len(times) - 1):
            if sigma[i + 1] == 0:  # the last step: x_0 = x0_hat
                self._coefficients.append((0.0, alpha[i + 1], None))
                continue
            h = lam[i + 1] - lam[i]
            half_over_r = (h / (lam[i] - lam[i - 1])) / 2 if self.order == 2 and i > 0 else None
            self._coefficients.append((sigma[i + 1] / sigma[i], -alpha[i + 1] * math.expm1(-h), half_over_r))
        self._previous = None

    def step(self, i: int, t: int, s: int, x_t: Tensor, x0_hat: Tensor, t_batch: Tensor,
             s_batch: Tensor, generator: torch.Generator | None) -> Tensor:
        """One DPM-Solver++ step from ``t`` to ``s``."""
        xt_weight, d_weight, half_over_r = self._coefficients[i]
        direction = x0_hat
        if half_over_r is not None and self._previous is not None:
            direction = (1 + half_over_r) * x0_hat - half_over_r * self._previous
        self._previous = x0_hat
        return xt_weight * x_t + d_weight * direction
