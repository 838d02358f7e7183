"""Scores of class-conditional samples: whether the shipped classifier sees the class each
sample was asked for, and the Fréchet distance of each class's samples to the real digits of
that class (:func:`class_scores`)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from colddiff import data
from colddiff.fmd.frechet import frechet_distance_from_features
from colddiff.fmd.metric import FMD, check_images
from colddiff.fmd.protocols import FULL_BASELINE_DRAWS, _reference
from colddiff.runtime import Precision

__all__ = ["ClassScores", "class_scores", "describe_classes"]

#: The classifier's classes: MNIST's digits, in label order.
DIGITS = data.CLASSES["mnist"]


@dataclass
class ClassScores:
    """The scores of :func:`class_scores`.

    Attributes:
        accuracy: The share of samples the classifier puts in the class they were asked for.
        n_samples: The samples scored (those of the null class left out).
        per_class: For each class asked for (by name): ``n`` samples, their ``accuracy``, their
            Fréchet distance ``fd`` to the MNIST test digits of that class (their statistics
            cached as :func:`~colddiff.fmd.score`'s are), ``train_baseline``
            (that of ``n`` real training digits of the class, mean of 3 draws) and ``fd_ratio``
            (``fd / train_baseline``; 1.0 is as good as real digits). A class with fewer than 2
            samples has no distance (``None``).
    """

    accuracy: float
    n_samples: int
    per_class: dict[str, dict[str, Any]]

    @property
    def mean_fd_ratio(self) -> float | None:
        """The mean of the classes' ``fd_ratio`` (``None`` if no class has one)."""
        ratios = [c["fd_ratio"] for c in self.per_class.values() if c["fd_ratio"] is not None]
        return statistics.fmean(ratios) if ratios else None

    def to_dict(self) -> dict[str, Any]:
        """The scores as JSON-ready plain data."""
        return {**asdict(self), "mean_fd_ratio": self.mean_fd_ratio}


def class_scores(samples: Tensor, labels: Tensor, classes: Sequence[str] | None = None, *,
                 device: str | torch.device = "cpu", seed: int = 0,
                 precision: Precision = "fp32") -> ClassScores:
    """Score samples generated for the digit classes ``labels`` with the shipped classifier.

    Args:
        samples: Generated digits ``(N, 1, 28, 28)`` in ``[0, 1]``.
        labels: The class each was asked for ``(N,)``; the null class (10) is left out.
        classes: The model's label set (default: MNIST's digits, which it must be).
        device: Where features are computed.
        seed: Seed of the training-digit draws of the baselines.
        precision: The classifier's arithmetic.

    Raises:
        ValueError: If the samples are not digits to score, ``labels`` is not one class index per
            sample, or ``classes`` are not MNIST's digits.
    """
    samples = check_images(samples, "samples")
    if classes is not None and tuple(classes) != DIGITS:
        raise ValueError(f"per-class scores need samples of MNIST's digit classes {list(DIGITS)}, the "
                         f"classifier's; these are of {list(classes)}")
    if not isinstance(labels, Tensor) or labels.is_floating_point() or labels.shape != (len(samples),):
        got = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(f"labels must be one class index per sample, shape ({len(samples)},), got {got}")
    asked = labels.cpu().long() < len(DIGITS)  # the null class is not a digit
    samples, labels = samples[asked], labels.cpu().long()[asked]
    if len(samples) == 0:
        raise ValueError("no sample was asked for a digit class (all are of the null class)")
    metric = FMD(device=device, across_processes=False, precision=precision)
    features = metric.features(samples)
    assert metric.classifier is not None
    with torch.no_grad():  # the classifier's head on its features: its prediction
        predicted = metric.classifier.head(features.to(metric.device)).argmax(1).cpu()
    generator = torch.Generator().manual_seed(seed)
    real = data.mnist(train=False), data.mnist(train=True)
    per_class = {DIGITS[digit]: _class_row(metric, features[labels == digit], predicted[labels == digit],
                                           digit, real, generator)
                 for digit in sorted(set(labels.tolist()))}
    return ClassScores(float((predicted == labels).float().mean()), len(samples), per_class)


def _class_row(metric: FMD, features: Tensor, predicted: Tensor, digit: int,
               real: tuple[data.ImageDataset, data.ImageDataset],
               generator: torch.Generator) -> dict[str, Any]:
    """The scores of the samples of one class, from their features and predicted classes, against
    the ``(test, train)`` digits of that class."""
    n = len(features)
    row: dict[str, Any] = {"n": n, "accuracy": float((predicted == digit).float().mean()),
                           "fd": None, "train_baseline": None, "fd_ratio": None}
    if n < 2:
        return row
    test, train = real
    version = getattr(metric.classifier, "version", "custom")
    reference = _reference(metric, version, "test", f"class-{digit}", test.images[test.labels == digit])
    pool = train.images[train.labels == digit]
    row["fd"] = frechet_distance_from_features(features, reference)
    draws = [pool[torch.randperm(len(pool), generator=generator)[:n]] for _ in range(FULL_BASELINE_DRAWS)]
    row["train_baseline"] = statistics.fmean(
        frechet_distance_from_features(metric.features(draw), reference) for draw in draws)
    row["fd_ratio"] = row["fd"] / row["train_baseline"] if row["train_baseline"] > 0 else float("inf")
    return row


def describe_classes(scores: ClassScores) -> str:
    """A few human-readable lines summarising ``scores``."""
    lines = [f"classifier accuracy against the asked classes: {scores.accuracy:.1%} of {scores.n_samples}"]
    if scores.mean_fd_ratio is not None:
        lines.append("  per-class Frechet distance / training-digit baseline: mean "
                     f"{scores.mean_fd_ratio:.2f}")
    for name, row in scores.per_class.items():
        distance = (f", FD {row['fd']:.2f} (baseline {row['train_baseline']:.2f}, "
                    f"ratio {row['fd_ratio']:.2f})" if row["fd"] is not None else "")
        lines.append(f"  class {name}: {row['n']} samples, accuracy {row['accuracy']:.1%}{distance}")
    return "\n".join(lines)
