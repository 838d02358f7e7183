"""FMD with a protocol: :func:`score` rates generated digits against MNIST with the reference
study's protocol or the full one, with baselines, into an :class:`FMDResult`; reference
statistics are cached on disk (:func:`cache_dir`)."""

from __future__ import annotations

import contextlib
import os
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor
from tqdm.auto import tqdm

from colddiff import checkpoints, data
from colddiff.fmd.classifier import MNISTClassifier
from colddiff.fmd.frechet import FeatureStatistics
from colddiff.fmd.metric import FMD, check_images
from colddiff.precision import autocast
from colddiff.progress import progress_bar
from colddiff.runtime import Precision

__all__ = ["FMDResult", "Protocol", "cache_dir", "describe", "score", "test_reference"]

Protocol = Literal["report", "full"]

#: Sizes of the reference study's protocol (report section 2, figure 7).
REPORT_BATCH = 32
REPORT_REFERENCE = 512
REPORT_BASELINE_BATCHES = 15
#: Repetitions of each baseline draw under the full protocol.
FULL_BASELINE_DRAWS = 3


@dataclass
class FMDResult:
    """The scores of one :func:`score` call.

    Attributes:
        protocol: ``"report"`` or ``"full"``.
        version: The classifier weights used.
        n_samples: Samples scored.
        fmd: The FMD of the samples (report protocol: the mean over batches of 32).
        fmd_std: Its standard deviation over batches (report protocol; 0 for one batch).
        baseline_mean: FMD of real test images at the same sample size (mean over draws).
        baseline_std: Its standard deviation over draws.
        black_fmd: FMD of all-black images at the same sample size.
        normalized_fmd: ``(fmd - baseline_mean) / (black_fmd - baseline_mean)``: 0 is as good as
            real test images, 1 as bad as black images.
        train_baseline: FMD of real training images at the same size (full protocol); what a
            perfect model of the training data would score.
        fmd_ratio: ``fmd / train_baseline`` (full protocol): 1.0 means as good as real data.
        confidence: The classifier's mean top-1 probability on the samples.
        class_histogram: How many samples the classifier puts in each digit class.
        reference: What the samples were compared with.
    """

    protocol: str
    version: str
    n_samples: int
    fmd: float
    fmd_std: float
    baseline_mean: float
    baseline_std: float
    black_fmd: float
    normalized_fmd: float
    confidence: float
    class_histogram: list[int]
    reference: str
    train_baseline: float | None = None
    fmd_ratio: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready plain data."""
        return asdict(self)


def cache_dir() -> Path:
    """Where reference statistics are cached: ``$COLDDIFF_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/colddiff`` (default ``~/.cache/colddiff``), plus ``/fmd``."""
    base = os.environ.get("COLDDIFF_CACHE_DIR")
    if not base:
        base = str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "colddiff")
    return Path(base) / "fmd"


def _reference(metric: FMD, version: str, split: str, name: str, images: Tensor) -> FeatureStatistics:
    """Feature statistics of a named real image set, cached on disk by version, split and count."""
    arithmetic = "" if metric.precision == "fp32" else f"-{metric.precision}"
    path = cache_dir() / f"{version}-{split}-{name}-n{len(images)}{arithmetic}.pt"
    if path.is_file():
        try:
            return FeatureStatistics.from_state_dict(
                checkpoints.load(path, required=("count", "total", "outer")))
        except (checkpoints.CheckpointError, ValueError):
            pass  # a damaged cache entry is recomputed
    metric.reset()
    metric.update(images, real=True)
    stats = metric.real
    assert stats is not None
    with contextlib.suppress(OSError):  # a read-only cache only costs time
        checkpoints.save(stats.state_dict(), path)
    return stats


def test_reference(metric: FMD, test: Tensor | None = None) -> FeatureStatistics:
    """The full protocol's reference statistics: a fixed random half (5,000 images) of the MNIST
    test set ``test`` (read when not given), under ``metric``'s feature extractor (cached on disk,
    see :func:`cache_dir`)."""
    version = getattr(metric.classifier, "version", "custom")
    test = data.mnist(train=False).images if test is None else test
    halves = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))
    return _reference(metric, version, "test", "half-seed0", test[halves[:5000]])


def _distance(metric: FMD, reference: FeatureStatistics, images: Tensor, bar: tqdm[Any]) -> float:
    """The FMD of ``images`` against ``reference``, through the streaming metric (one step of
    ``bar``)."""
    metric.reset(real=reference)
    metric.update(images, real=False)
    distance = metric.compute()
    bar.update(1)
    return distance


def _spread(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def score(samples: Tensor, reference: str = "mnist-test", protocol: Protocol = "full", *,
          classifier: MNISTClassifier | None = None, version: str = "mnist-v1",
          device: str | torch.device = "cpu", seed: int = 0, precision: Precision = "fp32",
          progress: bool = False) -> FMDResult:
    """Score generated digits against MNIST with the report or the full protocol.

    ``protocol="report"`` reproduces the reference study: batches of 32 samples against the
    first 512 MNIST test images; the test-set baseline is the mean and std over 15 random batches
    of 32 other test images; the black baseline is 32 all-zero images. With more than 32 samples,
    each full batch of 32 is scored and ``fmd`` is their mean.

    ``protocol="full"`` scores all samples at once against a fixed random half of the test set
    (5,000 images), with baselines at the same sample size ``n``: other test images (from the
    other half; at most 5,000) and real training images, each the mean over 3 random draws.
    ``fmd_ratio = fmd / train_baseline`` is the headline: 1.0 is as good as real data. FMD, like
    FID, is biased upwards at small ``n``, so compare numbers at equal ``n`` only.

    Args:
        samples: Generated images ``(N, 1, 28, 28)`` in ``[0, 1]``, ``N >= 2``.
        reference: Only ``"mnist-test"`` for now.
        protocol: ``"report"`` or ``"full"``.
        classifier: A feature extractor (default: the shipped ``version``).
        version: Shipped weights to use.
        device: Where features are computed.
        seed: Seed of the random baseline draws (fixed for comparable numbers).
        precision: The classifier's arithmetic (see :class:`FMD`); the reference statistics are
            computed (and cached) in the same precision.
        progress: Show a bar over the protocol's feature passes on a terminal
            (:mod:`colddiff.progress`).

    Raises:
        ValueError: For bad samples, an unknown protocol or reference.
    """
    if protocol not in ("report", "full"):
        raise ValueError(f"protocol must be 'report' or 'full', got {protocol!r}")
    if reference != "mnist-test":
        raise ValueError(f"reference must be 'mnist-test', got {reference!r}")
    samples = check_images(samples, "samples")
    metric = FMD(classifier, version=version, device=device, across_processes=False, precision=precision)
    version = getattr(metric.classifier, "version", "custom")
    measure = _report_protocol if protocol == "report" else _full_protocol
    test = data.mnist(train=False).images
    with progress_bar(progress, None, f"FMD ({protocol} protocol)", unit="pass") as bar:
        scores = measure(metric, version, samples, test, torch.Generator().manual_seed(seed), bar)
    confidence, histogram = _classify(metric, samples)
    normalized = (scores.fmd - scores.baseline_mean) / (scores.black_fmd - scores.baseline_mean)
    return FMDResult(protocol=protocol, version=version, n_samples=len(samples), fmd=scores.fmd,
                     fmd_std=scores.fmd_std, baseline_mean=scores.baseline_mean,
                     baseline_std=scores.baseline_std, black_fmd=scores.black_fmd,
                     normalized_fmd=normalized,
                     confidence=confidence, class_histogram=histogram, reference=scores.reference,
                     train_baseline=scores.train_baseline, fmd_ratio=scores.fmd_ratio)


@dataclass(frozen=True)
class _Scores:
    """What a protocol measures (the fields of :class:`FMDResult` of the same names)."""

    fmd: float
    fmd_std: float
    baseline_mean: float
    baseline_std: float
    black_fmd: float
    reference: str
    train_baseline: float | None = None
    fmd_ratio: float | None = None


def _report_protocol(metric: FMD, version: str, samples: Tensor, test: Tensor,
                     generator: torch.Generator, bar: tqdm[Any]) -> _Scores:
    """The reference study's protocol: batches of 32 against the first 512 test images."""
    n = len(samples)
    batches = [samples[i:i + REPORT_BATCH] for i in range(0, max(n - REPORT_BATCH, 0) + 1, REPORT_BATCH)]
    bar.total = 1 + len(batches) + REPORT_BASELINE_BATCHES + 1
    ref = _reference(metric, version, "test", "first", test[:REPORT_REFERENCE])
    bar.update(1)
    fmd, fmd_std = _spread([_distance(metric, ref, batch, bar) for batch in batches])
    pool = test[REPORT_REFERENCE:]
    draws = [pool[torch.randperm(len(pool), generator=generator)[:REPORT_BATCH]]
             for _ in range(REPORT_BASELINE_BATCHES)]
    baseline_mean, baseline_std = _spread([_distance(metric, ref, batch, bar) for batch in draws])
    black_fmd = _distance(metric, ref, torch.zeros(min(n, REPORT_BATCH), 1, 28, 28), bar)
    return _Scores(fmd, fmd_std, baseline_mean, baseline_std, black_fmd,
                   f"first {REPORT_REFERENCE} MNIST test images; batches of {REPORT_BATCH}")


