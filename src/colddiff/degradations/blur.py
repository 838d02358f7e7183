"""Gaussian blur of growing width: Bansal et al.'s deterministic degradation."""

from __future__ import annotations

import torch
from torch import Tensor

from colddiff.degradations.base import check_positive
from colddiff.degradations.noise import NoiseOption
from colddiff.degradations.registry import register
from colddiff.degradations.separable import SeparableBlur
from colddiff.schedules import Schedule

__all__ = ["Blur"]

#: ``(T, kernel_size, kernel_std)`` of the official code's MNIST blur, ``official=True``.
OFFICIAL_MNIST = (20, 11, 7.0)


@register("blur")
class Blur(SeparableBlur):
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
    with :meth:`~SeparableBlur.fit_prior` (see :class:`SeparableBlur`).

    **Noisy ("hot") blur.** Deterministic blur generates nearly the same image from nearby
    starts: its reverse process has no randomness after ``x_T``. Bansal et al. (section 5.2)
    break the symmetry with a little Gaussian noise; with ``noise > 0`` every degraded image
    carries ``noise_t z`` (``z ~ N(0, I)``, the degradation's source, drawn per image)::

        x_t = G_t * x_0 + noise_t z    (t >= 1; x_0 stays clean)

    in training and in :meth:`~SeparableBlur.prior`. Sample it with the ``cold`` sampler and
    ``source="estimate"``: each step re-estimates ``z = (x_t - G_t * x0_hat) / noise_t`` from the
    prediction (:meth:`~colddiff.Degradation.source_from_x0`), so the noise of the start is
    carried down to ``t = 1`` and removed at the last step. This is the noise of every
    :class:`~colddiff.Degradation`; ``noise`` may also be a schedule, ``T + 1`` levels.

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
        noise: Standard deviation of the Gaussian noise on every degraded image, or ``T + 1`` of
            them, one per step (0: plain, deterministic blur).

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
    kernel_size: int | None
    kernel_std: float | None

    def __init__(self, schedule: Schedule | None = None, *, num_timesteps: int | None = None,
                 sigma_max: float | None = None, kernel_size: int | None = None,
                 kernel_std: float | None = None, official: bool = False,
                 image_shape: tuple[int, int, int] | None = None, noise: NoiseOption = 0.0) -> None:
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
        super().__init__(schedule, num_timesteps=num_timesteps, image_shape=image_shape, noise=noise)
        self.official = official
        kernel = _check_kernel(kernel_size, kernel_std, sigma_max)
        self.kernel_size, self.kernel_std = kernel if kernel is not None else (None, None)
        steps = torch.arange(self.num_timesteps + 1, dtype=torch.float64)
        if kernel is None:
            self.sigma_max = check_positive("sigma_max", 6.0 if sigma_max is None else sigma_max)
            self.sigma = self.sigma_max * torch.sqrt(steps / self.num_timesteps)
        else:
            offsets, taps = _kernel_taps(*kernel)
            self.sigma = torch.sqrt(steps * (taps * offsets**2).sum())
            self.sigma_max = float(self.sigma[-1])

    def operators(self, size: int) -> Tensor:
        """The ``(T + 1, size, size)`` blur matrices along one axis, one per step: the direct
        Gaussians or the repeated kernel's powers."""
        return self._direct_operators(size) if self.kernel_size is None else self._repeated_operators(size)

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

    def __repr__(self) -> str:
        if self.official:
            blur = "official=True"
        elif self.kernel_size is not None:
            blur = f"kernel_size={self.kernel_size}, kernel_std={self.kernel_std}"
        else:
            blur = f"sigma_max={self.sigma_max}"
        return f"Blur(num_timesteps={self.num_timesteps}, {blur}{self.noise_repr()})"


def _kernel_taps(size: int, std: float) -> tuple[Tensor, Tensor]:
    """A Gaussian kernel along one axis: its offsets ``-(size // 2) .. size // 2`` and their
    weights ``exp(-offset^2 / (2 std^2))``, normalised to sum one (float64)."""
    offsets = torch.arange(size, dtype=torch.float64) - size // 2
    taps = torch.exp(-offsets**2 / (2 * std**2))
    return offsets, taps / taps.sum()


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
    return kernel_size, check_positive("kernel_std", kernel_std)
