"""Training that survives faults: checkpoints, exact resume, EMA, torchrun.

A :class:`Trainer` runs a :class:`~colddiff.config.TrainConfig` into a run folder::

    OUT/config.toml              the resolved config
    OUT/metrics.jsonl            one JSON line per epoch (loss, images/s, wall time, hooks' values)
    OUT/samples/epoch-NNN.png    a grid of samples every ``sample_every`` epochs
    OUT/checkpoints/last.pt      model, optimiser, EMA, counters, RNG states, config, version
    OUT/checkpoints/epoch-NNN.pt kept when ``keep_checkpoints`` is on

Checkpoints are written atomically every epoch (and every ``checkpoint_every`` steps), and
resuming from one continues the very same run: the data order is a function of the seed and the
epoch, and the noise generator's state is saved, so an interrupted-and-resumed run has the loss
curve of an uninterrupted one.

Under ``torchrun`` (``WORLD_SIZE > 1``) the network is wrapped in
:class:`~torch.nn.parallel.DistributedDataParallel` (gloo on CPU, nccl on CUDA), each process
reads its shard through a :class:`~torch.utils.data.distributed.DistributedSampler`, and only
rank 0 writes files.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, cast

import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler
from torchvision.utils import save_image
from tqdm.auto import tqdm

from colddiff import __version__, checkpoints, data, precision
from colddiff._compat import renamed
from colddiff.config import (
    TrainConfig,
    build_degradation,
    build_denoiser,
    build_sampler,
    from_unit_range,
    model_differences,
    to_unit_range,
)
from colddiff.degradations import Degradation, PriorUnavailableError
from colddiff.denoisers import Denoiser
from colddiff.runtime import resolve_device
from colddiff.samplers import Sampler

__all__ = [
    "PREVIEW_STEPS",
    "ConfigMismatchError",
    "EpochHook",
    "NonFiniteLossError",
    "RunExistsError",
    "Trainer",
    "ensure_prior",
]

EpochHook = Callable[["Trainer", int], dict[str, Any] | None]
"""Called on rank 0 after each epoch as ``hook(trainer, epoch)``; the returned values are added
to that epoch's ``metrics.jsonl`` line (e.g. ``{"fmd": 12.3}``)."""


#: Sampling steps of the per-epoch sample grid when ``sample_steps`` is not set (strided: the
#: grid is a progress picture, and all ``T`` steps would cost more than a small epoch).
PREVIEW_STEPS = 50

#: On CUDA the loss is read back to the host (and checked for NaN and infinity) every this many
#: steps, so that the GPU runs ahead of Python instead of waiting for each step; on the CPU,
#: where reading it costs nothing, after every step.
CUDA_LOSS_CHECK_EVERY = 50

#: Under ``compile`` the first steps of each session compile the network (and, for CUDA graphs,
#: record them); their time is reported as ``compile_time_s`` and left out of ``images_per_s``.
COMPILE_WARMUP_STEPS = 3

#: What a run folder holds; ``overwrite=True`` removes these and nothing else.
RUN_FILES = ("config.toml", "metrics.jsonl", "checkpoints", "samples")


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; any checkpoint already written is kept."""


class RunExistsError(FileExistsError):
    """The run folder already holds a run, and neither resuming nor overwriting was asked for."""


class ConfigMismatchError(ValueError):
    """A checkpoint was made for a different model than the config asks for."""


def ensure_prior(degradation: Degradation, config: TrainConfig,
                 images: Tensor | None = None) -> None:
    """Fit the prior of a degradation that learns one (such as blur) on the training images.

    A degradation whose :attr:`~colddiff.Degradation.prior_fitted` is ``False`` gets
    :meth:`~colddiff.Degradation.fit_prior` with ``images`` (default: the config's training
    set); others are left alone.
    """
    if not degradation.prior_fitted:
        degradation.fit_prior(images if images is not None
                              else from_unit_range(_training_set(config).images, config))


#: At most this many training images (evenly spaced) fit a learned prior of a lazily read folder.
PRIOR_IMAGES = 4096


def _training_data(config: TrainConfig) -> data.ImageDataset | data.ImageFolder:
    """The config's training images, in memory unless they come from a folder too large for
    :data:`colddiff.data.IN_MEMORY_BYTES` (then verified and read lazily)."""
    if config.dataset in (*data.DATASETS, "memory"):
        return _training_set(config)
    folder = data.ImageFolder(config.dataset, image_size=config.image_size, channels=config.channels or 3)  # type: ignore[arg-type]
    shape = folder.image_shape
    if shape is None or len(folder) * math.prod(shape) * 4 <= data.IN_MEMORY_BYTES:
        return _training_set(config)
    folder.verify(config.on_error)  # type: ignore[arg-type]
    folder.files = folder.files[:config.limit_train]
    return folder


def _some_images(images: Tensor | data.ImageFolder, n: int, config: TrainConfig, device: torch.device,
                 *, spread: bool = True) -> Tensor:
    """The first ``n`` training images (``spread``: ``n`` evenly spaced ones) on ``device``, in
    the config's value range; a tensor of training images is returned whole when ``spread``."""
    if isinstance(images, Tensor):
        return images if spread else images[:n]
    count = min(n, len(images))
    picks = (torch.linspace(0, len(images) - 1, count).round().long().tolist() if spread
             else list(range(count)))
    return from_unit_range(torch.stack([images[i] for i in picks]), config).to(device)


