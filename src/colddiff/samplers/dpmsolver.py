"""DPM-Solver++ (2M and 3M): Lu et al. (2022), "DPM-Solver++: Fast Solver for Guided Sampling of
Diffusion Probabilistic Models", Algorithm 2 (multistep, data prediction) and its third-order
multistep form; and SDE-DPM-Solver++ (1 and 2M), the same paper's solver of the diffusion SDE."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from colddiff.denoisers import Denoiser
from colddiff.samplers.grids import Spacing
from colddiff.samplers.multistep import MultistepSampler

__all__ = ["DPMSolverSampler"]

#: Below this many steps the last two steps lower their order (diffusers' ``lower_order_final``).
FEW_STEPS = 15


class DPMSolverSampler(MultistepSampler):
    """DPM-Solver++ (Lu et al. 2022, "DPM-Solver++"), multistep, data prediction: 2M (their
    Algorithm 2) and 3M.

    With ``alpha_t = sqrt(alpha_bar_t)``, ``sigma_t = sqrt(1 - alpha_bar_t)``, ``lambda_t =
    log(alpha_t / sigma_t)`` and ``h = lambda_s - lambda_t``, a step from ``t`` to ``s`` is::

        x_s = (sigma_s / sigma_t) x_t - alpha_s (exp(-h) - 1) D

    with ``D = x0_hat`` at first order (which is DDIM), ``D = (1 + 1/(2r)) x0_hat - 1/(2r)
    x0_hat_prev``, ``r = h_prev / h``, at second order, and at third order ``D = D0 + c1 D1 + c2
    D2`` over the last three predictions: ``D0 = x0_hat``, ``D1 ~ h x0_hat'`` and ``D2 ~ h^2
    x0_hat'' / 2`` (divided differences in ``lambda``; Lu et al.'s multistep third-order update),
    ``c1 = -(phi/h + 1)/phi`` and ``c2 = w ((phi + h)/h^2 - 1/2)/phi``, ``phi = exp(-h) - 1``.
    ``variant="taylor"`` (the default) takes ``w = 2``, the coefficient of the Taylor expansion
    of the exact solution: third order, the error falls ~8-fold when the steps halve.
    ``variant="diffusers"`` takes ``w = 1``, as Lu et al.'s reference code, diffusers'
    ``DPMSolverMultistepScheduler`` and k-diffusion's ``dpmpp_3m`` do: it follows them step by
    step, but its ``D2`` term is half the expansion's, so it is second order as ``h -> 0``
    (measured in ``tests/test_solver_convergence.py``).

    The order rises from 1 to ``order`` over the first steps (each needs that many earlier
    predictions); the last step, to ``t = 0`` where ``sigma_0 = 0``, is first order and returns
    ``x0_hat``; with fewer than 15 steps the last step is first order and the one before at most
    second order (diffusers' ``lower_order_final``). Built on the denoiser's (clipped)
    ``x0_hat``, so it works for any target. It matches diffusers' ``DPMSolverMultistepScheduler``
    (``algorithm_type="dpmsolver++"``, ``solver_order=order``, ``solver_type="midpoint"``,
    ``lower_order_final=True``, ``final_sigmas_type="zero"``, or ``"sigma_min"`` for a grid
    ending at ``t = 1``, ``prediction_type="sample"`` fed our ``x0_hat``; its timestep ``k`` is
    our ``t = k + 1``), at order 3 with ``variant="diffusers"``, or with the ``D2`` term doubled.

    ``sde=True`` (orders 1 and 2) solves the reverse diffusion SDE instead of the probability-flow
    ODE (SDE-DPM-Solver++, Lu et al. 2022, appendix; their eq. for SDE-DPM-Solver++(2M)), adding
    fresh noise at every step but one to ``t = 0``::

        x_s = (sigma_s / sigma_t) exp(-h) x_t + alpha_s (1 - exp(-2h)) D + sigma_s sqrt(1 - exp(-2h)) z

    with ``D`` as above (first or second order) and ``z ~ N(0, I)``: like ancestral sampling, the
    noise corrects part of the network's errors instead of carrying them along. It matches
    diffusers' ``DPMSolverMultistepScheduler(algorithm_type="sde-dpmsolver++")`` fed the same noise.

    ``eta`` in ``[0, 1]`` scales the noise between the two (k-diffusion's ``dpmpp_2m_sde(eta=)``;
    ``eta = 1``, the default, is the SDE above, ``eta = 0`` the ODE)::

        x_s = (sigma_s / sigma_t) exp(-eta h) x_t + alpha_s (1 - exp(-(1 + eta) h)) D
              + sigma_s sqrt(1 - exp(-2 eta h)) z

    At first order this is DDIM (Song et al. 2021, eq. 12) with the noise variance ``sigma_s^2
    (1 - exp(-2 eta h))`` at each step; this ``eta`` is not DDIM's (the two agree at 0 and 1).
    Partial noise suits few steps: on the shipped ``mnist-ddpm``, 10 calls with ``eta = 0.8`` on
    a tuned grid score as well as 50 ancestral steps (docs: Fast sampling), where the ODE falls
    well behind.

    Args:
        denoiser: A denoiser for :class:`~colddiff.degradations.GaussianNoise`.
        order: 1, 2 or 3.
        variant: At order 3, ``"taylor"`` or ``"diffusers"`` (see above); ignored below it.
        sde: Solve the diffusion SDE (fresh noise at each step; orders 1 and 2), not the ODE.
        eta: With ``sde=True``, the share of the SDE's noise in ``[0, 1]`` (see above).
        spacing: The step grid, and the other options of :class:`Sampler`: ``rho``,
            ``final_denoise``, ``clip_x0`` and ``data_range`` (keywords, as there).

    Raises:
        ValueError: If the degradation is not Gaussian noise, ``order`` is not 1, 2 or 3,
            ``variant`` not ``"taylor"`` or ``"diffusers"``, ``sde`` is not a bool or is
            asked at order 3, or ``eta`` is not in ``[0, 1]`` or is other than 1 without ``sde=True``.
    """

    def __init__(self, denoiser: Denoiser, *, order: Literal[1, 2, 3] = 2,
                 variant: Literal["taylor", "diffusers"] = "taylor", sde: bool = False,
                 eta: float = 1.0, spacing: Spacing = "trailing",
                 rho: float = 7.0, final_denoise: bool = False, clip_x0: bool = True,
                 data_range: tuple[float, float] = (0.0, 1.0)) -> None:
        super().__init__(denoiser, order=order, spacing=spacing, rho=rho, final_denoise=final_denoise,
                         clip_x0=clip_x0, data_range=data_range)
        if variant not in ("taylor", "diffusers"):
            raise ValueError(f"variant must be 'taylor' or 'diffusers', got {variant!r}")
        if not isinstance(sde, bool):
            raise ValueError(f"sde must be True or False, got {sde!r}")
        if sde and order == 3:
            raise ValueError("sde=True takes order 1 or 2 (SDE-DPM-Solver++ 1 and 2M), got order=3")
        if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0 <= eta <= 1:
            raise ValueError(f"eta must be a number in [0, 1], got {eta!r}")
        if eta != 1 and not sde:
            raise ValueError(f"eta sets the noise of the SDE solver: give it with sde=True, got eta={eta!r} "
                             f"and sde=False")
        self.variant = variant
        self.sde = sde
        self.eta = float(eta)
        self._coefficients: list[tuple[float, float, tuple[float, ...], float]] = []

    def step_order(self, i: int, steps: int, to_zero: bool) -> int:
        """The order of step ``i`` of ``steps``: rising over the first steps, first order at the
        last step to ``t = 0``, lowered at the last two of fewer than :data:`FEW_STEPS`."""
        few = steps < FEW_STEPS
        if i == steps - 1 and (to_zero or few):
            return 1
        if i == steps - 2 and few:
            return min(self.order, i + 1, 2)
        return min(self.order, i + 1)

    def setup(self, times: list[int], x_T: Tensor, generator: torch.Generator | None) -> None:
        """Precompute ``(x_t weight, D weight, weights of the last predictions in D, noise
        weight)`` per step."""
        alpha, sigma, lam = self.noise_levels(times)
        steps = len(times) - 1
        self._coefficients = []
        for i in range(steps):
            order = self.step_order(i, steps, sigma[i + 1] == 0)
            if sigma[i + 1] == 0:  # the last step: x_0 = x0_hat
                self._coefficients.append((0.0, alpha[i + 1], (1.0,), 0.0))
                continue
            h = lam[i + 1] - lam[i]
            weights = _direction_weights(order, h, lam[i] - lam[i - 1] if i else h,
                                         lam[i - 1] - lam[i - 2] if i > 1 else h, self.variant == "taylor")
            ratio = sigma[i + 1] / sigma[i]
            if self.sde:  # exp(-eta h) more decay of x_t, D weighted by 1 - exp(-(1 + eta) h), fresh noise
                noisy = self.eta * h
                self._coefficients.append((ratio * math.exp(-noisy), -alpha[i + 1] * math.expm1(-h - noisy),
                                           weights, sigma[i + 1] * math.sqrt(-math.expm1(-2 * noisy))))
            else:
                self._coefficients.append((ratio, -alpha[i + 1] * math.expm1(-h), weights, 0.0))
        self.history = []

    def step(self, i: int, t: int, s: int, x_t: Tensor, x0_hat: Tensor, t_batch: Tensor,
             s_batch: Tensor, generator: torch.Generator | None) -> Tensor:
        """One DPM-Solver++ step from ``t`` to ``s``."""
        xt_weight, d_weight, weights, noise_weight = self._coefficients[i]
        history = self.remember(x0_hat)
        direction = weights[0] * x0_hat  # first order: the weight 1
        for weight, earlier in zip(weights[1:], history[1:], strict=False):
            direction = direction + weight * earlier
        x_s = xt_weight * x_t + d_weight * direction
        if noise_weight > 0:
            x_s = x_s + noise_weight * self.noise(x_s, generator)
        return x_s


def _direction_weights(order: int, h: float, h_0: float, h_1: float, taylor: bool) -> tuple[float, ...]:
    """The weights of ``x0_hat``, the previous and the one before in ``D`` for a step of size
    ``h`` after steps of sizes ``h_0`` and ``h_1`` (all in ``lambda``); ``taylor``: ``D2``'s
    weight from the Taylor expansion, else as diffusers (half that)."""
    if order == 1:
        return (1.0,)
    if order == 2:
        half_over_r = (h / h_0) / 2
        return (1 + half_over_r, -half_over_r)
    # Third order: D = D0 + c1 D1 + c2 D2 (diffusers' multistep_dpm_solver_third_order_update,
    # divided by its D0 weight; D2 doubled for "taylor"), D1 and D2 through the predictions m0,
    # m1, m2: D1_0 = (m0 - m1) / r0, D1_1 = (m1 - m2) / r1, D1 = D1_0 + r0 (D1_0 - D1_1) / (r0 + r1),
    # D2 = (D1_0 - D1_1) / (r0 + r1).
    r0, r1 = h_0 / h, h_1 / h
    phi = math.expm1(-h)
    c1, c2 = -(phi / h + 1) / phi, (2 if taylor else 1) * ((phi + h) / h**2 - 0.5) / phi
    u = c1 * (1 + r0 / (r0 + r1)) + c2 / (r0 + r1)  # the weight of D1_0 = (m0 - m1) / r0
    v = c1 * r0 / (r0 + r1) + c2 / (r0 + r1)  # minus the weight of D1_1 = (m1 - m2) / r1
    return (1 + u / r0, -u / r0 - v / r1, v / r1)
