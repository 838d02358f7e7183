"""What the studies that train one model per folder share (:mod:`~colddiff.study.bansal`,
:mod:`~colddiff.study.generation`): the models asked for, a finished model's summary in its
``final.pt``, its training record, and the ``results.json`` of the study."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from colddiff import __version__, checkpoints
from colddiff.runtime import check_precision
from colddiff.training import Trainer

__all__ = ["ModelStudyOptions", "check_models", "finished", "last_epoch", "or_dash", "write_results"]


@dataclass
class ModelStudyOptions:
    """The options of every study of one model per folder; a study's subclass sets
    :attr:`known_models` and the defaults, adds its own options and documents them all.

    Attributes:
        out: The study folder.
        models: Which of the study's models to run.
        epochs: Training epochs per model.
        limit_train: Training images per epoch (``None``: all 60,000).
        precision: Training arithmetic; evaluation always runs in float32.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        seed: Seed of training and evaluation.
        quiet: No progress output.
    """

    #: The study's models, in the order of its table.
    known_models: ClassVar[tuple[str, ...]] = ()

    out: Path
    models: tuple[str, ...] = ()
    epochs: int = 1
    limit_train: int | None = None
    precision: str = "fp32"
    device: str = "auto"
    seed: int = 0
    quiet: bool = False

    def __post_init__(self) -> None:
        check_models(self.models, self.known_models)
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {self.epochs!r}")
        check_precision(self.precision)


def check_models(models: tuple[str, ...], known: tuple[str, ...]) -> None:
    """Refuse an empty ``models`` or one not in ``known``, naming ``models``.

    Raises:
        ValueError: Listing the study's models.
    """
    if not models or any(name not in known for name in models):
        raise ValueError(f"models must be among {list(known)}, got {list(models)}")


def last_epoch(trainer: Trainer) -> dict[str, Any] | None:
    """The record of the last whole epoch in the run's ``metrics.jsonl`` (``None`` if none)."""
    records = [json.loads(line) for line in trainer.metrics_path.read_text().splitlines() if line.strip()]
    epochs = [r for r in records if "loss" in r and not r.get("partial")]
    return epochs[-1] if epochs else None


def finished(folder: Path) -> dict[str, Any] | None:
    """The summary of a model's ``final.pt``, or ``None`` if it has none."""
    final = folder / "final.pt"
    return json.loads(checkpoints.load(final, required=("summary",))["summary"]) if final.exists() else None


def write_results(study: str, options: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """Write ``results.json`` in ``options.out``: the study, its options and the summary of each
    finished model of ``names`` (in that order); returns it."""
    out = Path(options.out)
    results: dict[str, Any] = {"study": study, "colddiff_version": __version__, "options": {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(options).items()}, "models": {}}
    for name in names:
        summary = finished(out / "models" / name)
        if summary is not None:
            results["models"][name] = summary
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def or_dash(value: float | None, spec: str) -> str:
    """``value`` formatted by ``spec``, or ``"-"`` for ``None``."""
    return "-" if value is None else format(value, spec)
