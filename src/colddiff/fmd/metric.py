"""The FMD metric: streaming updates, the report and full protocols, baselines and caching."""

from __future__ import annotations

import contextlib
import os
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from colddiff import checkpoints, data
from colddiff._compat import renamed, renamed_alias
from colddiff.fmd.classifier import FEATURE_DIM, MNISTClassifier, load_classifier
from colddiff.fmd.frechet import FeatureStatistics, frechet_distance_from_features
from colddiff.precision import autocast
from colddiff.runtime import Precision, check_precision

__all__ = [
    "FMD",
    "FMDHook",
    "FMDResult",
    "Protocol",
    "cache_dir",
    "check_images",
    "describe",
    "distance",
    "load_samples",
    "score",
]

Protocol = Literal["report", "full"]

#: Sizes of the reference study's protocol (report section 2, figure 7).
REPORT_BATCH = 32
REPORT_REFERENCE = 512
REPORT_BASELINE_BATCHES = 15
#: Repetitions of each baseline draw under the full protocol.
FULL_BASELINE_DRAWS = 3


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
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"``: the arithmetic of the feature
            extractor's forward pass (:mod:`colddiff.precision`); the statistics stay float64.

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
        self.precision = check_precision(precision)
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


def _distance(metric: FMD, reference: FeatureStatistics, images: Tensor) -> float:
    """The FMD of ``images`` against ``reference``, through the streaming metric."""
    metric.reset(real=reference)
    metric.update(images, real=False)
    return metric.compute()


def _spread(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def score(samples: Tensor, reference: str = "mnist-test", protocol: Protocol = "full", *,
          classifier: MNISTClassifier | None = None, version: str = "mnist-v1",
          device: str | torch.device = "cpu", seed: int = 0, precision: Precision = "fp32") -> FMDResult:
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
    test = data.mnist(train=False).images
    generator = torch.Generator().manual_seed(seed)
    n = len(samples)
    black = torch.zeros(min(n, REPORT_BATCH) if protocol == "report" else n, 1, 28, 28)

    if protocol == "report":
        ref = _reference(metric, version, "test", "first", test[:REPORT_REFERENCE])
        batches = [samples[i:i + REPORT_BATCH] for i in range(0, max(n - REPORT_BATCH, 0) + 1, REPORT_BATCH)]
        fmd, fmd_std = _spread([_distance(metric, ref, batch) for batch in batches])
        pool = test[REPORT_REFERENCE:]
        draws = [pool[torch.randperm(len(pool), generator=generator)[:REPORT_BATCH]]
                 for _ in range(REPORT_BASELINE_BATCHES)]
        baseline_mean, baseline_std = _spread([_distance(metric, ref, batch) for batch in draws])
        train_baseline = ratio = None
        described = f"first {REPORT_REFERENCE} MNIST test images; batches of {REPORT_BATCH}"
    else:
        halves = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))
        ref = _reference(metric, version, "test", "half-seed0", test[halves[:5000]])
        other = test[halves[5000:]]
        size = min(n, len(other))
        baseline_mean, baseline_std = _spread([
            _distance(metric, ref, other[torch.randperm(len(other), generator=generator)[:size]])
            for _ in range(FULL_BASELINE_DRAWS)])
        train = data.mnist(train=True).images
        train_baseline, _ = _spread([
            _distance(metric, ref, train[torch.randperm(len(train), generator=generator)[:n]])
            for _ in range(FULL_BASELINE_DRAWS)])
        fmd, fmd_std = _distance(metric, ref, samples), 0.0
        ratio = fmd / train_baseline if train_baseline > 0 else float("inf")
        described = "a fixed random half (5,000) of the MNIST test set"
    black_fmd = _distance(metric, ref, black)
    classifier = metric.classifier
    assert classifier is not None
    with torch.no_grad(), autocast(metric.device, metric.precision):
        probabilities = torch.cat([classifier(samples[i:i + 1000].to(metric.device)).float().softmax(1).cpu()
                                   for i in range(0, n, 1000)])
    confidence = float(probabilities.max(1).values.mean())
    histogram = torch.bincount(probabilities.argmax(1), minlength=10).tolist()
    return FMDResult(protocol=protocol, version=version, n_samples=n, fmd=fmd, fmd_std=fmd_std,
                     baseline_mean=baseline_mean, baseline_std=baseline_std, black_fmd=black_fmd,
                     normalized_fmd=(fmd - baseline_mean) / (black_fmd - baseline_mean),
                     confidence=confidence, class_histogram=histogram, reference=described,
                     train_baseline=train_baseline, fmd_ratio=ratio)


