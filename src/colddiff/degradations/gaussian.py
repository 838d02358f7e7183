"""Gaussian noise: the DDPM forward process."""

from __future__ import annotations

import torch
from torch import Tensor

from colddiff.degradations.base import check_images
from colddiff.degradations.images import prior_device
from colddiff.degradations.mixing import MixingDegradation
from colddiff.degradations.registry import register
from colddiff.schedules import Schedule

__all__ = ["GaussianNoise"]


@register("gaussian")
class GaussianNoise(MixingDegradation):
    """``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps`` with ``eps ~ N(0, I)``.

    Ho et al. (2020), eq. 4; Prince, *Understanding Deep Learning*, eq. 18.7.

    Args:
        schedule: The variance schedule (default: the reference study's
            ``Schedule.preset("default")``).
        image_shape: ``(C, H, W)`` of the images :meth:`prior` draws.
    """

    image_shape: tuple[int, int, int]

    def __init__(self, schedule: Schedule | None = None,
                 image_shape: tuple[int, int, int] = (1, 28, 28)) -> None:
        super().__init__(schedule, image_shape=image_shape)

    def corrupt(self, x0: Tensor, t: Tensor | int, source: Tensor | None = None) -> Tensor:
        """``C_t x0 = sqrt(alpha_bar_t) x0``: as a linear corruption, the noise is ``s_t z``
        (``source`` is ignored)."""
        return self.weights(t, x0)[0] * x0

    @property
    def corruption_noise(self) -> Tensor:
        """``s_t = sqrt(1 - alpha_bar_t)``, ``(T + 1,)`` float64."""
        return (1 - self.schedule.alpha_bar).sqrt()

    def sample_source(self, x0: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Standard normal noise shaped like ``x0``."""
        check_images("x0", x0)
        return torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)

    def prior(self, n: int, *, generator: torch.Generator | None = None,
              device: torch.device | str | None = None) -> Tensor:
        """``n`` draws of ``N(0, I)`` shaped ``(n, *image_shape)``, the DDPM start ``x_T``."""
        return torch.randn((n, *self.image_shape), generator=generator,
                           device=prior_device(device, generator))
