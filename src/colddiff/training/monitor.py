"""What a training run watches while it runs: the loss (NaN or infinite?), the clocks, the budget.

:class:`LossCheck` sums the loss on the device and reads it back to the host every
:attr:`LossCheck.every` steps, stopping the run with :class:`NonFiniteLossError` when it is NaN or
infinite. :class:`Clocks` keeps the wall, CPU and compile warm-up time over all sessions of a
run, the time of the open epoch, and says when ``max_minutes`` is used up.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from colddiff.training.distributed import Processes

__all__ = ["COMPILE_WARMUP_STEPS", "CUDA_LOSS_CHECK_EVERY", "Clocks", "LossCheck", "NonFiniteLossError"]

#: On CUDA the loss is read back to the host (and checked for NaN and infinity) every this many
#: steps, so that the GPU runs ahead of Python instead of waiting for each step; on the CPU,
#: where reading it costs nothing, after every step.
CUDA_LOSS_CHECK_EVERY = 50

#: Under ``compile`` the first steps of each session compile the network (and, for CUDA graphs,
#: record them): the compile warm-up. Their time is reported as ``compile_time_s`` and left out
#: of ``images_per_s``.
COMPILE_WARMUP_STEPS = 3


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; any checkpoint already written is kept."""


class LossCheck:
    """The epoch's loss: summed on the device, read back and checked every :attr:`every` steps.

    Args:
        device: The training device (:data:`CUDA_LOSS_CHECK_EVERY` steps between reads on CUDA,
            1 elsewhere).
        processes: The training processes (all of them stop when one sees a bad loss).
        checkpoint: The run's ``last.pt``, named in the error when it exists.

    Attributes:
        every: Steps between reads of the loss back to the host.
        epoch_sum: The sum of the checked losses of the open epoch (over all sessions).
    """

    def __init__(self, device: torch.device, processes: Processes, checkpoint: Path) -> None:
        self.every = CUDA_LOSS_CHECK_EVERY if device.type == "cuda" else 1
        self.device, self.processes, self.checkpoint = device, processes, checkpoint
        self.epoch_sum = 0.0
        self._pending = torch.zeros((), dtype=torch.float64, device=device)  # losses not yet checked
        self._pending_from = 0  # the first batch they cover
        self._first_batch = 0  # the first batch of this session's part of the epoch
        self._first_step = 0  # the step before the epoch's first batch

    def start_epoch(self, first_batch: int, first_step: int) -> None:
        """Start watching at batch ``first_batch`` (0-based) of an epoch whose first batch is
        optimiser step ``first_step + 1``."""
        self._pending = torch.zeros((), dtype=torch.float64, device=self.device)
        self._pending_from = self._first_batch = first_batch
        self._first_step = first_step

    def add(self, loss: Tensor) -> None:
        """Add a step's loss (on the device; nothing is read back)."""
        self._pending += loss.detach()

    def due(self, batch: int, last: bool) -> bool:
        """Whether the losses are to be read back after batch ``batch`` (the epoch's last when
        ``last``)."""
        return (batch + 1 - self._first_batch) % self.every == 0 or last

    def check(self, epoch: int, batch: int) -> float:
        """Read back the losses up to batch ``batch``, add them to :attr:`epoch_sum` and return
        their mean.

        Raises:
            NonFiniteLossError: If their sum is NaN or infinite (in any process).
        """
        total = self._pending.item()
        mean = total / (batch + 1 - self._pending_from)
        if not self.processes.all(math.isfinite(mean), self.device):  # all stop together, or none
            self._stop(mean, epoch, self._pending_from, batch)
        self.epoch_sum += total
        self._pending.zero_()
        self._pending_from = batch + 1
        return mean

    def check_rest(self, epoch: int, batch: int) -> None:
        """:meth:`check` the losses not read back yet, if any (the run stops at ``batch``)."""
        if self._pending_from <= batch:
            self.check(epoch, batch)

    def epoch_mean(self, batches: int) -> float:
        """The mean loss of the epoch's first ``batches`` batches, over all processes."""
        return self.processes.mean(self.epoch_sum / batches, self.device)

    def _stop(self, value: float, epoch: int, first_batch: int, last_batch: int) -> None:
        kept = (f"the last good checkpoint {self.checkpoint} is kept"
                if self.checkpoint.exists() else "no checkpoint was written")
        first_step, last_step = (self._first_step + batch + 1 for batch in (first_batch, last_batch))
        where = (f"step {last_step} (batch {last_batch + 1} of the epoch)" if first_step == last_step else
                 f"one of the steps {first_step}-{last_step} (batches "
                 f"{first_batch + 1}-{last_batch + 1} of the epoch)")
        raise NonFiniteLossError(f"training stopped: the loss is {value} at epoch {epoch}, {where}; "
                                 f"{kept}. Try a lower lr.")


