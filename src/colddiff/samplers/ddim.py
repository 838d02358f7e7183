"""DDIM: Song et al. (2021), "Denoising Diffusion Implicit Models", eq. 12, with the ``eta``
of their eq. 16 between deterministic and ancestral sampling."""

from __future__ import annotations

import itertools
import math
from functools import partial

import torch
from torch import Tensor

from colddiff.degradations.blurring import Blurring
from colddiff.denoisers import Denoiser
from colddiff.samplers.base import Sampler
from colddiff.samplers.grids import Spacing
from colddiff.samplers.spectral import SpectralSteps, ddim_weights

__all__ = ["DDIMSampler"]


class DDIMSampler(Sampler):
    """DDIM (Song et al. 2021, eq. 12), generalised by ``eta`` (their eq. 16).

    From ``t`` to ``s < t``, with ``eps_hat = (x_t - sqrt(alpha_bar_t) x0_hat) / sqrt(1 -
    alpha_bar_t)`` the noise implied by the (clipped) clean-image prediction::

        sigma = eta sqrt((1 - alpha_bar_s) / (1 - alpha_bar_t)) sqrt(1 - alpha_bar_t / alpha_bar_s)
        x_s = sqrt(alpha_bar_s) x0_hat + sqrt(1 - alpha_bar_s - sigma^2) eps_hat + sigma z

    ``eta = 0`` is deterministic (and equals :class:`ColdSampler` with ``source="estimate"``);
    ``eta = 1`` is ancestral sampling with the posterior variance (:class:`DDPMSampler` with
    ``variance="posterior"``). diffusers' ``DDIMScheduler`` with ``timestep_spacing="trailing"``,
    ``set_alpha_to_one=True`` and ``step(..., use_clipped_model_output=True)`` takes the same steps
    when ``sample_steps`` divides ``T`` (its timestep ``k`` is our ``t = k + 1``).

    For :class:`~colddiff.degradations.Blurring` the same step is taken per DCT frequency
    (:func:`~colddiff.samplers.spectral.ddim_weights`); with ``eta = 0`` it is the deterministic
    (probability-flow) sampler of blurring diffusion.

    Args:
        denoiser: A denoiser for :class:`~colddiff.degradations.GaussianNoise` or
            :class:`~colddiff.degradations.Blurring`.
        eta: In ``[0, 1]``.
        spacing: The step grid, and the other options of :class:`Sampler`: ``rho``,
            ``final_denoise``, ``clip_x0`` and ``data_range`` (keywords, as there).

    Raises:
        ValueError: If the degradation is neither Gaussian noise nor blurring, or ``eta`` is
            outside ``[0, 1]``.
    """

    def __init__(self, denoiser: Denoiser, *, eta: float = 0.0, spacing: Spacing = "trailing",
                 rho: float = 7.0, final_denoise: bool = False, clip_x0: bool = True,
                 data_range: tuple[float, float] = (0.0, 1.0)) -> None:
        super().__init__(denoiser, spacing=spacing, rho=rho, final_denoise=final_denoise, clip_x0=clip_x0,
                         data_range=data_range)
        family = self.require_gaussian_family()
        self._alpha_bar = family.schedule.alpha_bar.tolist()
        if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0 <= eta <= 1:
            raise ValueError(f"eta must be a number in [0, 1], got {eta!r}")
        self.eta = float(eta)
        self._coefficients: list[tuple[float, float, float, float, float]] = []
        self._spectral = (SpectralSteps(family, partial(ddim_weights, family, eta=self.eta))
                          if isinstance(family, Blurring) else None)

    def setup(self, times: list[int], x_T: Tensor, generator: torch.Generator | None) -> None:
        """Precompute ``(sqrt(alpha_bar_s), eps weight, sigma, sqrt(alpha_bar_t), sqrt(1 -
        alpha_bar_t))`` per step as Python floats (per frequency for
        :class:`~colddiff.degradations.Blurring`)."""
        if self._spectral is not None:
            self._spectral.setup(times, x_T)
            return
        self._coefficients = []
        for t, s in itertools.pairwise(times):
            abar_t, abar_s = self._alpha_bar[t], self._alpha_bar[s]
            sigma = self.eta * math.sqrt((1 - abar_s) / (1 - abar_t) * (1 - abar_t / abar_s))
            eps_weight = math.sqrt(max(1 - abar_s - sigma**2, 0.0))
            self._coefficients.append((math.sqrt(abar_s), eps_weight, sigma, math.sqrt(abar_t),
                                       math.sqrt(1 - abar_t)))

    def step(self, i: int, t: int, s: int, x_t: Tensor, x0_hat: Tensor, t_batch: Tensor,
             s_batch: Tensor, generator: torch.Generator | None) -> Tensor:
        """One DDIM step from ``t`` to ``s``."""
        if self._spectral is not None:
            return self._spectral.step(i, x0_hat, x_t, lambda like: self.noise(like, generator))
        x0_weight, eps_weight, sigma, signal_t, noise_t = self._coefficients[i]
        eps_hat = (x_t - signal_t * x0_hat) / noise_t
        x_s = x0_weight * x0_hat + eps_weight * eps_hat
        if sigma > 0:
            x_s += sigma * self.noise(x_s, generator)
        return x_s
