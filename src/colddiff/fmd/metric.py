"""The streaming Fréchet distance: :class:`FMD` keeps float64 feature sums of the real and the
generated images, :func:`distance` compares two image sets with it, :func:`check_images`
validates what they are given."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from colddiff.fmd.classifier import FEATURE_DIM, MNISTClassifier, load_classifier
from colddiff.fmd.frechet import FeatureStatistics, frechet_distance_from_features
from colddiff.precision import autocast
from colddiff.runtime import Precision, resolve_precision

__all__ = ["FMD", "check_images", "distance"]


def check_images(images: Tensor, name: str = "images", mnist: bool = True) -> Tensor:
    """Validate a batch: ``(N, 1, 28, 28)`` for the MNIST classifier (any ``(N, C, H, W)`` when
    ``mnist`` is false), ``N >= 2``, finite, in ``[0, 1]``.

    Raises:
        ValueError: Naming ``name`` and what was wrong.
    """
    wrong_shape = mnist and isinstance(images, Tensor) and tuple(images.shape[1:]) != (1, 28, 28)
    if not isinstance(images, Tensor) or images.ndim != 4 or wrong_shape:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        if mnist and isinstance(images, Tensor) and images.ndim == 4:
            raise ValueError(
                f"{name} must have shape (N, 1, 28, 28) for the MNIST classifier, got {shape}; to "
                "compare other images use fmd.distance(samples, reference, features=...) with any "
                "nn.Module mapping images to vectors, such as an Inception network (see the FMD guide)")
        raise ValueError(f"{name} must have shape {'(N, 1, 28, 28)' if mnist else '(N, C, H, W)'}, "
                         f"got {shape}")
    if images.shape[0] < 2:
        raise ValueError(f"{name} must hold at least 2 images, got {images.shape[0]}")
    images = images.float()
    if not torch.isfinite(images).all():
        raise ValueError(f"{name} must be finite")
    low, high = images.min().item(), images.max().item()
    if low < 0 or high > 1:
        raise ValueError(f"{name} must lie in [0, 1] (got [{low:.3g}, {high:.3g}]); clamp them or "
                         "undo any normalisation first")
    return images


class FMD:
    """The Fréchet MNIST Distance between streamed real and generated images, or the Fréchet
    distance under any other feature extractor (``features``: FID with an Inception network).

    Memory stays flat in the number of images: only float64 sums are kept (see
    :class:`~colddiff.fmd.frechet.FeatureStatistics`). Under ``torch.distributed`` each process
    updates with its share and :meth:`compute` sums the statistics of all processes (unless
    ``across_processes`` is off: :func:`score` runs on one process and must not wait for others).

    Args:
        classifier: The feature extractor (default: the shipped ``version``).
        version: Shipped weights to load when ``classifier`` is not given.
        device: Where features are computed.
        batch_size: Images per forward pass.
        across_processes: Sum the statistics of all processes in :meth:`compute`.
        features: Any feature extractor instead of the MNIST classifier: an ``nn.Module`` (or
            callable) mapping ``(N, C, H, W)`` images in ``[0, 1]`` to ``(N, d)`` vectors (other
            shapes are flattened; a list or tuple output gives its first element). Images of
            any shape are then accepted.
        precision: ``"fp32"``, ``"bf16"``, ``"fp16"`` or ``"auto"``: the arithmetic of the
            feature extractor's forward pass (:mod:`colddiff.precision`; ``"auto"`` resolved for
            ``device``); the statistics stay float64.

    Attributes:
        real: The statistics of the real (reference) side.
        fake: The statistics of the generated side.

    Example:
        >>> metric = FMD()  # doctest: +SKIP
        >>> metric.update(real_images, real=True); metric.update(samples, real=False)  # doctest: +SKIP
        >>> metric.compute()  # doctest: +SKIP
    """

    def __init__(self, classifier: MNISTClassifier | None = None, version: str = "mnist-v1",
                 device: str | torch.device = "cpu", batch_size: int = 1000, *,
                 across_processes: bool = True, features: Callable[[Tensor], Any] | None = None,
                 precision: Precision = "fp32") -> None:
        self.device = torch.device(device)
        self.precision = resolve_precision(precision, self.device)
        if features is not None and classifier is not None:
            raise ValueError("give classifier (an MNISTClassifier) or features (any extractor), not both")
        self.extractor = features
        if isinstance(features, torch.nn.Module):
            features.to(self.device).eval()
        self.classifier = (None if features is not None else (
            classifier if classifier is not None else load_classifier(version, self.device)
        ).to(self.device).eval())
        self.batch_size = batch_size
        self.across_processes = across_processes
        self.reset()

    def reset(self, real: FeatureStatistics | None = None) -> None:
        """Forget all images seen; with ``real``, start the real side from a copy of those
        statistics (a reference set's, computed once and cached). Under ``torch.distributed``
        with ``across_processes`` on, give them on one process only, or they count once per
        process."""
        width = FEATURE_DIM if self.extractor is None else None  # a custom one: its first output's
        self.real = (FeatureStatistics.from_state_dict({**real.state_dict(), "total": real.total.clone(),
                                                        "outer": real.outer.clone()})
                     if real is not None else FeatureStatistics(width) if width else None)
        self.fake = FeatureStatistics(width) if width else None

    @torch.no_grad()
    def features(self, images: Tensor) -> Tensor:
        """Features ``(N, d)`` of validated images, in batches (``d = 1024`` for the classifier)."""
        images = check_images(images, mnist=self.extractor is None)
        parts = []
        for i in range(0, len(images), self.batch_size):
            batch = images[i:i + self.batch_size].to(self.device)
            with autocast(self.device, self.precision):
                output = (self.classifier.features(batch) if self.classifier is not None
                          else self.extractor(batch))  # type: ignore[misc]
            if self.classifier is not None:
                parts.append(output.float().cpu())
            else:
                output = output[0] if isinstance(output, (list, tuple)) else output
                parts.append(torch.as_tensor(output).flatten(1).to("cpu", torch.float64))
        return torch.cat(parts)

    def update(self, images: Tensor, real: bool) -> None:
        """Add images to the real (reference) or generated side."""
        features = self.features(images)
        side = self.real if real else self.fake
        if side is None:
            side = FeatureStatistics(features.shape[1])
            if real:
                self.real = side
            else:
                self.fake = side
        side.update(features)

    def compute(self) -> float:
        """The FMD between everything added so far (summed across processes unless
        ``across_processes`` is off)."""
        if self.real is None or self.fake is None:
            raise ValueError("compute() needs at least 2 samples on each side; update() both first")
        if not self.across_processes:
            return frechet_distance_from_features(self.real, self.fake)
        return frechet_distance_from_features(_reduced(self.real), _reduced(self.fake))


def distance(samples: Tensor, reference: Tensor, *, features: Callable[[Tensor], Any] | None = None,
             device: str | torch.device = "cpu", batch_size: int = 1000,
             precision: Precision = "fp32") -> float:
    """The Fréchet distance between two image sets under a feature extractor, on this process.

    With the default (the shipped MNIST classifier) this is the FMD of ``(N, 1, 28, 28)`` digits;
    with ``features`` (any module mapping images to vectors, see :class:`FMD`) it compares images
    of any shape: FID with an Inception network. The protocols and baselines of :func:`score`
    are MNIST's; this is the bare distance.

    Args:
        samples: Generated images ``(N, C, H, W)`` in ``[0, 1]``, ``N >= 2``.
        reference: Real images, likewise.
        features: The feature extractor (default: the MNIST classifier).
        device: Where features are computed.
        batch_size: Images per forward pass.
        precision: The extractor's arithmetic (see :class:`FMD`).

    Raises:
        ValueError: For bad images (non-MNIST shapes without ``features`` say what to pass).
    """
    metric = FMD(features=features, device=device, batch_size=batch_size, across_processes=False,
                 precision=precision)
    metric.update(reference, real=True)
    metric.update(samples, real=False)
    return metric.compute()


def _reduced(stats: FeatureStatistics) -> FeatureStatistics:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return stats
    copy = FeatureStatistics.from_state_dict({**stats.state_dict(), "total": stats.total.clone(),
                                              "outer": stats.outer.clone()})
    copy.reduce_across_processes()
    return copy
