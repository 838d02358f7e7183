"""Ancestral sampling: Ho et al. (2020), "Denoising Diffusion Probabilistic Models",
Algorithm 2 and the posterior of eq. 7, generalised to strided steps."""

from __future__ import annotations

import itertools
import math
from functools import partial
from typing import Literal

import torch
from torch import Tensor

from colddiff.degradations.blurring import Blurring
from colddiff.denoisers import Denoiser
from colddiff.samplers.base import Sampler
from colddiff.samplers.grids import Spacing
from colddiff.samplers.spectral import SpectralSteps, ancestral_weights

__all__ = ["DDPMSampler"]


class DDPMSampler(Sampler):
    """Ancestral sampling (Ho et al. 2020, Algorithm 2), generalised to strided steps.

    From ``t`` to ``s < t`` (``s = t - 1`` without striding), with ``alpha_{t|s} =
    alpha_bar_t / alpha_bar_s`` and ``beta_{t|s} = 1 - alpha_{t|s}``::

        x_s = mean(x_t, x0_hat) + sigma z,   z ~ N(0, I),   no noise when s = 0
        mean = sqrt(alpha_bar_s) beta_{t|s} / (1 - alpha_bar_t) x0_hat
             + sqrt(alpha_{t|s}) (1 - alpha_bar_s) / (1 - alpha_bar_t) x_t

    the posterior mean of ``q(x_s | x_t, x_0)`` (Ho et al. eq. 7). With ``x0_hat`` from a noise
    prediction it equals Ho's ``(x_t - beta_t / sqrt(1 - alpha_bar_t) eps_hat) / sqrt(alpha_t)``
    (Prince eq. 18.38); writing it through ``x0_hat`` is what makes clipping possible.
    ``sigma^2 = beta_{t|s}`` (``variance="beta"``, as Ho and the reference study) or the
    posterior variance ``(1 - alpha_bar_s) / (1 - alpha_bar_t) beta_{t|s}``
    (``variance="posterior"``).

    For :class:`~colddiff.degradations.Blurring` (Hoogeboom & Salimans 2023) the same step is
    taken per DCT frequency with its posterior ``q(u_s | u_t, u_0)`` (see
    :meth:`~colddiff.degradations.Blurring.posterior` and :mod:`colddiff.samplers.spectral`):
    with ``variance="posterior"`` and ``clip_x0=False`` it is the paper's sampler.

    Args:
        denoiser: A denoiser for :class:`~colddiff.degradations.GaussianNoise` or
            :class:`~colddiff.degradations.Blurring` (predicting ``"eps"`` or ``"x0"``).
        variance: ``"beta"`` or ``"posterior"``.
        spacing: The step grid, and the other options of :class:`Sampler`: ``rho``,
            ``final_denoise``, ``clip_x0`` and ``data_range`` (keywords, as there).

    Raises:
        ValueError: If the degradation is neither Gaussian noise nor blurring, or ``variance`` is
            unknown.
    """

    def __init__(self, denoiser: Denoiser, *, variance: Literal["beta", "posterior"] = "beta",
                 spacing: Spacing = "trailing", rho: float = 7.0, final_denoise: bool = False,
                 clip_x0: bool = True, data_range: tuple[float, float] = (0.0, 1.0)) -> None:
        super().__init__(denoiser, spacing=spacing, rho=rho, final_denoise=final_denoise, clip_x0=clip_x0,
                         data_range=data_range)
        family = self.require_gaussian_family()
        self._alpha_bar = family.schedule.alpha_bar.tolist()
        if variance not in ("beta", "posterior"):
            raise ValueError(f"variance must be 'beta' or 'posterior', got {variance!r}")
        self.variance = variance
        self._coefficients: list[tuple[float, float, float]] = []
        self._spectral = (SpectralSteps(family, partial(ancestral_weights, family, variance=variance))
                          if isinstance(family, Blurring) else None)

    def setup(self, times: list[int], x_T: Tensor, generator: torch.Generator | None) -> None:
        """Precompute ``(x0 weight, x_t weight, sigma)`` per step as Python floats (per frequency
        for :class:`~colddiff.degradations.Blurring`)."""
        if self._spectral is not None:
            self._spectral.setup(times, x_T)
            return
        self._coefficients = []
        for t, s in itertools.pairwise(times):
            abar_t, abar_s = self._alpha_bar[t], self._alpha_bar[s]
            alpha_ts = abar_t / abar_s
            beta_ts = 1 - alpha_ts
            x0_weight = math.sqrt(abar_s) * beta_ts / (1 - abar_t)
            xt_weight = math.sqrt(alpha_ts) * (1 - abar_s) / (1 - abar_t)
            variance = beta_ts if self.variance == "beta" else (1 - abar_s) / (1 - abar_t) * beta_ts
            self._coefficients.append((x0_weight, xt_weight, math.sqrt(variance) if s > 0 else 0.0))

    def step(self, i: int, t: int, s: int, x_t: Tensor, x0_hat: Tensor, t_batch: Tensor,
             s_batch: Tensor, generator: torch.Generator | None) -> Tensor:
        """One ancestral step from ``t`` to ``s``."""
        if self._spectral is not None:
            return self._spectral.step(i, x0_hat, x_t, lambda like: self.noise(like, generator))
        x0_weight, xt_weight, sigma = self._coefficients[i]
        x_s = x0_weight * x0_hat + xt_weight * x_t
        if sigma > 0:
            x_s += sigma * self.noise(x_s, generator)
        return x_s
