"""Linear blurs applied along rows and columns: the shared machinery of ``blur`` and ``heat``.

A separable blur is one ``(size, size)`` matrix per axis and step, ``x_t = A_t x_0 B_t^T`` for
each channel; plus the optional noise of every degradation
(:class:`~colddiff.Degradation`), and a Gaussian prior fitted to fully blurred training
images for unconditional sampling.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import ClassVar

import torch
from torch import Tensor

from colddiff.degradations.base import (
    Degradation,
    PriorUnavailableError,
    check_images,
    check_timesteps,
)
from colddiff.degradations.images import ImageSource, as_image_tensor, prior_device
from colddiff.degradations.noise import NoiseOption
from colddiff.schedules import Schedule

__all__ = ["SeparableBlur"]


class SeparableBlur(Degradation):
    """``x_t = A_t x_0 B_t^T + noise_t z``: a linear blur, one matrix per axis and step.

    Subclasses implement :meth:`operators`, the ``(T + 1, size, size)`` matrices along an axis
    of ``size`` pixels (``t = 0`` the identity), and take the constructor arguments below; the
    rest is shared: :meth:`degrade`, the noise
    (the ``noise`` option of every :class:`~colddiff.Degradation`: its only source, so sample a
    noisy blur with the ``cold`` sampler and ``source="estimate"``) and a fitted Gaussian prior.

    For unconditional sampling, fit a prior over fully blurred training images with
    :meth:`fit_prior`: a Gaussian over ``D(x_0, T)``, a richer version of Bansal et al.'s
    one-component GMM over channel means. Its covariance is exact (full) up to
    :attr:`EXACT_PRIOR_SIZE` values per image (3x32x32 fits); above, it is the top
    :attr:`PRIOR_RANK` principal directions of at most :attr:`PRIOR_FIT_IMAGES` images plus a
    per-value residual variance, so that memory grows linearly, not quadratically, with the size.
    :meth:`prior` draws from it and adds the noise of step ``T``.

    Args:
        schedule: As for :class:`~colddiff.Degradation`.
        num_timesteps: ``T``.
        image_shape: ``(C, H, W)`` of the images, or ``None`` for any.
        noise: The added noise, a level or ``T + 1`` levels (0: none).
    """

    start_is_source = False  # a noisy blur's source is its noise
    linear = True
    #: Largest ``C * H * W`` whose prior keeps the full covariance (4096 values: 128 MB in float64).
    EXACT_PRIOR_SIZE: ClassVar[int] = 4096
    #: Principal directions of the prior above that size.
    PRIOR_RANK: ClassVar[int] = 128
    #: Images (evenly spaced over the training set) its directions are fitted on.
    PRIOR_FIT_IMAGES: ClassVar[int] = 1024

    def __init__(self, schedule: Schedule | None = None, *, num_timesteps: int | None = None,
                 image_shape: tuple[int, int, int] | None = None, noise: NoiseOption = 0.0) -> None:
        super().__init__(schedule, num_timesteps=num_timesteps, image_shape=image_shape, noise=noise)
        self._matrices: dict[tuple[int, torch.device, torch.dtype], Tensor] = {}
        self._prior_mean: Tensor | None = None
        self._prior_scale: Tensor | None = None
        self._prior_residual: Tensor | None = None

    @abstractmethod
    def operators(self, size: int) -> Tensor:
        """The ``(T + 1, size, size)`` float64 blur matrices along an axis of ``size`` pixels."""

    def blur_matrices(self, size: int, like: Tensor) -> Tensor:
        """:meth:`operators` on ``like``'s device and dtype (cached)."""
        key = (size, like.device, like.dtype)
        if key not in self._matrices:
            self._matrices[key] = self.operators(size).to(device=like.device, dtype=like.dtype)
        return self._matrices[key]

    def degrade(self, x0: Tensor, t: Tensor | int, source: Tensor | None = None) -> Tensor:
        """Blur each image of ``x0`` to its step ``t``, plus ``noise_t * source`` for a noisy
        blur (the source is ignored, and may be ``None``, for a plain one; ``None`` adds no
        noise)."""
        check_images("x0", x0)
        t = check_timesteps(t, x0, self.num_timesteps)
        rows = self.blur_matrices(x0.shape[-2], x0)[t]
        cols = self.blur_matrices(x0.shape[-1], x0)[t]
        blurred = torch.einsum("bij,bcjk,blk->bcil", rows, x0, cols)
        return self.add_noise(blurred, t, self.split_noise(source, x0)[1])

    @property
    def prior_fitted(self) -> bool:
        """Whether :meth:`fit_prior` has been called."""
        return self._prior_mean is not None

    def fit_prior(self, images: ImageSource, jitter: float = 1e-5) -> SeparableBlur:
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
            mean = self._fit_low_rank(x0, jitter)
        self._prior_mean = mean.view(x0.shape[1:])
        return self

    def _fit_low_rank(self, x0: Tensor, jitter: float) -> Tensor:
        """Fit the low-rank-plus-diagonal covariance of :meth:`fit_prior`; return the mean."""
        n, size = x0.shape[0], math.prod(x0.shape[1:])
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
        return mean

    def _fully_blurred(self, images: Tensor) -> Tensor:
        """``D(x_0, T)`` of ``images`` in float64, one flattened row per image."""
        return self.degrade(images.to(torch.float64), self.num_timesteps).flatten(1)

    def prior(self, n: int, *, generator: torch.Generator | None = None,
              device: torch.device | str | None = None) -> Tensor:
        """``n`` draws from the Gaussian fitted by :meth:`fit_prior`, plus the noise of step ``T``.

        Raises:
            PriorUnavailableError: If :meth:`fit_prior` has not been called.
        """
        if self._prior_mean is None or self._prior_scale is None:
            name = type(self).__name__
            raise PriorUnavailableError(
                f"{name}.prior needs a fitted prior over blurred images: call "
                f"{name.lower()}.fit_prior(training_images) first, or start from "
                f"{name.lower()}.degrade(x0, {name.lower()}.num_timesteps)"
            )
        z = torch.randn((n, self._prior_scale.shape[1]), generator=generator,
                        device=prior_device(device, generator), dtype=torch.float64)
        scale = self._prior_scale.to(z.device)
        samples = self._prior_mean.to(z.device).flatten() + z @ scale.T
        if self._prior_residual is not None:
            residual = self._prior_residual.to(z.device)
            samples += torch.randn((n, len(residual)), generator=generator, device=z.device,
                                   dtype=torch.float64) * residual
        samples = samples.view(n, *self._prior_mean.shape)
        level = float(self.noise_levels[-1])
        if level > 0:
            samples += level * torch.randn(samples.shape, generator=generator, device=z.device,
                                           dtype=torch.float64)
        return samples.to(torch.float32)
