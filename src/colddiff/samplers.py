"""Samplers: from a degraded start ``x_T`` back to a clean image.

Every sampler shares one call, in the style of k-diffusion::

    x0 = sampler.sample(x_T, sample_steps=None, generator=None, callback=None, t_start=None,
                        source=None)

``sample_steps`` visits ``K <= T`` of the time steps (``T = t_K > ... > t_0 = 0``, evenly spaced and
rounded; ``None`` visits all ``T``). ``t_start`` starts part-way, from an image degraded to that
step (restoration: Bansal et al.'s "sampled" reconstruction); the visited steps then run from
``t_start`` down to 0. ``source`` is the source ``x_T`` was degraded with, where it is known
and a sampler needs it (the mask centres of inpainting, for the cold sampler).

At each step the denoiser predicts the clean image ``x0_hat`` (clamped to ``data_range`` when
``clip_x0`` is on, like diffusers' ``clip_sample``), ``callback(i, t, x_t, x0_hat)`` sees it, and
the sampler's :meth:`~Sampler.step` moves ``x_t`` to the next step. Sampling runs under
:func:`torch.inference_mode` with the denoiser in eval mode.

Samplers by name (:func:`create`, ``TrainConfig.sampler``, ``--sampler``), with their options:

* ``ddpm`` (:class:`DDPMSampler`): ancestral; ``variance="beta" | "posterior"``.
* ``ddim`` (:class:`DDIMSampler`): Song et al.'s sampler; ``eta`` in ``[0, 1]`` (0:
  deterministic, 1: ancestral with the posterior variance).
* ``cold`` (:class:`ColdSampler`): Bansal et al.'s Algorithms 1 and 2 for any degradation;
  ``algorithm``, ``source``.
* ``dpmsolver++`` (:class:`DPMSolverSampler`): DPM-Solver++ (2M), ``order`` 1 or 2.

Third-party packages add samplers through the ``colddiff.samplers`` entry-point group: a
:class:`Sampler` subclass whose constructor takes the denoiser and keyword options.
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor

from colddiff._compat import renamed
from colddiff.degradations.base import check_images
from colddiff.degradations.gaussian import GaussianNoise
from colddiff.denoisers import Denoiser
from colddiff.registry import PluginError, Registry

__all__ = ["ENTRY_POINT_GROUP", "REGISTRY", "Callback", "ColdSampler", "DDIMSampler", "DDPMSampler",
           "DPMSolverSampler", "Sampler", "available", "create", "get", "refresh", "register"]

Callback = Callable[[int, int, Tensor, Tensor], None]
"""``callback(i, t, x_t, x0_hat)``: step index ``i`` (0 first), time ``t``, the current state
and the clean image predicted from it (before the step is taken)."""


class Sampler(ABC):
    """Base class: the shared loop, strided time steps, clipping and the callback.

    Subclasses implement :meth:`step` (one move from ``t`` to an earlier ``s``) and may prepare
    per-run constants in :meth:`setup`; stochastic ones draw their noise with :meth:`noise`.
    The constructor contract: ``cls(denoiser, **options)``, every option a keyword, and
    ``clip_x0`` / ``data_range`` passed on to ``super().__init__``.

    Args:
        denoiser: The trained denoiser.
        clip_x0: Clamp each predicted clean image to ``data_range``.
        data_range: ``(low, high)`` of the data, ``(0, 1)`` for images scaled by ``ToTensor``.
    """

    def __init__(self, denoiser: Denoiser, *, clip_x0: bool = True,
                 data_range: tuple[float, float] = (0.0, 1.0)) -> None:
        if not isinstance(denoiser, Denoiser):
            raise ValueError(f"denoiser must be a colddiff.Denoiser, got {type(denoiser).__name__}")
        low, high = data_range
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"data_range must be finite (low, high) with low < high, got {data_range!r}")
        self.denoiser = denoiser
        self.degradation = denoiser.degradation
        self.clip_x0 = clip_x0
        self.data_range = (float(low), float(high))
        #: The source given to the current :meth:`sample` call (``None`` when not given).
        self.start_source: Tensor | None = None

    def prior(self, n: int, *, generator: torch.Generator | None = None,
              device: torch.device | str | None = None) -> Tensor:
        """``n`` starting points ``x_T`` from the degradation's prior, on ``device`` (default:
        the generator's device, else the denoiser's)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        if device is None:
            if generator is not None:
                device = generator.device
            else:
                device = next(self.denoiser.parameters(), torch.empty(0)).device
        return self.degradation.prior(n, generator=generator, device=device)

    def timesteps(self, sample_steps: int | None = None, *, t_start: int | None = None,
                  steps: int | None = None) -> list[int]:
        """The visited steps ``[t_K = t_start, ..., t_0 = 0]``, ``K = sample_steps`` (all
        ``t_start`` when ``None``; ``t_start`` defaults to ``T``; ``steps`` is the deprecated old
        name of ``sample_steps``).

        Raises:
            ValueError: If ``t_start`` is not an integer in ``[1, T]`` or ``sample_steps`` not one
                in ``[1, t_start]``.
        """
        sample_steps = renamed("Sampler.timesteps", "steps", steps, "sample_steps", sample_steps)
        total = self.degradation.num_timesteps
        if t_start is not None:
            if isinstance(t_start, bool) or not isinstance(t_start, int) or not 1 <= t_start <= total:
                raise ValueError(f"t_start must be an integer in [1, {total}] (T) or None, got {t_start!r}")
            total = t_start
        if sample_steps is None:
            sample_steps = total
        if (isinstance(sample_steps, bool) or not isinstance(sample_steps, int)
                or not 1 <= sample_steps <= total):
            raise ValueError(f"sample_steps must be an integer in [1, {total}] or None, "
                             f"got {sample_steps!r}")
        return [math.floor(total * k / sample_steps + 0.5) for k in range(sample_steps, -1, -1)]

    def check_start(self, x_T: Tensor) -> None:
        """Check that ``x_T`` is a batch this sampler can start from.

        Raises:
            ValueError: If it is not a non-empty ``(B, *image_shape)`` float tensor (any
                ``(B, C, H, W)`` when the degradation's ``image_shape`` is ``None``) with the
                network's dtype, or holds NaN or infinite values; the message names what is
                expected.
        """
        expected = self.degradation.image_shape
        check_images("x_T", x_T)
        if x_T.shape[0] == 0:
            raise ValueError(f"x_T is an empty batch; give at least one image of shape "
                             f"{expected or '(C, H, W)'}")
        if expected is not None and tuple(x_T.shape[1:]) != expected:
            raise ValueError(f"x_T must have shape (B, {', '.join(map(str, expected))}) for this "
                             f"degradation's images, got {tuple(x_T.shape)}")
        weights = next(self.denoiser.parameters())
        if x_T.dtype != weights.dtype:
            raise ValueError(f"x_T has dtype {x_T.dtype} but the network's weights are {weights.dtype}; "
                             f"pass x_T.to({weights.dtype})")
        if not bool(torch.isfinite(x_T).all()):
            raise ValueError("x_T holds NaN or infinite values")

    def noise(self, like: Tensor, generator: torch.Generator | None) -> Tensor:
        """Standard normal noise shaped like ``like``, from ``generator`` (the one source of
        randomness while sampling: tests replace it to inject fixed noise)."""
        return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)

    def require_gaussian(self) -> GaussianNoise:
        """The degradation, checked to be Gaussian noise (for the samplers of the DDPM family).

        Raises:
            ValueError: If it is not :class:`~colddiff.degradations.GaussianNoise`.
        """
        if not isinstance(self.degradation, GaussianNoise):
            raise ValueError(
                f"{type(self).__name__} needs a denoiser for GaussianNoise; for "
                f"{type(self.degradation).__name__} use ColdSampler (sampler 'cold')"
            )
        return self.degradation

    def setup(self, times: list[int], x_T: Tensor, generator: torch.Generator | None) -> None:  # noqa: B027
        """Prepare per-run constants for :meth:`step` (nothing by default)."""

    @abstractmethod
    def step(self, i: int, t: int, s: int, x_t: Tensor, x0_hat: Tensor, t_batch: Tensor,
             s_batch: Tensor, generator: torch.Generator | None) -> Tensor:
        """Move ``x_t`` from step ``t`` to the earlier step ``s`` given the prediction ``x0_hat``.

        ``t_batch`` and ``s_batch`` are ``t`` and ``s`` as ``(B,)`` tensors on the sample's device.
        """

    def sample(self, x_T: Tensor, sample_steps: int | None = None, *,
               generator: torch.Generator | None = None,
               callback: Callback | None = None, t_start: int | None = None,
               source: Tensor | None = None, steps: int | None = None) -> Tensor:
        """Run the reverse process from ``x_T``.

        Args:
            x_T: Starting batch ``(B, C, H, W)``, e.g. from :meth:`prior`, or images degraded to
                step ``t_start``.
            sample_steps: Number of steps ``K`` (strided sampling); ``None`` for every step from
                ``t_start``.
            generator: Random generator for stochastic samplers; on ``x_T``'s device. The same
                seed gives bit-identical samples on the same machine.
            callback: Called as ``callback(i, t, x_t, x0_hat)`` before each step.
            t_start: The step ``x_T`` is degraded to (default ``T``): restore degraded images
                by starting part-way.
            source: The source ``x_T`` was degraded with, when known (see
                :meth:`Degradation.sample_source`); kept in :attr:`start_source` for the steps.
            steps: Deprecated: the old name of ``sample_steps``.

        Returns:
            The generated clean batch, shaped like ``x_T``.
        """
        sample_steps = renamed("Sampler.sample", "steps", steps, "sample_steps", sample_steps)
        self.check_start(x_T)
        times = self.timesteps(sample_steps, t_start=t_start)
        self.start_source = source
        batch = x_T.shape[0]
        was_training = self.denoiser.training
        self.denoiser.eval()
        try:
            with torch.inference_mode():
                time_batches = torch.tensor(times, device=x_T.device)[:, None].expand(-1, batch)
                self.setup(times, x_T, generator)
                x_t = x_T
                for i, (t, s) in enumerate(itertools.pairwise(times)):
                    x0_hat = self.denoiser.predict_x0(x_t, time_batches[i])
                    if self.clip_x0:
                        x0_hat = x0_hat.clamp(*self.data_range)
                    if callback is not None:
                        callback(i, t, x_t, x0_hat)
                    x_t = self.step(i, t, s, x_t, x0_hat, time_batches[i], time_batches[i + 1],
                                    generator)
        finally:
            self.denoiser.train(was_training)
        if self.clip_x0:  # the last step returns the clipped x0_hat, up to rounding
            return x_t.clamp(*self.data_range)
        return x_t.clone()


