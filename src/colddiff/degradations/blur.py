"""Gaussian blur of growing width: Bansal et al.'s deterministic degradation."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor

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
    with :meth:`fit_prior`: a Gaussian over ``D(x_0, T)``, a richer version of Bansal's
    one-component GMM over channel means. Its covariance is exact (full) up to
    :attr:`EXACT_PRIOR_SIZE` values per image (3x32x32 fits); above, it is the top
    :attr:`PRIOR_RANK` principal directions of at most :attr:`PRIOR_FIT_IMAGES` images plus a
    per-value residual variance, so that memory grows linearly, not quadratically, with the size.

    **Noisy ("hot") blur.** Deterministic blur generates nearly the same image from nearby
    starts: its reverse process has no randomness after ``x_T``. Bansal et al. (section 5.2)
    break the symmetry with a little Gaussian noise; with ``noise > 0`` every degraded image
    carries ``noise * z`` (``z ~ N(0, I)``, the degradation's source, drawn per image)::

        x_t = G(sigma_t) * x_0 + noise * z    (t >= 1; x_0 stays clean)

    in training and in :meth:`prior`. Sample it with the ``cold`` sampler and
    ``source="estimate"``: each step re-estimates ``z = (x_t - G(sigma_t) * x0_hat) / noise``
    from the prediction (:meth:`source_from_x0`), so the noise of the start is carried down to
    ``t = 1`` and removed at the last step.

    Args:
        schedule: If given and ``num_timesteps`` is not, its step count is ``T``, so that
            ``create("blur", schedule=...)`` works like every other degradation.
        num_timesteps: ``T`` (default 20 without a schedule).
        sigma_max: The blur width at ``t = T``, in pixels.
        image_shape: ``(C, H, W)`` of the images, or ``None`` for any.
        noise: Standard deviation of the Gaussian noise on every degraded image (0: plain,
            deterministic blur).
    """

    default_num_timesteps = 20
    start_is_source = False  # noisy blur's source is its noise
    #: Largest ``C * H * W`` whose prior keeps the full covariance (4096 values: 128 MB in float64).
    EXACT_PRIOR_SIZE: ClassVar[int] = 4096
    #: Principal directions of the prior above that size.
    PRIOR_RANK: ClassVar[int] = 128
    #: Images (evenly spaced over the training set) its directions are fitted on.
    PRIOR_FIT_IMAGES: ClassVar[int] = 1024

    def __init__(self, schedule: Schedule | None = None, *, num_timesteps: int | None = None,
                 sigma_max: float = 6.0, image_shape: tuple[int, int, int] | None = None,
                 noise: float = 0.0) -> None:
        super().__init__(schedule, num_timesteps=num_timesteps, image_shape=image_shape)
        if not (math.isfinite(sigma_max) and sigma_max > 0):
            raise ValueError(f"sigma_max must be a finite number > 0, got {sigma_max!r}")
        self.sigma_max = float(sigma_max)
        if not (isinstance(noise, (int, float)) and math.isfinite(noise) and noise >= 0):
            raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
        self.noise = float(noise)
        self.has_source = self.noise > 0
        t_over_T = torch.arange(self.num_timesteps + 1, dtype=torch.float64) / self.num_timesteps
        self.sigma = self.sigma_max * torch.sqrt(t_over_T)
        self._matrices: dict[tuple[int, torch.device, torch.dtype], Tensor] = {}
        self._prior_mean: Tensor | None = None
        self._prior_scale: Tensor | None = None
        self._prior_residual: Tensor | None = None

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
        """Blur each image of ``x0`` to its step ``t``, plus ``noise * source`` where ``t >= 1``
        (the source is ignored, and may be ``None``, for plain blur; ``None`` adds no noise)."""
        check_images("x0", x0)
        t = check_timesteps(t, x0, self.num_timesteps)
        rows = self.blur_matrices(x0.shape[-2], x0)[t]
        cols = self.blur_matrices(x0.shape[-1], x0)[t]
        blurred = torch.einsum("bij,bcjk,blk->bcil", rows, x0, cols)
        if self.noise == 0 or source is None:
            return blurred
        return blurred + self.noise * (t > 0).to(x0.dtype).view(-1, 1, 1, 1) * source

    def sample_source(self, x0: Tensor, *, generator: torch.Generator | None = None) -> Tensor | None:
        """Standard normal noise shaped like ``x0`` for noisy blur; ``None`` for plain blur."""
        if self.noise == 0:
            return None
        return torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)

    @property
    def recovers_source(self) -> bool:
        """Noisy blur recovers its noise from a clean image (:meth:`source_from_x0`)."""
        return self.noise > 0

    def source_from_x0(self, x_t: Tensor, t: Tensor | int, x0: Tensor) -> Tensor:
        """The noise ``(x_t - G(sigma_t) * x0) / noise`` of noisy blur (``t >= 1``).

        Raises:
            NotImplementedError: For plain blur, which has no source.
        """
        if self.noise == 0:
            return super().source_from_x0(x_t, t, x0)
        return (x_t - self.degrade(x0, t)) / self.noise

    @property
    def prior_fitted(self) -> bool:
        """Whether :meth:`fit_prior` has been called."""
        return self._prior_mean is not None

    def fit_prior(self, images: ImageSource, jitter: float = 1e-5) -> Blur:
        """Fit a Gaussian to the fully blurred ``images``, for :meth:`prior`.

        Up to :attr:`EXACT_PRIOR_SIZE` values per image the covariance is the sample covariance
        and :meth:`prior` draws ``mean + L z`` with ``L`` its Cholesky factor. Above, the
        covariance is ``V V^T + diag(r)``: ``V`` the top :attr:`PRIOR_RANK` principal directions
        (scaled by their standard deviations) of :attr:`PRIOR_FIT_IMAGES` evenly spaced images,
        ``r`` the variance of each value that they leave unexplained.

        Args:
            images: Clean training images ``(N, C, H, W)`` or a dataset of them.
            jitter: Added to the covariance diagonal (to the residual variance above the exact
                size) so that the factor exists.

        Returns:
            ``self``, for chaining.
        """
        x0 = as_image_tensor("images", images)
        n, size = x0.shape[0], math.prod(x0.shape[1:])
        if size <= self.EXACT_PRIOR_SIZE:
            blurred = torch.cat([self._fully_blurred(chunk) for chunk in torch.split(x0, 1024)])
            mean = blurred.mean(0)
            centred = blurred - mean
            covariance = centred.T @ centred / max(n - 1, 1)
            covariance += jitter * torch.eye(covariance.shape[0], dtype=covariance.dtype)
            self._prior_scale, self._prior_residual = torch.linalg.cholesky(covariance), None
        else:
            total = torch.zeros(size, dtype=torch.float64)
            squares = torch.zeros(size, dtype=torch.float64)
            for chunk in torch.split(x0, 1024):  # the mean and each value's variance over all images
                flat = self._fully_blurred(chunk)
                total += flat.sum(0)
                squares += (flat**2).sum(0)
            mean = total / n
            variance = (squares - n * mean**2).clamp(min=0) / max(n - 1, 1)
            picks = torch.linspace(0, n - 1, min(n, self.PRIOR_FIT_IMAGES)).round().long()
            centred = self._fully_blurred(x0[picks]) - mean
            # Principal directions from the small Gram matrix (picks x picks), not the D x D one.
            eigenvalues, eigenvectors = torch.linalg.eigh(centred @ centred.T)
            rank = min(self.PRIOR_RANK, len(picks) - 1, size)
            top = eigenvalues.flip(0)[:rank].clamp(min=0)
            directions = (centred.T @ eigenvectors.flip(1)[:, :rank]) / top.sqrt().clamp(min=1e-12)
            factor = directions * (top / max(len(picks) - 1, 1)).sqrt()
            residual = (variance - (factor**2).sum(1)).clamp(min=0) + jitter
            self._prior_scale, self._prior_residual = factor, residual.sqrt()
        self._prior_mean = mean.view(x0.shape[1:])
        return self

    def _fully_blurred(self, images: Tensor) -> Tensor:
        """``D(x_0, T)`` of ``images`` in float64, one flattened row per image."""
        return self.degrade(images.to(torch.float64), self.num_timesteps).flatten(1)

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
        z = torch.randn((n, self._prior_scale.shape[1]), generator=generator, device=device,
                        dtype=torch.float64)
        scale = self._prior_scale.to(z.device)
        samples = self._prior_mean.to(z.device).flatten() + z @ scale.T
        if self._prior_residual is not None:
            residual = self._prior_residual.to(z.device)
            samples += torch.randn((n, len(residual)), generator=generator, device=z.device,
                                   dtype=torch.float64) * residual
        samples = samples.view(n, *self._prior_mean.shape)
        if self.noise > 0:
            samples += self.noise * torch.randn(samples.shape, generator=generator, device=z.device,
                                                dtype=torch.float64)
        return samples.to(torch.float32)

    def __repr__(self) -> str:
        noise = f", noise={self.noise}" if self.noise else ""
        return f"Blur(num_timesteps={self.num_timesteps}, sigma_max={self.sigma_max}{noise})"
