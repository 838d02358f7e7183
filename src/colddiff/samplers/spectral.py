"""The DDPM and DDIM steps of :class:`~colddiff.degradations.Blurring`: the Gaussian steps taken
per DCT frequency (Hoogeboom & Salimans 2023), where the signal scale is one number per
frequency.

Each step is linear in the clean-image prediction, the current state and fresh noise, one
weight per frequency for each::

    u_s = w_0 * V^T x0_hat + w_t * V^T x_t + w_z * V^T z,   x_s = V u_s

(``V^T`` the orthonormal 2-D DCT; ``V^T z`` is again ``N(0, I)``). :func:`ancestral_weights`
and :func:`ddim_weights` give ``(w_0, w_t, w_z)``; :class:`SpectralSteps` applies them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from colddiff.degradations.blurring import Blurring

__all__ = ["SpectralSteps", "Weights", "ancestral_weights", "ddim_weights"]

Weights = tuple[Tensor, Tensor, Tensor]
"""``(w_0, w_t, w_z)``: the weights of ``V^T x0_hat``, ``V^T x_t`` and ``V^T z``, ``(H, W)`` each."""


def ancestral_weights(blurring: Blurring, t: int, s: int, height: int, width: int,
                      variance: Literal["beta", "posterior"]) -> Weights:
    """Ancestral sampling from ``t`` to ``s``: the posterior mean of ``q(u_s | u_t, u_0)`` with
    ``x0_hat`` for ``u_0`` (:meth:`Blurring.posterior`, the paper's denoising distribution) and
    standard deviation ``sigma_{t->s}`` (``variance="posterior"``, the paper's) or
    ``sigma_{t|s}`` (``"beta"``); no noise at ``s = 0``."""
    x0_weight, xt_weight, posterior = blurring.posterior(t, s, height, width)
    chosen = posterior if variance == "posterior" else blurring.transition(t, s, height, width)[1]
    return x0_weight, xt_weight, chosen.sqrt() if s > 0 else torch.zeros_like(chosen)


def ddim_weights(blurring: Blurring, t: int, s: int, height: int, width: int, eta: float) -> Weights:
    """DDIM (Song et al. 2021, eq. 12) per frequency, ``eta`` as their eq. 16 with the posterior
    variance: ``eps_hat = (u_t - alpha_t u_0_hat) / sigma_t``, ``w_z = eta sigma_{t->s}`` and
    ``u_s = alpha_s u_0_hat + sqrt(sigma_s^2 - w_z^2) eps_hat + w_z z``."""
    alpha = blurring.signal(height, width)
    sigma_t, sigma_s = float(blurring.noise_levels[t]), float(blurring.noise_levels[s])
    noise_weight = eta * blurring.posterior(t, s, height, width)[2].sqrt()
    eps_weight = (sigma_s**2 - noise_weight**2).clamp(min=0).sqrt()
    return alpha[s] - eps_weight * alpha[t] / sigma_t, eps_weight / sigma_t, noise_weight


class SpectralSteps:
    """The steps of one sampling run: their weights on the batch's device, applied in the DCT
    basis.

    Args:
        blurring: The degradation.
        weights: ``weights(t, s, height, width)``, the weights of one step.
    """

    def __init__(self, blurring: Blurring, weights: Callable[[int, int, int, int], Weights]) -> None:
        self.blurring = blurring
        self._weights = weights
        self._steps: list[tuple[Tensor, Tensor, Tensor, bool]] = []

    def setup(self, times: list[int], like: Tensor) -> None:
        """Compute every step's weights for the grid ``times`` and images shaped like ``like``."""
        height, width = like.shape[-2:]
        self._steps = []
        for t, s in itertools.pairwise(times):
            x0_weight, xt_weight, noise_weight = (w.to(device=like.device, dtype=like.dtype)
                                                  for w in self._weights(t, s, height, width))
            self._steps.append((x0_weight, xt_weight, noise_weight, bool(noise_weight.any())))

    def step(self, i: int, x0_hat: Tensor, x_t: Tensor, noise: Callable[[Tensor], Tensor]) -> Tensor:
        """Step ``i``: ``V (w_0 V^T x0_hat + w_t V^T x_t + w_z V^T z)``, ``z = noise(x_t)`` drawn
        only where ``w_z`` is not all zero."""
        x0_weight, xt_weight, noise_weight, noisy = self._steps[i]
        terms = [(x0_hat, x0_weight), (x_t, xt_weight)]
        if noisy:
            terms.append((noise(x_t), noise_weight))
        return self.blurring.combine_frequencies(*terms)