class DDPMSampler(Sampler):
    """Ancestral sampling (Ho et al. 2020, Algorithm 2), generalised to strided steps.

    From ``t`` to ``s < t`` (``s = t - 1`` without striding), with ``alpha_{t|s} =
    alpha_bar_t / alpha_bar_s`` and ``beta_{t|s} = 1 - alpha_{t|s}``::

        x_s = mean(x_t, x0_hat) + sigma z,   z ~ N(0, I),   no noise when s = 0
        mean = sqrt(alpha_bar_s) beta_{t|s} / (1 - alpha_bar_t) x0_hat
             + sqrt(alpha_{t|s}) (1 - alpha_bar_s) / (1 - alpha_bar_t) x_t

    the posterior mean of ``q(x_s | x_t, x_0)`` (Ho et al. eq. 7). With ``x0_hat`` from a noise
    prediction it equals Ho's ``(x_t - beta_t / sqrt(1 - alpha_bar_t) eps_hat) / sqrt(alpha_t)``
    (Prince eq. 18.38); writing it through ``x0_hat`` is what makes clipping possible.
    ``sigma^2 = beta_{t|s}`` (``variance="beta"``, as Ho and the reference study) or the
    posterior variance ``(1 - alpha_bar_s) / (1 - alpha_bar_t) beta_{t|s}``
    (``variance="posterior"``).

    Args:
        denoiser: A denoiser for :class:`~colddiff.degradations.GaussianNoise` (predicting
            ``"eps"`` or ``"x0"``).
        variance: ``"beta"`` or ``"posterior"``.
        clip_x0: As for :class:`Sampler`.
        data_range: As for :class:`Sampler`.

    Raises:
        ValueError: If the degradation is not Gaussian noise or ``variance`` is unknown.
    """

    def __init__(self, denoiser: Denoiser, *, variance: Literal["beta", "posterior"] = "beta",
                 clip_x0: bool = True, data_range: tuple[float, float] = (0.0, 1.0)) -> None:
        super().__init__(denoiser, clip_x0=clip_x0, data_range=data_range)
        self._alpha_bar = self.require_gaussian().schedule.alpha_bar.tolist()
        if variance not in ("beta", "posterior"):
            raise ValueError(f"variance must be 'beta' or 'posterior', got {variance!r}")
        self.variance = variance
        self._coefficients: list[tuple[float, float, float]] = []

    def setup(self, times: list[int], x_T: Tensor, generator: torch.Generator | None) -> None:
        """Precompute ``(x0 weight, x_t weight, sigma)`` per step as Python floats."""
        self._coefficients = []
        for t, s in itertools.pairwise(times):
            abar_t, abar_s = self._alpha_bar[t], self._alpha_bar[s]
            alpha_ts = abar_t / abar_s
            beta_ts = 1 - alpha_ts
            x0_weight = math.sqrt(abar_s) * beta_ts / (1 - abar_t)
            xt_weight = math.sqrt(alpha_ts) * (1 - abar_s) / (1 - abar_t)
            variance = beta_ts if self.variance == "beta" else (1 - abar_s) / (1 - abar_t) * beta_ts
            self._coefficients.append((x0_weight, xt_weight, math.sqrt(variance) if s > 0 else 0.0))

    def step(self, i: int, t: int, s: int, x_t: Tensor, x0_hat: Tensor, t_batch: Tensor,
             s_batch: Tensor, generator: torch.Generator | None) -> Tensor:
        """One ancestral step from ``t`` to ``s``."""
        x0_weight, xt_weight, sigma = self._coefficients[i]
        x_s = x0_weight * x0_hat + xt_weight * x_t
        if sigma > 0:
            x_s += sigma * self.noise(x_s, generator)
        return x_s


