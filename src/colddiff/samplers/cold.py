"""Cold diffusion sampling: Bansal et al. (2022), "Cold Diffusion: Inverting Arbitrary Image
Transforms Without Noise", Algorithm 1 (naive) and Algorithm 2 (improved), for any degradation."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from colddiff.denoisers import Denoiser
from colddiff.samplers.base import Sampler
from colddiff.samplers.grids import Spacing

__all__ = ["ColdSampler", "fixed_source"]


class ColdSampler(Sampler):
    """Bansal et al. (2022) Algorithms 1 and 2, for any degradation ``D``.

    With ``x0_hat = R(x_s, s)`` the network's clean-image prediction:

    * Algorithm 1 (naive): ``x_{s-1} = D(x0_hat, s - 1)``.
    * Algorithm 2 (improved): ``x_{s-1} = x_s - D(x0_hat, s) + D(x0_hat, s - 1)``.

    For a degradation with a source (noise, a mixed-in image), ``D`` needs one:

    * ``source="fixed"``: one source for the whole run: the one given to :meth:`sample`
      (inpainting's mask centres); else, for a degradation whose start stands in for its source
      (:attr:`~colddiff.Degradation.start_is_source`, the mixing ones), the start image ``x_T``
      itself (what the reference study did for Fashion-MNIST mixing: ``alpha_bar_T`` is tiny, so
      ``x_T`` is nearly the pure source; with a perfect denoiser Algorithm 2 then ends at ``x0 +
      (1 - sqrt(1 - alpha_bar_T)) x_T - sqrt(alpha_bar_T) x0``, a small constant error). Started
      part-way (``t_start < T``), where ``x_t`` is far from its source, the source is instead
      estimated once, from the first prediction, and kept.
    * ``source="estimate"``: re-estimated at every step from ``x_s`` and ``x0_hat`` as
      ``(x_s - sqrt(alpha_bar_s) x0_hat) / sqrt(1 - alpha_bar_s)`` (Bansal's code). Then
      ``D(x0_hat, s) = x_s``, both algorithms coincide, and for Gaussian noise the step is
      exactly DDIM with ``eta = 0`` (Song et al. 2021, eq. 12):
      ``x_{s-1} = sqrt(alpha_bar_{s-1}) x0_hat + sqrt(1 - alpha_bar_{s-1}) eps_hat``.

    Deterministic degradations (blur) have no source and ignore ``source``. With strided
    sampling, ``s - 1`` is the next visited step.

    A noisy degradation (the ``noise`` option, ``x_t = D(x_0, t) + noise_t z``) has its noise
    re-estimated at every step, ``z = (x_t - D(x0_hat, t)) / noise_t`` (Bansal et al.'s hot
    sampler, section 5.2; :meth:`~colddiff.Degradation.renoise`), whatever ``source`` says of its
    own source. With ``fresh_noise`` it instead gets fresh noise: ``x_{s-1} = D(x0_hat, s - 1) +
    fresh_noise * noise_{s-1} * eps``, ``eps ~ N(0, I)``, for both algorithms. This is the
    sampler of Inverse Heat Dissipation (Rissanen et al. 2023, section 2:
    ``u_{k-1} = mu_theta(u_k, k) + delta eps`` with ``mu_theta = D(x0_hat, k - 1)``, the next,
    less blurred level, and ``delta = 1.25 sigma``: ``fresh_noise=1.25``); no noise is added at the
    last step.

    Args:
        denoiser: The trained denoiser (any degradation, any target).
        algorithm: 1 or 2.
        source: ``"fixed"`` or ``"estimate"``.
        fresh_noise: ``None`` (re-estimate a noisy degradation's noise), or the factor ``>= 0``
            of fresh noise to the degradation's noise level at each step.
        spacing: The step grid, and the other options of :class:`Sampler`: ``rho``,
            ``final_denoise``, ``clip_x0`` and ``data_range`` (keywords, as there).

    Raises:
        ValueError: If ``algorithm`` or ``source`` is unknown, ``source="estimate"`` for a
            degradation that cannot recover its source, or ``fresh_noise`` is given for a
            degradation without noise or is not a finite number ``>= 0``.
    """

    def __init__(self, denoiser: Denoiser, *, algorithm: Literal[1, 2] = 2,
                 source: Literal["fixed", "estimate"] = "fixed", fresh_noise: float | None = None,
                 spacing: Spacing = "trailing", rho: float = 7.0, final_denoise: bool = False,
                 clip_x0: bool = True, data_range: tuple[float, float] = (0.0, 1.0)) -> None:
        super().__init__(denoiser, spacing=spacing, rho=rho, final_denoise=final_denoise, clip_x0=clip_x0,
                         data_range=data_range)
        if algorithm not in (1, 2):
            raise ValueError(f"algorithm must be 1 or 2, got {algorithm!r}")
        if source not in ("fixed", "estimate"):
            raise ValueError(f"source must be 'fixed' or 'estimate', got {source!r}")
        deg = self.degradation
        if source == "estimate" and deg.has_source and not deg.recovers_source:
            raise ValueError(
                f"source='estimate' needs a degradation that can recover its source; "
                f"{type(deg).__name__} cannot, use source='fixed'"
            )
        if source == "fixed" and deg.has_source and not deg.start_is_source and deg.recovers_source:
            raise ValueError(f"{deg!r} is sampled with source='estimate' (its source, noise, is "
                             f"re-estimated at each step; the start is not it), not source='fixed'")
        if fresh_noise is not None and not (
                deg.noisy and isinstance(fresh_noise, (int, float)) and not isinstance(fresh_noise, bool)
                and math.isfinite(fresh_noise) and fresh_noise >= 0):
            raise ValueError(f"fresh_noise must be None or a finite number >= 0 for a degradation with "
                             f"noise, got {fresh_noise!r} for {deg!r}")
        self.algorithm = algorithm
        self.source = source
        self.fresh_noise = fresh_noise
        self._fixed_source: Tensor | None = None
        self._estimate_once = False

    def setup(self, times: list[int], x_T: Tensor, generator: torch.Generator | None) -> None:
        """Fix the source: the one given to :meth:`sample`, else (mixing degradations) the start.

        Raises:
            ValueError: For ``source="fixed"`` with a degradation whose source is not its start
                (noisy blur, inpainting's centres) when none was given.
        """
        self._fixed_source, self._estimate_once = None, False
        if self.degradation.has_source and self.source == "fixed":
            self._fixed_source, self._estimate_once = fixed_source(self, x_T)

    def step(self, i: int, t: int, s: int, x_t: Tensor, x0_hat: Tensor, t_batch: Tensor,
             s_batch: Tensor, generator: torch.Generator | None) -> Tensor:
        """One step of Algorithm 1 or 2 from ``t`` to ``s``."""
        deg = self.degradation
        if self._estimate_once and i == 0:
            self._fixed_source = deg.source_from_x0(x_t, t_batch, x0_hat)
        source = self._fixed_source
        if deg.has_source and self.source == "estimate":
            source = deg.source_from_x0(x_t, t_batch, x0_hat)
        elif deg.noisy:  # Bansal's hot sampler: the noise re-estimated from the prediction
            source = deg.renoise(x_t, t_batch, x0_hat, source)
        if self.fresh_noise is not None:  # Rissanen et al.: the next level plus fresh noise
            fresh = self.fresh_noise * self.noise(x_t, generator)
            return deg.degrade(x0_hat, s_batch, deg.renoise(x_t, t_batch, x0_hat, source, fresh))
        if self.algorithm == 1:
            return deg.degrade(x0_hat, s_batch, source)
        return x_t - deg.degrade(x0_hat, t_batch, source) + deg.degrade(x0_hat, s_batch, source)


def fixed_source(sampler: Sampler, x_T: Tensor) -> tuple[Tensor | None, bool]:
    """The source a sampler keeps for a whole run from ``x_T``: ``(source, estimate_once)``.

    The source given to :meth:`~Sampler.sample`; else, for a degradation whose start stands in
    for its source, the start ``x_T`` itself; part-way (``t_start < T``), where ``x_t`` is far
    from its source, ``(None, True)``: estimate it once, from the first prediction
    (:meth:`~colddiff.Degradation.source_from_x0`).

    Raises:
        ValueError: If the source must be given (inpainting's centres, or a part-way start of a
            degradation that cannot recover its source) and was not.
    """
    deg = sampler.degradation
    if sampler.start_source is not None:
        return sampler.start_source, False
    if not deg.start_is_source:
        raise ValueError(f"{deg!r} needs the source each image was degraded with: pass it, "
                         f"sample(..., source=...)")
    if sampler.start_step == deg.num_timesteps:
        return x_T, False
    if deg.recovers_source:
        return None, True
    raise ValueError(f"restoring {deg!r} part-way with a fixed source needs that source: pass "
                     f"it, sample(..., source=...)")