class Clocks:
    """The run's wall, CPU and compile warm-up time over all its sessions, and its budget.

    Time is counted from :meth:`restart` and added to the totals by :meth:`lap`. The first
    :data:`COMPILE_WARMUP_STEPS` steps of a session under ``compile`` are booked as
    ``compile_time_s`` instead of training time (:meth:`step_done`).

    Args:
        device: The training device (synchronised before compile warm-up time is booked).
        processes: The training processes (they agree on the budget).
        max_minutes: The time budget of the run, or ``None``.
        compiled: Whether the network is compiled (the session starts with a compile warm-up).

    Attributes:
        wall_time: Seconds of training over all sessions (wall clock).
        cpu_time: Seconds of process CPU time spent training, over all sessions.
        compile_time: Seconds of compile warm-up steps, over all sessions.
        epoch_time: Training time of the open epoch, over all sessions.
        untimed_batches: Batches of the open epoch not in :attr:`epoch_time` (compile warm-up).
    """

    #: The checkpoint keys of :meth:`state_dict`, by attribute.
    KEYS: ClassVar[dict[str, str]] = {
        "epoch_time": "epoch_time_s", "wall_time": "wall_time_s", "cpu_time": "cpu_time_s",
        "compile_time": "compile_time_s", "untimed_batches": "untimed_batches"}

    def __init__(self, device: torch.device, processes: Processes, max_minutes: float | None,
                 compiled: bool) -> None:
        self.device, self.processes, self.max_minutes = device, processes, max_minutes
        self.compiled = compiled
        self.wall_time = self.cpu_time = self.compile_time = self.epoch_time = 0.0
        self.untimed_batches = 0
        self._compile_warmup_left = COMPILE_WARMUP_STEPS if compiled else 0  # this session's
        self._unbooked = 0  # compile warm-up steps taken and not yet booked
        self._booked = 0  # compile warm-up steps booked in this session's part of the epoch
        self._session_start = 0.0  # epoch_time when this session's part of the epoch began
        self.restart()

    def restart(self) -> None:
        """Count time from now."""
        self._start, self._cpu_start = time.perf_counter(), time.process_time()

    def lap(self) -> float:
        """Add the wall and CPU time since :meth:`restart` to the totals; return the wall time."""
        seconds = time.perf_counter() - self._start
        self.wall_time += seconds
        self.cpu_time += time.process_time() - self._cpu_start
        return seconds

    def start_epoch(self) -> None:
        """Start this session's part of an epoch."""
        self._session_start, self._booked, self._unbooked = self.epoch_time, 0, 0
        self.restart()

    def end_lap_of_epoch(self) -> None:
        """:meth:`lap`, counted as training time of the epoch."""
        self.epoch_time += self.lap()

    def step_done(self, book: bool) -> None:
        """Count a step; book the compile warm-up steps taken when the compile warm-up is over or
        ``book`` says to (a checkpoint, the end of the epoch or of the budget follows)."""
        if self._compile_warmup_left:
            self._compile_warmup_left -= 1
            self._unbooked += 1
        if self._unbooked and (not self._compile_warmup_left or book):
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.compile_time += self.lap()
            self.untimed_batches += self._unbooked
            self._booked += self._unbooked
            self._unbooked = 0
            self.restart()

    def session_images_per_s(self, steps: int, images_per_step: int) -> float:
        """Images per second of the epoch so far, for ``steps`` steps taken in this session
        (compile warm-up steps left out)."""
        elapsed = self.epoch_time - self._session_start + time.perf_counter() - self._start
        timed = steps - self._booked - self._unbooked
        return timed * images_per_step / max(elapsed, 1e-9)

    def epoch_summary(self, batches: int, images_per_step: int) -> dict[str, float]:
        """The epoch's ``images_per_s`` and ``epoch_time_s`` over its first ``batches`` batches
        and all its sessions, the run's ``wall_time_s`` and ``cpu_time_s``, and under
        ``compile`` its ``compile_time_s``."""
        timed, seconds = batches - self.untimed_batches, self.epoch_time
        if timed == 0:  # every step was compile warm-up: count them, over their time
            timed, seconds = batches, seconds + self.compile_time
        summary = {"images_per_s": round(timed * images_per_step / max(seconds, 1e-9), 2),
                   "epoch_time_s": round(seconds, 3), "wall_time_s": round(self.wall_time, 3),
                   "cpu_time_s": round(self.cpu_time, 3)}
        if self.compiled:
            summary["compile_time_s"] = round(self.compile_time, 3)
        return summary

    def out_of_time(self, *, between_epochs: bool = False) -> bool:
        """Whether ``max_minutes`` of training (over all sessions) is used up, counting the time
        since :meth:`restart` unless ``between_epochs`` (no training is under way); all
        processes agree (a collective under torchrun)."""
        if self.max_minutes is None:
            return False
        running = 0.0 if between_epochs else time.perf_counter() - self._start
        over = self.wall_time + running >= self.max_minutes * 60
        return self.processes.any(over, self.device)

    def finish_epoch(self) -> None:
        """Close the epoch: the next one starts at no time."""
        self.epoch_time, self.untimed_batches = 0.0, 0

    def state_dict(self) -> dict[str, Any]:
        """The totals, under their checkpoint keys."""
        return {key: getattr(self, name) for name, key in self.KEYS.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load the totals from a checkpoint."""
        for name, key in self.KEYS.items():
            setattr(self, name, type(getattr(self, name))(state[key]))