class DDIMSampler(Sampler):
    """DDIM (Song et al. 2021, eq. 12), generalised by ``eta`` (their eq. 16).

    From ``t`` to ``s < t``, with ``eps_hat = (x_t - sqrt(alpha_bar_t) x0_hat) / sqrt(1 -
    alpha_bar_t)`` the noise implied by the (clipped) clean-image prediction::

        sigma = eta sqrt((1 - alpha_bar_s) / (1 - alpha_bar_t)) sqrt(1 - alpha_bar_t / alpha_bar_s)
        x_s = sqrt(alpha_bar_s) x0_hat + sqrt(1 - alpha_bar_s - sigma^2) eps_hat + sigma z

    ``eta = 0`` is deterministic (and equals :class:`ColdSampler` with ``source="estimate"``);
    ``eta = 1`` is ancestral sampling with the posterior variance (:class:`DDPMSampler` with
    ``variance="posterior"``). diffusers' ``DDIMScheduler`` with ``timestep_spacing="trailing"``,
    ``set_alpha_to_one=True`` and ``step(..., use_clipped_model_output=True)`` takes the same steps
    when ``sample_steps`` divides ``T`` (its timestep ``k`` is our ``t = k + 1``).

    Args:
        denoiser: A denoiser for :class:`~colddiff.degradations.GaussianNoise`.
        eta: In ``[0, 1]``.
        clip_x0: As for :class:`Sampler`.
        data_range: As for :class:`Sampler`.

    Raises:
        ValueError: If the degradation is not Gaussian noise or ``eta`` is outside ``[0, 1]``.
    """

    def __init__(self, denoiser: Denoiser, *, eta: float = 0.0, clip_x0: bool = True,
                 data_range: tuple[float, float] = (0.0, 1.0)) -> None:
        super().__init__(denoiser, clip_x0=clip_x0, data_range=data_range)
        self._alpha_bar = self.require_gaussian().schedule.alpha_bar.tolist()
        if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0 <= eta <= 1:
            raise ValueError(f"eta must be a number in [0, 1], got {eta!r}")
        self.eta = float(eta)
        self._coefficients: list[tuple[float, float, float, float, float]] = []

    def setup(self, times: list[int], x_T: Tensor, generator: torch.Generator | None) -> None:
        """Precompute ``(sqrt(alpha_bar_s), eps weight, sigma, sqrt(alpha_bar_t), sqrt(1 -
        alpha_bar_t))`` per step as Python floats."""
        self._coefficients = []
        for t, s in itertools.pairwise(times):
            abar_t, abar_s = self._alpha_bar[t], self._alpha_bar[s]
            sigma = self.eta * math.sqrt((1 - abar_s) / (1 - abar_t) * (1 - abar_t / abar_s))
            eps_weight = math.sqrt(max(1 - abar_s - sigma**2, 0.0))
            self._coefficients.append((math.sqrt(abar_s), eps_weight, sigma, math.sqrt(abar_t),
                                       math.sqrt(1 - abar_t)))

    def step(self, i: int, t: int, s: int, x_t: Tensor, x0_hat: Tensor, t_batch: Tensor,
             s_batch: Tensor, generator: torch.Generator | None) -> Tensor:
        """One DDIM step from ``t`` to ``s``."""
        x0_weight, eps_weight, sigma, signal_t, noise_t = self._coefficients[i]
        eps_hat = (x_t - signal_t * x0_hat) / noise_t
        x_s = x0_weight * x0_hat + eps_weight * eps_hat
        if sigma > 0:
            x_s += sigma * self.noise(x_s, generator)
        return x_s


