"""Generation by deblurring, with and without noise: how varied are the samples?

    python -m benchmarks.hot_blur --epochs 2 --out runs/hot-blur --json hot-blur.json
    python -m benchmarks.hot_blur --quick          # a smoke test

Bansal et al. (2022, section 5.2) found that generating with a deterministic degradation such as
blur collapses: from starts that differ little, the reverse process lands on nearly the same
image. They broke the symmetry with a little noise. This trains the report CNN to undo blur
(``T = 50``, ``sigma_max = 6``, predicting the clean image) twice for the same number of epochs,
once plain and once with ``noise`` on every degraded step (``Blur(noise=...)``), samples
``--n`` images from each with Algorithm 2 (plain: fixed source, i.e. none; noisy: re-estimated
noise) starting from the blur prior, and reports the FMD against the training-image baseline
(full protocol), the classifier's class histogram and its entropy (log 10 = 2.30 for ten equal
classes), and the mean pixel RMSE between pairs of samples next to the same for real test digits.
Runs resume: a finished training is reused.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import emit, machine
from colddiff import data, fmd
from colddiff.config import TrainConfig
from colddiff.fmd.hook import sample_in_batches
from colddiff.training import Trainer

#: The blur of both runs: Bansal et al.'s deblurring setting, scaled to 50 steps.
BLUR = {"num_timesteps": 50, "sigma_max": 6.0}


def config(noise: float, epochs: int, quick: bool) -> TrainConfig:
    """The training config of one variant."""
    source = "estimate" if noise > 0 else "fixed"
    return TrainConfig(degradation="blur", degradation_kwargs={**BLUR, **({"noise": noise} if noise else {})},
                       predict="x0", sampler="cold", sampler_kwargs={"algorithm": 2, "source": source},
                       epochs=1 if quick else epochs, limit_train=256 if quick else None,
                       sample_every=0, checkpoint_every=200)


def pairwise_rmse(images: torch.Tensor, pairs: int = 2000, seed: int = 0) -> float:
    """Mean RMSE between ``pairs`` random pairs of different images."""
    generator = torch.Generator().manual_seed(seed)
    first = torch.randint(0, len(images), (pairs,), generator=generator)
    offset = torch.randint(1, len(images), (pairs,), generator=generator)
    second = (first + offset) % len(images)
    return float((images[first] - images[second]).square().flatten(1).mean(1).sqrt().mean())


def run(noise: float, out: Path, epochs: int, n: int, quick: bool) -> dict[str, Any]:
    """Train (or resume) one variant, sample ``n`` images, score them."""
    trainer = Trainer(config(noise, epochs, quick), out, quiet=True)
    resume = trainer.checkpoint_path.exists()
    trainer.fit(resume=resume)
    samples = sample_in_batches(trainer, n, None, seed=1)
    result = fmd.score(samples, protocol="full")
    counts = torch.tensor(result.class_histogram, dtype=torch.float64)
    share = counts[counts > 0] / counts.sum()
    return {"noise": noise, "train_minutes": round(trainer.clocks.wall_time / 60, 2), "steps": trainer.step,
            "fmd": result.fmd, "fmd_ratio": result.fmd_ratio, "class_histogram": result.class_histogram,
            "class_entropy": abs(float((share * share.log()).sum())), "pairwise_rmse": pairwise_rmse(samples),
            "confidence": result.confidence}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hot_blur", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2, help="training epochs per variant")
    parser.add_argument("--noise", type=float, default=0.05, help="the noisy variant's noise level")
    parser.add_argument("--n", type=int, default=1000, help="samples per variant")
    parser.add_argument("--out", type=Path, default=Path("runs/hot-blur"))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that it runs")
    args = parser.parse_args(argv)
    n = 64 if args.quick else args.n
    results = [run(noise, args.out / f"noise-{noise:g}", args.epochs, n, args.quick)
               for noise in (0.0, args.noise)]
    real = data.mnist(train=False, limit=n).images
    report = {"machine": machine(), "epochs": args.epochs, "n": n, "blur": BLUR, "variants": results,
              "real_test_digits": {"pairwise_rmse": pairwise_rmse(real), "class_entropy": math.log(10)}}
    for r in results:
        print(f"noise {r['noise']:<5g}: FMD {r['fmd']:.2f} (ratio {r['fmd_ratio']:.2f}), classes "
              f"{r['class_histogram']} (entropy {r['class_entropy']:.2f}), pairwise RMSE "
              f"{r['pairwise_rmse']:.3f}", file=sys.stderr)
    print(f"real test digits: pairwise RMSE {pairwise_rmse(real):.3f}", file=sys.stderr)
    emit(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
