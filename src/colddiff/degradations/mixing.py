"""Cold diffusion by mixing in other images (the reference study's Fashion-MNIST degradation)."""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch import Tensor

from colddiff import data
from colddiff.degradations.base import (
    ImageSource,
    LazyImages,
    MixingDegradation,
    PriorUnavailableError,
    check_image_shape,
    check_images,
    random_rows,
)
from colddiff.degradations.registry import register
from colddiff.schedules import Schedule

__all__ = ["DataMixing", "FashionMNISTMixing", "ImageMixing"]


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
    """

    def __init__(self, schedule: Schedule | None,
                 images: ImageSource | Callable[[], ImageSource],
                 prior_images: ImageSource | Callable[[], ImageSource] | None = None, *,
                 image_shape: tuple[int, int, int] | None = None) -> None:
        super().__init__(schedule, image_shape=image_shape)
        self._images = LazyImages("images", images)
        self._prior_images = (LazyImages("prior_images", prior_images)
                              if prior_images is not None else self._images)

    def sample_source(self, x0: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """One random image per sample of ``x0``.

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
        return random_rows(images, x0.shape[0], generator).to(x0.dtype)

    def prior(self, n: int, *, generator: torch.Generator | None = None,
              device: torch.device | str | None = None) -> Tensor:
        """``n`` random prior images, the start ``x_T`` of Bansal's Algorithm 2."""
        if device is None:
            device = generator.device if generator is not None else "cpu"
        try:
            images = self._prior_images.on(torch.device(device))
        except data.DatasetNotFoundError as error:
            raise PriorUnavailableError(
                f"{type(self).__name__}.prior needs its prior images: {error}"
            ) from error
        return random_rows(images, n, generator)


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
    """

    def __init__(self, schedule: Schedule | None = None, source: str | os.PathLike[str] = "fashion_mnist",
                 root: str | os.PathLike[str] | None = None, download: bool = True, *,
                 image_shape: tuple[int, int, int] = (1, 28, 28),
                 value_range: tuple[float, float] = (0.0, 1.0)) -> None:
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
                         image_shape=image_shape)


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
    """

    def __init__(self, schedule: Schedule | None = None,
                 root: str | os.PathLike[str] | None = None, download: bool = True, *,
                 image_shape: tuple[int, int, int] = (1, 28, 28),
                 value_range: tuple[float, float] = (0.0, 1.0)) -> None:
        super().__init__(schedule, "fashion_mnist", root, download, image_shape=image_shape,
                         value_range=value_range)