class ColdSampler(Sampler):
    """Bansal et al. (2022) Algorithms 1 and 2, for any degradation ``D``.

    With ``x0_hat = R(x_s, s)`` the network's clean-image prediction:

    * Algorithm 1 (naive): ``x_{s-1} = D(x0_hat, s - 1)``.
    * Algorithm 2 (improved): ``x_{s-1} = x_s - D(x0_hat, s) + D(x0_hat, s - 1)``.

    For a degradation with a source (noise, a mixed-in image), ``D`` needs one:

    * ``source="fixed"``: one source for the whole run: the one given to :meth:`sample`
      (inpainting's mask centres); else, for a degradation whose start stands in for its source
      (:attr:`~colddiff.Degradation.start_is_source`, the mixing ones), the start image ``x_T``
      itself (what the reference study did for Fashion-MNIST mixing: ``alpha_bar_T`` is tiny, so
      ``x_T`` is nearly the pure source; with a perfect denoiser Algorithm 2 then ends at ``x0 +
      (1 - sqrt(1 - alpha_bar_T)) x_T - sqrt(alpha_bar_T) x0``, a small constant error). Started
      part-way (``t_start < T``), where ``x_t`` is far from its source, the source is instead
      estimated once, from the first prediction, and kept.
    * ``source="estimate"``: re-estimated at every step from ``x_s`` and ``x0_hat`` as
      ``(x_s - sqrt(alpha_bar_s) x0_hat) / sqrt(1 - alpha_bar_s)`` (Bansal's code). Then
      ``D(x0_hat, s) = x_s``, both algorithms coincide, and for Gaussian noise the step is
      exactly DDIM with ``eta = 0`` (Song et al. 2021, eq. 12):
      ``x_{s-1} = sqrt(alpha_bar_{s-1}) x0_hat + sqrt(1 - alpha_bar_{s-1}) eps_hat``.

    Deterministic degradations (blur) have no source and ignore ``source``. With strided
    sampling, ``s - 1`` is the next visited step.

    Args:
        denoiser: The trained denoiser (any degradation, any target).
        algorithm: 1 or 2.
        source: ``"fixed"`` or ``"estimate"``.
        clip_x0: As for :class:`Sampler`.
        data_range: As for :class:`Sampler`.

    Raises:
        ValueError: If ``algorithm`` or ``source`` is unknown, or ``source="estimate"`` for a
            degradation that cannot recover its source.
    """

    def __init__(self, denoiser: Denoiser, *, algorithm: Literal[1, 2] = 2,
                 source: Literal["fixed", "estimate"] = "fixed", clip_x0: bool = True,
                 data_range: tuple[float, float] = (0.0, 1.0)) -> None:
        super().__init__(denoiser, clip_x0=clip_x0, data_range=data_range)
        if algorithm not in (1, 2):
            raise ValueError(f"algorithm must be 1 or 2, got {algorithm!r}")
        if source not in ("fixed", "estimate"):
            raise ValueError(f"source must be 'fixed' or 'estimate', got {source!r}")
        deg = self.degradation
        if source == "estimate" and deg.has_source and not deg.recovers_source:
            raise ValueError(
                f"source='estimate' needs a degradation that can recover its source; "
                f"{type(deg).__name__} cannot, use source='fixed'"
            )
        if source == "fixed" and deg.has_source and not deg.start_is_source and deg.recovers_source:
            raise ValueError(f"{deg!r} is sampled with source='estimate' (its source, noise, is "
                             f"re-estimated at each step; the start is not it), not source='fixed'")
        self.algorithm = algorithm
        self.source = source
        self._fixed_source: Tensor | None = None
        self._estimate_once = False

    def setup(self, times: list[int], x_T: Tensor, generator: torch.Generator | None) -> None:
        """Fix the source: the one given to :meth:`sample`, else (mixing degradations) the start.

        Raises:
            ValueError: For ``source="fixed"`` with a degradation whose source is not its start
                (noisy blur, inpainting's centres) when none was given.
        """
        deg = self.degradation
        self._fixed_source, self._estimate_once = None, False
        if not deg.has_source or self.source == "estimate":
            return
        if self.start_source is not None:
            self._fixed_source = self.start_source
        elif not deg.start_is_source:
            raise ValueError(f"{deg!r} needs the source each image was degraded with: pass it, "
                             f"sample(..., source=...)")
        elif times[0] == deg.num_timesteps:
            self._fixed_source = x_T
        elif deg.recovers_source:  # part-way, x_t is far from its source: estimate it once
            self._estimate_once = True
        else:
            raise ValueError(f"restoring {deg!r} part-way with source='fixed' needs the source: pass "
                             f"it, sample(..., source=...)")

    def step(self, i: int, t: int, s: int, x_t: Tensor, x0_hat: Tensor, t_batch: Tensor,
             s_batch: Tensor, generator: torch.Generator | None) -> Tensor:
        """One step of Algorithm 1 or 2 from ``t`` to ``s``."""
        deg = self.degradation
        if self._estimate_once and i == 0:
            self._fixed_source = deg.source_from_x0(x_t, t_batch, x0_hat)
        source = self._fixed_source
        if deg.has_source and self.source == "estimate":
            source = deg.source_from_x0(x_t, t_batch, x0_hat)
        if self.algorithm == 1:
            return deg.degrade(x0_hat, s_batch, source)
        return x_t - deg.degrade(x0_hat, t_batch, source) + deg.degrade(x0_hat, s_batch, source)


