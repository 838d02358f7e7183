"""Mixing a source into the image: :class:`MixingDegradation` (the DDPM forward process with any
source) and cold diffusion by mixing in other images (the reference study's Fashion-MNIST
degradation)."""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch import Tensor

from colddiff import data
from colddiff.degradations.base import (
    Degradation,
    PriorUnavailableError,
    check_image_shape,
    check_images,
    check_timesteps,
)
from colddiff.degradations.images import ImageSource, LazyImages, prior_device, random_rows
from colddiff.degradations.noise import NoiseOption
from colddiff.degradations.registry import register
from colddiff.schedules import Schedule

__all__ = ["DataMixing", "FashionMNISTMixing", "ImageMixing", "MixingDegradation"]


class MixingDegradation(Degradation):
    """Mixes a source into the image: ``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) s``.

    This is the DDPM forward process (Ho et al. 2020, eq. 4) with the Gaussian noise ``eps``
    generalised to any source ``s``. Subclasses say where the source comes from.

    **With noise** (``noise > 0``: cold mixing made "hot", as Bansal et al. 2022 did for blur in
    section 5.2) every degraded image also carries ``noise_t z``, ``z ~ N(0, I)``::

        x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) s + noise_t z

    The source becomes the pair ``(s, z)``, drawn together by :meth:`sample_source` (one tensor,
    :meth:`~colddiff.Degradation.join_noise`); :meth:`prior` adds ``noise_T z`` to its image. The
    clean image is then no longer fixed by ``s`` alone, so the network predicts it
    (``predict="x0"``; :attr:`invertible` is ``False``). The cold sampler handles the two parts
    as follows:

    * ``source="fixed"``: ``s`` is the start ``x_T`` (which now holds ``noise_T z`` too) or the
      one given, and ``z`` is re-estimated at every step from the prediction,
      ``z = (x_t - sqrt(alpha_bar_t) x0_hat - sqrt(1 - alpha_bar_t) s) / noise_t``
      (:meth:`~colddiff.Degradation.renoise`), as Bansal's hot sampler does;
    * ``source="estimate"``: both are re-estimated jointly from the residual
      ``r = x_t - sqrt(alpha_bar_t) x0_hat = b s + n z`` (``b = sqrt(1 - alpha_bar_t)``,
      ``n = noise_t``) as its least-norm split ``s = b r / (b^2 + n^2)``, ``z = n r / (b^2 + n^2)``
      (:meth:`source_from_x0`): the step then moves the residual by
      ``(b_s b_t + n_s n_t) / (b_t^2 + n_t^2)``, which is ``b_s / b_t`` without noise (the plain
      re-estimated source) and tends to 1 where the noise dominates (the noise is kept, as for
      noisy blur).

    Args:
        schedule: The variance schedule giving ``alpha_bar_t`` (default:
            ``Schedule.preset("default")``, the reference study's).
        image_shape: ``(C, H, W)`` of the images, or ``None`` for any.
        noise: Added noise, a level or ``T + 1`` levels (default 0: none); see
            :class:`~colddiff.Degradation`.
    """

    has_source = True
    invertible = True
    linear = True  # affine in x0 given the mixed-in image

    schedule: Schedule

    weighs_by_schedule = True

    def __init__(self, schedule: Schedule | None = None, *,
                 image_shape: tuple[int, int, int] | None = None, noise: NoiseOption = 0.0) -> None:
        super().__init__(schedule if schedule is not None else Schedule.preset("default"),
                         image_shape=image_shape, noise=noise)
        if self.noisy:  # the mixed-in image alone no longer gives the clean image
            self.invertible = False
        alpha_bar = self.schedule.alpha_bar
        # Row 0: sqrt(alpha_bar_t), the weight of x0; row 1: sqrt(1 - alpha_bar_t), of the source.
        self._weights = torch.stack([alpha_bar.sqrt(), (1 - alpha_bar).sqrt()])
        self._weights_cache: dict[tuple[torch.device, torch.dtype], Tensor] = {}

    @property
    def recovers_source(self) -> bool:
        """Whether :meth:`source_from_x0` works: for the source alone (:attr:`invertible`), or
        jointly with the noise."""
        return self.invertible or self.noisy

    def split_noise(self, source: Tensor | None, like: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """``(image, noise)`` of a source, the image of a pair shaped like ``like`` (see
        :meth:`~colddiff.Degradation.split_noise`)."""
        image, noise = super().split_noise(source, like)
        if image is not None and noise is not None and image.numel() == like.numel():
            image = image.reshape(like.shape)
        return image, noise

    def weights(self, t: Tensor | int, like: Tensor) -> tuple[Tensor, Tensor]:
        """``(sqrt(alpha_bar_t), sqrt(1 - alpha_bar_t))`` shaped ``(B, 1, 1, 1)`` like ``like``."""
        t = check_timesteps(t, like, self.num_timesteps)
        key = (like.device, like.dtype)
        table = self._weights_cache.get(key)
        if table is None:
            table = self._weights_cache[key] = self._weights.to(device=like.device, dtype=like.dtype)
        shape = (-1,) + (1,) * (like.ndim - 1)
        return table[0, t].view(shape), table[1, t].view(shape)

    def degrade(self, x0: Tensor, t: Tensor | int, source: Tensor | None = None) -> Tensor:
        """``sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) source`` (plus ``noise_t z`` when the
        source is the pair of a noisy mixing).

        Raises:
            ValueError: If ``source`` is missing or its image's shape differs from ``x0``'s.
        """
        check_images("x0", x0)
        if source is None:
            raise ValueError(
                f"source is required by {type(self).__name__}.degrade; draw one with sample_source(x0)"
            )
        mixed_in, noise = self.split_noise(source, x0)
        assert mixed_in is not None
        if mixed_in.shape != x0.shape:
            raise ValueError(f"source must have the shape of x0 {tuple(x0.shape)}, got {tuple(source.shape)}")
        signal, mix = self.weights(t, x0)
        return self.add_noise(signal * x0 + mix * mixed_in, t, noise)

    def x0_from_source(self, x_t: Tensor, t: Tensor | int, source: Tensor) -> Tensor:
        """``(x_t - sqrt(1 - alpha_bar_t) source) / sqrt(alpha_bar_t)``."""
        signal, mix = self.weights(t, x_t)
        return (x_t - mix * source) / signal

    def source_from_x0(self, x_t: Tensor, t: Tensor | int, x0: Tensor) -> Tensor:
        """``(x_t - sqrt(alpha_bar_t) x0) / sqrt(1 - alpha_bar_t)``; with noise, the pair
        ``(b r, n r) / (b^2 + n^2)`` of the residual ``r = x_t - sqrt(alpha_bar_t) x0`` (``b =
        sqrt(1 - alpha_bar_t)``, ``n = noise_t``), the least-norm ``(s, z)`` with ``b s + n z = r``.

        At ``t = 0`` any source fits; zero is returned there.
        """
        signal, mix = self.weights(t, x_t)
        if self.noisy:
            level = self.noise_at(t, x_t)
            total = (mix**2 + level**2).clamp(min=torch.finfo(x_t.dtype).tiny)
            residual = x_t - signal * x0
            return self.join_noise((mix / total) * residual, (level / total) * residual)
        safe_mix = mix.clamp(min=torch.finfo(x_t.dtype).tiny)
        return torch.where(mix > 0, (x_t - signal * x0) / safe_mix, 0.0)

    def velocity(self, x0: Tensor, t: Tensor | int, source: Tensor) -> Tensor:
        """``v = sqrt(alpha_bar_t) source - sqrt(1 - alpha_bar_t) x0`` (Salimans & Ho 2022, eq. 10)."""
        signal, mix = self.weights(t, x0)
        return signal * source - mix * x0

    def x0_from_velocity(self, x_t: Tensor, t: Tensor | int, velocity: Tensor) -> Tensor:
        """``x0 = sqrt(alpha_bar_t) x_t - sqrt(1 - alpha_bar_t) v`` (exact for this mixing, as
        ``alpha_bar_t + (1 - alpha_bar_t) = 1``)."""
        signal, mix = self.weights(t, x_t)
        return signal * x_t - mix * velocity

    def __repr__(self) -> str:
        return f"{type(self).__name__}(schedule={self.schedule!r}{self.noise_repr()})"


class ImageMixing(MixingDegradation):
    """``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) y`` with ``y`` a random image.

    The source ``y`` of each sample is drawn uniformly from ``images``; the prior for
    unconditional sampling is a random image of ``prior_images`` (the reference study started
    from a Fashion-MNIST test image itself, since ``alpha_bar_T`` is about 4e-5).

    Args:
        schedule: The mixing schedule.
        images: Source images for training: a ``(N, C, H, W)`` tensor, a dataset of images or
            ``(image, label)`` pairs, or a zero-argument function returning either (called on
            first use, so that nothing is loaded until it is needed).
        prior_images: Images to start sampling from (default: ``images``), in the same forms.
        image_shape: ``(C, H, W)`` of the images, or ``None`` for any.
        noise: Added noise (see :class:`MixingDegradation`); default 0: none.
    """

    def __init__(self, schedule: Schedule | None,
                 images: ImageSource | Callable[[], ImageSource],
                 prior_images: ImageSource | Callable[[], ImageSource] | None = None, *,
                 image_shape: tuple[int, int, int] | None = None, noise: NoiseOption = 0.0) -> None:
        super().__init__(schedule, image_shape=image_shape, noise=noise)
        self._images = LazyImages("images", images)
        self._prior_images = (LazyImages("prior_images", prior_images)
                              if prior_images is not None else self._images)

    def sample_source(self, x0: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """One random image per sample of ``x0`` (and, with noise, its pair with the noise).

        Raises:
            ValueError: If the source images' ``(C, H, W)`` differs from ``x0``'s.
        """
        check_images("x0", x0)
        images = self._images.on(x0.device)
        if images.shape[1:] != x0.shape[1:]:
            raise ValueError(
                f"x0 has images of shape {tuple(x0.shape[1:])} but the mixing images are "
                f"{tuple(images.shape[1:])}"
            )
        mixed_in = random_rows(images, x0.shape[0], generator).to(x0.dtype)
        noise = self.draw_noise(x0, generator)
        return mixed_in if noise is None else self.join_noise(mixed_in, noise)

    def prior(self, n: int, *, generator: torch.Generator | None = None,
              device: torch.device | str | None = None) -> Tensor:
        """``n`` random prior images, the start ``x_T`` of Bansal's Algorithm 2 (plus the noise
        ``noise_T z`` of a noisy mixing)."""
        try:
            images = self._prior_images.on(prior_device(device, generator))
        except data.DatasetNotFoundError as error:
            raise PriorUnavailableError(
                f"{type(self).__name__}.prior needs its prior images: {error}"
            ) from error
        start = random_rows(images, n, generator)
        noise = self.draw_noise(start, generator)
        return self.add_noise(start, self.num_timesteps, noise)


@register("mixing")
class DataMixing(ImageMixing):
    """Training images mixed with the images of another dataset: Bansal et al.'s
    "animorphosis" (section 4.4), with any source :func:`colddiff.data.load` reads.

    The source images are converted and resized to the training images' ``image_shape`` and
    mapped to their ``value_range``, and read on first use. A named dataset gives the sources
    from its training split and the prior from its test split; a folder gives both from its
    images.

    Args:
        schedule: The mixing schedule (default: ``Schedule.preset("default")``).
        source: A dataset name (``"fashion_mnist"``, ``"mnist"``, ``"cifar10"``) or a folder
            of images.
        root: For a named dataset: see :func:`colddiff.data.data_root`.
        download: For a named dataset: download it when missing.
        image_shape: ``(C, H, W)`` of the training images (square).
        value_range: The training images' ``(low, high)``.
        noise: Added noise (see :class:`MixingDegradation`); default 0: none.
    """

    def __init__(self, schedule: Schedule | None = None, source: str | os.PathLike[str] = "fashion_mnist",
                 root: str | os.PathLike[str] | None = None, download: bool = True, *,
                 image_shape: tuple[int, int, int] = (1, 28, 28),
                 value_range: tuple[float, float] = (0.0, 1.0), noise: NoiseOption = 0.0) -> None:
        channels, height, width = check_image_shape(image_shape)
        if height != width:
            raise ValueError(f"image_shape must be square for {type(self).__name__}, got {image_shape!r}")
        self.source = source
        low, high = value_range

        def split(train: bool) -> Callable[[], Tensor]:
            return lambda: data.load(source, train=train, root=root, download=download,
                                     channels=channels, image_size=height).images * (high - low) + low

        named = isinstance(source, str) and source in data.DATASETS
        super().__init__(schedule, images=split(True), prior_images=split(False) if named else None,
                         image_shape=image_shape, noise=noise)


@register("fashion_mnist")
class FashionMNISTMixing(DataMixing):
    """The reference study's cold degradation: MNIST digits mixed with Fashion-MNIST images.

    Sources come from the Fashion-MNIST training split and the prior from its test split, as in
    the report (section 3): :class:`DataMixing` with ``source="fashion_mnist"``.

    Args:
        schedule: The mixing schedule (default: ``Schedule.preset("default")``).
        root: Folder holding ``FashionMNIST/raw``; see :func:`colddiff.data.data_root`.
        download: Download Fashion-MNIST when it is missing.
        image_shape: ``(C, H, W)`` of the training images; Fashion-MNIST's own are ``(1, 28, 28)``,
            others get them converted (grey to RGB) and resized.
        value_range: The training images' ``(low, high)``; the clothes are mapped from ``[0, 1]``
            to it.
        noise: Added noise (see :class:`MixingDegradation`); default 0: none.
    """

    def __init__(self, schedule: Schedule | None = None,
                 root: str | os.PathLike[str] | None = None, download: bool = True, *,
                 image_shape: tuple[int, int, int] = (1, 28, 28),
                 value_range: tuple[float, float] = (0.0, 1.0), noise: NoiseOption = 0.0) -> None:
        super().__init__(schedule, "fashion_mnist", root, download, image_shape=image_shape,
                         value_range=value_range, noise=noise)
