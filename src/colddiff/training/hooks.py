"""What runs after each finished epoch: :class:`EpochHook` callables.

A hook is called on rank 0 as ``hook(trainer, epoch)`` once the epoch's checkpoint is written;
the values it returns are added to that epoch's ``metrics.jsonl`` line (e.g. ``{"fmd": 12.3}``).
:class:`SampleGrid` is the Trainer's own (``sample_every``); :class:`colddiff.fmd.FMDHook`
scores samples with FMD (``fmd_every``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from torchvision.utils import save_image

from colddiff.conditioning import class_labels, class_rows
from colddiff.config import TrainConfig

if TYPE_CHECKING:
    from colddiff.training.trainer import Trainer

__all__ = ["PREVIEW_STEPS", "EpochHook", "SampleGrid", "with_default_hooks"]

#: Sampling steps of the per-epoch sample grid when ``sample_steps`` is not set (strided: the
#: grid is a progress picture, and all ``T`` steps would cost more than a small epoch).
PREVIEW_STEPS = 50


class EpochHook(Protocol):
    """Called on rank 0 after each finished epoch; returns values for the epoch's
    ``metrics.jsonl`` line, or ``None``."""

    def __call__(self, trainer: Trainer, epoch: int, /) -> dict[str, Any] | None:
        """Run after ``epoch`` (counted from 1) of ``trainer``."""


class SampleGrid:
    """Saves a grid of ``n`` samples as ``OUT/samples/epoch-NNN.png`` every ``every`` epochs and
    after the last, and logs the time it took as ``sample_time_s``. A conditional model's grid
    has one row per class, ``n // K`` samples each (at least one).

    Args:
        every: Epochs between grids.
        n: Samples per grid.
        sample_steps: Sampling steps (``None``: :data:`PREVIEW_STEPS`, at most ``T``).
    """

    def __init__(self, every: int, n: int, sample_steps: int | None = None) -> None:
        self.every, self.n, self.sample_steps = every, n, sample_steps

    def __call__(self, trainer: Trainer, epoch: int, /) -> dict[str, Any] | None:
        """Save the grid of ``epoch`` if it is due."""
        if epoch % self.every and epoch != trainer.config.epochs:
            return None
        start = time.perf_counter()
        sample_steps = self.sample_steps or min(trainer.degradation.num_timesteps, PREVIEW_STEPS)
        classes = trainer.config.classes if trainer.config.conditional else None
        if classes:
            labels = class_labels(max(self.n // len(classes), 1) * len(classes), len(classes))
            samples, nrow = class_rows(trainer.sample(len(labels), sample_steps, labels=labels), labels)
        else:
            samples = trainer.sample(self.n, sample_steps)
            nrow = math.ceil(math.sqrt(len(samples)))
        path = trainer.run.sample_grid(epoch)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(samples.clamp(0, 1), path, nrow=nrow)
        return {"sample_time_s": round(time.perf_counter() - start, 3)}


def with_default_hooks(config: TrainConfig, hooks: Sequence[EpochHook]) -> list[EpochHook]:
    """The hooks of a run, in the order they run: the sample grid (``sample_every``), ``hooks``,
    and an FMD hook (``fmd_every``) unless ``hooks`` has one."""
    every: list[EpochHook] = [SampleGrid(config.sample_every, config.sample_n, config.sample_steps)
                              ] if config.sample_every else []
    every += hooks
    if config.fmd_every:
        from colddiff.fmd import FMDHook  # imports the classifier: only when asked for

        if not any(isinstance(hook, FMDHook) for hook in every):
            every.append(FMDHook(n=config.fmd_n, protocol=config.fmd_protocol,  # type: ignore[arg-type]
                                 sample_steps=config.sample_steps, every=config.fmd_every))
    return every
