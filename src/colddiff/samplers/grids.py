"""Step grids: which steps ``t_K > ... > t_0`` a sampler visits, and how they are spaced.

A grid of ``K`` steps lists the ``K`` steps where the network is called, from the start (``T``,
or ``t_start`` when restoring) down, then 0, the clean image. The named spacings
(:data:`SPACINGS`), with ``S`` the start step:

* ``"trailing"``: ``round(S k / K)`` for ``k = K, ..., 1`` (colddiff's grid since 0.1, and the
  default). diffusers' ``timestep_spacing="trailing"`` (``DDIMScheduler``,
  ``DPMSolverMultistepScheduler``) is the same grid, except that colddiff rounds exact halves
  up where NumPy rounds them to even (``K = 16``: 813 here, 812 there).
* ``"leading"``: ``j floor(S / (K + 1)) + 1`` for ``j = K, ..., 1``: diffusers'
  ``DPMSolverMultistepScheduler(timestep_spacing="leading")``. Its first step is below ``S``
  (901 of 1000 for ``K = 10``) and the start is taken as degraded to it: the flaw Lin et al.
  (2024, "Common Diffusion Noise Schedules and Sample Steps are Flawed", Table 2) point out.
  (``DDIMScheduler``'s "leading" and "linspace" instead end their calls at ``t = 1``.)
* ``"linspace"``: ``round(i (S - 1) / K) + 1`` for ``i = K, ..., 1``: diffusers'
  ``DPMSolverMultistepScheduler(timestep_spacing="linspace")`` (halves to even).
* ``"quadratic"``: ``round(S (k / K)^2)``, at least 1, for ``k = K, ..., 1``: dense near the
  data, as Song et al.'s (2021, DDIM) "quadratic" selection (over all of ``[0, S]``, not their
  ``0.8 T``).
* ``"logsnr"``: uniform in ``log sigma = -lambda`` (half the log-SNR) from ``t = S`` to
  ``t = 1``, each mapped to the nearest step (linear interpolation of ``log sigma`` between
  steps, then rounding): Lu et al.'s (2022, DPM-Solver) "logSNR" spacing, as diffusers'
  ``use_lu_lambdas=True``.
* ``"karras"``: Karras et al. (2022, "Elucidating the Design Space...", eq. 5) over the
  schedule's ``sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t)``: ``(sigma_max^(1/rho) + i / (K
  - 1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho`` from ``sigma_S`` to ``sigma_1``, mapped to
  steps as for ``"logsnr"``: diffusers' ``use_karras_sigmas=True`` (``rho = 7``).

``"logsnr"`` and ``"karras"`` need the degradation's noise levels: they exist for the mixing
degradations (:class:`~colddiff.degradations.GaussianNoise`, image mixing), whose ``x_t =
sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) s`` defines them; blur, inpainting and
super-resolution have none. A rounded grid can repeat a step; repeats are dropped (a warning
says how many steps are left). ``sample_steps=None`` visits every step whatever the spacing.

An explicit grid (a list of integer steps) is the whole visited grid: strictly decreasing, from
``T`` down to 0 or to a step above 0. There the run stops, returning that state (still a little
noisy for Gaussian noise), or its clean-image prediction with ``final_denoise=True``. Restoring
from ``t_start``, it visits ``t_start`` and then the grid's steps below it.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Callable, Iterable, Sequence
from typing import ClassVar, TypeAlias

import numpy as np

from colddiff import user_warnings
from colddiff.degradations.base import Degradation
from colddiff.degradations.mixing import MixingDegradation

__all__ = ["SPACINGS", "Spacing", "StepGrid"]

#: The named spacings.
SPACINGS = ("trailing", "leading", "linspace", "quadratic", "logsnr", "karras")

Spacing: TypeAlias = "str | Sequence[int]"
"""A named spacing from :data:`SPACINGS`, or an explicit grid of integer steps."""

_NEED_NOISE_LEVELS = ("logsnr", "karras")


class StepGrid:
    """The steps a sampler visits, for a spacing and a degradation (checked once, here).

    Args:
        spacing: A name from :data:`SPACINGS` or an explicit grid (see the module's text).
        degradation: The degradation sampled; its ``T`` and, for ``"logsnr"`` and ``"karras"``,
            its schedule.
        rho: Karras et al.'s ``rho`` (used by ``"karras"``), a positive number.

    Raises:
        ValueError: If ``spacing`` is not a known name or a valid explicit grid, needs noise
            levels the degradation has not, or ``rho`` is not a positive number; the message
            names the argument and what it accepts.
    """

    def __init__(self, spacing: Spacing, degradation: Degradation, *, rho: float = 7.0) -> None:
        if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not 0 < rho < math.inf:
            raise ValueError(f"rho must be a positive number, got {rho!r}")
        self.num_timesteps = degradation.num_timesteps
        self.rho = float(rho)
        self.spacing = _check_spacing(spacing, self.num_timesteps)
        #: ``log sigma_t`` for ``t = 1..T`` (index ``t - 1``), for the spacings that need it.
        self.log_sigma: np.ndarray | None = None
        if self.spacing in _NEED_NOISE_LEVELS:
            if not isinstance(degradation, MixingDegradation):
                raise ValueError(
                    f"spacing={self.spacing!r} needs the noise levels of a mixing degradation (Gaussian "
                    f"noise, image mixing); {type(degradation).__name__} has none: use one of "
                    f"{_named(s for s in SPACINGS if s not in _NEED_NOISE_LEVELS)} or a list of steps")
            alpha_bar = degradation.schedule.alpha_bar[1:].double()
            self.log_sigma = (0.5 * ((1 - alpha_bar).log() - alpha_bar.log())).numpy()

    def steps(self, sample_steps: int | None = None, *, t_start: int | None = None) -> list[int]:
        """The visited steps ``[t_K, ..., t_0]``, ``t_0 = 0`` unless an explicit grid ends above it.

        Args:
            sample_steps: ``K``, the number of steps (network calls); ``None``: every step from
                the start, or an explicit grid's steps.
            t_start: The start step (default ``T``).

        Raises:
            ValueError: If ``t_start`` is not an integer in ``[1, T]``, or ``sample_steps`` not one
                in ``[1, t_start]`` (with an explicit grid: not its number of steps).
        """
        total = self.num_timesteps
        if t_start is not None:
            if isinstance(t_start, bool) or not isinstance(t_start, int) or not 1 <= t_start <= total:
                raise ValueError(f"t_start must be an integer in [1, {total}] (T) or None, got {t_start!r}")
            total = t_start
        if isinstance(self.spacing, tuple):
            return self._explicit(self.spacing, sample_steps, total)
        if sample_steps is None:
            return list(range(total, -1, -1))
        if (isinstance(sample_steps, bool) or not isinstance(sample_steps, int)
                or not 1 <= sample_steps <= total):
            raise ValueError(f"sample_steps must be an integer in [1, {total}] or None, "
                             f"got {sample_steps!r}")
        calls = _distinct(self._rules[self.spacing](self, total, sample_steps))
        if len(calls) < sample_steps:
            user_warnings.warn(f"spacing={self.spacing!r} rounds to {len(calls)} distinct steps for "
                               f"sample_steps={sample_steps} from step {total}; repeated steps are dropped")
        return [*calls, 0]

    @staticmethod
    def _explicit(grid: tuple[int, ...], sample_steps: int | None, start: int) -> list[int]:
        if sample_steps is not None and sample_steps != len(grid) - 1:
            raise ValueError(f"sample_steps must be None or {len(grid) - 1} (the number of steps of "
                             f"spacing={list(grid)}), got {sample_steps!r}")
        return [start, *(t for t in grid if t < start)]

    def _trailing(self, start: int, count: int) -> list[int]:
        return [math.floor(start * k / count + 0.5) for k in range(count, 0, -1)]

    def _leading(self, start: int, count: int) -> list[int]:
        ratio = start // (count + 1)
        return [j * ratio + 1 for j in range(count, 0, -1)]

    def _linspace(self, start: int, count: int) -> list[int]:
        step = (start - 1) / count
        return [round(i * step) + 1 for i in range(count, 0, -1)]

    def _quadratic(self, start: int, count: int) -> list[int]:
        return [max(1, math.floor(start * k * k / (count * count) + 0.5)) for k in range(count, 0, -1)]

    def _logsnr(self, start: int, count: int) -> list[int]:
        high, low = self._log_sigma_at(start), self._log_sigma_at(1)
        return self._nearest_steps(high + np.linspace(0, 1, count) * (low - high))

    def _karras(self, start: int, count: int) -> list[int]:
        high, low = np.exp(self._log_sigma_at(start) / self.rho), np.exp(self._log_sigma_at(1) / self.rho)
        sigmas = (high + np.linspace(0, 1, count) * (low - high)) ** self.rho
        return self._nearest_steps(np.log(sigmas))

    def _log_sigma_at(self, t: int) -> float:
        assert self.log_sigma is not None
        return float(self.log_sigma[t - 1])

    def _nearest_steps(self, log_sigmas: np.ndarray) -> list[int]:
        """Each ``log sigma`` at its nearest step: interpolated between steps, then rounded."""
        assert self.log_sigma is not None
        steps = np.arange(1, len(self.log_sigma) + 1, dtype=np.float64)
        return [int(t) for t in np.round(np.interp(log_sigmas, self.log_sigma, steps))]

    _rules: ClassVar[dict[str, Callable[[StepGrid, int, int], list[int]]]] = {
        "trailing": _trailing, "leading": _leading, "linspace": _linspace, "quadratic": _quadratic,
        "logsnr": _logsnr, "karras": _karras,
    }


def _named(names: Iterable[str]) -> str:
    return ", ".join(repr(name) for name in names)


def _distinct(steps: list[int]) -> list[int]:
    """``steps`` (non-increasing) without repeats."""
    return [t for i, t in enumerate(steps) if i == 0 or t != steps[i - 1]]


def _check_spacing(spacing: object, total: int) -> str | tuple[int, ...]:
    """``spacing`` checked: a name from :data:`SPACINGS`, or an explicit grid as a tuple."""
    if isinstance(spacing, str):
        if spacing not in SPACINGS:
            raise ValueError(f"spacing must be one of {_named(SPACINGS)} or a list of integer steps, "
                             f"got {spacing!r}")
        return spacing
    expected = (f"spacing, as a list of steps, must hold at least 2 strictly decreasing integers from "
                f"T = {total} down to 0 or a step above it, e.g. [{total}, {total // 2}, 0]")
    if not isinstance(spacing, (list, tuple)):
        raise ValueError(f"spacing must be one of {_named(SPACINGS)} or a list of integer steps, "
                         f"got {spacing!r}")
    if not all(isinstance(t, numbers.Integral) and not isinstance(t, bool) for t in spacing):
        raise ValueError(f"{expected}; got {list(spacing)!r}, which holds a non-integer")
    grid = tuple(int(t) for t in spacing)
    if len(grid) < 2 or grid[0] != total or grid[-1] < 0:
        raise ValueError(f"{expected}; got {list(grid)}")
    for t, s in itertools.pairwise(grid):
        if s >= t:
            raise ValueError(f"{expected}; got {list(grid)}, where {t} is followed by {s}")
    return grid
