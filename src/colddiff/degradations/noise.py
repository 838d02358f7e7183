"""The ``noise`` option of a degradation: a level, or a schedule over ``t``, of added Gaussian noise.

Any degradation ``D`` becomes a noisy one, ``x_t = D(x_0, t) + noise_t z`` with ``z ~ N(0, I)``
drawn per image (Bansal et al. 2022, section 5.2, "hot" blur; Rissanen et al. 2023, the heat
equation's forward process plus noise of standard deviation sigma). The noise ``z`` travels with
the degradation's own source, if it has one, as one tensor: see :func:`join_noise`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["NoiseOption", "join_noise", "noise_levels", "split_noise"]

NoiseOption = float | Sequence[float] | Tensor
"""A noise level (the same at every step ``t >= 1``) or ``T + 1`` levels, one per step."""


def noise_levels(noise: object, num_timesteps: int) -> Tensor:
    """The noise level of each step ``t = 0..T`` as a ``(T + 1,)`` float64 tensor.

    Args:
        noise: A finite number ``>= 0``: that level at every step ``t >= 1`` (``x_0`` stays
            clean); or ``T + 1`` finite numbers ``>= 0``, one per step, the first of them 0.
        num_timesteps: ``T``.

    Raises:
        ValueError: Naming ``noise`` and what it accepts.
    """
    level = "noise must be a finite number >= 0"
    schedule = (f"noise, as a schedule, must be T + 1 = {num_timesteps + 1} finite numbers >= 0, one "
                f"per step t = 0..T, the first 0 (x_0 is the clean image)")
    if isinstance(noise, (int, float)) and not isinstance(noise, bool):
        if not (math.isfinite(noise) and noise >= 0):
            raise ValueError(f"{level}, got {noise!r}")
        levels = torch.full((num_timesteps + 1,), float(noise), dtype=torch.float64)
        levels[0] = 0.0
        return levels
    if isinstance(noise, Tensor) and noise.ndim == 1 and not noise.dtype.is_complex:
        values = noise.detach().to("cpu", torch.float64)
    elif isinstance(noise, (list, tuple)) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in noise):
        values = torch.tensor([float(v) for v in noise], dtype=torch.float64)
    else:
        raise ValueError(f"{level} (the level at every step t >= 1) or a sequence of T + 1 = "
                         f"{num_timesteps + 1} of them, one per step t = 0..T; got {noise!r:.80}")
    if len(values) != num_timesteps + 1:
        raise ValueError(f"{schedule}; got {len(values)} values")
    if not bool(torch.isfinite(values).all()) or bool((values < 0).any()) or float(values[0]) != 0:
        raise ValueError(f"{schedule}; got {values.tolist()!r:.120}")
    return values


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
