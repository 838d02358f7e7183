"""Soft Diffusion's Momentum Sampler: Daras et al. (2023), "Soft Diffusion: Score Matching for
General Corruptions" (TMLR), for any linear corruption with noise."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from colddiff.denoisers import Denoiser
from colddiff.samplers.base import Sampler
from colddiff.samplers.cold import fixed_source
from colddiff.samplers.grids import Spacing

__all__ = ["SoftSampler"]


class SoftSampler(Sampler):
    """The Momentum Sampler of Daras et al. (2023) for ``x_t = C_t x_0 + s_t z``.

    For a :attr:`~colddiff.Degradation.linear` degradation (:meth:`~colddiff.Degradation.corrupt`
    is ``C_t``, :attr:`~colddiff.Degradation.corruption_noise` is ``s_t``) each step from ``t``
    to ``s < t`` is a noise step then a corruption correction, with ``x0_hat`` the clean-image
    prediction and the score of Soft Score Matching, ``(C_t x0_hat - x_t) / s_t^2``::

        x' = x_t + (s_t^2 - s_s^2) (C_t x0_hat - x_t) / s_t^2 + sqrt(s_t^2 - s_s^2) z   (noise)
        x_s = x' - C_t x0_hat + C_s x0_hat                                            (corruption)

    with ``z ~ N(0, I)``. The noise step is the reverse-diffusion step of the variance-exploding
    SDE (Song et al. 2021, "Score-Based Generative Modeling through SDEs", Algorithm 2's
    predictor) at fixed corruption; the correction moves the corruption from ``C_t`` to
    ``C_s``. Hence:

    * With ``C_t = I`` (``x_t = x_0 + s_t z``) it is Song et al.'s VE reverse-diffusion sampler.
    * Without noise (``s_t = 0``: cold blur, cold mixing) the noise step does nothing and it is
      Bansal et al.'s Algorithm 2, ``x_s = x_t - D(x0_hat, t) + D(x0_hat, s)``
      (:class:`ColdSampler`, ``algorithm=2``).

    No noise is added at the last step (``s = 0``), which then returns ``x0_hat``. A degradation
    with a source of its own (a mixed-in image, inpainting's mask centres) keeps it fixed in
    ``C_t``, as the cold sampler's ``source="fixed"`` does: the one given to :meth:`sample`, else
    the start ``x_T`` for a mixing degradation (see
    :func:`~colddiff.samplers.cold.fixed_source`). The noise is never fixed: it is re-estimated
    at every step through the score.

    Args:
        denoiser: A denoiser for a linear corruption (any target; Daras et al. train
            ``predict="x0"`` with ``loss="soft"``).
        spacing: The step grid, and the other options of :class:`Sampler`: ``rho``,
            ``final_denoise``, ``clip_x0`` and ``data_range`` (keywords, as there).

    Raises:
        ValueError: If the degradation is not a linear corruption, or its noise levels ``s_t``
            decrease somewhere as ``t`` grows (the noise step would have to add negative
            variance).
    """

    def __init__(self, denoiser: Denoiser, *, spacing: Spacing = "trailing", rho: float = 7.0,
                 final_denoise: bool = False, clip_x0: bool = True,
                 data_range: tuple[float, float] = (0.0, 1.0)) -> None:
        super().__init__(denoiser, spacing=spacing, rho=rho, final_denoise=final_denoise, clip_x0=clip_x0,
                         data_range=data_range)
        deg = self.degradation
        if not deg.linear:
            raise ValueError(f"sampler='soft' needs a degradation that is a linear corruption x_t = C_t x0 "
                             f"+ s_t z (Degradation.linear); {type(deg).__name__} is not one, use "
                             f"sampler='cold'")
        levels = deg.corruption_noise
        if bool((levels[1:] < levels[:-1]).any()):
            raise ValueError(f"sampler='soft' needs noise levels s_t that do not decrease as t grows; "
                             f"{deg!r} has {levels.tolist()!r:.120}")
        self._levels: list[float] = levels.tolist()
        self._source: Tensor | None = None
        self._estimate_once = False

    def setup(self, times: list[int], x_T: Tensor, generator: torch.Generator | None) -> None:
        """Fix the degradation's own source, if it has one."""
        self._source, self._estimate_once = None, False
        if self.degradation.own_source:
            self._source, self._estimate_once = fixed_source(self, x_T)

    def step(self, i: int, t: int, s: int, x_t: Tensor, x0_hat: Tensor, t_batch: Tensor,
             s_batch: Tensor, generator: torch.Generator | None) -> Tensor:
        """A noise step then a corruption correction, from ``t`` to ``s``."""
        deg = self.degradation
        if self._estimate_once and i == 0:
            self._source = deg.source_from_x0(x_t, t_batch, x0_hat)
        level_t, level_s = self._levels[t], self._levels[s]
        corrupted = deg.corrupt(x0_hat, t_batch, self._source)
        moved = x_t
        if level_t > 0:
            moved = x_t + (level_t**2 - level_s**2) * (corrupted - x_t) / level_t**2
            if s > 0 and level_s < level_t:
                moved = moved + math.sqrt(level_t**2 - level_s**2) * self.noise(x_t, generator)
        return moved - corrupted + deg.corrupt(x0_hat, s_batch, self._source)
