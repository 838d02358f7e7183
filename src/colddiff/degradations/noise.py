"""The ``noise`` option of a degradation: a level, or a schedule over ``t``, of added Gaussian noise.

Any degradation ``D`` becomes a noisy one, ``x_t = D(x_0, t) + noise_t z`` with ``z ~ N(0, I)``
drawn per image (Bansal et al. 2022, section 5.2, "hot" blur; Rissanen et al. 2023, the heat
equation's forward process plus noise of standard deviation sigma). The noise ``z`` travels with
the degradation's own source, if it has one, as one tensor: see :func:`join_noise`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from colddiff.schedules import Schedule

__all__ = ["NOISE_SHAPES", "NoiseOption", "join_noise", "noise_levels", "split_noise"]

NoiseOption = float | Sequence[float] | Tensor | Mapping[str, float | str]
"""A noise level (the same at every step ``t >= 1``), ``T + 1`` levels, one per step, or a named
shape, ``{"level": L, "shape": NAME}`` (:data:`NOISE_SHAPES`)."""

#: The named shapes of a noise schedule, ``{"level": L, "shape": NAME}``, as ``noise_t`` for
#: ``t >= 1`` (``noise_0 = 0``): ``"constant"``, ``L`` (the same as the number ``L``);
#: ``"linear"``, ``L t / T``; ``"schedule"``, ``L sqrt(1 - alpha_bar_t)`` of the degradation's
#: schedule: the noise grows as a Gaussian diffusion's does (for a mixing degradation, in step
#: with the mixed-in image's weight), which makes the Soft Diffusion sampler's noise steps real.
NOISE_SHAPES = ("constant", "linear", "schedule")


def noise_levels(noise: object, num_timesteps: int, schedule: Schedule | None = None) -> Tensor:
    """The noise level of each step ``t = 0..T`` as a ``(T + 1,)`` float64 tensor.

    Args:
        noise: A finite number ``>= 0``: that level at every step ``t >= 1`` (``x_0`` stays
            clean); ``T + 1`` finite numbers ``>= 0``, one per step, the first of them 0; or a
            named shape ``{"level": L, "shape": NAME}`` (:data:`NOISE_SHAPES`).
        num_timesteps: ``T``.
        schedule: The schedule that weighs the degradation's images (a mixing's), for the shape
            ``"schedule"``; ``None`` for a degradation that weighs none by it.

    Raises:
        ValueError: Naming ``noise`` and what it accepts.
    """
    if isinstance(noise, Mapping):
        return _shaped_levels(noise, num_timesteps, schedule)
    level = "noise must be a finite number >= 0"
    per_step = (f"noise, as a schedule, must be T + 1 = {num_timesteps + 1} finite numbers >= 0, one "
                f"per step t = 0..T, the first 0 (x_0 is the clean image)")
    if isinstance(noise, (int, float)) and not isinstance(noise, bool):
        if not (math.isfinite(_as_float(noise)) and noise >= 0):
            raise ValueError(f"{level}, got {noise!r:.80}")
        levels = torch.full((num_timesteps + 1,), float(noise), dtype=torch.float64)
        levels[0] = 0.0
        return levels
    if isinstance(noise, Tensor) and noise.ndim == 1 and not noise.dtype.is_complex:
        values = noise.detach().to("cpu", torch.float64)
    elif isinstance(noise, (list, tuple)) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in noise):
        values = torch.tensor([_as_float(v) for v in noise], dtype=torch.float64)
    else:
        raise ValueError(f"{level} (the level at every step t >= 1) or a sequence of T + 1 = "
                         f"{num_timesteps + 1} of them, one per step t = 0..T; got {noise!r:.80}")
    if len(values) != num_timesteps + 1:
        raise ValueError(f"{per_step}; got {len(values)} values")
    if not bool(torch.isfinite(values).all()) or bool((values < 0).any()) or float(values[0]) != 0:
        raise ValueError(f"{per_step}; got {values.tolist()!r:.120}")
    return values


def _as_float(value: float) -> float:
    """``float(value)``, or infinity for an int too large for a float (which the checks refuse)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf


def _shaped_levels(noise: Mapping[object, object], num_timesteps: int, schedule: Schedule | None) -> Tensor:
    """The levels of a named shape, ``{"level": L, "shape": NAME}`` (:data:`NOISE_SHAPES`)."""
    accepted = (f"noise, as a named shape, must be {{'level': a finite number >= 0, 'shape': one of "
                f"{', '.join(map(repr, NOISE_SHAPES))}}}")
    level, shape = noise.get("level"), noise.get("shape")
    if (set(noise) != {"level", "shape"} or shape not in NOISE_SHAPES or isinstance(level, bool)
            or not isinstance(level, (int, float)) or not math.isfinite(_as_float(level)) or level < 0):
        raise ValueError(f"{accepted}; got {dict(noise)!r:.120}")
    steps = torch.arange(num_timesteps + 1, dtype=torch.float64)
    if shape == "constant":
        growth = (steps > 0).to(torch.float64)
    elif shape == "linear":
        growth = steps / num_timesteps
    elif schedule is None or schedule.num_timesteps != num_timesteps:
        has = ("does not weigh its images by a schedule" if schedule is None
               else f"has one of {schedule.num_timesteps}")
        raise ValueError(f"noise with shape 'schedule' needs a degradation that weighs its images by a "
                         f"schedule of T = {num_timesteps} steps (mixing, fashion_mnist); this one {has}: "
                         f"use the shape 'linear' or 'constant', or T + 1 levels")
    else:
        growth = (1.0 - schedule.alpha_bar.to(torch.float64)).clamp(min=0.0).sqrt()
    return float(level) * growth


def join_noise(own: Tensor | None, noise: Tensor) -> Tensor:
    """One source tensor holding a degradation's own source and its noise.

    Without an own source it is the noise ``(B, C, H, W)`` itself. With one it is their *pair*:
    a ``(B, k + C*H*W)`` tensor, each row the own source's ``k`` values followed by the noise's
    (see :func:`split_noise`).
    """
    if own is None:
        return noise
    return torch.cat([own.flatten(1).to(noise.dtype), noise.flatten(1)], dim=1)


def split_noise(source: Tensor | None, like: Tensor, *, has_own: bool, noisy: bool
                ) -> tuple[Tensor | None, Tensor | None]:
    """``(own, noise)``: a source tensor taken apart again (the inverse of :func:`join_noise`).

    For a noisy degradation with an own source, a ``(B, n)`` source with ``n > C*H*W`` is a pair:
    its last ``C*H*W`` values are the noise (shaped like ``like``), the others the own source
    (flattened, ``(B, k)``); any other source is the own source alone (no noise: a sampler's
    fixed source, a mixing degradation's start).

    Args:
        source: The source, or ``None``.
        like: A batch ``(B, C, H, W)`` of the images.
        has_own: Whether the degradation has a source of its own.
        noisy: Whether it adds noise.
    """
    if source is None or not noisy:
        return source, None
    if not has_own:
        return None, source
    size = like[0].numel()
    if source.ndim == 2 and source.shape[1] > size:
        return source[:, :-size], source[:, -size:].reshape(like.shape)
    return source, None
