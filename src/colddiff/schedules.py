"""Noise and degradation schedules.

A :class:`Schedule` holds the per-step variances ``beta_t`` of a diffusion process with ``T``
steps and the quantities derived from them, in the notation of Ho et al. (2020) and of Prince,
*Understanding Deep Learning*, chapter 18:

* ``alpha_t = 1 - beta_t``
* ``alpha_bar_t = prod_{s=1..t} alpha_s``, so that ``x_t = sqrt(alpha_bar_t) x_0 +
  sqrt(1 - alpha_bar_t) eps``.

Every tensor is indexed by the time step ``t = 0..T`` (``T + 1`` entries). Index 0 is the clean
data: ``beta[0] = 0``, ``alpha[0] = 1`` and ``alpha_bar[0] = 1``. The first real step is
``t = 1``, where ``beta[1] = beta_start``.

Note:
    The reference study's code (the coursework starter notebook) builds its arrays differently:
    ``beta = beta_start + (beta_end - beta_start) * arange(0, T + 1) / T``, i.e. ``T + 1`` betas
    of which the *first* (index 0) is already ``beta_start``, and its ``alpha_bar[0] =
    1 - beta_start`` rather than 1. Its step size is therefore ``(beta_end - beta_start) / T``
    where ours is ``(beta_end - beta_start) / (T - 1)``, and its index ``t`` corresponds to our
    ``t + 1``. Matched that way, the two ``alpha_bar`` curves differ by at most 0.7% (default),
    0.13% (long) and 3.5% (short) of their value wherever ``alpha_bar > 1e-3``, and end at
    ``alpha_bar_T`` = 4.04e-5 here against 4.00e-5 there for the default preset
    (``tests/test_schedules.py`` checks these bounds).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from colddiff.presets import SCHEDULES

__all__ = ["PRESETS", "Schedule"]

#: The linear schedules of the reference study: ``(beta_start, beta_end, num_timesteps)``.
PRESETS = SCHEDULES


class Schedule:
    """An immutable variance schedule ``beta_1..beta_T``.

    Build one with :meth:`linear`, :meth:`cosine`, :meth:`preset` or :meth:`from_betas`.
    The tensor properties return float64 copies indexed by ``t = 0..T``; changing a copy
    does not change the schedule.

    Attributes:
        kind: How the schedule was made (``"linear"``, ``"cosine"`` or ``"custom"``).
        params: The arguments it was made from (empty for ``"custom"``), enough to rebuild it
            with :meth:`from_spec`.
    """

    __slots__ = ("_beta", "kind", "params")

    kind: str
    params: dict[str, Any]
    _beta: torch.Tensor

    def __init__(self, betas: Sequence[float] | torch.Tensor, *, kind: str = "custom",
                 params: dict[str, Any] | None = None) -> None:
        """Create a schedule from ``beta_1..beta_T``; prefer the named constructors.

        Args:
            betas: The ``T`` variances for steps ``t = 1..T``, each in the open interval (0, 1).
            kind: A label for how the betas were made.
            params: The constructor arguments that made them.

        Raises:
            ValueError: If ``betas`` is empty, not one-dimensional, non-finite, has a value
                outside (0, 1), or makes ``alpha_bar_T`` underflow to 0.
        """
        beta = torch.as_tensor(betas, dtype=torch.float64).detach().clone()
        if beta.ndim != 1 or beta.numel() < 1:
            raise ValueError(
                f"betas must be a non-empty 1-D sequence (one value per step t = 1..T), "
                f"got shape {tuple(beta.shape)}"
            )
        if not torch.isfinite(beta).all():
            raise ValueError("betas must be finite; got NaN or infinity")
        if not ((beta > 0) & (beta < 1)).all():
            bad = beta[(beta <= 0) | (beta >= 1)][0].item()
            raise ValueError(f"betas must lie in the open interval (0, 1); got {bad!r}")
        log_alpha_bar = torch.cumsum(torch.log1p(-beta), dim=0)
        if log_alpha_bar[-1] < -700:  # exp(-745) is the last float64 above zero
            raise ValueError(
                f"betas destroy the signal completely: alpha_bar_T = exp({log_alpha_bar[-1].item():.0f}) "
                "underflows, and the clean image could not be recovered from x_T; use smaller betas "
                "or fewer steps"
            )
        object.__setattr__(self, "_beta", torch.cat([beta.new_zeros(1), beta]))
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "params", dict(params or {}))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Schedule is immutable; cannot set {name!r}")

    # ------------------------------------------------------------------ constructors
    @classmethod
    def linear(cls, beta_start: float, beta_end: float, num_timesteps: int) -> Schedule:
        """Betas linear in ``t`` from ``beta_start`` at ``t = 1`` to ``beta_end`` at ``t = T``.

        Args:
            beta_start: ``beta_1``, in (0, 1).
            beta_end: ``beta_T``, in (0, 1).
            num_timesteps: ``T``, at least 1 (with ``T = 1`` the single beta is ``beta_start``).

        Raises:
            ValueError: If an argument is out of range; the message names it.
        """
        num_timesteps = _check_num_timesteps(num_timesteps)
        for name, value in (("beta_start", beta_start), ("beta_end", beta_end)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 < value < 1):
                raise ValueError(f"{name} must be a finite number in (0, 1), got {value!r}")
        betas = torch.linspace(beta_start, beta_end, num_timesteps, dtype=torch.float64)
        return cls(betas, kind="linear",
                   params={"beta_start": float(beta_start), "beta_end": float(beta_end),
                           "num_timesteps": num_timesteps})

    @classmethod
    def cosine(cls, num_timesteps: int, offset: float = 0.008, max_beta: float = 0.999) -> Schedule:
        """The cosine schedule of Nichol & Dhariwal (2021), eq. 17.

        ``alpha_bar(t) = f(t) / f(0)`` with ``f(t) = cos^2(((t / T) + s) / (1 + s) * pi / 2)``,
        and ``beta_t = 1 - alpha_bar(t) / alpha_bar(t - 1)`` clipped to ``max_beta``.

        Args:
            num_timesteps: ``T``, at least 1.
            offset: The small offset ``s`` that keeps ``beta_1`` away from zero.
            max_beta: Upper clip for the betas near ``t = T``, in (0, 1).

        Raises:
            ValueError: If an argument is out of range; the message names it.
        """
        num_timesteps = _check_num_timesteps(num_timesteps)
        if not (math.isfinite(offset) and offset > 0):
            raise ValueError(f"offset must be a finite number > 0, got {offset!r}")
        if not (math.isfinite(max_beta) and 0 < max_beta < 1):
            raise ValueError(f"max_beta must be a finite number in (0, 1), got {max_beta!r}")
        t = torch.arange(num_timesteps + 1, dtype=torch.float64) / num_timesteps
        f = torch.cos((t + offset) / (1 + offset) * math.pi / 2) ** 2
        alpha_bar = f / f[0]
        betas = (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=max_beta)
        return cls(betas, kind="cosine",
                   params={"num_timesteps": num_timesteps, "offset": float(offset),
                           "max_beta": float(max_beta)})

    @classmethod
    def from_betas(cls, betas: Sequence[float] | torch.Tensor) -> Schedule:
        """A schedule from explicit ``beta_1..beta_T`` (``T`` values, each in (0, 1))."""
        return cls(betas)

    @classmethod
    def preset(cls, name: str) -> Schedule:
        """One of the reference study's linear schedules.

        Args:
            name: ``"default"`` (1e-4 to 0.02 over 1000 steps), ``"long"`` (1e-4 to 0.004 over
                5000) or ``"short"`` (1e-4 to 0.1 over 200).

        Raises:
            ValueError: If ``name`` is not a preset; the message lists them.
        """
        if name not in PRESETS:
            raise ValueError(f"name must be one of {sorted(PRESETS)}, got {name!r}")
        return cls.linear(*PRESETS[name])

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Schedule:
        """Rebuild a schedule from :meth:`spec` (as stored in configs and checkpoints).

        Raises:
            ValueError: If ``spec["kind"]`` is unknown or its parameters are invalid.
        """
        params = {k: v for k, v in spec.items() if k != "kind"}
        kind = spec.get("kind")
        if kind == "linear":
            return cls.linear(**params)
        if kind == "cosine":
            return cls.cosine(**params)
        if kind == "custom":
            return cls.from_betas(params["betas"])
        raise ValueError(
            f"spec['kind'] must be one of 'linear', 'cosine', 'custom'; got {kind!r}"
        )

    # ------------------------------------------------------------------ derived values
    @property
    def num_timesteps(self) -> int:
        """``T``, the number of diffusion time steps."""
        return self._beta.numel() - 1

    @property
    def beta(self) -> torch.Tensor:
        """``beta_t`` for ``t = 0..T`` (float64, ``beta[0] = 0``)."""
        return self._beta.clone()

    @property
    def alpha(self) -> torch.Tensor:
        """``alpha_t = 1 - beta_t`` for ``t = 0..T`` (float64, ``alpha[0] = 1``)."""
        return 1 - self._beta

    @property
    def alpha_bar(self) -> torch.Tensor:
        """``alpha_bar_t = prod_{s<=t} alpha_s`` for ``t = 0..T`` (float64, starts at 1).

        Computed as ``exp(cumsum(log(alpha)))``, which keeps full precision for long schedules.
        """
        return torch.exp(torch.cumsum(torch.log1p(-self._beta), dim=0))

    def spec(self) -> dict[str, Any]:
        """A plain dict (TOML/JSON friendly) that :meth:`from_spec` turns back into this schedule."""
        if self.kind == "custom":
            return {"kind": "custom", "betas": self._beta[1:].tolist()}
        return {"kind": self.kind, **self.params}

    # ------------------------------------------------------------------ dunder
    def __len__(self) -> int:
        return self.num_timesteps

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schedule) and torch.equal(self._beta, other._beta)

    def __hash__(self) -> int:
        return hash((self.num_timesteps, self._beta[1].item(), self._beta[-1].item()))

    def __repr__(self) -> str:
        if self.kind == "custom":
            return f"Schedule.from_betas(<{self.num_timesteps} betas>)"
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"Schedule.{self.kind}({args})"


def _check_num_timesteps(num_timesteps: int) -> int:
    if isinstance(num_timesteps, bool) or not isinstance(num_timesteps, int) or num_timesteps < 1:
        raise ValueError(f"num_timesteps must be an integer >= 1, got {num_timesteps!r}")
    return num_timesteps
