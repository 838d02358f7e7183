"""Training that survives faults: checkpoints, exact resume, EMA, torchrun.

A :class:`Trainer` runs a :class:`~colddiff.config.TrainConfig` into a run folder
(:mod:`.run_folder` describes its layout: ``config.toml``, ``metrics.jsonl``, sample grids and
checkpoints). Checkpoints are written atomically every epoch (and every ``checkpoint_every``
steps, and when Ctrl-C or ``SIGTERM`` stops the run), and resuming from one continues the very
same run: the data order is a function of the seed and the epoch, and the noise generator's
state is saved, so an interrupted-and-resumed run has the loss curve of an uninterrupted one.

Under ``torchrun`` (``WORLD_SIZE > 1``) the network is wrapped in
:class:`~torch.nn.parallel.DistributedDataParallel` (gloo on CPU, nccl on CUDA), each process
reads its share of every epoch, and only rank 0 writes files.

The parts, one job each:

* :mod:`.trainer`: :class:`Trainer`, which builds the model once and runs the epochs;
* :mod:`.batches`: the training images and the batches of each epoch;
* :mod:`.state`: what a checkpoint holds, and resuming from one;
* :mod:`.run_folder`: the run folder's layout, ``config.toml`` and ``metrics.jsonl``;
* :mod:`.monitor`: the loss check (NaN, infinity), the clocks and the time budget;
* :mod:`.interrupts`: stopping cleanly on Ctrl-C and ``SIGTERM``, with a checkpoint;
* :mod:`.distributed`: torchrun's processes and their agreements;
* :mod:`.ema`: the moving average of the weights;
* :mod:`.hooks`: what runs after each epoch (the sample grid; :class:`colddiff.fmd.FMDHook`).
"""

from __future__ import annotations

from colddiff.training.hooks import PREVIEW_STEPS, EpochHook, SampleGrid
from colddiff.training.interrupts import TrainingInterrupted
from colddiff.training.monitor import COMPILE_WARMUP_STEPS, CUDA_LOSS_CHECK_EVERY, NonFiniteLossError
from colddiff.training.run_folder import NothingToResumeError, RunExistsError
from colddiff.training.state import ConfigMismatchError
from colddiff.training.trainer import Trainer

__all__ = [
    "COMPILE_WARMUP_STEPS",
    "CUDA_LOSS_CHECK_EVERY",
    "PREVIEW_STEPS",
    "ConfigMismatchError",
    "EpochHook",
    "NonFiniteLossError",
    "NothingToResumeError",
    "RunExistsError",
    "SampleGrid",
    "Trainer",
    "TrainingInterrupted",
]
