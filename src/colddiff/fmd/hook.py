"""FMD during training: :class:`FMDHook` scores a :class:`~colddiff.training.Trainer`'s samples
after its epochs, :func:`sample_in_batches` draws them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from colddiff import checkpoints
from colddiff.fmd.protocols import FMDResult, Protocol, score
from colddiff.progress import progress_bar

__all__ = ["FMDHook", "sample_in_batches"]


class FMDHook:
    """A :class:`~colddiff.training.Trainer` hook that scores samples with FMD after each epoch.

    Every ``every`` epochs (and after the last) it scores ``n`` samples with ``protocol`` and
    adds ``fmd``, ``normalized_fmd``, ``fmd_confidence``, ``fmd_baseline_mean``,
    ``fmd_baseline_std``, ``fmd_black`` (and ``fmd_ratio`` under the full protocol) to the
    epoch's ``metrics.jsonl`` line (the reference study's figure 7). With ``full_every`` it also
    scores ``full_n`` samples with the full protocol every that many epochs and after the last,
    adding ``fmd_full``, ``fmd_full_ratio``, ``fmd_full_train_baseline`` and ``fmd_full_n``.
    The study (:mod:`colddiff.study`) is this hook with ``keep`` and ``full_every`` set. The
    samples are drawn in the training's precision; the classifier scores them in float32, so that
    the numbers compare with ``colddiff fmd score``'s.

    Args:
        n: Samples per evaluation (the report used 32).
        protocol: ``"report"`` or ``"full"``.
        sample_steps: Sampling steps (``None``: all ``T``).
        every: Evaluate every this many epochs.
        full_every: Also score ``full_n`` samples with the full protocol every this many epochs
            (0: never).
        full_n: Samples for those full-protocol scores.
        keep: A folder to save each evaluation's samples in (``epoch-NNN.pt``), or ``None``.

    Attributes:
        last_full: ``(epoch, FMDResult)`` of the latest full-protocol score, or ``None``.
    """

    def __init__(self, n: int = 32, protocol: Protocol = "report", sample_steps: int | None = None,
                 every: int = 1, *, full_every: int = 0, full_n: int = 1000,
                 keep: str | os.PathLike[str] | None = None) -> None:
        self.n, self.protocol, self.sample_steps, self.every = n, protocol, sample_steps, every
        self.full_every, self.full_n = full_every, full_n
        self.keep = Path(keep) if keep is not None else None
        self.last_full: tuple[int, FMDResult] | None = None

    def __call__(self, trainer: Any, epoch: int) -> dict[str, Any] | None:
        last = epoch == trainer.config.epochs
        if trainer.config.dataset != "mnist" or (epoch % self.every and not last):
            return None
        seed = trainer.config.seed
        samples = sample_in_batches(trainer, self.n, self.sample_steps, seed + epoch)
        # The classifier in float32 whatever the training's precision: FMD numbers compare only
        # at one precision (colddiff fmd score's default).
        speed = {"device": trainer.device, "precision": "fp32"}
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
                      batch: int = 256, progress: bool = False) -> Tensor:
    """``n`` samples of a :class:`~colddiff.training.Trainer`, clamped to ``[0, 1]``, on the
    CPU, drawn in batches of at most ``batch`` (each seeded ``seed + index of its first``); with
    ``progress``, a bar over the samples on a terminal (:mod:`colddiff.progress`)."""
    samples = []
    with progress_bar(progress, n, f"sampling {n}", unit="img") as bar:
        for done in range(0, n, batch):
            drawn = trainer.sample(min(batch, n - done), sample_steps, seed=seed + done)
            samples.append(drawn.clamp(0, 1).cpu())
            bar.update(len(drawn))
    return torch.cat(samples)
