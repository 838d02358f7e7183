"""Class-conditional sampling against the guidance scale: does a conditional model draw the class
asked for, and how good are its samples, at guidance 0, 1, 2, 3 and 5.

    python -m benchmarks.guidance --pretrained mnist-ddpm-cond --json guidance.json
    python -m benchmarks.guidance --checkpoint runs/mnist-ddpm-cond/checkpoints/last.pt --device cuda
    python -m benchmarks.guidance --checkpoint runs/x/checkpoints/last.pt --quick   # a smoke test

For each guidance scale ``w`` (``--guidance``): ``--n`` samples (default 1,000: 100 per class, in
class order) from the same seed, with the model's own sampler and number of steps (its EMA
weights for a checkpoint); then

* ``accuracy``: the share the shipped MNIST classifier puts in the class asked for;
* ``fmd_full``, ``train_baseline`` and ``fmd_ratio``: the full FMD protocol's Fréchet distance of
  all the samples and its ratio to that of as many real training digits (1.0: as good as real
  data), as ``benchmarks.quality`` reports it;
* ``per_class``: each class's Fréchet distance to the test digits of that class, with the
  baseline of as many real training digits of the class (:func:`colddiff.fmd.class_scores`), and
  ``mean_class_fd_ratio`` over the classes;
* ``network_evaluations``: network evaluations per sample. Guidance other than 0 (the model's
  unconditional, null-class sampling) and 1 (plain conditional sampling) evaluates the network
  twice per step (one call on a batch of ``2B``): any speed figure counts both.

The model must be conditional on MNIST's digits (the classifier's classes).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import emit, machine
from colddiff import data, fmd, pretrained
from colddiff.conditioning import class_labels
from colddiff.runtime import resolve_device

#: The guidance scales of the issue's table.
GUIDANCE = (0.0, 1.0, 2.0, 3.0, 5.0)


def load(args: argparse.Namespace) -> pretrained.Pretrained:
    """The model of ``--pretrained`` or ``--checkpoint``, checked to be conditional on MNIST's
    digits."""
    device = resolve_device(args.device)
    model = (pretrained.load(args.pretrained, device) if args.pretrained
             else pretrained.from_checkpoint(args.checkpoint, device))
    if model.classes != data.CLASSES["mnist"]:
        raise SystemExit(f"python -m benchmarks.guidance: {model.name} must be conditional on MNIST's digits "
                         f"(its classes: {model.classes})")
    return model


def measure(model: pretrained.Pretrained, guidance: float, n: int, sample_steps: int | None, seed: int,
            batch: int) -> dict[str, Any]:
    """The scores of ``n`` samples (an equal share of each class) at ``guidance``."""
    labels = class_labels(n, 10)
    start = time.perf_counter()
    samples = torch.cat([
        model.sample(len(chunk), sample_steps, seed=seed + i, labels=chunk, guidance=guidance).cpu()
        for i, chunk in enumerate(labels.split(batch))])
    seconds = time.perf_counter() - start
    full = fmd.score(samples, protocol="full")
    by_class = fmd.class_scores(samples, labels)
    steps = sample_steps or model.config.sample_steps or model.denoiser.num_timesteps
    return {"guidance": guidance, "n": n, "accuracy": by_class.accuracy, "fmd_full": full.fmd,
            "train_baseline": full.train_baseline, "fmd_ratio": full.fmd_ratio,
            "mean_class_fd_ratio": by_class.mean_fd_ratio, "per_class": by_class.per_class,
            "class_histogram": full.class_histogram, "confidence": full.confidence,
            "network_evaluations": steps * (1 if guidance in (0.0, 1.0) else 2),
            "sampling_seconds_per_image": seconds / n}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.guidance", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--pretrained", metavar="NAME", help="a shipped conditional model")
    source.add_argument("--checkpoint", type=Path, help="a training checkpoint (its EMA weights)")
    parser.add_argument("--n", type=int, default=1000,
                        help="samples per guidance scale (1000: 100 per class)")
    parser.add_argument("--guidance", type=float, nargs="+", default=list(GUIDANCE), metavar="W")
    parser.add_argument("--sample-steps", type=int, help="sampling steps (default: the model's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=500, help="samples drawn at once")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--quick", action="store_true", help="20 samples, 2 steps, guidance 0, 1, 3")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.sample_steps, args.guidance = 20, 2, [0.0, 1.0, 3.0]
    if args.n < 20:
        parser.error(f"--n must be at least 20 (2 per class, for each class's distance), got {args.n}")
    model = load(args)
    results = [measure(model, w, args.n, args.sample_steps, args.seed, args.batch) for w in args.guidance]
    emit({"machine": machine(), "model": str(args.checkpoint or args.pretrained), "n": args.n,
          "sampler": model.config.sampler, "sampler_kwargs": model.config.sampler_kwargs,
          "sample_steps": args.sample_steps or model.config.sample_steps, "seed": args.seed,
          "results": results}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