def _training_set(config: TrainConfig, images: Tensor | Dataset[Any] | None = None) -> data.ImageDataset:
    """The config's training images (``images`` for ``dataset = "memory"``), via :func:`data.load`."""
    if images is None and config.dataset == "memory":
        raise ValueError("this run trained on images given from Python (dataset = 'memory'); pass them "
                         "again: Trainer(config, out, images=...)")
    return data.load(config.dataset if images is None else images, image_size=config.image_size,
                     channels=config.channels, limit=config.limit_train,
                     on_error=config.on_error)  # type: ignore[arg-type]


@dataclass(frozen=True)
class _Processes:
    """Where this process stands under torchrun (one process without it)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls) -> _Processes:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls()
        return cls(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def main(self) -> bool:
        return self.rank == 0


class Trainer:
    """Trains a denoiser as a :class:`~colddiff.config.TrainConfig` says.

    Args:
        config: The run's configuration.
        out: The run folder (created if needed).
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; under torchrun with CUDA each
            process takes ``cuda:LOCAL_RANK``.
        quiet: No progress bar or per-epoch lines (they are also off when stderr is not a TTY,
            except the per-epoch line).
        hooks: :data:`EpochHook` callables run on rank 0 after each epoch.
        overwrite: Let :meth:`fit` (without ``resume``) start afresh in a folder that holds a run,
            deleting that run's :data:`RUN_FILES` first. Without it, such a folder is refused.
        images: Training images from Python instead of ``config.dataset``: a tensor
            ``(N, C, H, W)`` in ``[0, 1]`` or a dataset of images or ``(image, label)`` pairs
            (:func:`colddiff.data.load`). The run's config then says ``dataset = "memory"``, and
            resuming it needs the same images again.

    Example:
        >>> trainer = Trainer(TrainConfig.preset("ddpm-default", epochs=1, limit_train=1024),
        ...                   "runs/demo")  # doctest: +SKIP
        >>> trainer.fit()  # doctest: +SKIP
    """

    def __init__(self, config: TrainConfig, out: str | os.PathLike[str], *,
                 device: str | torch.device = "auto", quiet: bool = False,
                 hooks: Sequence[EpochHook] = (), overwrite: bool = False,
                 images: Tensor | Dataset[Any] | None = None) -> None:
        config.validate()
        self._given: data.ImageDataset | None = None
        if images is not None:
            config = config.replace(dataset="memory")
            self._given = _training_set(config, images)
            channels, height, width = self._given.images.shape[1:]
            # Recorded, so that sampling and export rebuild the model from the config alone.
            config = config.replace(channels=channels if channels in (1, 3) else config.channels,
                                    image_size=height if height == width else config.image_size)
        elif config.dataset == "memory":
            _training_set(config)  # raises, saying what to pass
        self.config = config
        self.out = Path(out)
        self.quiet = quiet
        self.overwrite = overwrite
        self.hooks = list(hooks)
        self.processes = _Processes.from_environment()
        self._owns_process_group = False
        device = resolve_device(device)
        if device.type == "cuda" and self.processes.world_size > 1:
            device = torch.device("cuda", self.processes.local_rank)
        self.device = device
        if self.processes.world_size > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
            self._owns_process_group = True

        torch.manual_seed(config.seed)
        shape = tuple(self._given.images.shape[1:]) if self._given is not None else None
        self.degradation = build_degradation(config, shape)  # type: ignore[arg-type]
        self.denoiser = build_denoiser(config, self.degradation).to(device)
        self.net = self.denoiser.net
        if config.channels_last:
            self.net.to(memory_format=torch.channels_last)
        build_sampler(config, self.denoiser)  # a sampler that cannot work fails now, not after an epoch
        # Fused Adam: one kernel for all parameters on CUDA (on the CPU the default is as fast).
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=config.lr,
                                          fused=True if device.type == "cuda" else None)
        self.scaler = precision.grad_scaler(device, config.precision)  # type: ignore[arg-type]
        if config.fmd_every:
            from colddiff.fmd import FMDHook

            if not any(isinstance(hook, FMDHook) for hook in self.hooks):
                self.hooks.append(FMDHook(n=config.fmd_n, protocol=config.fmd_protocol,  # type: ignore[arg-type]
                                          sample_steps=config.sample_steps,
                                          every=config.fmd_every))
        self.ema: AveragedModel | None = None
        if config.ema is not None:
            ema_update = get_ema_multi_avg_fn(config.ema)  # type: ignore[no-untyped-call]
            self.ema = AveragedModel(self.net, multi_avg_fn=ema_update, use_buffers=True)
        if config.compile != "off":  # in place: the modules and their state_dict keys stay the same
            for module in (self.net, self.ema.module if self.ema is not None else None):
                if module is not None:
                    module.compile(mode=config.compile)
        train_net: torch.nn.Module = self.net
        if self.processes.world_size > 1:
            train_net = DistributedDataParallel(
                self.net, device_ids=[device.index] if device.type == "cuda" else None)
        self._train_denoiser = Denoiser(train_net, self.degradation, predict=self.denoiser.predict,
                                        precision=self.denoiser.precision)
        self.generator = torch.Generator(device).manual_seed(config.seed + self.processes.rank)

        self.epoch = 0            # completed epochs
        self.step = 0             # optimiser steps taken
        self._batch_in_epoch = 0  # steps of the current epoch done before a mid-epoch checkpoint
        self._epoch_loss_sum = 0.0
        self._epoch_seconds = 0.0  # training time of the current epoch, over all sessions
        self._untimed_batches = 0  # batches of it not in _epoch_seconds (compile warm-up, 0.1 checkpoints)
        self._wall_time = 0.0     # seconds of training over all sessions (wall clock)
        self._cpu_time = 0.0      # seconds of process CPU time spent training, over all sessions
        self._compile_time = 0.0  # seconds of compile warm-up steps, over all sessions
        self._ema_started = False  # the average holds weights (host-side: no device read per step)
        self._epoch_first_step = 0  # self.step before the current epoch's first batch
        #: Steps between reads of the loss back to the host (:data:`CUDA_LOSS_CHECK_EVERY` on CUDA).
        self.loss_check_every = CUDA_LOSS_CHECK_EVERY if device.type == "cuda" else 1
        self._warmup_left = 0 if config.compile == "off" else COMPILE_WARMUP_STEPS  # this session's
        self._images: Tensor | data.ImageFolder | None = None

    # ------------------------------------------------------------------ paths
    @property
    def checkpoint_path(self) -> Path:
        """``OUT/checkpoints/last.pt``."""
        return self.out / "checkpoints" / "last.pt"

    @property
    def metrics_path(self) -> Path:
        """``OUT/metrics.jsonl``."""
        return self.out / "metrics.jsonl"

    # ------------------------------------------------------------------ sampling
    def sampling_denoiser(self) -> Denoiser:
        """The denoiser used for sampling: the EMA weights when EMA is on and has started."""
        if self.ema is None or self.step < self.config.ema_start:
            return self.denoiser
        return Denoiser(self.ema.module, self.degradation, predict=self.denoiser.predict,
                        precision=self.denoiser.precision)

    def sampler(self) -> Sampler:
        """The configured sampler over :meth:`sampling_denoiser`."""
        return build_sampler(self.config, self.sampling_denoiser())

    def sample(self, n: int, sample_steps: int | None = None, seed: int | None = None, *,
               steps: int | None = None) -> Tensor:
        """``n`` samples from the prior (seeded with the config's seed unless ``seed`` is given),
        with ``sample_steps`` steps (``None``: all ``T``; ``steps`` is its deprecated old name).

        A degradation without a prior starts from the first ``n`` training images, fully degraded.
        The samples are in ``[0, 1]`` whatever the config's ``value_range``.
        """
        sample_steps = renamed("Trainer.sample", "steps", steps, "sample_steps", sample_steps)
        images = self._training_images()
        if not self.degradation.prior_fitted:  # checked first: a folder's images are decoded for it
            ensure_prior(self.degradation, self.config,
                         _some_images(images, PRIOR_IMAGES, self.config, self.device))
        generator = torch.Generator(self.device).manual_seed(self.config.seed if seed is None else seed)
        sampler = self.sampler()
        source = None
        try:
            x_T = sampler.prior(n, generator=generator)
        except PriorUnavailableError:  # e.g. super-resolution: start from degraded real images
            x0 = _some_images(images, n, self.config, self.device, spread=False)
            source = self.degradation.sample_source(x0, generator=generator)
            x_T = self.degradation.degrade(x0, self.degradation.num_timesteps, source)
        if source is None:  # not passed at all: plugin samplers written before it may not take it
            return to_unit_range(sampler.sample(x_T, sample_steps, generator=generator), self.config)
        return to_unit_range(sampler.sample(x_T, sample_steps, generator=generator, source=source),
                             self.config)

    # ------------------------------------------------------------------ training
    def _training_images(self) -> Tensor | data.ImageFolder:
        """The training images: on the device, or a folder read lazily when they would not fit
        in :data:`colddiff.data.IN_MEMORY_BYTES`."""
        if self._images is None:
            source = self._given if self._given is not None else _training_data(self.config)
            self._images = (source if isinstance(source, data.ImageFolder)
                            else from_unit_range(source.images, self.config).to(self.device))
        return self._images

    def fit(self, resume: bool = False) -> list[dict[str, Any]]:
        """Train until ``config.epochs`` epochs are done.

        Args:
            resume: Continue from ``OUT/checkpoints/last.pt``.

        Returns:
            The metrics of the epochs run in this call (rank 0; empty elsewhere).

        Raises:
            RunExistsError: If the folder holds a run and neither ``resume`` nor the trainer's
                ``overwrite`` is set.
            NonFiniteLossError: If the loss becomes NaN or infinite.
            ConfigMismatchError: If resuming a checkpoint made for a different model.
            colddiff.checkpoints.CheckpointError: If the checkpoint cannot be read.
        """
        try:
            self._prepare_folder(resume)
            if resume:
                self.resume()
            images = self._training_images()
            batches_per_epoch = (len(images) // self.processes.world_size) // self.config.batch_size
            if batches_per_epoch < 1:
                raise ValueError(
                    f"batch_size {self.config.batch_size} x {self.processes.world_size} process(es) "
                    f"exceeds the {len(images)} training images; lower batch_size (--batch-size)"
                    + (" or raise limit_train (--limit-train)" if self.config.limit_train else "")
                )
            if self.processes.main:
                self.out.mkdir(parents=True, exist_ok=True)
                self.config.save(self.out / "config.toml")
                self._say(self._announcement(len(images), batches_per_epoch))
            history = []
            for epoch in range(self.epoch + 1, self.config.epochs + 1):
                if self._out_of_time(0.0):
                    break
                record = self._train_epoch(epoch, images, batches_per_epoch)
                partial = record.get("partial", False)
                # The epoch's weights are safe before its samples and hooks run (they may fail).
                self.save_checkpoint(epoch_done=not partial)
                if self.processes.main:
                    if not partial:
                        record.update(self._end_of_epoch(epoch))
                    budget = f" (time budget reached after {record['batches']} steps)" if partial else ""
                    self._say(f"epoch {epoch}/{self.config.epochs}: loss {record['loss']:.5f}, "
                              f"{record['images_per_s']:.0f} images/s{budget}")
                    self._log_metrics(record)
                    history.append(record)
                if partial:
                    break
            return history
        finally:
            if self._owns_process_group and dist.is_initialized():
                # Free the DDP wrapper (and the gloo work it holds) now, while the interpreter is
                # whole: left to the exit's finalisation, its destruction can abort the process.
                self._train_denoiser = Denoiser(self.net, self.degradation, predict=self.denoiser.predict,
                                                precision=self.denoiser.precision)
                dist.destroy_process_group()
                self._owns_process_group = False

    def existing_run(self) -> list[Path]:
        """The :data:`RUN_FILES` already in the run folder (empty for a new run)."""
        return [self.out / name for name in RUN_FILES if (self.out / name).exists()]

    def held_run(self) -> list[Path]:
        """What makes the folder hold a run worth keeping: its ``metrics.jsonl`` and checkpoints.

        A folder with only the ``config.toml`` of a run that stopped before its first
        checkpoint (a non-finite loss, a kill) holds none, and a new run may start there.
        """
        held = [self.metrics_path] if self.metrics_path.exists() else []
        if self.checkpoint_path.parent.is_dir():
            held += sorted(self.checkpoint_path.parent.glob("*.pt"))
        return held

    def _prepare_folder(self, resume: bool) -> None:
        """Refuse to mix two runs in one folder; on ``overwrite``, clear the old run; remove the
        temporary files of writes that a killed process left behind."""
        held = self.held_run()
        if held and not resume and not self.overwrite:
            raise RunExistsError(
                f"{self.out} already holds a run ({', '.join(p.name for p in held)}); resume it "
                "(--resume, fit(resume=True)), choose a new --out, or start it afresh "
                "(--overwrite, Trainer(overwrite=True)), which deletes that run's files"
            )
        existing = self.existing_run()
        if self.processes.world_size > 1:
            dist.barrier()  # every process has looked before the main one changes anything
        if not self.processes.main:
            return
        if existing and self.overwrite and not resume:
            for path in existing:
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        checkpoints.remove_stale_temporaries(self.out, ("config.toml", "metrics.jsonl"))
        checkpoints.remove_stale_temporaries(self.checkpoint_path.parent, ("last.pt", "epoch-*.pt"))

    def _log_metrics(self, record: dict[str, Any]) -> None:
        """Append ``record`` to ``metrics.jsonl``, replacing the partial record of its epoch.

        A time budget leaves a ``partial`` record for the open epoch; when a resumed run
        finishes that epoch, the finished record takes its place.
        """
        self._rewrite_metrics(lambda old: not (old["epoch"] == record["epoch"] and old.get("partial")),
                              append=record)

    def _rewrite_metrics(self, keep: Callable[[dict[str, Any]], bool],
                         append: dict[str, Any] | None = None) -> None:
        """Atomically rewrite ``metrics.jsonl`` with the records ``keep`` accepts, then ``append``."""
        lines = self.metrics_path.read_text().splitlines() if self.metrics_path.exists() else []
        kept = [line for line in lines if line.strip() and keep(json.loads(line))]
        if append is not None:
            kept.append(json.dumps(append))
        checkpoints.atomic_write_text(self.metrics_path, "".join(line + "\n" for line in kept))

    def _announcement(self, n_images: int, batches: int) -> str:
        world = self.processes.world_size
        effective = self.config.batch_size * world
        return (f"colddiff {__version__}: {n_images} images, {batches} steps per epoch, "
                f"{world} process(es) x batch {self.config.batch_size} = effective batch "
                f"{effective}, lr {self.config.lr:g}, device {self.device}, -> {self.out}")

    def _train_epoch(self, epoch: int, images: Tensor | data.ImageFolder, batches: int) -> dict[str, Any]:
        # The sampler only needs the dataset's length: the order depends on seed and epoch alone.
        order: DistributedSampler[int] = DistributedSampler(
            range(len(images)),  # type: ignore[arg-type]
            num_replicas=self.processes.world_size, rank=self.processes.rank, shuffle=True,
            seed=self.config.seed, drop_last=True)
        order.set_epoch(epoch)
        order_list = list(order)
        index = torch.tensor(order_list, device=self.device)
        size = self.config.batch_size
        first = self._batch_in_epoch
        read: Iterator[Tensor] | None = None
        if isinstance(images, data.ImageFolder):  # the same batches, decoded by workers
            read = iter(DataLoader(images, batch_sampler=[order_list[b * size:(b + 1) * size]
                                                          for b in range(first, batches)],
                                   num_workers=self.config.data_workers,
                                   pin_memory=self.device.type == "cuda"))
        bar = tqdm(total=batches, initial=first, desc=f"epoch {epoch}/{self.config.epochs}",
                   disable=self.quiet or not self.processes.main or not sys.stderr.isatty(),
                   leave=False, unit="step")
        start, cpu_start = time.perf_counter(), time.process_time()
        session_start = self._epoch_seconds
        check_every = self.loss_check_every
        pending = torch.zeros((), dtype=torch.float64, device=self.device)  # losses not yet checked
        pending_from = first  # the first batch they cover
        warmup_here = 0  # compile warm-up steps of this epoch not yet booked
        warmed = 0  # compile warm-up steps of this session's part of the epoch (not in img/s)
        self._epoch_first_step = self.step - first
        several = self.processes.world_size > 1
        for batch in range(first, batches):
            if read is not None:  # decoded in [0, 1] by the workers
                x0 = from_unit_range(next(read).to(self.device, non_blocking=True), self.config)
            else:
                x0 = cast(Tensor, images)[index[batch * size:(batch + 1) * size]]
            if self.config.channels_last:
                x0 = x0.contiguous(memory_format=torch.channels_last)
            loss = self._train_denoiser.loss(x0, generator=self.generator)
            pending += loss.detach()
            due = (batch + 1 - first) % check_every == 0 or batch + 1 == batches
            checkpoint_due = (self.config.checkpoint_every > 0 and batch + 1 < batches
                              and (self.step + 1) % self.config.checkpoint_every == 0)
            if due or checkpoint_due:  # checked before this step changes the weights
                mean = self._add_checked_losses(pending, epoch, pending_from, batch, bar)
                pending_from = batch + 1
                elapsed = self._epoch_seconds - session_start + time.perf_counter() - start
                timed = batch + 1 - first - warmed - warmup_here
                images_per_s = timed * size * self.processes.world_size / max(elapsed, 1e-9)
                bar.set_postfix(loss=f"{mean:.4f}", img_s=f"{images_per_s:.0f}")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
            if self.config.warmup:
                for group in self.optimizer.param_groups:
                    group["lr"] = self.config.lr * min(1.0, (self.step + 1) / self.config.warmup)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if self.ema is not None and self.step + 1 >= self.config.ema_start:
                self._update_ema()
            self.step += 1
            self._batch_in_epoch = batch + 1
            bar.update()
            if self._warmup_left:
                self._warmup_left -= 1
                warmup_here += 1
            # Under torchrun the budget check is a collective: only where the loss is read anyway.
            over = (due or checkpoint_due or not several) and self._out_of_time(time.perf_counter() - start)
            if warmup_here and (not self._warmup_left or checkpoint_due or over or batch + 1 == batches):
                start, cpu_start = self._book_warmup(start, cpu_start, warmup_here)
                warmed += warmup_here
                warmup_here = 0
            if over:  # the totals hold the rest
                if pending_from <= batch:
                    self._add_checked_losses(pending, epoch, pending_from, batch, bar)
                break
            if checkpoint_due:
                self._epoch_seconds += self._account(start, cpu_start)
                self.save_checkpoint(epoch_done=False)
                start, cpu_start = time.perf_counter(), time.process_time()
        bar.close()
        self._epoch_seconds += self._account(start, cpu_start)
        epoch_seconds = self._epoch_seconds
        done = self._batch_in_epoch
        mean_loss = self._epoch_loss_sum / done
        if self.processes.world_size > 1:
            total = torch.tensor([mean_loss], dtype=torch.float64, device=self.device)
            dist.all_reduce(total)
            mean_loss = total.item() / self.processes.world_size
        # Both over the whole epoch, including the parts run before a resume (checkpoints from
        # before epoch times were saved only time the batches of this session).
        timed = done - self._untimed_batches
        if timed == 0:  # every step was compile warm-up: count them, over their time
            timed, epoch_seconds = done, epoch_seconds + self._compile_time
        images_per_s = timed * size * self.processes.world_size / max(epoch_seconds, 1e-9)
        record = {"epoch": epoch, "step": self.step, "loss": mean_loss,
                  "images_per_s": round(images_per_s, 2), "epoch_time_s": round(epoch_seconds, 3),
                  "wall_time_s": round(self._wall_time, 3), "cpu_time_s": round(self._cpu_time, 3)}
        if self.config.compile != "off":
            record["compile_time_s"] = round(self._compile_time, 3)
        if done < batches:  # stopped by the time budget: the epoch stays open
            return {**record, "partial": True, "batches": done}
        self.epoch = epoch
        self._batch_in_epoch = 0
        self._epoch_loss_sum = 0.0
        self._epoch_seconds = 0.0
        self._untimed_batches = 0
        return record

    def _add_checked_losses(self, pending: Tensor, epoch: int, first_batch: int, last_batch: int,
                            bar: tqdm[Any]) -> float:
        """Add the summed losses of batches ``first_batch..last_batch`` (0-based, ``pending``, on
        the device) to the epoch's sum, zero ``pending`` and return their mean; the one read
        back to the host in between.

        Raises:
            NonFiniteLossError: If the sum is NaN or infinite.
        """
        total = pending.item()
        mean = total / (last_batch + 1 - first_batch)
        finite = math.isfinite(mean)
        if self.processes.world_size > 1:  # all processes stop together, or none does
            flag = torch.tensor([float(finite)], device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)
            finite = bool(flag.item())
        if not finite:
            bar.close()
            self._stop_on_non_finite(mean, epoch, first_batch, last_batch)
        self._epoch_loss_sum += total
        pending.zero_()
        return mean

    def _stop_on_non_finite(self, value: float, epoch: int, first_batch: int, last_batch: int) -> NoReturn:
        """Raise :class:`NonFiniteLossError` for a NaN or infinite loss in batches
        ``first_batch..last_batch`` (0-based) of the epoch, saying which checkpoint is kept."""
        kept = (f"the last good checkpoint {self.checkpoint_path} is kept"
                if self.checkpoint_path.exists() else "no checkpoint was written")
        first_step, last_step = (self._epoch_first_step + batch + 1 for batch in (first_batch, last_batch))
        where = (f"step {last_step} (batch {last_batch + 1} of the epoch)" if first_step == last_step else
                 f"one of the steps {first_step}-{last_step} (batches "
                 f"{first_batch + 1}-{last_batch + 1} of the epoch)")
        raise NonFiniteLossError(f"training stopped: the loss is {value} at epoch {epoch}, {where}; "
                                 f"{kept}. Try a lower lr.")

    def _update_ema(self) -> None:
        """One step of the weights' moving average, ``average += (1 - decay) (current - average)``
        over the floating-point parameters and buffers, as
        :func:`torch.optim.swa_utils.get_ema_multi_avg_fn` does; integer buffers (such as
        BatchNorm's counter) are copied.

        Written out because :meth:`AveragedModel.update_parameters` reads its counter back to the
        host (a device sync per step); here whether the average has started, so that this update
        copies the current weights, is known on the host.
        """
        assert self.ema is not None
        average = [*self.ema.module.parameters(), *self.ema.module.buffers()]
        current = [*self.net.parameters(), *self.net.buffers()]
        with torch.no_grad():
            if self.step + 1 == self.config.ema_start or not self._ema_started:  # (re)start here
                torch._foreach_copy_(average, current)
                self.ema.n_averaged.fill_(1)
                self._ema_started = True
                return
            floating = [(a, c) for a, c in zip(average, current, strict=True) if a.is_floating_point()]
            torch._foreach_lerp_([a for a, _ in floating], [c for _, c in floating],
                                 1.0 - cast(float, self.config.ema))
            for a, c in zip(average, current, strict=True):
                if not a.is_floating_point():
                    a.copy_(c)
            self.ema.n_averaged += 1

    def _book_warmup(self, start: float, cpu_start: float, steps: int) -> tuple[float, float]:
        """Book the time since ``start`` of ``steps`` compile warm-up steps as ``compile_time_s``
        instead of training time (they do not count in ``images_per_s``); return the new starts
        of the wall and CPU timing."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self._compile_time += self._account(start, cpu_start)
        self._untimed_batches += steps
        return time.perf_counter(), time.process_time()

    def _out_of_time(self, elapsed: float) -> bool:
        """Whether ``max_minutes`` of training (over all sessions) is used up; all ranks agree."""
        if self.config.max_minutes is None:
            return False
        over = self._wall_time + elapsed >= self.config.max_minutes * 60
        if self.processes.world_size > 1:
            flag = torch.tensor([float(over)], device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            over = bool(flag.item())
        return over

    def _account(self, start: float, cpu_start: float) -> float:
        """Add the wall and CPU time since ``start`` / ``cpu_start`` to the totals; return the wall time."""
        seconds = time.perf_counter() - start
        self._wall_time += seconds
        self._cpu_time += time.process_time() - cpu_start
        return seconds

    def _end_of_epoch(self, epoch: int) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        every = self.config.sample_every
        if every and (epoch % every == 0 or epoch == self.config.epochs):
            start = time.perf_counter()
            sample_steps = self.config.sample_steps or min(self.degradation.num_timesteps, PREVIEW_STEPS)
            samples = self.sample(self.config.sample_n, sample_steps)
            path = self.out / "samples" / f"epoch-{epoch:03d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            save_image(samples.clamp(0, 1), path, nrow=math.ceil(math.sqrt(len(samples))))
            extra["sample_time_s"] = round(time.perf_counter() - start, 3)
        for hook in self.hooks:
            extra.update(hook(self, epoch) or {})
        return extra

    def _say(self, message: str) -> None:
        if not self.quiet and self.processes.main:
            print(message, file=sys.stderr, flush=True)

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict[str, Any]:
        """Everything a checkpoint holds (tensors and plain data only)."""
        rng = {"generator": self.generator.get_state(), "torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "colddiff_version": __version__,
            "config": self.config.to_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "batch_in_epoch": self._batch_in_epoch,
            "epoch_loss_sum": self._epoch_loss_sum,
            "epoch_time_s": self._epoch_seconds,
            "wall_time_s": self._wall_time,
            "cpu_time_s": self._cpu_time,
            "compile_time_s": self._compile_time,
            "untimed_batches": self._untimed_batches,
            "world_size": self.processes.world_size,
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "grad_scaler": self.scaler.state_dict(),
            "rng": rng,
        }

    def save_checkpoint(self, epoch_done: bool) -> None:
        """Atomically write ``last.pt`` (rank 0 only), and ``epoch-NNN.pt`` if kept."""
        if not self.processes.main:
            return
        path = checkpoints.save(self.state(), self.checkpoint_path)
        if epoch_done and self.config.keep_checkpoints:
            kept = path.with_name(f"epoch-{self.epoch:03d}.pt")
            checkpoints.save(self.state(), kept)

    def resume(self) -> None:
        """Load ``OUT/checkpoints/last.pt`` into this trainer.

        Raises:
            colddiff.checkpoints.CheckpointError: If it is missing or unreadable.
            ConfigMismatchError: If it was made for a different model; the fields are named.
        """
        state = checkpoints.load(self.checkpoint_path, map_location=self.device)
        differences = model_differences(state.get("config", {}), self.config)
        if differences:
            raise ConfigMismatchError(
                f"cannot resume {self.checkpoint_path}: it was trained with a different model: "
                + "; ".join(differences)
            )
        if (self.config.ema is None) != (state.get("ema") is None):
            raise ConfigMismatchError(
                f"cannot resume {self.checkpoint_path}: ema is {state['config'].get('ema')!r} there "
                f"and {self.config.ema!r} here"
            )
        self.net.load_state_dict(state["model"])
        # A saved optimizer state carries its groups' options, fused among them: keep this
        # device's choice (fused on CUDA), whatever the device that saved it.
        fused = self.optimizer.param_groups[0]["fused"]
        self.optimizer.load_state_dict({**state["optimizer"], "param_groups": [
            {**group, "fused": fused} for group in state["optimizer"]["param_groups"]]})
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
            self._ema_started = int(self.ema.n_averaged) > 0
        if state.get("grad_scaler") and self.scaler.is_enabled():  # an fp16 run's loss scale
            self.scaler.load_state_dict(state["grad_scaler"])
        self.generator.set_state(state["rng"]["generator"].cpu())
        torch.set_rng_state(state["rng"]["torch"].cpu())
        if "cuda" in state["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"].cpu(), self.device)
        self.epoch = int(state["epoch"])
        self.step = int(state["step"])
        self._batch_in_epoch = int(state["batch_in_epoch"])
        self._epoch_loss_sum = float(state["epoch_loss_sum"])
        self._epoch_seconds = float(state.get("epoch_time_s", 0.0))
        # Batches whose time is not in epoch_time_s: compile warm-up, or all before a resume from
        # a checkpoint of colddiff 0.1, which saved no epoch time.
        self._untimed_batches = int(state.get("untimed_batches",
                                              0 if "epoch_time_s" in state else self._batch_in_epoch))
        self._compile_time = float(state.get("compile_time_s", 0.0))
        self._wall_time = float(state["wall_time_s"])
        self._cpu_time = float(state.get("cpu_time_s", 0.0))
        if self.processes.main and self.metrics_path.exists():
            self._rewrite_metrics(lambda old: old["step"] <= self.step)
