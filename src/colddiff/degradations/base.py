"""The :class:`Degradation` interface, its checks, and the image sources of degradations.

A degradation ``D(x_0, t, source)`` maps a clean batch ``x_0`` to its degraded version at step
``t`` (Bansal et al. 2022 write it ``D(x_0, t)``). Some degradations mix in a random *source*
(Gaussian noise, another image): those are "hot" when the source is noise and "cold" otherwise.
Deterministic ones (blur) have no source. ``D(x_0, 0, .)`` is always ``x_0``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import Tensor

from colddiff.degradations.images import ImageSource
from colddiff.degradations.noise import NoiseOption, join_noise, noise_levels, split_noise
from colddiff.schedules import Schedule

__all__ = ["Degradation", "PriorUnavailableError", "check_image_shape", "check_images",
           "check_positive", "check_timesteps"]


class PriorUnavailableError(RuntimeError):
    """Raised by :meth:`Degradation.prior` when the degradation cannot start sampling on its own."""


class Degradation(ABC):
    """A forward process ``x_t = D(x_0, t, source)`` for ``t = 0..T``.

    Subclasses implement :meth:`degrade` and, where they have a random source,
    :meth:`sample_source`; they override :meth:`prior` when they can produce a start for
    unconditional sampling (a deterministic degradation has none until it does: sampling then
    has to start from degraded data), :meth:`fit_prior` when that start is learned from the
    training images, and :meth:`x0_from_source` / :meth:`source_from_x0` when the clean image and
    the source determine each other given ``x_t`` (which is what lets a network predict the source
    instead of the clean image, and lets Algorithm 2 re-estimate the source).

    **Noise** (the ``noise`` option, :mod:`colddiff.degradations.noise`): any degradation may add
    Gaussian noise, ``x_t = D(x_0, t) + noise_t z`` with ``z ~ N(0, I)`` drawn per image for
    ``t >= 1``, as Bansal et al.'s "hot" blur does (2022, section 5.2). The base class does the
    bookkeeping: :meth:`sample_source` draws ``z`` (joined to the degradation's own source, if
    any, by :meth:`join_noise`), :meth:`source_from_x0` and :meth:`renoise` re-estimate it from a
    predicted clean image, ``z = (x_t - D(x0_hat, t)) / noise_t``, so the cold sampler treats it
    as Bansal's hot sampler does. A subclass opts in by accepting ``noise`` and handing it to
    ``super().__init__``, ending :meth:`degrade` with :meth:`add_noise`, and, if it has a source
    of its own, joining the noise of :meth:`draw_noise` to it with :meth:`join_noise` and taking
    the two apart with :meth:`split_noise`.

    **Linear corruptions** (:attr:`linear`): a degradation whose ``x_t = C_t x_0 + s_t z`` with
    ``C_t`` linear in ``x_0`` (affine given its own source: a mixed-in image, inpainting's mask
    centres) declares it, and gets :meth:`corrupt` (``C_t x_0``, the degradation without its
    noise) and :attr:`corruption_noise` (``s_t``): what Soft Diffusion's loss and sampler need
    (Daras et al. 2023; ``Denoiser(loss="soft")``, sampler ``soft``). The built-ins all are.

    Every method works on any ``(B, C, H, W)`` batch; ``t`` is an integer tensor of shape ``(B,)``
    (or a Python int, applied to the whole batch).

    The constructor contract: colddiff creates every degradation as
    ``cls(schedule=..., **degradation_kwargs)`` (the config's schedule). A subclass that defines
    ``__init__`` accepts ``schedule`` and ``image_shape`` (and ``num_timesteps`` and ``noise`` if
    it has those options) and hands them to ``super().__init__``; one whose :attr:`has_source`
    depends on its options sets it before that call. A subclass without constructor options of
    its own need not define ``__init__`` at all.

    Args:
        schedule: The schedule; its ``T`` is the number of steps unless ``num_timesteps`` is given.
            Mixing degradations use its ``alpha_bar``; others only its length.
        num_timesteps: ``T`` (default: the schedule's, else :attr:`default_num_timesteps`).
        image_shape: ``(C, H, W)`` of the images, for :meth:`prior` and the samplers' checks of
            a start; ``None`` (the default here): any shape.
        noise: The added noise: a level (the same at every step ``t >= 1``), ``T + 1`` levels,
            one per step, or a named shape such as ``{"level": 0.5, "shape": "schedule"}`` (see
            :func:`~colddiff.degradations.noise.noise_levels`); 0: none.

    Attributes:
        num_timesteps: ``T``, the number of degradation steps.
        schedule: The schedule given (``None`` if none was).
        image_shape: ``(C, H, W)`` of the images this degradation works on, or ``None`` if any.
        noise: The ``noise`` option as given.
        noise_levels: ``(T + 1,)`` float64, the noise level of each step (0 at ``t = 0``).
        default_num_timesteps: ``T`` when neither ``schedule`` nor ``num_timesteps`` is given.
        has_source: Whether :meth:`sample_source` returns a tensor (``False``: deterministic);
            true of every noisy degradation.
        own_source: Whether the degradation has a source of its own besides the noise (a
            mixed-in image, inpainting's mask centres): :attr:`has_source` before the noise.
        start_is_source: Whether a fully degraded image stands in for its source (true of mixing
            degradations, where ``x_T`` is nearly all source, and the default); the cold sampler's
            fixed source is then the start. ``False`` for noisy blur and inpainting.
        invertible: Whether :meth:`x0_from_source` and :meth:`source_from_x0` are implemented.
        linear: Whether it is a linear corruption with noise (:meth:`corrupt`).
        weighs_by_schedule: Whether ``x_t`` weighs the images by the schedule's ``alpha_bar_t``
            (the mixing degradations): only those take the ``noise`` shape ``"schedule"``.
    """

    has_source: bool = False  # a class attribute; an instance may set its own (inpainting)
    start_is_source: ClassVar[bool] = True
    invertible: bool = False
    linear: ClassVar[bool] = False
    weighs_by_schedule: ClassVar[bool] = False
    default_num_timesteps: ClassVar[int] = 1000
    num_timesteps: int
    schedule: Schedule | None = None
    image_shape: tuple[int, int, int] | None = None

    def __init__(self, schedule: Schedule | None = None, *, num_timesteps: int | None = None,
                 image_shape: tuple[int, int, int] | None = None, noise: NoiseOption = 0.0) -> None:
        if schedule is not None and not isinstance(schedule, Schedule):
            raise ValueError(f"schedule must be a colddiff.Schedule or None, got {type(schedule).__name__}")
        if num_timesteps is None:
            num_timesteps = schedule.num_timesteps if schedule is not None else self.default_num_timesteps
        if isinstance(num_timesteps, bool) or not isinstance(num_timesteps, int) or num_timesteps < 1:
            raise ValueError(f"num_timesteps must be an integer >= 1, got {num_timesteps!r}")
        self.schedule = schedule
        self.num_timesteps = num_timesteps
        self.image_shape = check_image_shape(image_shape) if image_shape is not None else None
        self.noise_levels = noise_levels(noise, num_timesteps, schedule if self.weighs_by_schedule else None)
        self.noise: float | tuple[float, ...] | dict[str, float | str] = (
            float(noise) if isinstance(noise, (int, float))
            else {"level": float(noise["level"]), "shape": str(noise["shape"])} if isinstance(noise, Mapping)
            else tuple(self.noise_levels.tolist()))
        self.own_source = self.has_source
        self.has_source = self.has_source or self.noisy
        self._noise_cache: dict[tuple[torch.device, torch.dtype], Tensor] = {}

    @abstractmethod
    def degrade(self, x0: Tensor, t: Tensor | int, source: Tensor | None = None) -> Tensor:
        """Degrade the clean batch ``x0`` to step ``t``.

        Args:
            x0: Clean images, ``(B, C, H, W)``.
            t: Steps in ``[0, T]``, an integer tensor of shape ``(B,)`` or an int.
            source: The per-sample source from :meth:`sample_source` (ignored, and may be
                ``None``, for a deterministic degradation; a noisy one adds no noise without it).

        Returns:
            ``x_t`` with the shape and dtype of ``x0``.
        """

    def sample_source(self, x0: Tensor, *, generator: torch.Generator | None = None
                      ) -> Tensor | None:
        """Draw a source for each image of ``x0``: here the noise ``z`` of a noisy degradation
        (:meth:`draw_noise`), ``None`` for a deterministic one.

        Args:
            x0: The clean batch the source will be mixed into (gives shape, dtype, device).
            generator: Random generator; it must live on ``x0.device``.
        """
        return self.draw_noise(x0, generator)

    @property
    def noisy(self) -> bool:
        """Whether the degradation adds noise at some step."""
        return bool(self.noise_levels.any())

    def noise_at(self, t: Tensor | int, like: Tensor) -> Tensor:
        """The noise levels ``noise_t`` shaped ``(B, 1, 1, 1)`` on ``like``'s device and dtype."""
        t = check_timesteps(t, like, self.num_timesteps)
        key = (like.device, like.dtype)
        if key not in self._noise_cache:
            self._noise_cache[key] = self.noise_levels.to(device=like.device, dtype=like.dtype)
        return self._noise_cache[key][t].view((-1,) + (1,) * (like.ndim - 1))

    def draw_noise(self, like: Tensor, generator: torch.Generator | None) -> Tensor | None:
        """Standard normal noise ``z`` shaped like ``like`` (``None`` if the degradation has none)."""
        if not self.noisy:
            return None
        return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)

    def add_noise(self, x: Tensor, t: Tensor | int, noise: Tensor | None) -> Tensor:
        """``x + noise_t * noise`` (``x`` itself when ``noise`` is ``None``): the end of a noisy
        :meth:`degrade`."""
        if noise is None:
            return x
        return x + self.noise_at(t, x) * noise

    def join_noise(self, own: Tensor | None, noise: Tensor) -> Tensor:
        """The source holding the own source ``own`` and the noise ``noise``
        (:func:`~colddiff.degradations.noise.join_noise`)."""
        return join_noise(own, noise)

    def split_noise(self, source: Tensor | None, like: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """``(own, noise)`` of a source: the inverse of :meth:`join_noise` (an own source given
        alone, without noise, comes back as ``(own, None)``;
        see :func:`~colddiff.degradations.noise.split_noise`)."""
        return split_noise(source, like, has_own=self.own_source, noisy=self.noisy)

    def renoise(self, x_t: Tensor, t: Tensor | int, x0: Tensor, source: Tensor | None,
                noise: Tensor | None = None) -> Tensor:
        """``source`` with its noise replaced: by ``noise`` if given, else by the noise that turns
        ``x0`` into ``x_t`` at step ``t`` given the own source, ``(x_t - D(x0, t)) / noise_t``
        (0 where ``noise_t = 0``). This is how Bansal's hot sampler re-estimates the noise."""
        own = self.split_noise(source, x_t)[0]
        if noise is None:
            level = self.noise_at(t, x_t)
            residual = x_t - self.degrade(x0, t, own)
            noise = torch.where(level > 0, residual / level.clamp(min=torch.finfo(level.dtype).tiny), 0.0)
        return self.join_noise(own, noise)

    def corrupt(self, x0: Tensor, t: Tensor | int, source: Tensor | None = None) -> Tensor:
        """``C_t x0``, the corruption of a :attr:`linear` degradation without its noise (plus the
        term of its own source, kept fixed: ``source``, alone or with the noise, which is left
        out). Here: :meth:`degrade` with the own source only.

        Raises:
            ValueError: If the degradation is not a linear corruption.
        """
        if not self.linear:
            raise ValueError(f"{type(self).__name__} is not a linear corruption x_t = C_t x0 + s_t z "
                             "(Degradation.linear is False)")
        return self.degrade(x0, t, self.split_noise(source, x0)[0])

    @property
    def corruption_noise(self) -> Tensor:
        """``s_t`` of a :attr:`linear` degradation ``x_t = C_t x_0 + s_t z``, ``(T + 1,)`` float64:
        here the noise levels (:attr:`noise_levels`)."""
        return self.noise_levels

    def prior(self, n: int, *, generator: torch.Generator | None = None,
              device: torch.device | str | None = None) -> Tensor:
        """``n`` starting points ``x_T`` for unconditional sampling, drawn from ``generator``
        only, on :func:`~colddiff.degradations.images.prior_device` ``(device, generator)``.

        Raises:
            PriorUnavailableError: If the degradation needs more to produce a start (the base
                class always raises); the message says what.
        """
        raise PriorUnavailableError(
            f"{type(self).__name__} has no prior for unconditional sampling; start the sampler "
            "from degraded data instead (degrade(x0, num_timesteps, source))"
        )

    @property
    def recovers_source(self) -> bool:
        """Whether :meth:`source_from_x0` is implemented, so that a sampler can re-estimate the
        source from a predicted clean image (every :attr:`invertible` degradation can, and every
        noisy one whose only source is its noise)."""
        return self.invertible or (self.noisy and not self.own_source)

    @property
    def source_is_given(self) -> bool:
        """Whether a restorer is given each degraded image's source with it: side information
        such as inpainting's mask centres. False where there is no source, or where the source is
        what restoration must undo (the noise, a mixed-in image): its start stands in for it
        (:attr:`start_is_source`) or a sampler re-estimates it (:attr:`recovers_source`)."""
        return self.has_source and not (self.start_is_source or self.recovers_source)

    @property
    def prior_fitted(self) -> bool:
        """Whether :meth:`prior` is ready (``False`` until :meth:`fit_prior` for a learned prior)."""
        return True

    def fit_prior(self, images: ImageSource) -> Degradation:
        """Learn the start for :meth:`prior` from clean training images (nothing by default).

        colddiff calls it with the training images before sampling whenever :attr:`prior_fitted`
        is ``False``. Returns ``self``.
        """
        return self

    def x0_from_source(self, x_t: Tensor, t: Tensor | int, source: Tensor) -> Tensor:
        """The clean image that ``source`` turns into ``x_t`` at step ``t``."""
        raise NotImplementedError(
            f"{type(self).__name__} cannot recover the clean image from its source; "
            "use predict='x0'"
        )

    def source_from_x0(self, x_t: Tensor, t: Tensor | int, x0: Tensor) -> Tensor:
        """The source that turns ``x0`` into ``x_t`` at step ``t`` (``t >= 1``): here the noise
        of a noisy degradation without a source of its own (:meth:`renoise`).

        Raises:
            NotImplementedError: If the degradation cannot recover its source.
        """
        if self.noisy and not self.own_source:
            return self.renoise(x_t, t, x0, None)
        raise NotImplementedError(
            f"{type(self).__name__} cannot recover its source from the clean image"
        )

    def noise_repr(self) -> str:
        """``", noise=..."`` for a noisy degradation's ``repr``, else ``""``."""
        return f", noise={self.noise!r}" if self.noisy else ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_timesteps={self.num_timesteps}{self.noise_repr()})"


def check_timesteps(t: Tensor | int, x: Tensor, num_timesteps: int) -> Tensor:
    """Validate ``t`` against the batch ``x`` and return it as a ``(B,)`` int64 tensor on ``x``'s device.

    A Python int is broadcast to the batch. The range check runs only for CPU tensors, so that it
    never forces a host-device synchronisation; out-of-range steps on an accelerator fail there.

    Raises:
        ValueError: If ``t`` is not an integer, has the wrong shape, or lies outside
            ``[0, num_timesteps]``.
    """
    if isinstance(t, int) and not isinstance(t, bool):
        if not 0 <= t <= num_timesteps:
            raise ValueError(f"t must lie in [0, {num_timesteps}], got {t}")
        return torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
    if not isinstance(t, Tensor) or t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
        raise ValueError(f"t must be an integer tensor of shape (B,) or an int, got {t!r:.80}")
    if t.shape != (x.shape[0],):
        raise ValueError(f"t must have shape ({x.shape[0]},) to match the batch, got {tuple(t.shape)}")
    if t.device.type == "cpu" and t.numel() and (int(t.min()) < 0 or int(t.max()) > num_timesteps):
        raise ValueError(f"t must lie in [0, {num_timesteps}], "
                         f"got values from {int(t.min())} to {int(t.max())}")
    return t.to(device=x.device, dtype=torch.long)


def check_image_shape(image_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """``image_shape`` as a ``(C, H, W)`` tuple of positive ints.

    Raises:
        ValueError: If it is not three positive integers.
    """
    shape = tuple(image_shape) if isinstance(image_shape, (tuple, list)) else ()
    if len(shape) != 3 or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
        raise ValueError(f"image_shape must be three positive ints (C, H, W), got {image_shape!r}")
    return shape


def check_positive(name: str, value: object) -> float:
    """``value`` as a float, if it is a finite number > 0.

    Raises:
        ValueError: Naming ``name`` and what it got.
    """
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or value <= 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_images(name: str, x: Tensor) -> None:
    """Check that ``x`` is a floating-point ``(B, C, H, W)`` batch.

    Raises:
        ValueError: Naming ``name`` and what it got.
    """
    if not isinstance(x, Tensor) or x.ndim != 4 or not x.is_floating_point():
        raise ValueError(
            f"{name} must be a floating-point tensor of shape (B, C, H, W), got "
            f"{type(x).__name__}{tuple(x.shape) if isinstance(x, Tensor) else ''}"
        )
