"""What each sampling-time piece of the recipe is worth, measured on one trained model.

    python -m benchmarks.recipe --checkpoint runs/mnist-ddpm/checkpoints/last.pt --json recipe.json
    python -m benchmarks.recipe --pretrained mnist-ddpm --n 500
    python -m benchmarks.recipe --pretrained mnist-ddpm --quick     # a smoke test
    python -m benchmarks.recipe --checkpoint runs/mnist-fashion-cold/checkpoints/last.pt   # any degradation
    python -m benchmarks.recipe --pretrained mnist-ddpm --samplers --json samplers.json

``--samplers`` compares the samplers by name instead (Gaussian models): ``dpmsolver++`` at 10
and 20 steps, ``ddim`` at 10 and 50, ``ddpm`` with the posterior variance at 50, each with
1,000 samples from the same seed (``--cache DIR`` keeps drawn batches across interruptions).

Starting from colddiff's default (EMA weights, 50-step strided sampling with Algorithm 2 and a
re-estimated source, clamping the predicted clean image at each step), each variant changes one
thing: the raw weights instead of the EMA average (checkpoints only), no clamping, a fixed source
(for Gaussian noise the default is DDIM and this is the fixed-noise variant; for Fashion-MNIST
mixing it is the reference study's sampler), 10, 20 or 100 steps, and for Gaussian noise
strided ancestral sampling (``DDPMSampler``) with the same number of steps, with either
variance. Every variant is scored like ``benchmarks.quality`` (report protocol on the first 256
samples, full protocol on all ``--n``), from the same seed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import emit, machine
from benchmarks.quality import evaluate
from colddiff import ColdSampler, DDPMSampler, Sampler, pretrained, samplers
from colddiff.degradations import GaussianNoise

#: The sampler comparison: (name, options, steps) per row.
SAMPLER_ROWS: tuple[tuple[str, dict[str, Any], int], ...] = (
    ("dpmsolver++", {"order": 2}, 10), ("dpmsolver++", {"order": 2}, 20),
    ("ddim", {"eta": 0.0}, 10), ("ddim", {"eta": 0.0}, 50),
    ("ddpm", {"variance": "posterior"}, 50),
)


def sampler_rows(model: pretrained.Pretrained, quick: bool) -> dict[str, tuple[Sampler, int]]:
    """The rows of ``--samplers``, by name (2 and 3 steps each in quick mode)."""
    return {f"{name} {steps if not quick else 2 + i % 2} steps": (
        samplers.create(name, model.denoiser, **options), steps if not quick else 2 + i % 2)
        for i, (name, options, steps) in enumerate(SAMPLER_ROWS)}


def variants(model: pretrained.Pretrained, raw: pretrained.Pretrained | None, steps: int,
             other_steps: tuple[int, ...] = (10, 20, 100)) -> dict[str, tuple[Sampler, int]]:
    """The default sampler and its one-change variants, by name."""
    denoiser = model.denoiser
    chosen: dict[str, tuple[Sampler, int]] = {
        f"default ({steps} steps)": (ColdSampler(denoiser, source="estimate"), steps),
        "no clamping": (ColdSampler(denoiser, source="estimate", clip_x0=False), steps),
        "fixed source": (ColdSampler(denoiser, source="fixed"), steps),
    }
    if raw is not None:
        chosen["raw weights (no EMA)"] = (ColdSampler(raw.denoiser, source="estimate"), steps)
    for other in other_steps:
        chosen[f"{other} steps"] = (ColdSampler(denoiser, source="estimate"), other)
    if isinstance(denoiser.degradation, GaussianNoise):  # stochastic strided sampling, same steps
        chosen["ancestral, beta variance"] = (DDPMSampler(denoiser), steps)
        chosen["ancestral, posterior variance"] = (DDPMSampler(denoiser, variance="posterior"), steps)
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.recipe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, help="a training checkpoint (has the raw and EMA weights)")
    source.add_argument("--pretrained", metavar="NAME", help="a shipped model (EMA weights only)")
    parser.add_argument("--n", type=int, default=1000, help="samples per variant (at least 256)")
    parser.add_argument("--sample-steps", "--steps", type=int, default=50, dest="sample_steps",
                        help="sampling steps of the default sampler (--steps: the old spelling)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--quick", action="store_true", help="256 samples, 5 and 2 steps: a smoke test")
    parser.add_argument("--samplers", action="store_true", help="compare the samplers by name")
    parser.add_argument("--cache", type=Path, help="keep drawn sample batches here (resumable)")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.sample_steps = 256, 5
    if args.n < 256:
        parser.error(f"--n must be at least 256 (the report protocol's 8 batches of 32), got {args.n}")

    if args.checkpoint:
        model, raw = pretrained.from_checkpoint(args.checkpoint), pretrained.from_checkpoint(
            args.checkpoint, ema=False)
    else:
        model, raw = pretrained.load(args.pretrained), None
    if args.samplers:
        rows = sampler_rows(model, args.quick)
    else:
        rows = variants(model, raw, args.sample_steps, (2,) if args.quick else (10, 20, 100))
    scores = evaluate(rows, args.n, 256, cache=args.cache)
    report: dict[str, Any] = {"machine": machine(), "model": str(args.checkpoint or args.pretrained),
                              "n": args.n, "results": scores}
    emit(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
