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

#: ``(T, kernel_size, kernel_std)`` of the official code's MNIST blur, ``official=True``.
OFFICIAL_MNIST = (20, 11, 7.0)


@register("blur")
class Blur(Degradation):
    """``x_t = G_t * x_0``: a Gaussian blur whose width grows with ``t``.

    Two ways to grow the width:

    * **Direct** (the default): ``G_t`` is one Gaussian of width ``sigma_t = sigma_max *
      sqrt(t / T)``, the width that repeating one kernel ``t`` times reaches. The blur is
      separable; each axis is a matrix product with a row-normalised Gaussian (the kernel is
      truncated at the border and its weights renormalised, so a constant image stays constant).
    * **Repeated kernel** (``kernel_size`` and ``kernel_std``, or ``official=True``): Bansal et
      al.'s own construction (2022, section 4.1): a fixed ``kernel_size x kernel_size`` Gaussian
      of standard deviation ``kernel_std`` (sampled at the integer offsets and normalised to sum
      one) applied ``t`` times, with circular padding (the image wraps around at its borders).
      The per-step kernel is separable and circular padding makes it a circulant matrix ``C``
      per axis, so step ``t`` is one product with ``C^t`` per axis. The width reached is
      ``sqrt(t)`` times the kernel's own standard deviation (:attr:`sigma`), less the wrapping.

    ``official=True`` is the official code's MNIST blur (arpitbansal297/Cold-Diffusion-Models,
    README: ``deblurring-diffusion-pytorch/mnist_train.py --time_steps 20 --blur_size 11
    --blur_std 7.0 --blur_routine 'Constant'``; the routine is ``GaussianDiffusion.get_kernels``
    and ``get_conv`` in ``deblurring_diffusion_pytorch/deblurring_diffusion_pytorch.py``: an
    11x11 kernel of std 7, a depthwise convolution with ``padding_mode='circular'``, applied once
    per step): ``kernel_size = 11``, ``kernel_std = 7`` and ``T = 20`` (unless ``num_timesteps``
    is given; a schedule's length is not used then). Its kernel has a standard deviation of 3.04
    px, so ``x_T`` is blurred to 13.6 px. (Their step index ``i = 0..T-1`` is this ``t = i + 1``.)

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

        x_t = G_t * x_0 + noise * z    (t >= 1; x_0 stays clean)

    in training and in :meth:`prior`. Sample it with the ``cold`` sampler and
    ``source="estimate"``: each step re-estimates ``z = (x_t - G_t * x0_hat) / noise``
    from the prediction (:meth:`source_from_x0`), so the noise of the start is carried down to
    ``t = 1`` and removed at the last step.

    Args:
        schedule: If given and ``num_timesteps`` is not, its step count is ``T``, so that
            ``create("blur", schedule=...)`` works like every other degradation.
        num_timesteps: ``T`` (default 20 without a schedule, and with ``official=True``).
        sigma_max: The direct blur's width at ``t = T``, in pixels (default 6).
        kernel_size: The repeated kernel's side, an odd number of pixels (given with
            ``kernel_std``; ``None``: the direct blur).
        kernel_std: The repeated kernel's standard deviation, in pixels.
        official: The official MNIST blur (``kernel_size = 11``, ``kernel_std = 7``, ``T = 20``);
            ``sigma_max``, ``kernel_size`` and ``kernel_std`` are then left out.
        image_shape: ``(C, H, W)`` of the images, or ``None`` for any.
        noise: Standard deviation of the Gaussian noise on every degraded image (0: plain,
            deterministic blur).

    Raises:
        ValueError: Naming the argument, for a width, kernel or noise out of range, and for
            options that do not go together.

    Attributes:
        sigma: ``(T + 1,)`` the blur width at each step, in pixels (for a repeated kernel,
            ``sqrt(t)`` times the kernel's standard deviation).
        sigma_max: The width at ``t = T``: the one given, or the one a repeated kernel reaches.
        kernel_size: The repeated kernel's side (``None`` for the direct blur).
        kernel_std: The repeated kernel's standard deviation (``None`` for the direct blur).
        official: Whether this is the official MNIST blur.
    """

    default_num_timesteps = 20
    start_is_source = False  # noisy blur's source is its noise
    #: Largest ``C * H * W`` whose prior keeps the full covariance (4096 values: 128 MB in float64).
    EXACT_PRIOR_SIZE: ClassVar[int] = 4096
    #: Principal directions of the prior above that size.
    PRIOR_RANK: ClassVar[int] = 128
    #: Images (evenly spaced over the training set) its directions are fitted on.
    PRIOR_FIT_IMAGES: ClassVar[int] = 1024
    kernel_size: int | None
    kernel_std: float | None

    def __init__(self, schedule: Schedule | None = None, *, num_timesteps: int | None = None,
                 sigma_max: float | None = None, kernel_size: int | None = None,
                 kernel_std: float | None = None, official: bool = False,
                 image_shape: tuple[int, int, int] | None = None, noise: float = 0.0) -> None:
        if not isinstance(official, bool):
            raise ValueError(f"official must be True or False, got {official!r}")
        if official:
            given = [name for name, value in (("sigma_max", sigma_max), ("kernel_size", kernel_size),
                                              ("kernel_std", kernel_std)) if value is not None]
            default_steps, official_size, official_std = OFFICIAL_MNIST
            if given:
                raise ValueError(f"official=True is kernel_size={official_size} and "
                                 f"kernel_std={official_std} (T = {default_steps} unless num_timesteps "
                                 f"is given): leave out {', '.join(given)}")
            kernel_size, kernel_std = official_size, official_std
            num_timesteps = default_steps if num_timesteps is None else num_timesteps
        super().__init__(schedule, num_timesteps=num_timesteps, image_shape=image_shape)
        self.official = official
        kernel = _check_kernel(kernel_size, kernel_std, sigma_max)
        self.kernel_size, self.kernel_std = kernel if kernel is not None else (None, None)
        self.noise = _check_number("noise", noise, allow_zero=True)
        self.has_source = self.noise > 0
        steps = torch.arange(self.num_timesteps + 1, dtype=torch.float64)
        if kernel is None:
            self.sigma_max = _check_number("sigma_max", 6.0 if sigma_max is None else sigma_max)
            self.sigma = self.sigma_max * torch.sqrt(steps / self.num_timesteps)
        else:
            offsets, taps = _kernel_taps(*kernel)
            self.sigma = torch.sqrt(steps * (taps * offsets**2).sum())
            self.sigma_max = float(self.sigma[-1])
        self._matrices: dict[tuple[int, torch.device, torch.dtype], Tensor] = {}
        self._prior_mean: Tensor | None = None
        self._prior_scale: Tensor | None = None
        self._prior_residual: Tensor | None = None

    def blur_matrices(self, size: int, like: Tensor) -> Tensor:
        """The ``(T + 1, size, size)`` blur operators along one axis, one per step (cached)."""
        key = (size, like.device, like.dtype)
        if key not in self._matrices:
            direct = self.kernel_size is None
            operators = self._direct_operators(size) if direct else self._repeated_operators(size)
            self._matrices[key] = operators.to(device=like.device, dtype=like.dtype)
        return self._matrices[key]

    def _direct_operators(self, size: int) -> Tensor:
        """One row-normalised Gaussian of width ``sigma_t`` per step, truncated at the border."""
        position = torch.arange(size, dtype=torch.float64)
        distance = position[None, :, None] - position[None, None, :]
        variance = (self.sigma**2)[:, None, None]
        safe = torch.where(variance > 0, variance, 1.0)
        weights = torch.where(variance > 0, torch.exp(-0.5 * distance**2 / safe),
                              (distance == 0).to(torch.float64))
        return weights / weights.sum(dim=-1, keepdim=True)

    def _repeated_operators(self, size: int) -> Tensor:
        """``C^t`` for ``t = 0..T``: ``C`` the repeated kernel as a circulant matrix (circular
        padding: output pixel ``i`` takes tap ``o`` from input pixel ``(i + o) mod size``)."""
        assert self.kernel_size is not None and self.kernel_std is not None
        offsets, taps = _kernel_taps(self.kernel_size, self.kernel_std)
        rows = torch.arange(size)
        step = torch.zeros(size, size, dtype=torch.float64)
        for offset, tap in zip(offsets.long().tolist(), taps, strict=True):
            step[rows, (rows + offset) % size] += tap
        powers = [torch.eye(size, dtype=torch.float64)]
        for _ in range(self.num_timesteps):
            powers.append(step @ powers[-1])
        return torch.stack(powers)

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
        """The noise ``(x_t - G_t * x0) / noise`` of noisy blur (``t >= 1``).

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
        if self.official:
            blur = "official=True"
        elif self.kernel_size is not None:
            blur = f"kernel_size={self.kernel_size}, kernel_std={self.kernel_std}"
        else:
            blur = f"sigma_max={self.sigma_max}"
        noise = f", noise={self.noise}" if self.noise else ""
        return f"Blur(num_timesteps={self.num_timesteps}, {blur}{noise})"


def _kernel_taps(size: int, std: float) -> tuple[Tensor, Tensor]:
    """A Gaussian kernel along one axis: its offsets ``-(size // 2) .. size // 2`` and their
    weights ``exp(-offset^2 / (2 std^2))``, normalised to sum one (float64)."""
    offsets = torch.arange(size, dtype=torch.float64) - size // 2
    taps = torch.exp(-offsets**2 / (2 * std**2))
    return offsets, taps / taps.sum()


def _check_number(name: str, value: object, *, allow_zero: bool = False) -> float:
    """``value`` as a float, if it is a finite number > 0 (>= 0 with ``allow_zero``).

    Raises:
        ValueError: Naming ``name`` and what it got.
    """
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or value < 0 or (value == 0 and not allow_zero)):
        raise ValueError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0, got {value!r}")
    return float(value)


def _check_kernel(kernel_size: object, kernel_std: object, sigma_max: object) -> tuple[int, float] | None:
    """The repeated kernel's ``(kernel_size, kernel_std)``, or ``None`` for the direct blur.

    Raises:
        ValueError: If only one of the two is given, ``sigma_max`` is given with them, or either
            is out of range; the message names the argument.
    """
    if kernel_size is None and kernel_std is None:
        return None
    if kernel_size is None or kernel_std is None:
        raise ValueError("kernel_size and kernel_std go together (a kernel_size x kernel_size Gaussian "
                         f"of std kernel_std, applied once per step), got kernel_size={kernel_size!r} "
                         f"and kernel_std={kernel_std!r}")
    if sigma_max is not None:
        raise ValueError("sigma_max is the direct blur's width; with kernel_size and kernel_std the "
                         "width grows by repeating the kernel: leave sigma_max out")
    if (isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1
            or kernel_size % 2 == 0):
        raise ValueError(f"kernel_size must be an odd integer >= 1 (1, 3, 5, ...), got {kernel_size!r}")
    return kernel_size, _check_number("kernel_std", kernel_std)