class DPMSolverSampler(Sampler):
    """DPM-Solver++ (Lu et al. 2022, "DPM-Solver++", Algorithm 2: multistep "2M"), data prediction.

    With ``alpha_t = sqrt(alpha_bar_t)``, ``sigma_t = sqrt(1 - alpha_bar_t)``, ``lambda_t =
    log(alpha_t / sigma_t)`` and ``h = lambda_s - lambda_t``, a step from ``t`` to ``s`` is::

        x_s = (sigma_s / sigma_t) x_t - alpha_s (exp(-h) - 1) D

    with ``D = x0_hat`` (order 1, which is DDIM) or, from the second step on, ``D = (1 + 1/(2r))
    x0_hat - 1/(2r) x0_hat_prev``, ``r = h_prev / h`` (order 2). The last step, to ``t = 0`` where
    ``sigma_0 = 0``, is first order and returns ``x0_hat``. Built on the denoiser's (clipped)
    ``x0_hat``, so it works for any target. It matches diffusers' ``DPMSolverMultistepScheduler``
    (``algorithm_type="dpmsolver++"``, ``solver_type="midpoint"``, ``final_sigmas_type="zero"``,
    ``prediction_type="sample"`` fed our ``x0_hat``; its timestep ``k`` is our ``t = k + 1``).

    Args:
        denoiser: A denoiser for :class:`~colddiff.degradations.GaussianNoise`.
        order: 1 or 2.
        clip_x0: As for :class:`Sampler`.
        data_range: As for :class:`Sampler`.

    Raises:
        ValueError: If the degradation is not Gaussian noise or ``order`` is not 1 or 2.
    """

    def __init__(self, denoiser: Denoiser, *, order: Literal[1, 2] = 2, clip_x0: bool = True,
                 data_range: tuple[float, float] = (0.0, 1.0)) -> None:
        super().__init__(denoiser, clip_x0=clip_x0, data_range=data_range)
        self._alpha_bar = self.require_gaussian().schedule.alpha_bar.tolist()
        if order not in (1, 2) or isinstance(order, bool):
            raise ValueError(f"order must be 1 or 2, got {order!r}")
        self.order = order
        self._coefficients: list[tuple[float, float, float | None]] = []
        self._previous: Tensor | None = None

    def setup(self, times: list[int], x_T: Tensor, generator: torch.Generator | None) -> None:
        """Precompute ``(x_t weight, D weight, 1 / (2 r) or None for a first-order step)``."""
        alpha = [math.sqrt(self._alpha_bar[t]) for t in times]
        sigma = [math.sqrt(1 - self._alpha_bar[t]) for t in times]
        # alpha_t > 0 for every t (a schedule's betas are below 1); only sigma_0 is 0.
        lam = [math.log(a / s) if s > 0 else math.inf for a, s in zip(alpha, sigma, strict=True)]
        self._coefficients = []
        for i in range(len(times) - 1):
            if sigma[i + 1] == 0:  # the last step: x_0 = x0_hat
                self._coefficients.append((0.0, alpha[i + 1], None))
                continue
            h = lam[i + 1] - lam[i]
            half_over_r = (h / (lam[i] - lam[i - 1])) / 2 if self.order == 2 and i > 0 else None
            self._coefficients.append((sigma[i + 1] / sigma[i], -alpha[i + 1] * math.expm1(-h), half_over_r))
        self._previous = None

    def step(self, i: int, t: int, s: int, x_t: Tensor, x0_hat: Tensor, t_batch: Tensor,
             s_batch: Tensor, generator: torch.Generator | None) -> Tensor:
        """One DPM-Solver++ step from ``t`` to ``s``."""
        xt_weight, d_weight, half_over_r = self._coefficients[i]
        direction = x0_hat
        if half_over_r is not None and self._previous is not None:
            direction = (1 + half_over_r) * x0_hat - half_over_r * self._previous
        self._previous = x0_hat
        return xt_weight * x_t + d_weight * direction


