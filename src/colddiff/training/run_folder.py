"""The folder a training run writes, and the rules that keep two runs from mixing in it::

    OUT/config.toml              the resolved config
    OUT/metrics.jsonl            one JSON line per epoch (loss, images/s, wall time, hooks' values)
    OUT/samples/epoch-NNN.png    a grid of samples every ``sample_every`` epochs
    OUT/checkpoints/last.pt      model, optimiser, EMA, counters, RNG states, config, version
    OUT/checkpoints/epoch-NNN.pt kept when ``keep_checkpoints`` is on

Every file is written atomically (:func:`colddiff.checkpoints.atomic_write`); the temporary
files of writes that a killed process left behind are removed when the next run starts.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from colddiff import checkpoints
from colddiff.config import TrainConfig
from colddiff.training.distributed import Processes

__all__ = ["RUN_FILES", "NothingToResumeError", "RunExistsError", "RunFolder"]

#: What a run folder holds; ``overwrite=True`` removes these and nothing else.
RUN_FILES = ("config.toml", "metrics.jsonl", "checkpoints", "samples")


class RunExistsError(FileExistsError):
    """The run folder already holds a run, and neither resuming nor overwriting was asked for.

    Args:
        path: The run folder.
        held: The files that hold the run there (:meth:`RunFolder.held_run`).
    """

    def __init__(self, path: Path, held: list[Path]) -> None:
        super().__init__(f"{path} already holds a run ({', '.join(p.name for p in held)}); resume it "
                         "(fit(resume=True)), choose another out folder, or start it afresh "
                         "(Trainer(overwrite=True)), which deletes that run's files")
        self.path, self.held = path, held


class NothingToResumeError(FileNotFoundError):
    """Resuming was asked for in a folder without a checkpoint to continue from.

    Args:
        path: The run folder.
        held: The files of a run there (:meth:`RunFolder.held_run`; empty when it holds no run).
    """

    def __init__(self, path: Path, held: list[Path]) -> None:
        if not held:
            message = (f"{path} holds no run to resume (no config.toml, no checkpoints/last.pt); "
                       "start one there without resume=True")
        else:
            kept = [p.name for p in held if p.name.startswith("epoch-")]
            copy = f", or copy checkpoints/{kept[-1]} to last.pt to resume from it" if kept else ""
            message = (f"{path} holds no checkpoint to resume (checkpoints/last.pt is missing, "
                       f"{', '.join(p.name for p in held)} are there); start the run afresh with "
                       f"overwrite=True, which deletes those files, or choose another out folder{copy}")
        super().__init__(message)
        self.path, self.held = path, held


class RunFolder:
    """The layout of a run folder, and what is written there.

    Args:
        path: The folder (created when the run starts).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @property
    def checkpoint_path(self) -> Path:
        """``OUT/checkpoints/last.pt``."""
        return self.path / "checkpoints" / "last.pt"

    @property
    def metrics_path(self) -> Path:
        """``OUT/metrics.jsonl``."""
        return self.path / "metrics.jsonl"

    def kept_checkpoint(self, epoch: int) -> Path:
        """``OUT/checkpoints/epoch-NNN.pt``."""
        return self.checkpoint_path.with_name(f"epoch-{epoch:03d}.pt")

    def sample_grid(self, epoch: int) -> Path:
        """``OUT/samples/epoch-NNN.png``."""
        return self.path / "samples" / f"epoch-{epoch:03d}.png"

    def existing_run(self) -> list[Path]:
        """The :data:`RUN_FILES` already in the folder (empty for a new run)."""
        return [self.path / name for name in RUN_FILES if (self.path / name).exists()]

    def held_run(self) -> list[Path]:
        """What makes the folder hold a run worth keeping: its ``metrics.jsonl`` and checkpoints.

        A folder with only the ``config.toml`` of a run that stopped before its first
        checkpoint (a non-finite loss, a kill) holds none, and a new run may start there.
        """
        held = [self.metrics_path] if self.metrics_path.exists() else []
        if self.checkpoint_path.parent.is_dir():
            held += sorted(self.checkpoint_path.parent.glob("*.pt"))
        return held

    def resumable(self) -> bool:
        """Whether resuming continues from a checkpoint (``last.pt``), or starts from step 0:
        in a folder that holds only the ``config.toml`` of a run stopped before its first
        checkpoint, nothing of that run was kept, and starting it again is all resuming can do.

        Raises:
            NothingToResumeError: If the folder holds no run at all (a mistyped folder, most
                likely), or a run without ``last.pt``; the message says how to start afresh.
        """
        if self.checkpoint_path.exists():
            return True
        held = self.held_run()
        if not held and (self.path / "config.toml").exists():
            return False
        raise NothingToResumeError(self.path, held)

    def prepare(self, resume: bool, overwrite: bool, processes: Processes) -> None:
        """Get the folder ready for a run: refuse to mix two runs in it; on ``overwrite`` (and
        not ``resume``), delete the old run's :data:`RUN_FILES`; remove the temporary files of
        writes that a killed process left behind. Only the main process changes anything.

        Raises:
            RunExistsError: If the folder holds a run and neither ``resume`` nor ``overwrite``
                is set; the message names the files and the ways on.
        """
        held = self.held_run()
        if held and not resume and not overwrite:
            raise RunExistsError(self.path, held)
        existing = self.existing_run()
        processes.barrier()  # every process has looked before the main one changes anything
        if not processes.main:
            return
        if existing and overwrite and not resume:
            for path in existing:
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        self.remove_stale_temporaries()

    def remove_stale_temporaries(self) -> None:
        """Remove the temporary files of atomic writes that a killed process left behind."""
        checkpoints.remove_stale_temporaries(self.path, ("config.toml", "metrics.jsonl"))
        checkpoints.remove_stale_temporaries(self.checkpoint_path.parent, ("last.pt", "epoch-*.pt"))

    def write_config(self, config: TrainConfig) -> None:
        """Write ``config.toml`` (creating the folder)."""
        self.path.mkdir(parents=True, exist_ok=True)
        config.save(self.path / "config.toml")

    def log_metrics(self, record: dict[str, Any]) -> None:
        """Append ``record`` to ``metrics.jsonl``, replacing the partial record of its epoch.

        A time budget leaves a ``partial`` record for the open epoch; when a resumed run
        finishes that epoch, the finished record takes its place.
        """
        self._rewrite_metrics(lambda old: not (old["epoch"] == record["epoch"] and old.get("partial")),
                              append=record)

    def forget_metrics_after(self, step: int) -> None:
        """Drop the records of ``metrics.jsonl`` past optimiser step ``step`` (those of a run
        that went on after the checkpoint being resumed)."""
        if self.metrics_path.exists():
            self._rewrite_metrics(lambda old: old["step"] <= step)

    def _rewrite_metrics(self, keep: Callable[[dict[str, Any]], bool],
                         append: dict[str, Any] | None = None) -> None:
        """Atomically rewrite ``metrics.jsonl`` with the records ``keep`` accepts, then ``append``."""
        lines = self.metrics_path.read_text().splitlines() if self.metrics_path.exists() else []
        kept = [line for line in lines if line.strip() and keep(json.loads(line))]
        if append is not None:
            kept.append(json.dumps(append))
        checkpoints.atomic_write_text(self.metrics_path, "".join(line + "\n" for line in kept))
