"""The :class:`Trainer`: builds a run's parts once, and runs its epochs."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from colddiff import __version__, checkpoints, data, precision
from colddiff.config import TrainConfig, build_degradation, build_denoiser, build_sampler
from colddiff.denoisers import Denoiser
from colddiff.runtime import resolve_device
from colddiff.samplers import Sampler
from colddiff.sampling import generate
from colddiff.training.batches import Batches, training_set, with_given_images, with_image_shape
from colddiff.training.distributed import Processes
from colddiff.training.ema import EMA
from colddiff.training.hooks import EpochHook, with_default_hooks
from colddiff.training.init_from import initialise
from colddiff.training.interrupts import Interrupts
from colddiff.training.labels import with_classes
from colddiff.training.monitor import Clocks, LossCheck
from colddiff.training.optimizer import build_optimizer, set_learning_rates
from colddiff.training.run_folder import RunFolder
from colddiff.training.state import TrainingState

__all__ = ["Trainer"]


class Trainer:
    """Trains a denoiser as a :class:`~colddiff.config.TrainConfig` says.

    The degradation, the denoiser and the sampler are built (and checked) once, here; the
    sampler is reused for every sample, over the EMA weights once the average has started.

    Args:
        config: The run's configuration.
        out: The run folder (created if needed).
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; under torchrun with CUDA each
            process takes ``cuda:LOCAL_RANK``.
        quiet: No progress bar or per-epoch lines (they are also off when stderr is not a TTY,
            except the per-epoch line).
        hooks: :class:`~colddiff.training.hooks.EpochHook` callables run on rank 0 after each
            epoch (after the sample grid of ``sample_every``).
        overwrite: Let :meth:`fit` (without ``resume``) start afresh in a folder that holds a run,
            deleting that run's :data:`~colddiff.training.run_folder.RUN_FILES` first. Without
            it, such a folder is refused.
        images: Training images from Python instead of ``config.dataset``: a tensor
            ``(N, C, H, W)`` in ``[0, 1]`` or a dataset of images or ``(image, label)`` pairs
            (:func:`colddiff.data.load`). The run's config then says ``dataset = "memory"``, and
            resuming it needs the same images again.
        labels: With a tensor of ``images``: their class indices ``(N,)``, for a conditional
            config.

    Raises:
        ValueError: If the config is invalid, its parts do not work together (a sampler for
            another degradation), it trained on images from Python and none are given, or it
            is conditional and the images have no labels (or other classes than it names).

    Example:
        >>> trainer = Trainer(TrainConfig.preset("ddpm-default", epochs=1, limit_train=1024),
        ...                   "runs/demo")  # doctest: +SKIP
        >>> trainer.fit()  # doctest: +SKIP
    """

    def __init__(self, config: TrainConfig, out: str | os.PathLike[str], *,
                 device: str | torch.device = "auto", quiet: bool = False,
                 hooks: Sequence[EpochHook] = (), overwrite: bool = False,
                 images: Tensor | Dataset[Any] | None = None, labels: Tensor | None = None) -> None:
        config.validate()
        given = None
        if images is not None:
            config, given = with_given_images(config, images, labels)
        elif config.dataset == "memory":
            training_set(config)  # raises, saying what to pass
        # Both recorded in config.toml and the checkpoints:
        config = with_classes(with_image_shape(config), given)
        self.config, self.quiet, self.overwrite = config, quiet, overwrite
        self.run = RunFolder(out)
        self.processes = Processes.from_environment()
        self.device = self.processes.device(resolve_device(device))
        self._owns_process_group = self.processes.start(self.device)
        torch.manual_seed(config.seed)
        self._build_model(given)
        self.batches = Batches(config, self.device, self.processes, given)
        self.hooks = with_default_hooks(config, hooks)
        self.losses = LossCheck(self.device, self.processes, self.run.checkpoint_path)
        self.clocks = Clocks(self.device, self.processes, config.max_minutes,
                             compiled=config.compile != "off")
        self.interrupts = Interrupts(self.processes, self.device, notify=not quiet and self.processes.main)
        self.training_state = TrainingState(config, self.net, self.optimizer, self.scaler, self.ema,
                                            self.generator, self.device, self.processes.world_size,
                                            self.losses, self.clocks)

    def _build_model(self, given: data.ImageDataset | None) -> None:
        """Build the degradation, the denoiser, the sampler, the optimiser and the EMA, once."""
        config, device = self.config, self.device
        shape = tuple(given.images.shape[1:]) if given is not None else None
        self.degradation = build_degradation(config, shape)  # type: ignore[arg-type]
        self.denoiser = build_denoiser(config, self.degradation).to(device)
        self.net = self.denoiser.net
        if config.channels_last:
            self.net.to(memory_format=torch.channels_last)
        self._sampler = build_sampler(config, self.denoiser)  # one that cannot work fails now
        self.optimizer = build_optimizer(self.net, config, device)
        self.scaler = precision.grad_scaler(device, config.precision)  # type: ignore[arg-type]
        self.ema = EMA(self.net, config.ema, config.ema_start) if config.ema is not None else None
        if config.compile != "off":  # in place: the modules and their state_dict keys stay the same
            for module in (self.net, *([self.ema.module] if self.ema is not None else [])):
                module.compile(mode=config.compile)
        self._ema_denoiser = None if self.ema is None else self._denoiser_for(self.ema.module)
        self._train_denoiser = self.denoiser
        if self.processes.several:
            self._train_denoiser = self._denoiser_for(self.processes.wrap(self.net, device))
        self.generator = torch.Generator(device).manual_seed(config.seed + self.processes.rank)

    def _denoiser_for(self, net: torch.nn.Module) -> Denoiser:
        """The denoiser's twin over ``net`` (the EMA copy, the DDP wrapper)."""
        return Denoiser(net, self.degradation, predict=self.denoiser.predict,
                        precision=self.denoiser.precision, loss=self.denoiser.loss_name,
                        cond_drop=self.denoiser.cond_drop)

    # ------------------------------------------------------------------ where it stands
    @property
    def out(self) -> Path:
        """The run folder."""
        return self.run.path

    @property
    def checkpoint_path(self) -> Path:
        """``OUT/checkpoints/last.pt``."""
        return self.run.checkpoint_path

    @property
    def metrics_path(self) -> Path:
        """``OUT/metrics.jsonl``."""
        return self.run.metrics_path

    @property
    def epoch(self) -> int:
        """Completed epochs."""
        return self.training_state.progress.epoch

    @property
    def step(self) -> int:
        """Optimiser steps taken."""
        return self.training_state.progress.step

    # ------------------------------------------------------------------ sampling
    def sampling_denoiser(self) -> Denoiser:
        """The denoiser used for sampling: the EMA weights when EMA is on and has started."""
        if self.ema is None or self._ema_denoiser is None or not self.ema.active(self.step):
            return self.denoiser
        return self._ema_denoiser

    def sampler(self) -> Sampler:
        """The configured sampler (built once) over :meth:`sampling_denoiser`."""
        self._sampler.denoiser = self.sampling_denoiser()
        return self._sampler

    def sample(self, n: int, sample_steps: int | None = None, seed: int | None = None, *,
               labels: Tensor | None = None, guidance: float | None = None) -> Tensor:
        """``n`` samples from the prior (seeded with the config's seed unless ``seed`` is given),
        with ``sample_steps`` steps (``None``: all ``T``), through :func:`colddiff.sampling.generate`
        (a conditional model: of the classes ``labels``, by default each class alike, with
        ``guidance``, by default the config's).

        A degradation without a prior starts from the first ``n`` training images, fully degraded.
        The samples are in ``[0, 1]`` whatever the config's ``value_range``.
        """
        generator = torch.Generator(self.device).manual_seed(self.config.seed if seed is None else seed)
        return generate(self.sampler(), n, sample_steps=sample_steps, generator=generator,
                        config=self.config, images=self.batches, labels=labels, guidance=guidance)

    # ------------------------------------------------------------------ training
    def fit(self, resume: bool = False) -> list[dict[str, Any]]:
        """Train until ``config.epochs`` epochs are done.

        Ctrl-C (``SIGINT``) or ``SIGTERM`` stops the run after the step under way, with a
        checkpoint to resume from, and raises :exc:`TrainingInterrupted`; a second one aborts at
        once (:mod:`.interrupts`).

        Args:
            resume: Continue from ``OUT/checkpoints/last.pt``; in a folder that holds only the
                ``config.toml`` of a run stopped before its first checkpoint, start from step 0.

        Returns:
            The metrics of the epochs run in this call (rank 0; empty elsewhere).

        Raises:
            RunExistsError: If the folder holds a run and neither ``resume`` nor the trainer's
                ``overwrite`` is set.
            NothingToResumeError: If ``resume`` is set and the folder holds no checkpoint to
                continue from (the message says how to start afresh).
            TrainingInterrupted: If a signal stopped the run (its checkpoint is written).
            NonFiniteLossError: If the loss becomes NaN or infinite.
            ConfigMismatchError: If resuming a checkpoint made for a different model.
            ValueError: If there are fewer training images than one batch per process.
            colddiff.checkpoints.CheckpointError: If the checkpoint cannot be read.
        """
        try:
            with self.interrupts.caught():
                history = self._run(resume)
            if self.interrupts.stopping and self.epoch < self.config.epochs:
                raise self.interrupts.error(self.step, self.checkpoint_path)
            return history
        finally:
            self._leave_process_group()

    def _run(self, resume: bool) -> list[dict[str, Any]]:
        """:meth:`fit`'s work: get the folder ready, then run the epochs until the last one, the
        time budget or an interrupt."""
        self.run.prepare(resume, self.overwrite, self.processes)
        if resume and self.run.resumable():
            self.resume()
        else:
            if resume:
                self._say(f"{self.out} holds no checkpoint (its run stopped before the first): "
                          "starting it from step 0")
            if self.config.init_from is not None:
                new = initialise(self.net, self.config)
                self._say(f"started from the weights of {self.config.init_from}"
                          + (f" ({', '.join(new)} at zero)" if new else ""))
        batches = self.batches.per_epoch()
        if self.processes.main:
            self.run.write_config(self.config)
            self._say(self._announcement(batches))
        history = []
        if self.epoch < self.config.epochs and self.clocks.out_of_time(between_epochs=True):
            self._say(f"the time budget, max_minutes = {self.config.max_minutes:g}, is used up "
                      f"({self.clocks.wall_time / 60:.2f} minutes trained over all sessions): nothing "
                      "to train; resume with a larger max_minutes, or none")
        for epoch in range(self.epoch + 1, self.config.epochs + 1):
            if self.clocks.out_of_time(between_epochs=True):
                break
            record = self._train_epoch(epoch, batches)
            partial = record.get("partial", False)
            # The epoch's weights are safe before its samples and hooks run (they may fail).
            self.save_checkpoint(epoch_done=not partial)
            if self.processes.main:
                history.append(self._finish_epoch(epoch, record))
            if partial or self.interrupts.agree():
                break
        return history

    def _train_epoch(self, epoch: int, batches: int) -> dict[str, Any]:
        """Train ``epoch`` from its first batch not yet done; return its metrics (``partial``
        when the time budget or an interrupt stopped it)."""
        progress, losses, clocks = self.training_state.progress, self.losses, self.clocks
        first = progress.batch_in_epoch
        images_per_step = self.config.batch_size * self.processes.world_size
        read = self.batches.epoch(epoch, first)
        losses.start_epoch(first, progress.step - first)
        with self._progress_bar(epoch, batches, first) as bar:
            clocks.start_epoch()
            for batch, (x0, labels) in enumerate(read, start=first):
                last = batch + 1 == batches
                loss = self._train_denoiser.loss(x0, generator=self.generator, labels=labels)
                losses.add(loss)
                due = losses.due(batch, last)
                checkpoint_due = self._checkpoint_due(last)
                if due or checkpoint_due:  # checked before this step changes the weights
                    mean = losses.check(epoch, batch)
                    speed = clocks.session_images_per_s(batch + 1 - first, images_per_step)
                    bar.set_postfix(loss=f"{mean:.4f}", img_s=f"{speed:.0f}")
                self._optimise(loss)
                progress.step, progress.batch_in_epoch = progress.step + 1, batch + 1
                bar.update()
                # Under torchrun the budget and the interrupts are collectives: only where the loss
                # is read anyway.
                agreed = due or checkpoint_due or not self.processes.several
                stop = agreed and (clocks.out_of_time() or self.interrupts.agree())
                clocks.step_done(book=checkpoint_due or stop or last)
                if stop:  # the totals hold the rest
                    losses.check_rest(epoch, batch)
                    break
                if checkpoint_due:
                    clocks.end_lap_of_epoch()
                    self.save_checkpoint(epoch_done=False)
                    clocks.restart()
        clocks.end_lap_of_epoch()
        return self._epoch_record(epoch, batches)

    def _progress_bar(self, epoch: int, batches: int, first: int) -> tqdm[Any]:
        return tqdm(total=batches, initial=first, desc=f"epoch {epoch}/{self.config.epochs}",
                    disable=self.quiet or not self.processes.main or not sys.stderr.isatty(),
                    leave=False, unit="step")

    def _checkpoint_due(self, last: bool) -> bool:
        """Whether a mid-epoch checkpoint follows this step (``checkpoint_every``)."""
        every = self.config.checkpoint_every
        return every > 0 and not last and (self.step + 1) % every == 0

    def _optimise(self, loss: Tensor) -> None:
        """One optimiser step on ``loss`` (the learning rate's warm-up applied), then the EMA's."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
        set_learning_rates(self.optimizer, self.config, self.step)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.step + 1)

    def _epoch_record(self, epoch: int, batches: int) -> dict[str, Any]:
        """The epoch's ``metrics.jsonl`` record; the epoch is closed unless the budget stopped it."""
        done = self.training_state.progress.batch_in_epoch
        # Both over the whole epoch, including the parts run before a resume.
        record = {"epoch": epoch, "step": self.step, "loss": self.losses.epoch_mean(done),
                  **self.clocks.epoch_summary(done, self.config.batch_size * self.processes.world_size)}
        if done < batches:  # stopped by the time budget or an interrupt: the epoch stays open
            return {**record, "partial": True, "batches": done}
        self.training_state.close_epoch(epoch)
        return record

    def _finish_epoch(self, epoch: int, record: dict[str, Any]) -> dict[str, Any]:
        """Run the hooks after a finished epoch, say how it went, log its record (rank 0)."""
        partial = record.get("partial", False)
        if not partial:
            for hook in self.hooks:
                record.update(hook(self, epoch) or {})
        why = "interrupted" if self.interrupts.stopping else "time budget reached"
        stopped = f" ({why} after {record['batches']} steps)" if partial else ""
        self._say(f"epoch {epoch}/{self.config.epochs}: loss {record['loss']:.5f}, "
                  f"{record['images_per_s']:.0f} images/s{stopped}")
        self.run.log_metrics(record)
        return record

    def _announcement(self, batches: int) -> str:
        world, size = self.processes.world_size, self.config.batch_size
        used = batches * size * world
        left_out = len(self.batches) - used  # the sampler's drop_last: no batch is partial
        epoch = f" ({used} images: {left_out} left out of each, other ones each time)" if left_out else ""
        rate = self.config.embedding_lr
        embedding = f" (class embedding {rate:g})" if rate is not None else ""
        return (f"colddiff {__version__}: {len(self.batches)} images, {batches} steps per epoch{epoch}, "
                f"{world} process(es) x batch {size} = effective batch {size * world}, "
                f"lr {self.config.lr:g}{embedding}, device {self.device}, -> {self.out}")

    def _say(self, message: str) -> None:
        if not self.quiet and self.processes.main:
            print(message, file=sys.stderr, flush=True)

    def _leave_process_group(self) -> None:
        """End the process group this trainer started, if any."""
        if self._owns_process_group and dist.is_initialized():
            # Free the DDP wrapper (and the gloo work it holds) now, while the interpreter is
            # whole: left to the exit's finalisation, its destruction can abort the process.
            self._train_denoiser = self.denoiser
            dist.destroy_process_group()
            self._owns_process_group = False

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict[str, Any]:
        """Everything a checkpoint holds (tensors and plain data only; :mod:`.state`)."""
        return self.training_state.to_dict()

    def save_checkpoint(self, epoch_done: bool) -> None:
        """Atomically write ``last.pt`` (rank 0 only), and ``epoch-NNN.pt`` if kept."""
        if not self.processes.main:
            return
        checkpoints.save(self.state(), self.checkpoint_path)
        if epoch_done and self.config.keep_checkpoints:
            checkpoints.save(self.state(), self.run.kept_checkpoint(self.epoch))

    def resume(self) -> None:
        """Load ``OUT/checkpoints/last.pt`` into this trainer.

        Raises:
            colddiff.checkpoints.CheckpointError: If it is missing or unreadable.
            ConfigMismatchError: If it was made for a different model; the fields are named.
        """
        self.training_state.load(self.checkpoint_path)
        if self.processes.main:
            self.run.forget_metrics_after(self.step)
