"""Quickstart: train a small DDPM on an MNIST subset, then sample a grid of digits.

    python examples/quickstart.py --quick      # under a minute on a laptop CPU
    python examples/quickstart.py              # a few minutes; better digits

The images are read from ``$COLDDIFF_DATA_DIR`` (or downloaded); the grid is written to
``--out`` (default ``runs/quickstart/samples.png``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torchvision.utils import save_image

import colddiff
from colddiff import DDPMSampler, Denoiser, Schedule, data, degradations, nets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny run (under a minute)")
    parser.add_argument("--out", type=Path, default=Path("runs/quickstart/samples.png"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    train_steps, subset, sample_steps = (60, 1024, 50) if args.quick else (600, 8192, 100)

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    images = data.mnist(train=True, limit=subset).images
    deg = degradations.create("gaussian", schedule=Schedule.preset("default"))
    den = Denoiser(nets.CNN(), deg, predict="eps")
    optimizer = torch.optim.Adam(den.parameters(), lr=2e-4 if not args.quick else 1e-3)

    start = time.perf_counter()
    for step in range(1, train_steps + 1):
        batch = images[torch.randint(len(images), (128,), generator=g)]
        loss = den.loss(batch, generator=g)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 20 == 0:
            print(f"step {step:4d}  loss {loss.item():.4f}  ({time.perf_counter() - start:.0f} s)")

    sampler = DDPMSampler(den)
    samples = sampler.sample(sampler.prior(16, generator=g), steps=sample_steps, generator=g)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_image(samples, args.out, nrow=4)
    print(f"colddiff {colddiff.__version__}: wrote {args.out}")


if __name__ == "__main__":
    main()
