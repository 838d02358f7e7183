"""A run's training state: what its checkpoint holds, and resuming from one.

A checkpoint (``OUT/checkpoints/last.pt``, written by :func:`colddiff.checkpoints.save`) holds
tensors and plain data only, under these keys: ``colddiff_version``, ``config``, the counters
(``epoch``, ``step``, ``batch_in_epoch``, ``epoch_loss_sum``), the clocks (``epoch_time_s``,
``wall_time_s``, ``cpu_time_s``, ``compile_time_s``, ``untimed_batches``), ``world_size``,
``model``, ``optimizer``, ``ema`` (``None`` without EMA), ``grad_scaler`` and ``rng`` (the noise
generator's state, torch's, and CUDA's on CUDA). Resuming restores all of it, so that the
resumed run continues the very same run: same batches, same noise, same loss curve.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from colddiff import __version__, checkpoints
from colddiff.config import TrainConfig, model_differences
from colddiff.training.ema import EMA
from colddiff.training.monitor import Clocks, LossCheck

__all__ = ["ConfigMismatchError", "Progress", "TrainingState", "load_optimizer_state"]


class ConfigMismatchError(ValueError):
    """A checkpoint was made for a different model than the config asks for."""


@dataclass
class Progress:
    """How far a run has come.

    Attributes:
        epoch: Completed epochs.
        step: Optimiser steps taken.
        batch_in_epoch: Steps of the open epoch taken (non-zero after a mid-epoch checkpoint).
    """

    epoch: int = 0
    step: int = 0
    batch_in_epoch: int = 0


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load a saved optimizer ``state`` into ``optimizer``, keeping this optimizer's ``fused``.

    A saved state carries its groups' options, ``fused`` among them: this device's choice (fused
    on CUDA) is kept, whatever the device that saved it.
    """
    fused = optimizer.param_groups[0]["fused"]
    optimizer.load_state_dict({**state, "param_groups": [
        {**group, "fused": fused} for group in state["param_groups"]]})


@dataclass
class TrainingState:
    """Everything a checkpoint holds, gathered from the parts of a run that own it.

    Attributes:
        config: The run's configuration.
        net: The network being trained.
        optimizer: Its optimiser.
        scaler: The gradient scaler (active under fp16 only).
        ema: The moving average of the weights, or ``None``.
        generator: The generator of the training noise.
        device: The training device.
        world_size: The number of training processes.
        progress: The counters.
        losses: The loss check (it holds the open epoch's loss sum).
        clocks: The clocks.
    """

    config: TrainConfig
    net: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    ema: EMA | None
    generator: torch.Generator
    device: torch.device
    world_size: int
    losses: LossCheck
    clocks: Clocks
    progress: Progress = field(default_factory=Progress)

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint's contents (tensors and plain data only)."""
        rng = {"generator": self.generator.get_state(), "torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "colddiff_version": __version__,
            "config": self.config.to_dict(),
            "epoch": self.progress.epoch,
            "step": self.progress.step,
            "batch_in_epoch": self.progress.batch_in_epoch,
            "epoch_loss_sum": self.losses.epoch_sum,
            **self.clocks.state_dict(),
            "world_size": self.world_size,
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "grad_scaler": self.scaler.state_dict(),
            "rng": rng,
        }

    def close_epoch(self, epoch: int) -> None:
        """Record ``epoch`` as finished: the next one starts from its first batch, at no loss
        and no time."""
        self.progress.epoch, self.progress.batch_in_epoch = epoch, 0
        self.losses.epoch_sum = 0.0
        self.clocks.finish_epoch()

    def load(self, path: Path) -> None:
        """Resume from the checkpoint ``path``.

        Raises:
            colddiff.checkpoints.CheckpointError: If it is missing or unreadable.
            ConfigMismatchError: If it was made for a different model, or with(out) EMA or
                ``embedding_lr`` where this run has none (has them); the fields are named.
        """
        state = checkpoints.load(path, map_location=self.device)
        self._check_model(state, path)
        self.net.load_state_dict(state["model"])
        load_optimizer_state(self.optimizer, state["optimizer"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        if state["grad_scaler"] and self.scaler.is_enabled():  # an fp16 run's loss scale
            self.scaler.load_state_dict(state["grad_scaler"])
        self.generator.set_state(state["rng"]["generator"].cpu())
        torch.set_rng_state(state["rng"]["torch"].cpu())
        if "cuda" in state["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"].cpu(), self.device)
        progress = self.progress
        progress.epoch, progress.step = int(state["epoch"]), int(state["step"])
        progress.batch_in_epoch = int(state["batch_in_epoch"])
        self.losses.epoch_sum = float(state["epoch_loss_sum"])
        self.clocks.load_state_dict(state)

    def _check_model(self, state: dict[str, Any], path: Path) -> None:
        """Refuse a checkpoint of another model, or with EMA where this run has none, or with
        ``embedding_lr`` (an optimiser group of its own) where this run has none (or the other
        way round)."""
        differences = model_differences(state["config"], self.config)
        if differences:
            raise ConfigMismatchError(
                f"cannot resume {path}: it was trained with a different model: " + "; ".join(differences))
        if (self.config.ema is None) != (state["ema"] is None):
            raise ConfigMismatchError(f"cannot resume {path}: ema is {state['config'].get('ema')!r} there "
                                      f"and {self.config.ema!r} here")
        saved_rate = state["config"].get("embedding_lr")
        if (self.config.embedding_lr is None) != (saved_rate is None):
            raise ConfigMismatchError(f"cannot resume {path}: embedding_lr is {saved_rate!r} there and "
                                      f"{self.config.embedding_lr!r} here (set it, or not, as there: it "
                                      "gives the class embedding an optimiser group of its own)")
