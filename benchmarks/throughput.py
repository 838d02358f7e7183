"""Training throughput: colddiff's Trainer against a bare PyTorch loop, side by side.

For each configuration (network, batch size, precision, compilation, memory layout) both train
the same freshly initialised network with Adam on the same in-device MNIST batches for the same
number of steps: the Trainer through ``fit()`` (its own ``images_per_s``, which leaves out the
checkpoint at the end of the epoch and compile warm-up), the bare loop as the few lines anyone
would write (``randperm`` batches, ``torch.autocast``, a gradient scaler for fp16, fused Adam on
CUDA), timed the same way. EMA is off in both: the overhead measured is the Trainer's own.

``python -m benchmarks --cases train_throughput [--device cuda]`` runs the default grid;
``python -m benchmarks.throughput --device cuda --nets unet --precisions fp32 bf16 fp16
--batch-size 1024 --compile off default`` any other.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass

import torch
from torch import Tensor

from benchmarks.common import Result
from colddiff import data, precision
from colddiff.config import TrainConfig, build_denoiser
from colddiff.runtime import COMPILE_MODES, PRECISIONS, resolve_device
from colddiff.training import COMPILE_WARMUP_STEPS, Trainer

#: The networks measured: the report's CNN and the shipped mnist-ddpm recipe's U-Net.
NETS = {"cnn": "ddpm-default", "unet": "mnist-unet"}


@dataclass(frozen=True)
class Setting:
    """One configuration of the throughput grid."""

    net: str = "cnn"
    batch_size: int = 128
    precision: str = "fp32"
    compile: str = "off"
    channels_last: bool = False

    def label(self) -> str:
        extras = [self.precision] + ([f"compile={self.compile}"] if self.compile != "off" else []) \
            + (["channels_last"] if self.channels_last else [])
        return f"{self.net} b{self.batch_size} {' '.join(extras)}"

    def config(self, steps: int) -> TrainConfig:
        return TrainConfig.preset(NETS[self.net], epochs=1, limit_train=steps * self.batch_size,
                                  batch_size=self.batch_size, precision=self.precision,
                                  compile=self.compile, channels_last=self.channels_last,
                                  sample_every=0, ema=None, warmup=0)


def trainer_images_per_s(setting: Setting, images: Tensor, steps: int, device: torch.device) -> float:
    """The Trainer's own ``images_per_s`` over one epoch of ``steps`` steps."""
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(setting.config(steps), out, device=device, quiet=True, images=images)
        return float(trainer.fit()[-1]["images_per_s"])


def bare_images_per_s(setting: Setting, images: Tensor, steps: int, device: torch.device) -> float:
    """A plain training loop around the same network, timed like the Trainer (compile warm-up
    steps left out)."""
    config = setting.config(steps)
    torch.manual_seed(config.seed)
    denoiser = build_denoiser(config.replace(image_size=images.shape[-1], channels=images.shape[1]))
    net = denoiser.net.to(device)
    if setting.channels_last:
        net = net.to(memory_format=torch.channels_last)
    if setting.compile != "off":
        net.compile(mode=setting.compile)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr,
                                 fused=True if device.type == "cuda" else None)
    scaler = precision.grad_scaler(device, setting.precision)  # type: ignore[arg-type]
    alpha_bar = denoiser.degradation.schedule.alpha_bar.to(device, torch.float32)  # index t = 0..T
    total = denoiser.num_timesteps
    x_all = images.to(device)
    order = torch.randperm(len(x_all), device=device)
    untimed = COMPILE_WARMUP_STEPS if setting.compile != "off" else 0
    start = time.perf_counter()
    for step in range(steps):
        if step == untimed:
            _synchronize(device)
            start = time.perf_counter()
        x0 = x_all[order[step * setting.batch_size:(step + 1) * setting.batch_size]]
        if setting.channels_last:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        t = torch.randint(1, total + 1, (len(x0),), device=device)
        noise = torch.randn_like(x0)
        weight = alpha_bar[t].view(-1, 1, 1, 1)
        x_t = weight.sqrt() * x0 + (1 - weight).sqrt() * noise
        target = weight.sqrt() * noise - (1 - weight).sqrt() * x0 if config.predict == "v" else noise
        with precision.autocast(device, setting.precision):  # type: ignore[arg-type]
            output = net(x_t, t.float() / total)
        loss = torch.nn.functional.mse_loss(output.float(), target)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    _synchronize(device)
    return (steps - untimed) * setting.batch_size / (time.perf_counter() - start)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(settings: list[Setting], steps: int, repeats: int, device: torch.device) -> list[Result]:
    """Trainer and bare-loop images/s for each setting, runs alternating, medians of ``repeats``."""
    results = []
    for setting in settings:
        images = data.mnist(train=True, limit=steps * setting.batch_size).images
        if len(images) < steps * setting.batch_size:  # the bare loop would run short batches
            raise ValueError(f"{steps} steps of batch {setting.batch_size} need "
                             f"{steps * setting.batch_size} images; MNIST has {len(images)}: lower --steps")
        print(f"  {setting.label()} ...", file=sys.stderr, flush=True)
        ours, bare = [], []
        for _ in range(repeats):
            ours.append(trainer_images_per_s(setting, images, steps, device))
            bare.append(bare_images_per_s(setting, images, steps, device))
        results.append(Result(
            f"train_throughput[{setting.label()}]", ours=statistics.median(ours),
            peer=statistics.median(bare), peer_name="bare PyTorch loop", unit="images/s",
            note=f"{device.type}, {steps} steps, median of {repeats}"))
    return results


def train_throughput(quick: bool, device: str = "cpu") -> list[Result]:
    """The default grid: each network in each precision, and fp32 with compile and with
    channels_last (quick: the CNN in fp32 and bf16 only, few steps). On the CPU fp16 is left
    out: without fp16 hardware it is emulated, some 20 times slower than fp32 (measure it with
    ``python -m benchmarks.throughput --precisions fp16 --steps 2 --repeats 1``)."""
    resolved = resolve_device(device)
    if quick:
        return measure([Setting(precision=p) for p in ("fp32", "bf16")], steps=2, repeats=1, device=resolved)
    on_cuda = resolved.type == "cuda"
    batch = 1024 if on_cuda else 128
    precisions = PRECISIONS if on_cuda else ("fp32", "bf16")
    settings = [Setting(net, batch, p) for net, p in itertools.product(NETS, precisions)]
    settings += [Setting(net, batch, "fp32", channels_last=True) for net in NETS]
    settings += [Setting(net, batch, "fp32", compile="default") for net in NETS]
    steps = 50 if on_cuda else 8
    return measure(settings, steps=steps, repeats=3, device=resolved)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.throughput", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--nets", nargs="+", choices=list(NETS), default=list(NETS))
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=["fp32"])
    parser.add_argument("--compile", nargs="+", choices=COMPILE_MODES, default=["off"])
    parser.add_argument("--channels-last", nargs="+", choices=["off", "on"], default=["off"])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    settings = [Setting(net, args.batch_size, p, c, layout == "on") for net, p, c, layout
                in itertools.product(args.nets, args.precisions, args.compile, args.channels_last)]
    for r in measure(settings, args.steps, args.repeats, resolve_device(args.device)):
        print(f"{r.case:<60} trainer {r.ours:>9.1f}  bare {r.peer:>9.1f}  ratio {r.ratio:.3f}  ({r.note})",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