def _full_protocol(metric: FMD, version: str, samples: Tensor, test: Tensor,
                   generator: torch.Generator, bar: tqdm[Any]) -> _Scores:
    """The full protocol: all samples against a fixed half of the test set, with baselines of
    other test images and of training images at the same size."""
    n = len(samples)
    bar.total = 1 + 2 * FULL_BASELINE_DRAWS + 2
    halves = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))
    ref = test_reference(metric, test)
    bar.update(1)
    other = test[halves[5000:]]
    size = min(n, len(other))
    baseline_mean, baseline_std = _spread([
        _distance(metric, ref, other[torch.randperm(len(other), generator=generator)[:size]], bar)
        for _ in range(FULL_BASELINE_DRAWS)])
    train = data.mnist(train=True).images
    train_baseline, _ = _spread([
        _distance(metric, ref, train[torch.randperm(len(train), generator=generator)[:n]], bar)
        for _ in range(FULL_BASELINE_DRAWS)])
    fmd = _distance(metric, ref, samples, bar)
    ratio = fmd / train_baseline if train_baseline > 0 else float("inf")
    black_fmd = _distance(metric, ref, torch.zeros(n, 1, 28, 28), bar)
    return _Scores(fmd, 0.0, baseline_mean, baseline_std, black_fmd,
                   "a fixed random half (5,000) of the MNIST test set", train_baseline, ratio)


