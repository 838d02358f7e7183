"""The :class:`Sampler` base class: the one sampling loop every sampler shares, its step grid
and its checks.

Every sampler shares one call, in the style of k-diffusion::

    x0 = sampler.sample(x_T, sample_steps=None, generator=None, callback=None, t_start=None,
                        source=None, labels=None, guidance=None)

``sample_steps`` visits ``K <= T`` of the time steps ``t_K > ... > t_0 = 0``, spaced by the
sampler's ``spacing`` (:mod:`colddiff.samplers.grids`; by default evenly, ``T = t_K``;
``None`` visits all ``T``). ``t_start`` starts part-way, from an image degraded to that step
(restoration: Bansal et al.'s "sampled" reconstruction); the visited steps then run from
``t_start`` down to 0. ``source`` is the source ``x_T`` was degraded with, where it is known
and a sampler needs it (the mask centres of inpainting, for the cold sampler).

At each step the denoiser predicts the clean image ``x0_hat`` (clamped to ``data_range`` when
``clip_x0`` is on, like diffusers' ``clip_sample``), ``callback(i, t, x_t, x0_hat)`` sees it, and
the sampler's :meth:`~Sampler.step` moves ``x_t`` to the next step. An explicit grid may end
above 0; ``final_denoise=True`` then returns the clean-image prediction at its last step (one
more network call, which the callback sees too). Sampling runs under
:func:`torch.inference_mode` with the denoiser in eval mode.

For a conditional denoiser, ``labels`` are the classes to generate (``None``: the null class,
unconditional) and ``guidance`` the classifier-free guidance scale (:meth:`Denoiser.guided`):
every prediction is guided, so every sampler, plugins included, gets guidance through this loop.
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable

import torch
from torch import Tensor

from colddiff.degradations.base import check_images
from colddiff.degradations.blurring import Blurring
from colddiff.degradations.gaussian import GaussianNoise
from colddiff.denoisers import Denoiser
from colddiff.samplers.grids import Spacing, StepGrid

__all__ = ["Callback", "Sampler"]

Callback = Callable[[int, int, Tensor, Tensor], None]
"""``callback(i, t, x_t, x0_hat)``: step index ``i`` (0 first), time ``t``, the current state
and the clean image predicted from it (before the step is taken)."""


class Sampler(ABC):
    """Base class: the shared loop, the step grid, clipping and the callback.

    Subclasses implement :meth:`step` (one move from ``t`` to an earlier ``s``) and may prepare
    per-run constants in :meth:`setup`; stochastic ones draw their noise with :meth:`noise`.
    The constructor contract: ``cls(denoiser, **options)``, every option a keyword, and
    ``spacing``, ``rho``, ``final_denoise``, ``clip_x0`` and ``data_range`` passed on to
    ``super().__init__``.

    Args:
        denoiser: The trained denoiser.
        spacing: The step grid: ``"trailing"`` (even, the default), ``"leading"``,
            ``"linspace"``, ``"quadratic"``, ``"logsnr"``, ``"karras"`` or an explicit list of
            steps (see :mod:`colddiff.samplers.grids`).
        rho: Karras et al.'s ``rho``, for ``spacing="karras"``.
        final_denoise: Where a grid ends above ``t = 0``, return the clean-image prediction at
            its last step instead of that (noisy) state.
        clip_x0: Clamp each predicted clean image to ``data_range``.
        data_range: ``(low, high)`` of the data, ``(0, 1)`` for images scaled by ``ToTensor``.

    Raises:
        ValueError: If an option is invalid; the message names it.
    """

    def __init__(self, denoiser: Denoiser, *, spacing: Spacing = "trailing", rho: float = 7.0,
                 final_denoise: bool = False, clip_x0: bool = True,
                 data_range: tuple[float, float] = (0.0, 1.0)) -> None:
        if not isinstance(denoiser, Denoiser):
            raise ValueError(f"denoiser must be a colddiff.Denoiser, got {type(denoiser).__name__}")
        low, high = data_range
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"data_range must be finite (low, high) with low < high, got {data_range!r}")
        if not isinstance(final_denoise, bool):
            raise ValueError(f"final_denoise must be True or False, got {final_denoise!r}")
        self.denoiser = denoiser
        self.degradation = denoiser.degradation
        #: The step grid (its ``spacing`` is the checked spacing: a name or a tuple of steps).
        self.grid = StepGrid(spacing, self.degradation, rho=rho)
        self.final_denoise = final_denoise
        self.clip_x0 = clip_x0
        self.data_range = (float(low), float(high))
        #: The source given to the current :meth:`sample` call (``None`` when not given).
        self.start_source: Tensor | None = None
        #: The step the current :meth:`sample` call starts from (``t_start``, else ``T``).
        self.start_step = self.degradation.num_timesteps
        #: The labels and the guidance of the current :meth:`sample` call (``None``: not given).
        self.labels: Tensor | None = None
        self.guidance: float | None = None

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

    def timesteps(self, sample_steps: int | None = None, *, t_start: int | None = None) -> list[int]:
        """The visited steps ``[t_K, ..., t_0]`` from ``t_start`` (default ``T``), ``K =
        sample_steps`` (every step when ``None``), spaced by the sampler's ``spacing``.

        Raises:
            ValueError: If ``t_start`` is not an integer in ``[1, T]`` or ``sample_steps`` not one
                in ``[1, t_start]`` (with an explicit grid: not ``None`` or its number of steps).
        """
        return self.grid.steps(sample_steps, t_start=t_start)

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
            other = ("DDPMSampler or DDIMSampler (sampler 'ddpm' or 'ddim'): its signal scale is one "
                     "per frequency" if isinstance(self.degradation, Blurring)
                     else "ColdSampler (sampler 'cold')")
            raise ValueError(
                f"{type(self).__name__} needs a denoiser for GaussianNoise; for "
                f"{type(self.degradation).__name__} use {other}"
            )
        return self.degradation

    def require_gaussian_family(self) -> GaussianNoise | Blurring:
        """The degradation, checked to be a Gaussian diffusion: Gaussian noise, or
        :class:`~colddiff.degradations.Blurring` (one per DCT frequency), which the DDPM and DDIM
        samplers take.

        Raises:
            ValueError: If it is neither.
        """
        if isinstance(self.degradation, Blurring):
            return self.degradation
        return self.require_gaussian()

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
               source: Tensor | None = None, labels: Tensor | None = None,
               guidance: float | None = None) -> Tensor:
        """Run the reverse process from ``x_T``.

        Args:
            x_T: Starting batch ``(B, C, H, W)``, e.g. from :meth:`prior`, or images degraded to
                step ``t_start``.
            sample_steps: Number of steps ``K`` (network calls), spaced by ``spacing``; ``None``
                for every step from ``t_start`` (or an explicit grid's steps).
            generator: Random generator for stochastic samplers; on ``x_T``'s device. The same
                seed gives bit-identical samples on the same machine.
            callback: Called as ``callback(i, t, x_t, x0_hat)`` before each step.
            t_start: The step ``x_T`` is degraded to (default ``T``): restore degraded images
                by starting part-way.
            source: The source ``x_T`` was degraded with, when known (see
                :meth:`Degradation.sample_source`); kept in :attr:`start_source` for the steps.
            labels: For a conditional denoiser: the class of each image ``(B,)`` (or its
                conditioning tensor); ``None``: the null class (unconditional).
            guidance: For a conditional denoiser given ``labels``: the classifier-free guidance
                scale ``>= 0`` (``None`` or 1: the plain conditional model, 0: unconditional).

        Returns:
            The generated clean batch, shaped like ``x_T``.

        Raises:
            ValueError: If ``x_T`` is not a batch to start from, or labels or guidance are given
                to an unconditional denoiser or are invalid (the message names them).
        """
        self.check_start(x_T)
        self.labels = self.denoiser.check_condition(labels, x_T.shape[0], x_T.device)
        self.guidance = self.denoiser.check_guidance(guidance, self.labels)
        times = self.timesteps(sample_steps, t_start=t_start)
        self.start_source = source
        self.start_step = t_start if t_start is not None else self.degradation.num_timesteps
        was_training = self.denoiser.training
        self.denoiser.eval()
        try:
            with torch.inference_mode():
                x_t = self._run(x_T, times, generator, callback)
        finally:
            self.denoiser.train(was_training)
        if self.clip_x0:  # a step to 0 returns the clipped x0_hat, up to rounding
            return x_t.clamp(*self.data_range)
        return x_t.clone()

    def _run(self, x_T: Tensor, times: list[int], generator: torch.Generator | None,
             callback: Callback | None) -> Tensor:
        """The loop over the grid ``times`` (under inference mode)."""
        time_batches = torch.tensor(times, device=x_T.device)[:, None].expand(-1, x_T.shape[0])
        self.setup(times, x_T, generator)
        x_t = x_T
        for i, (t, s) in enumerate(itertools.pairwise(times)):
            x0_hat = self._predict(i, t, x_t, time_batches[i], callback)
            x_t = self.step(i, t, s, x_t, x0_hat, time_batches[i], time_batches[i + 1], generator)
        if self.final_denoise and times[-1] > 0:
            x_t = self._predict(len(times) - 1, times[-1], x_t, time_batches[-1], callback)
        return x_t

    def _predict(self, i: int, t: int, x_t: Tensor, t_batch: Tensor, callback: Callback | None) -> Tensor:
        """The (clipped) clean-image prediction at step ``t``, shown to the callback."""
        x0_hat = self.denoiser.predict_x0(x_t, t_batch, self.labels, self.guidance)
        if self.clip_x0:
            x0_hat = x0_hat.clamp(*self.data_range)
        if callback is not None:
            callback(i, t, x_t, x0_hat)
        return x0_hat
