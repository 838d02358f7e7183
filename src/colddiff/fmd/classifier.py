"""MNIST classifiers whose 1024-d penultimate features define the Fréchet MNIST Distance."""

from __future__ import annotations

import math
import time
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from colddiff import checkpoints

__all__ = [
    "ARCHITECTURES",
    "FEATURE_DIM",
    "WEIGHTS",
    "MNISTClassifier",
    "WeightsError",
    "evaluate",
    "load_classifier",
    "train_classifier",
]

#: Width of the feature vector (the penultimate layer).
FEATURE_DIM = 1024
ARCHITECTURES = ("default", "report")
#: Shipped weight versions and their architecture.
WEIGHTS = {"mnist-v1": "default"}

Arch = Literal["default", "report"]


class WeightsError(RuntimeError):
    """Shipped classifier weights are missing, altered or unknown."""


def _conv_block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class MNISTClassifier(nn.Module):
    """A digit classifier with a 1024-d penultimate layer.

    ``arch="default"`` (colddiff's, cheap on a CPU, about 104k parameters): 3x3 convolutions
    with BatchNorm and ReLU: one at 28x28 (32 channels), max-pool, two at 14x14 (64), max-pool,
    one at 7x7 (64), then ``AdaptiveAvgPool2d(4)`` -> 1024 features -> ``Linear(1024, 10)``.

    ``arch="report"``: the reference study's appendix network: four ``Conv2d(k=5, padding 2) ->
    LayerNorm((C, 28, 28)) -> GELU`` blocks with 32, 64, 128, 64 channels at 28x28,
    ``AdaptiveAvgPool2d(4)`` -> 1024 features -> ``Linear(1024, 10)``.

    Inputs are ``(N, 1, 28, 28)`` images in ``[0, 1]``.
    """

    def __init__(self, arch: Arch = "default") -> None:
        super().__init__()
        if arch not in ARCHITECTURES:
            raise ValueError(f"arch must be one of {list(ARCHITECTURES)}, got {arch!r}")
        self.arch = arch
        layers: list[nn.Module]
        if arch == "default":
            layers = [*_conv_block(1, 32), nn.MaxPool2d(2),
                      *_conv_block(32, 64), *_conv_block(64, 64), nn.MaxPool2d(2),
                      *_conv_block(64, 64)]
        else:
            layers, previous = [], 1
            for width in (32, 64, 128, 64):
                layers += [nn.Conv2d(previous, width, 5, padding=2), nn.LayerNorm((width, 28, 28)),
                           nn.GELU()]
                previous = width
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.head = nn.Linear(FEATURE_DIM, 10)

    def features(self, x: Tensor) -> Tensor:
        """The ``(N, 1024)`` penultimate features of ``x``."""
        out: Tensor = self.body(x)
        return out

    def forward(self, x: Tensor) -> Tensor:
        """The ``(N, 10)`` class logits of ``x``."""
        out: Tensor = self.head(self.features(x))
        return out


def _weights_dir() -> Path:
    return Path(str(resources.files("colddiff.fmd") / "weights"))


def load_classifier(version: str = "mnist-v1", device: str | torch.device = "cpu") -> MNISTClassifier:
    """The shipped classifier ``version`` in eval mode, its SHA-256 checked.

    Raises:
        WeightsError: If the version is unknown or its file is missing or altered.
    """
    if version not in WEIGHTS:
        raise WeightsError(f"version must be one of {sorted(WEIGHTS)}, got {version!r}")
    try:
        state, _ = checkpoints.load_with_card(_weights_dir() / f"{version}.pt", required=("model", "arch"))
    except checkpoints.CheckpointError as error:
        raise WeightsError(str(error)) from error
    model = MNISTClassifier(state["arch"])
    model.load_state_dict({k: v.float() for k, v in state["model"].items()})
    model.version = version  # type: ignore[assignment]
    return model.to(device).eval()


@torch.no_grad()
def evaluate(model: MNISTClassifier, images: Tensor, labels: Tensor, batch_size: int = 1000) -> float:
    """Top-1 accuracy of ``model`` on ``images``."""
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = model(images[start:start + batch_size])
        correct += int((logits.argmax(1) == labels[start:start + batch_size]).sum())
    model.train(was_training)
    return correct / len(images)


def _augment(x: Tensor, generator: torch.Generator) -> Tensor:
    """Light augmentation: random rotation (+-10 deg), scale (0.9-1.1) and shift (+-2 px)."""
    n = x.shape[0]
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(10)
    scale = 1 + (torch.rand(n, generator=generator) * 2 - 1) * 0.1
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * (2 / 14)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    return nn.functional.grid_sample(x, grid, align_corners=False, padding_mode="zeros")


def train_classifier(arch: Arch = "default", *, epochs: int = 8, batch_size: int = 128,
                     lr: float = 3e-3, seed: int = 0, augment: bool = True,
                     log: Any = print) -> tuple[MNISTClassifier, dict[str, Any]]:
    """Train a classifier on MNIST (AdamW, one-cycle learning rate, light augmentation).

    Returns:
        The model (eval mode) and a record: seed, epochs, CPU and wall time, test accuracy per
        epoch.
    """
    from colddiff import data

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    train, test = data.mnist(train=True), data.mnist(train=False)
    model = MNISTClassifier(arch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    steps_per_epoch = len(train) // batch_size
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, epochs=epochs,
                                                   steps_per_epoch=steps_per_epoch)
    wall, cpu = time.perf_counter(), time.process_time()
    accuracies = []
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(train), generator=generator)
        total = 0.0
        for step in range(steps_per_epoch):
            index = order[step * batch_size:(step + 1) * batch_size]
            x = train.images[index]
            if augment:
                x = _augment(x, generator)
            loss = nn.functional.cross_entropy(model(x), train.labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            schedule.step()
            total += loss.item()
        accuracy = evaluate(model, test.images, test.labels)
        accuracies.append(accuracy)
        log(f"epoch {epoch}/{epochs}: loss {total / steps_per_epoch:.4f}, test accuracy "
            f"{accuracy:.4%} ({time.perf_counter() - wall:.0f} s)")
    record = {"arch": arch, "seed": seed, "epochs": epochs, "batch_size": batch_size, "lr": lr,
              "augment": augment, "test_accuracy": accuracies[-1],
              "test_accuracy_per_epoch": accuracies,
              "wall_time_s": round(time.perf_counter() - wall, 1),
              "cpu_time_s": round(time.process_time() - cpu, 1),
              "torch": torch.__version__, "threads": torch.get_num_threads()}
    return model.eval(), record


def save_classifier(model: MNISTClassifier, path: str | Path, record: dict[str, Any]) -> dict[str, Any]:
    """Write ``model`` (float32 state dict) atomically and a JSON card beside it with its SHA-256."""
    return checkpoints.save_with_card({"model": model.state_dict(), "arch": model.arch}, path, record)
