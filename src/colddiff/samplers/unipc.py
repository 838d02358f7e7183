"""UniPC: Zhao et al. (2023), "UniPC: A Unified Predictor-Corrector Framework for Fast Sampling of
Diffusion Models", the multistep predictor UniP and corrector UniC, ``B(h) = exp(-h) - 1``
("bh2"), in data prediction."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from colddiff.samplers.multistep import MultistepSampler

__all__ = ["UniPCSampler"]

#: ``(x weight, weights of the predictions)``: a step's result is ``x weight * x + sum(weight * m)``.
Update = tuple[float, tuple[float, ...]]


class UniPCSampler(MultistepSampler):
    """UniPC (Zhao et al. 2023), bh2, data prediction: UniP-``p`` predicts, UniC corrects.

    With ``alpha_t``, ``sigma_t`` and ``lambda_t`` as for :class:`DPMSolverSampler`, ``h =
    lambda_s - lambda_t``, ``phi = exp(-h) - 1 = B(h)`` and ``m_0, m_1, ...`` the clean-image
    predictions at ``t`` and the steps before it (at ``lambda_{t_k}``, ``r_k = (lambda_{t_k} -
    lambda_t) / h``), the predictor of order ``p`` (their Algorithm 2, with ``B(h)`` of their
    eq. 9 set to ``exp(-h) - 1``) is::

        x_s = (sigma_s / sigma_t) x_t - alpha_s phi (m_0 + sum_k rho_k (m_k - m_0) / r_k)

    with ``rho = 1/2`` at order 2 and ``rho`` solving the order conditions ``sum_k rho_k r_k^(n-1)
    = b_n`` (``n < p``) at order 3. Once the network has seen ``x_s`` (its prediction ``m_s``, one
    call for both), the corrector redoes the step with ``m_s`` added as a last term, ``rho``
    solving all ``p`` conditions (``1/2`` at ``p = 1``), and the sampler goes on from the
    corrected ``x_s``: order ``p + 1`` at no extra network call. The order rises from 1 over the
    first steps and falls to 1 over the last ones (``min(order, i + 1, K - i)`` at step ``i`` of
    ``K``); the last step to ``t = 0`` returns ``x0_hat``. It matches diffusers'
    ``UniPCMultistepScheduler`` (``solver_type="bh2"``, ``predict_x0=True``,
    ``lower_order_final=True``, ``solver_order=order``, ``prediction_type="sample"`` fed our
    ``x0_hat``; its timestep ``k`` is our ``t = k + 1``).

    Args:
        denoiser: A denoiser for :class:`~colddiff.degradations.GaussianNoise`.
        order: 1, 2 or 3 (``p``; the corrected steps are of order ``p + 1``).
        spacing: The step grid, and the other options of :class:`Sampler`: ``rho``,
            ``final_denoise``, ``clip_x0`` and ``data_range`` (keywords, as there).

    Raises:
        ValueError: If the degradation is not Gaussian noise or ``order`` is not 1, 2 or 3.
    """

    _predictors: list[Update]
    _correctors: list[Update]
    _last: Tensor | None

    def setup(self, times: list[int], x_T: Tensor, generator: torch.Generator | None) -> None:
        """Precompute each step's predictor and (but for the last step) corrector."""
        alpha, sigma, lam = self.noise_levels(times)
        steps = len(times) - 1
        self._predictors, self._correctors = [], []
        for i in range(steps):
            order = min(self.order, i + 1, steps - i)
            if sigma[i + 1] == 0:  # the last step (order 1): x_0 = x0_hat
                self._predictors.append((0.0, (alpha[i + 1],)))
                continue
            h = lam[i + 1] - lam[i]
            ratios = [(lam[i - k] - lam[i]) / h for k in range(1, order)]
            scale, phi = sigma[i + 1] / sigma[i], -alpha[i + 1] * math.expm1(-h)
            self._predictors.append((scale, _predictor_weights(ratios, h, phi)))
            self._correctors.append((scale, _corrector_weights(ratios, h, phi)))
        self.history, self._last = [], None

    def step(self, i: int, t: int, s: int, x_t: Tensor, x0_hat: Tensor, t_batch: Tensor,
             s_batch: Tensor, generator: torch.Generator | None) -> Tensor:
        """Correct ``x_t`` with its prediction (UniC, after the first step), then predict ``x_s``
        (UniP)."""
        if i > 0 and self._last is not None:
            x_t = _apply(self._correctors[i - 1], self._last, [x0_hat, *self.history])
        self._last = x_t
        return _apply(self._predictors[i], x_t, self.remember(x0_hat))


def _apply(update: Update, x: Tensor, predictions: list[Tensor]) -> Tensor:
    x_weight, weights = update
    result = weights[0] * predictions[0] if x_weight == 0 else x_weight * x + weights[0] * predictions[0]
    for weight, prediction in zip(weights[1:], predictions[1:], strict=False):
        result = result + weight * prediction
    return result


def _order_conditions(h: float, order: int) -> list[float]:
    """``b_1 .. b_order`` of UniPC's order conditions for ``B(h) = exp(-h) - 1`` (diffusers'
    ``multistep_uni_p_bh_update``, its loop over ``h_phi_k``)."""
    hh = -h
    phi = math.expm1(hh)
    h_phi_k, factorial, b = phi / hh - 1, 1, []
    for n in range(1, order + 1):
        b.append(h_phi_k * factorial / phi)
        factorial *= n + 1
        h_phi_k = h_phi_k / hh - 1 / factorial
    return b


def _solve(ratios: list[float], b: list[float]) -> list[float]:
    """``rho`` with ``sum_k rho_k ratios_k^(n-1) = b_n`` for ``n = 1..len(ratios)``."""
    matrix = torch.tensor([[r ** (n - 1) for r in ratios] for n in range(1, len(ratios) + 1)],
                          dtype=torch.float64)
    return torch.linalg.solve(matrix, torch.tensor(b, dtype=torch.float64)).tolist()  # type: ignore[no-any-return]


def _predictor_weights(ratios: list[float], h: float, phi_weight: float) -> tuple[float, ...]:
    """The weights of ``m_0, m_1, ...`` in UniP (``phi_weight = -alpha_s phi``)."""
    if not ratios:
        rho: list[float] = []
    elif len(ratios) == 1:
        rho = [0.5]
    else:
        rho = _solve(ratios, _order_conditions(h, len(ratios) + 1)[:-1])
    earlier = [phi_weight * r / k for r, k in zip(rho, ratios, strict=True)]
    return (phi_weight - sum(earlier), *earlier)


def _corrector_weights(ratios: list[float], h: float, phi_weight: float) -> tuple[float, ...]:
    """The weights of ``m_s, m_0, m_1, ...`` in UniC after a step that used ``ratios``."""
    rho = [0.5] if not ratios else _solve([*ratios, 1.0], _order_conditions(h, len(ratios) + 1))
    earlier = [phi_weight * r / k for r, k in zip(rho[:-1], ratios, strict=True)]
    new = phi_weight * rho[-1]
    return (new, phi_weight - sum(earlier) - new, *earlier)
