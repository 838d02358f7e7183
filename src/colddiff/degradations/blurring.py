"""Blurring diffusion: a Gaussian diffusion in the DCT basis whose signal decays faster at high
frequencies (Hoogeboom & Salimans, "Blurring Diffusion Models", ICLR 2023)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from colddiff.degradations.base import Degradation, check_images, check_timesteps
from colddiff.degradations.heat import dct_matrix, heat_frequencies
from colddiff.degradations.images import prior_device
from colddiff.degradations.registry import register
from colddiff.schedules import Schedule

__all__ = ["Blurring"]


@register("blurring")
class Blurring(Degradation):
    """``u_t = alpha_t * u_0 + sigma_t eps`` in the DCT basis, ``alpha_t`` one number per frequency.

    Hoogeboom & Salimans (2023). With ``u = V^T x`` the orthonormal 2-D DCT of an image (``V^T``
    as :func:`~colddiff.degradations.heat.dct_matrix` along each axis) the forward process is a
    Gaussian diffusion per frequency (the paper's definition of blurring diffusion)::

        q(u_t | u_0) = N(u_t | alpha_t * u_0, sigma_t^2 I),   alpha_t = a_t d_t

    with ``a_t = sqrt(alpha_bar_t)`` and ``sigma_t = sqrt(1 - alpha_bar_t)`` the standard
    diffusion's scales (the ``schedule``) and ``d_t`` the heat dissipation of Rissanen et al.
    (which the paper first writes as a Gaussian diffusion in the DCT basis), bounded below by
    the min-scale ``d_min``::

        d_t = d_min + (1 - d_min) exp(-lambda tau_t),   lambda_nm = pi^2 (n^2 / H^2 + m^2 / W^2)
        tau_t = sigma_B(t)^2 / 2,   sigma_B(t) = sigma_B,max sin^2(pi t / (2 T))

    (``lambda`` from :func:`~colddiff.degradations.heat.heat_frequencies`; ``d_t`` is computed as
    ``1 + (1 - d_min) expm1(-lambda tau_t)``, which is exactly 1 where ``tau_t = 0``.) As the
    noise is isotropic, ``x_t = V (alpha_t * V^T x_0) + sigma_t eps`` in pixels, with ``eps ~
    N(0, I)`` drawn there. The paper's defaults (its appendix pseudo-code) are ``sigma_B,max =
    20`` and ``d_min = 0.001``; with ``sigma_max=0`` there is no blur (``d_t = 1``) and this is the
    Gaussian diffusion of the same schedule, :class:`~colddiff.degradations.GaussianNoise`.

    The noise ``sigma_t`` is the degradation's noise level (:attr:`noise_levels`, the base
    class's bookkeeping): its only source, drawn by :meth:`sample_source`, re-estimated from a
    clean-image prediction by :meth:`source_from_x0`, and ``x_0`` is recovered from it by
    :meth:`x0_from_source` (so ``predict="eps"``, the paper's target, works).

    Per frequency, the process between steps ``s < t`` is Markov (the paper's background
    equations of a Gaussian diffusion, taken per frequency):
    ``q(u_t | u_s) = N(alpha_{t|s} u_s, sigma_{t|s}^2)``, ``alpha_{t|s} = alpha_t / alpha_s``,
    ``sigma_{t|s}^2 = sigma_t^2 - alpha_{t|s}^2 sigma_s^2``
    (:meth:`transition`, never negative: ``d_t <= d_s`` and ``a_t / a_s`` is the standard
    diffusion's), and the posterior is ``q(u_s | u_t, u_0) = N(mu, sigma_{t->s}^2)``::

        sigma_{t->s}^2 = (1 / sigma_s^2 + alpha_{t|s}^2 / sigma_{t|s}^2)^-1
                       = sigma_{t|s}^2 sigma_s^2 / sigma_t^2
        mu = sigma_{t->s}^2 (alpha_{t|s} / sigma_{t|s}^2 u_t + alpha_s / sigma_s^2 u_0)
           = alpha_{t|s} sigma_s^2 / sigma_t^2 u_t + alpha_s sigma_{t|s}^2 / sigma_t^2 u_0

    (:meth:`posterior`, in the second form, which also holds at ``s = 0``). These make it run
    with the Gaussian-family samplers: ``ddpm`` (ancestral, the paper's sampler, with the
    posterior above per frequency), ``ddim`` (``eta = 0``: the probability-flow sampler), and
    ``cold`` with ``source="estimate"`` (the same as ``ddim`` with ``eta = 0``) or
    ``fresh_noise``; ``soft`` treats it as the linear corruption ``C_t = V diag(alpha_t) V^T``
    with noise ``sigma_t``. ``dpmsolver++`` and ``unipc`` need one signal scale for every
    pixel and refuse it, as do the ``logsnr`` and ``karras`` step grids.

    The prior is ``N(0, I)``, as for :class:`~colddiff.degradations.GaussianNoise`
    (``sigma_T^2 = 1 - alpha_bar_T`` is nearly 1 and ``alpha_T`` nearly 0).

    Args:
        schedule: The noise schedule giving ``a_t`` and ``sigma_t`` (default:
            ``Schedule.preset("default")``).
        sigma_max: ``sigma_B,max``, the blur width of the last step in pixels (a finite number
            ``>= 0``; 0: no blur).
        min_scale: ``d_min``, in ``(0, 1]``: the least fraction of any frequency's signal that
            the blur keeps (1: no blur).
        image_shape: ``(C, H, W)`` of the images :meth:`prior` draws.

    Raises:
        ValueError: Naming the argument, for a ``sigma_max`` or ``min_scale`` out of range.

    Attributes:
        blur_sigma: ``(T + 1,)`` float64 the blur widths ``sigma_B(t)``.
        tau: ``(T + 1,)`` float64 the dissipation times ``tau_t = sigma_B(t)^2 / 2``.
        signal_scale: ``(T + 1,)`` float64 ``a_t = sqrt(alpha_bar_t)``.
    """

    start_is_source = False  # its source is the noise, re-estimated at every step
    invertible = True
    linear = True
    schedule: Schedule
    image_shape: tuple[int, int, int]

    def __init__(self, schedule: Schedule | None = None, *, sigma_max: float = 20.0,
                 min_scale: float = 0.001, image_shape: tuple[int, int, int] = (1, 28, 28)) -> None:
        schedule = schedule if schedule is not None else Schedule.preset("default")
        noise = (1 - schedule.alpha_bar).sqrt() if isinstance(schedule, Schedule) else 0.0
        super().__init__(schedule, image_shape=image_shape, noise=noise)  # checks the schedule
        if (isinstance(sigma_max, bool) or not isinstance(sigma_max, (int, float))
                or not math.isfinite(sigma_max) or sigma_max < 0):
            raise ValueError(f"sigma_max must be a finite number >= 0, got {sigma_max!r}")
        if (isinstance(min_scale, bool) or not isinstance(min_scale, (int, float))
                or not 0 < min_scale <= 1):
            raise ValueError(f"min_scale must be a number in (0, 1], got {min_scale!r}")
        self.sigma_max = float(sigma_max)
        self.min_scale = float(min_scale)
        steps = torch.arange(self.num_timesteps + 1, dtype=torch.float64)
        self.blur_sigma = self.sigma_max * torch.sin(math.pi * steps / (2 * self.num_timesteps)) ** 2
        self.tau = self.blur_sigma**2 / 2
        self.signal_scale = self.schedule.alpha_bar.sqrt()
        self._signals: dict[tuple[int, int], Tensor] = {}
        self._on_device: dict[tuple[int, int, torch.device, torch.dtype], tuple[Tensor, Tensor, Tensor]] = {}

    # ------------------------------------------------------------------ the schedule per frequency
    def dissipation(self, height: int, width: int) -> Tensor:
        """``d_t`` for ``t = 0..T`` and every frequency: ``(T + 1, H, W)`` float64."""
        eigenvalues = heat_frequencies(height)[:, None] ** 2 + heat_frequencies(width)[None, :] ** 2
        return 1 + (1 - self.min_scale) * torch.expm1(-eigenvalues * self.tau[:, None, None])

    def signal(self, height: int, width: int) -> Tensor:
        """``alpha_t = a_t d_t`` for ``t = 0..T`` and every frequency: ``(T + 1, H, W)`` float64
        (cached per size)."""
        key = (height, width)
        if key not in self._signals:
            self._signals[key] = self.signal_scale[:, None, None] * self.dissipation(height, width)
        return self._signals[key]

    def transition(self, t: int, s: int, height: int, width: int) -> tuple[Tensor, Tensor]:
        """``(alpha_{t|s}, sigma_{t|s}^2)`` of ``q(u_t | u_s)`` per frequency, ``(H, W)`` float64
        each, for steps ``s < t``."""
        alpha = self.signal(height, width)
        sigma = self.noise_levels
        alpha_ts = alpha[t] / alpha[s]
        return alpha_ts, sigma[t] ** 2 - alpha_ts**2 * sigma[s] ** 2

    def posterior(self, t: int, s: int, height: int, width: int) -> tuple[Tensor, Tensor, Tensor]:
        """``q(u_s | u_t, u_0)`` per frequency for ``s < t``: ``(weight of u_0, weight of u_t,
        variance)``, ``(H, W)`` float64 each (see the class's text)."""
        alpha_ts, sigma2_ts = self.transition(t, s, height, width)
        sigma2_s, sigma2_t = float(self.noise_levels[s]) ** 2, float(self.noise_levels[t]) ** 2
        x0_weight = self.signal(height, width)[s] * sigma2_ts / sigma2_t
        return x0_weight, alpha_ts * sigma2_s / sigma2_t, sigma2_ts * sigma2_s / sigma2_t

    # ------------------------------------------------------------------ the DCT basis
    def _basis(self, like: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The DCT matrices along the rows and the columns and ``alpha_t`` on ``like``'s device
        and dtype (cached)."""
        height, width = like.shape[-2:]
        key = (height, width, like.device, like.dtype)
        if key not in self._on_device:
            self._on_device[key] = tuple(  # type: ignore[assignment]
                m.to(device=like.device, dtype=like.dtype)
                for m in (dct_matrix(height), dct_matrix(width), self.signal(height, width)))
        return self._on_device[key]

    def to_frequency(self, x: Tensor) -> Tensor:
        """``V^T x``: the orthonormal 2-D DCT-II of each channel of ``x``."""
        rows, cols, _ = self._basis(x)
        return rows @ x @ cols.T

    def from_frequency(self, u: Tensor) -> Tensor:
        """``V u``: the inverse of :meth:`to_frequency`."""
        rows, cols, _ = self._basis(u)
        return rows.T @ u @ cols

    def combine_frequencies(self, *terms: tuple[Tensor, Tensor]) -> Tensor:
        """``V (sum_i w_i * V^T x_i)`` for the pairs ``(x_i, w_i)``: images ``(B, C, H, W)`` and
        their weights per frequency (``(H, W)`` or ``(B, 1, H, W)``).

        It is computed as ``sum_i c_i x_i + V (sum_i (w_i - c_i) * V^T x_i)`` with ``c_i`` the
        weight of the constant (DC) coefficient, which the blur never touches: where the weights
        are the same at every frequency (at ``t = 0``, or without blur) that is ``sum_i c_i x_i``
        exactly, the Gaussian diffusion's arithmetic, with no rounding from the transforms.
        """
        plain = sum(weight[..., :1, :1] * x for x, weight in terms)
        spread = sum((weight - weight[..., :1, :1]) * self.to_frequency(x) for x, weight in terms)
        assert isinstance(plain, Tensor) and isinstance(spread, Tensor)
        return plain + self.from_frequency(spread)

    def scale_frequencies(self, x: Tensor, scale: Tensor) -> Tensor:
        """``V (scale * V^T x)``: each DCT coefficient of ``x`` times ``scale``
        (:meth:`combine_frequencies` of the one term)."""
        return self.combine_frequencies((x, scale))

    def signal_at(self, t: Tensor | int, like: Tensor) -> Tensor:
        """``alpha_t`` per frequency for each image's step, ``(B, 1, H, W)`` on ``like``."""
        t = check_timesteps(t, like, self.num_timesteps)
        return self._basis(like)[2][t][:, None]

    # ------------------------------------------------------------------ the Degradation contract
    def degrade(self, x0: Tensor, t: Tensor | int, source: Tensor | None = None) -> Tensor:
        """``V (alpha_t * V^T x0) + sigma_t source`` (no noise when ``source`` is ``None``)."""
        check_images("x0", x0)
        t = check_timesteps(t, x0, self.num_timesteps)
        return self.add_noise(self.scale_frequencies(x0, self.signal_at(t, x0)), t, source)

    def x0_from_source(self, x_t: Tensor, t: Tensor | int, source: Tensor) -> Tensor:
        """``V (V^T (x_t - sigma_t source) / alpha_t)``: the clean image the noise ``source``
        leaves (``alpha_t >= a_t d_min > 0``)."""
        t = check_timesteps(t, x_t, self.num_timesteps)
        return self.scale_frequencies(x_t - self.noise_at(t, x_t) * source, 1 / self.signal_at(t, x_t))

    def prior(self, n: int, *, generator: torch.Generator | None = None,
              device: torch.device | str | None = None) -> Tensor:
        """``n`` draws of ``N(0, I)`` shaped ``(n, *image_shape)``."""
        return torch.randn((n, *self.image_shape), generator=generator,
                           device=prior_device(device, generator))

    def __repr__(self) -> str:
        return (f"Blurring(schedule={self.schedule!r}, sigma_max={self.sigma_max}, "
                f"min_scale={self.min_scale})")