#: The entry-point group third-party packages register samplers under.
ENTRY_POINT_GROUP = "colddiff.samplers"

#: The sampler registry.
REGISTRY: Registry[Sampler] = Registry("sampler", ENTRY_POINT_GROUP, Sampler, PluginError)
REGISTRY.register("ddpm")(DDPMSampler)
REGISTRY.register("ddim")(DDIMSampler)
REGISTRY.register("cold")(ColdSampler)
REGISTRY.register("dpmsolver++")(DPMSolverSampler)

register = REGISTRY.register
refresh = REGISTRY.refresh
available = REGISTRY.available
get = REGISTRY.get


def create(name: str, denoiser: Denoiser, **options: Any) -> Sampler:
    """The sampler called ``name`` for ``denoiser``, with its ``options``.

    Example:
        >>> from colddiff import Denoiser, degradations, nets, samplers
        >>> denoiser = Denoiser(nets.CNN(), degradations.create("gaussian"))
        >>> sampler = samplers.create("ddim", denoiser, eta=0.0)

    Raises:
        ValueError: If ``name`` is unknown (the message lists the available ones), an option is
            not one the sampler takes (the message lists those it takes), or a value is invalid.
        colddiff.registry.PluginError: If its plugin cannot be used.
    """
    return REGISTRY.create(name, denoiser, **options)
