"""Stopping a run cleanly on Ctrl-C (``SIGINT``) and ``SIGTERM``.

While :meth:`Trainer.fit <colddiff.training.Trainer.fit>` runs in the main thread, the first of
these signals asks the run to stop: the optimiser step under way is finished, the checkpoint is
written (mid-epoch, exactly as ``checkpoint_every`` writes one, so the run resumes
bit-identically) and :exc:`TrainingInterrupted` is raised, saying how to resume. A second
signal aborts at once with :exc:`KeyboardInterrupt`; the last checkpoint written stays whole.
The previous handlers are back when ``fit`` returns or raises. Outside the main thread (where
Python cannot catch signals) nothing is installed.

Under ``torchrun`` each process catches its own signals (a Ctrl-C in the terminal reaches them
all, and ``torchrun`` forwards the one it gets), and the processes agree on stopping where they
check the loss anyway (every step on the CPU, every
:data:`~colddiff.training.monitor.CUDA_LOSS_CHECK_EVERY` steps on CUDA), so that all of them
stop after the same step. A second signal within :data:`REPEAT_WINDOW_S` of the first (the
terminal's and ``torchrun``'s copy of one Ctrl-C) counts as the same one.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType
from typing import Any

import torch

from colddiff.training.distributed import Processes

__all__ = ["REPEAT_WINDOW_S", "SIGNALS", "Interrupts", "TrainingInterrupted"]

#: The signals that stop a run cleanly.
SIGNALS = (signal.SIGINT, signal.SIGTERM)

#: A repeat of the first signal within this many seconds is taken as the same interrupt
#: delivered twice (by the terminal and by a launcher such as ``torchrun``), not as a second one.
REPEAT_WINDOW_S = 1.0

_Handler = Callable[[int, FrameType | None], Any] | int | None


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on ``SIGINT`` or ``SIGTERM`` after a whole step, with a checkpoint.

    A :exc:`KeyboardInterrupt`, so that code which lets Ctrl-C through lets this through too.

    Args:
        stopped_by: What stopped it (``"SIGINT"``, ``"SIGTERM"``, or another process's signal
            under torchrun).
        step: The last optimiser step taken.
        checkpoint: The checkpoint written after that step.

    Attributes:
        what: What happened, without the way on (for messages in another language, the CLI's).
    """

    def __init__(self, stopped_by: str, step: int, checkpoint: Path) -> None:
        self.stopped_by, self.step, self.checkpoint = stopped_by, step, checkpoint
        self.what = f"training stopped by {stopped_by} after step {step}; checkpoint {checkpoint} written"
        super().__init__(f"{self.what}; continue the run with fit(resume=True)")


class Interrupts:
    """Catches :data:`SIGNALS` while a run trains, and says when the processes agree to stop.

    Args:
        processes: The training processes (they stop together).
        device: The training device (where their agreement is reduced).
        notify: Whether to say on stderr, when a signal arrives, what happens next.

    Attributes:
        received: The name of the first signal caught in this process (``None`` before).
        stopping: Whether the processes have agreed to stop (:meth:`agree`).
    """

    def __init__(self, processes: Processes, device: torch.device, notify: bool) -> None:
        self.processes, self.device, self.notify = processes, device, notify
        self.received: str | None = None
        self.stopping = False
        self._first_at = 0.0

    @contextmanager
    def caught(self) -> Iterator[None]:
        """Catch :data:`SIGNALS` in the ``with`` block (in the main thread only), then restore
        the previous handlers."""
        self.received, self.stopping = None, False
        previous: dict[signal.Signals, _Handler] = {}
        if threading.current_thread() is threading.main_thread():
            for number in SIGNALS:
                if signal.getsignal(number) is not None:  # None: set outside Python, not restorable
                    previous[number] = signal.signal(number, self._handle)
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def agree(self) -> bool:
        """Whether some process caught a signal: then all stop (a collective under torchrun)."""
        self.stopping = self.stopping or self.processes.any(self.received is not None, self.device)
        return self.stopping

    def error(self, step: int, checkpoint: Path) -> TrainingInterrupted:
        """The error that ends ``fit`` after the agreed stop."""
        return TrainingInterrupted(self.received or "another process's signal", step, checkpoint)

    def _handle(self, number: int, frame: FrameType | None) -> None:
        """The signal handler: the first signal asks to stop, a repeat aborts."""
        now = time.monotonic()
        if self.received is None:
            self.received, self._first_at = signal.Signals(number).name, now
            self._say(f"\ncolddiff: {self.received}: stopping after this step with a checkpoint "
                      "(interrupt again to abort at once)\n")
        elif now - self._first_at >= REPEAT_WINDOW_S:
            raise KeyboardInterrupt

    def _say(self, message: str) -> None:
        """Write ``message`` to stderr by a single system call: a signal handler may run in the
        middle of another write to ``sys.stderr``, which Python's buffered files refuse."""
        if not self.notify:
            return
        with suppress(OSError, ValueError):  # no file behind stderr (captured): say nothing
            os.write(sys.stderr.fileno(), message.encode())
