"""The reference study's cold diffusion: MNIST digits hidden under Fashion-MNIST images.

The forward process mixes a digit with a random Fashion-MNIST image,
``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) y``; a CNN learns to predict the digit
(``predict="x0"``); Bansal et al.'s Algorithm 2 turns a Fashion-MNIST test image into a digit.

    python examples/fashion_cold_diffusion.py --quick    # under a minute
    python examples/fashion_cold_diffusion.py --epochs 5

Writes ``runs/fashion_cold/``: ``forward.png`` (the degradation), ``reverse.png`` (two
trajectories), ``samples.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torchvision.utils import save_image

from colddiff import data, fmd
from colddiff.config import TrainConfig
from colddiff.training import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a tiny run that finishes in under a minute")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("runs/fashion_cold"))
    args = parser.parse_args()

    overrides = {"epochs": 1, "limit_train": 1024} if args.quick else {"epochs": args.epochs}
    config = TrainConfig.preset("fashion-cold", sample_every=0, **overrides)
    trainer = Trainer(config, args.out, overwrite=True)  # an example starts afresh each time
    trainer.fit()
    deg = trainer.degradation
    args.out.mkdir(parents=True, exist_ok=True)

    # The forward process on four digits (the report's figure 10).
    x0 = data.mnist(train=False, limit=4).images
    g = torch.Generator().manual_seed(0)
    source = deg.sample_source(x0, generator=g)
    times = [round(deg.num_timesteps * k / 10) for k in range(11)]
    frames = torch.stack([deg.degrade(x0, t, source) for t in times], 1)
    save_image(frames.flatten(0, 1), args.out / "forward.png", nrow=len(times))

    # The reverse process (Algorithm 2, source fixed to the start image, as in the report).
    sampler = trainer.sampler()
    sample_steps = 20 if args.quick else 100
    trajectory: list[torch.Tensor] = []
    x_T = sampler.prior(2, generator=g)
    sampler.sample(x_T, sample_steps, callback=lambda i, t, x_t, x0_hat: trajectory.append(x_t[:2]))
    save_image(torch.stack(trajectory[:: max(1, sample_steps // 10)], 1).flatten(0, 1).clamp(0, 1),
               args.out / "reverse.png", nrow=len(trajectory[:: max(1, sample_steps // 10)]))

    samples = sampler.sample(sampler.prior(32, generator=g), sample_steps).clamp(0, 1)
    save_image(samples, args.out / "samples.png", nrow=8)
    print(fmd.describe(fmd.score(samples, protocol="report")))
    print(f"figures in {args.out}")


if __name__ == "__main__":
    main()
