"""Gaussian blur of growing width: Bansal et al.'s deterministic degradation."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from colddiff._compat import renamed
from colddiff.degradations.base import (
    Degradation,
    ImageSource,
    PriorUnavailableError,
    as_image_tensor,
    check_images,
    check_timesteps,
)
from colddiff.degradations.registry import register
from colddiff.schedules import Schedule

__all__ = ["Blur"]


@register("blur")
class Blur(Degradation):
    """``x_t = G(sigma_t) * x_0``: a Gaussian blur whose width grows with ``t``.

    Bansal et al. (2022, section 4.1) blur by applying the same Gaussian kernel ``t`` times, so
    the total width grows like ``sqrt(t)``; we apply the equivalent single blur of width
    ``sigma_t = sigma_max * sqrt(t / T)`` directly. The blur is separable; each axis is a matrix
    product with a row-normalised Gaussian (the kernel is truncated at the border and its weights
    renormalised, so a constant image stays constant). ``sigma_0 = 0`` is the identity.

    There is no source. For unconditional sampling, fit a prior over fully blurred training images
    with :meth:`fit_prior` (a full-covariance Gaussian over ``D(x_0, T)``, a richer version of
    Bansal's one-component GMM over channel means).

    Args:
        schedule: If given and ``num_timesteps`` is not, its step count is ``T``, so that
            ``create("blur", schedule=...)`` works like every other degradation.
        num_timesteps: ``T`` (default 20 without a schedule).
        sigma_max: The blur width at ``t = T``, in pixels.
        image_shape: ``(C, H, W)`` of the images, or ``None`` for any.
        steps: Deprecated: the old name of ``num_timesteps``.
    """

    default_num_timesteps = 20

    def __init__(self, schedule: Schedule | None = None, *, num_timesteps: int | None = None,
                 sigma_max: float = 6.0, image_shape: tuple[int, int, int] | None = None,
                 steps: int | None = None) -> None:
        num_timesteps = renamed(type(self).__name__, "steps", steps, "num_timesteps", num_timesteps)
        super().__init__(schedule, num_timesteps=num_timesteps, image_shape=image_shape)
        if not (math.isfinite(sigma_max) and sigma_max > 0):
            raise ValueError(f"sigma_max must be a finite number > 0, got {sigma_max!r}")
        self.sigma_max = float(sigma_max)
        t_over_T = torch.arange(self.num_timesteps + 1, dtype=torch.float64) / self.num_timesteps
        self.sigma = self.sigma_max * torch.sqrt(t_over_T)
        self._matrices: dict[tuple[int, torch.device, torch.dtype], Tensor] = {}
        self._prior_mean: Tensor | None = None
        self._prior_scale: Tensor | None = None

    def blur_matrices(self, size: int, like: Tensor) -> Tensor:
        """The ``(T + 1, size, size)`` blur operators along one axis, one per step (cached)."""
        key = (size, like.device, like.dtype)
        if key not in self._matrices:
            position = torch.arange(size, dtype=torch.float64)
            distance = position[None, :, None] - position[None, None, :]
            variance = (self.sigma**2)[:, None, None]
            safe = torch.where(variance > 0, variance, 1.0)
            weights = torch.where(variance > 0, torch.exp(-0.5 * distance**2 / safe),
                                  (distance == 0).to(torch.float64))
            weights = weights / weights.sum(dim=-1, keepdim=True)
            self._matrices[key] = weights.to(device=like.device, dtype=like.dtype)
        return self._matrices[key]

    def degrade(self, x0: Tensor, t: Tensor | int, source: Tensor | None = None) -> Tensor:
        """Blur each image of ``x0`` to its step ``t`` (``source`` is ignored)."""
        check_images("x0", x0)
        t = check_timesteps(t, x0, self.num_timesteps)
        rows = self.blur_matrices(x0.shape[-2], x0)[t]
        cols = self.blur_matrices(x0.shape[-1], x0)[t]
        return torch.einsum("bij,bcjk,blk->bcil", rows, x0, cols)

    @property
    def prior_fitted(self) -> bool:
        """Whether :meth:`fit_prior` has been called."""
        return self._prior_mean is not None

    def fit_prior(self, images: ImageSource, jitter: float = 1e-5) -> Blur:
        """Fit a Gaussian to the fully blurred ``images``, for :meth:`prior`.

        Args:
            images: Clean training images ``(N, C, H, W)`` or a dataset of them.
            jitter: Added to the covariance diagonal so its Cholesky factor exists.

        Returns:
            ``self``, for chaining.
        """
        x0 = as_image_tensor("images", images).to(torch.float64)
        flat = self.degrade(x0, self.num_timesteps).flatten(1)
        mean = flat.mean(0)
        centred = flat - mean
        covariance = centred.T @ centred / max(flat.shape[0] - 1, 1)
        covariance += jitter * torch.eye(covariance.shape[0], dtype=covariance.dtype)
        self._prior_mean = mean.view(x0.shape[1:])
        self._prior_scale = torch.linalg.cholesky(covariance)
        return self

    def prior(self, n: int, *, generator: torch.Generator | None = None,
              device: torch.device | str | None = None) -> Tensor:
        """``n`` draws from the Gaussian fitted by :meth:`fit_prior`.

        Raises:
            PriorUnavailableError: If :meth:`fit_prior` has not been called.
        """
        if self._prior_mean is None or self._prior_scale is None:
            raise PriorUnavailableError(
                "Blur.prior needs a fitted prior over blurred images: call "
                "blur.fit_prior(training_images) first, or start from blur.degrade(x0, blur.num_timesteps)"
            )
        if device is None:
            device = generator.device if generator is not None else "cpu"
        z = torch.randn((n, self._prior_scale.shape[0]), generator=generator, device=device,
                        dtype=torch.float64)
        scale = self._prior_scale.to(z.device)
        samples = self._prior_mean.to(z.device).flatten() + z @ scale.T
        return samples.view(n, *self._prior_mean.shape).to(torch.float32)

    def __repr__(self) -> str:
        return f"Blur(num_timesteps={self.num_timesteps}, sigma_max={self.sigma_max})"
