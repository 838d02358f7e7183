"""Training-step overhead: colddiff's Trainer against a bare PyTorch loop.

Both train the report CNN (16, 32, 64, 32, 16) with Adam (lr 2e-4) on the same MNIST batches of
128 for the same number of steps with the DDPM loss. The Trainer's time includes everything a
run does per epoch (data order, progress, loss checks, the checkpoint); sampling is off.
"""

from __future__ import annotations

import math
import tempfile

import torch
from torch import nn

from benchmarks.common import Result, interleaved_medians
from colddiff import Schedule, data, nets
from colddiff.config import TrainConfig
from colddiff.training import Trainer


def train_step_overhead(quick: bool) -> list[Result]:
    steps, repeats = (4, 2) if quick else (20, 5)
    batch = 128
    images = data.mnist(train=True, limit=steps * batch).images
    alpha_bar = Schedule.preset("default").alpha_bar.float()

    def bare_loop() -> None:
        torch.manual_seed(0)
        net = nets.CNN()
        optimizer = torch.optim.Adam(net.parameters(), lr=2e-4)
        order = torch.randperm(len(images))
        for step in range(steps):
            x0 = images[order[step * batch:(step + 1) * batch]]
            t = torch.randint(1, 1001, (batch,))
            noise = torch.randn_like(x0)
            weight = alpha_bar[t].view(-1, 1, 1, 1)
            x_t = weight.sqrt() * x0 + (1 - weight).sqrt() * noise
            loss = nn.functional.mse_loss(net(x_t, t / 1000), noise)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    config = TrainConfig.preset("ddpm-default", epochs=1, limit_train=steps * batch, sample_every=0)

    def trainer() -> None:
        with tempfile.TemporaryDirectory() as out:
            Trainer(config, out, device="cpu", quiet=True).fit()

    times = interleaved_medians({"bare": bare_loop, "trainer": trainer}, repeats)
    assert math.isfinite(times["trainer"]) and math.isfinite(times["bare"])
    return [Result("train_step_overhead", ours=times["trainer"] / times["bare"], peer=1.0,
                   peer_name="bare PyTorch loop", unit="time / bare loop time",
                   note=f"{steps} steps of batch {batch}, report CNN; bare loop "
                        f"{times['bare'] / steps * 1000:.1f} ms/step")]