def _classify(metric: FMD, samples: Tensor) -> tuple[float, list[int]]:
    """The classifier's mean top-1 probability on ``samples`` and its count of each class."""
    classifier = metric.classifier
    assert classifier is not None
    with torch.no_grad(), autocast(metric.device, metric.precision):
        probabilities = torch.cat([classifier(samples[i:i + 1000].to(metric.device)).float().softmax(1).cpu()
                                   for i in range(0, len(samples), 1000)])
    confidence = float(probabilities.max(1).values.mean())
    return confidence, torch.bincount(probabilities.argmax(1), minlength=10).tolist()


def describe(result: FMDResult) -> str:
    """A few human-readable lines summarising ``result``."""
    lines = [f"FMD ({result.protocol} protocol, {result.n_samples} samples, {result.version}): "
             f"{result.fmd:.3f}" + (f" +- {result.fmd_std:.3f}" if result.fmd_std else ""),
             f"  test-set baseline {result.baseline_mean:.3f} +- {result.baseline_std:.3f}, "
             f"black images {result.black_fmd:.3f}, normalised FMD {result.normalized_fmd:.4f}"]
    if result.train_baseline is not None and result.fmd_ratio is not None:
        lines.append(f"  training-image baseline {result.train_baseline:.3f}; FMD / baseline = "
                     f"{result.fmd_ratio:.2f} (1.0 = as good as real data)")
    lines.append(f"  classifier confidence {result.confidence:.3f}; classes {result.class_histogram}")
    lines.append(f"  reference: {result.reference}")
    return "\n".join(lines)