class FMDHook:
    """A :class:`~colddiff.training.Trainer` hook that scores samples with FMD after each epoch.

    Every ``every`` epochs (and after the last) it scores ``n`` samples with ``protocol`` and
    adds ``fmd``, ``normalized_fmd``, ``fmd_confidence``, ``fmd_baseline_mean``,
    ``fmd_baseline_std``, ``fmd_black`` (and ``fmd_ratio`` under the full protocol) to the
    epoch's ``metrics.jsonl`` line (the reference study's figure 7). With ``full_every`` it also
    scores ``full_n`` samples with the full protocol every that many epochs and after the last,
    adding ``fmd_full``, ``fmd_full_ratio``, ``fmd_full_train_baseline`` and ``fmd_full_n``.
    The study (:mod:`colddiff.study`) is this hook with ``keep`` and ``full_every`` set.

    Args:
        n: Samples per evaluation (the report used 32).
        protocol: ``"report"`` or ``"full"``.
        sample_steps: Sampling steps (``None``: all ``T``).
        every: Evaluate every this many epochs.
        full_every: Also score ``full_n`` samples with the full protocol every this many epochs
            (0: never).
        full_n: Samples for those full-protocol scores.
        keep: A folder to save each evaluation's samples in (``epoch-NNN.pt``), or ``None``.
        steps: Deprecated: the old name of ``sample_steps``.

    Attributes:
        last_full: ``(epoch, FMDResult)`` of the latest full-protocol score, or ``None``.
    """

    def __init__(self, n: int = 32, protocol: Protocol = "report", sample_steps: int | None = None,
                 every: int = 1, *, full_every: int = 0, full_n: int = 1000,
                 keep: str | os.PathLike[str] | None = None, steps: int | None = None) -> None:
        sample_steps = renamed("FMDHook", "steps", steps, "sample_steps", sample_steps)
        self.n, self.protocol, self.sample_steps, self.every = n, protocol, sample_steps, every
        self.full_every, self.full_n = full_every, full_n
        self.keep = Path(keep) if keep is not None else None
        self.last_full: tuple[int, FMDResult] | None = None

    steps = renamed_alias("sample_steps", "steps")

    def __call__(self, trainer: Any, epoch: int) -> dict[str, Any] | None:
        last = epoch == trainer.config.epochs
        if trainer.config.dataset != "mnist" or (epoch % self.every and not last):
            return None
        seed = trainer.config.seed
        samples = sample_in_batches(trainer, self.n, self.sample_steps, seed + epoch)
        speed = {"device": trainer.device, "precision": trainer.config.precision}  # as the training's
        result = score(samples, protocol=self.protocol, **speed)
        if self.keep is not None:
            checkpoints.save({"samples": samples, "epoch": epoch}, self.keep / f"epoch-{epoch:03d}.pt")
        values: dict[str, Any] = {
            "fmd": result.fmd, "normalized_fmd": result.normalized_fmd,
            "fmd_confidence": result.confidence, "fmd_baseline_mean": result.baseline_mean,
            "fmd_baseline_std": result.baseline_std, "fmd_black": result.black_fmd}
        if result.fmd_ratio is not None:
            values["fmd_ratio"] = result.fmd_ratio
        if self.full_every and (epoch % self.full_every == 0 or last):
            full = score(sample_in_batches(trainer, self.full_n, self.sample_steps, seed + 40_000 + epoch),
                         protocol="full", **speed)
            self.last_full = (epoch, full)
            values.update(fmd_full=full.fmd, fmd_full_ratio=full.fmd_ratio,
                          fmd_full_train_baseline=full.train_baseline, fmd_full_n=full.n_samples)
        return values


def sample_in_batches(trainer: Any, n: int, sample_steps: int | None, seed: int,
                      batch: int = 256) -> Tensor:
    """``n`` samples of a :class:`~colddiff.training.Trainer`, clamped to ``[0, 1]``, on the
    CPU, drawn in batches of at most ``batch`` (each seeded ``seed + index of its first``)."""
    return torch.cat([trainer.sample(min(batch, n - done), sample_steps, seed=seed + done).clamp(0, 1).cpu()
                      for done in range(0, n, batch)])


def load_samples(path: str | os.PathLike[str]) -> Tensor:
    """Images to score from a tensor file (``torch.save`` of ``(N, 1, 28, 28)``, loaded with
    ``weights_only=True``) or a folder of PNG files (one 28x28 digit each, sorted by name).

    Raises:
        ValueError: If the path holds neither.
        colddiff.checkpoints.CheckpointError: If the tensor file is unsafe (it holds pickled
            objects other than tensors: refused, nothing in it run), a bare pickle, or corrupt.
    """
    path = Path(path)
    if path.is_dir():
        import numpy as np
        from PIL import Image

        files = sorted(path.glob("*.png"))
        if not files:
            raise ValueError(f"samples folder {path} holds no .png files")
        pixels = [np.asarray(Image.open(f).convert("L")) for f in files]
        sizes = sorted({p.shape for p in pixels})
        if sizes != [(28, 28)]:
            raise ValueError(f"samples PNGs must each be one 28x28 image, found sizes {sizes}")
        return torch.from_numpy(np.stack(pixels)).float().unsqueeze(1) / 255
    if not path.exists():
        raise ValueError(f"samples {path}: no such file or folder (save samples with colddiff sample "
                         "--save-tensor FILE.pt)")
    if not path.is_file():
        raise ValueError(f"samples {path} is neither a tensor file nor a folder of PNGs")
    loaded = checkpoints.safe_load(path, "cpu", what="samples file")
    if not isinstance(loaded, Tensor):
        raise ValueError(f"samples {path} must hold one tensor, got {type(loaded).__name__}")
    return loaded


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
