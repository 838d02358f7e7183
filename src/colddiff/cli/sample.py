"""``colddiff sample``: draw samples from a trained model into an image grid."""

from __future__ import annotations

import argparse
import math

from colddiff.cli.arguments import POSITIVE
from colddiff.cli.errors import usage_error
from colddiff.cli.model_options import add_model_options, add_outputs, load_model, write_images
from colddiff.cli.sampler_options import add_sampler_options, requested_sampler

__all__ = ["add_parser", "run"]


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``sample`` to ``commands``."""
    sample = commands.add_parser("sample", help="draw samples from a trained checkpoint",
                                 description="Draw samples from a checkpoint into a PNG grid.")
    sample.set_defaults(subparser=sample, handler=run)
    add_model_options(sample)
    sample.add_argument("-n", type=POSITIVE, default=64, help="number of samples (64)")
    sample.add_argument("--sample-steps", type=POSITIVE, metavar="S",
                        help="sampling steps K <= T (default: the model's); a K the model has a tuned "
                        "grid for (colddiff tune-steps) samples on that grid")
    sample.add_argument("--quiet", action="store_true", help="no progress bar")
    add_sampler_options(sample, "the model's")
    add_outputs(sample, "samples.png", "the raw samples")


def run(args: argparse.Namespace) -> int:
    """Sample with the model's sampler, or the one the flags ask for."""
    from colddiff.degradations import Degradation

    model = load_model(args)
    degradation = model.denoiser.degradation
    if type(degradation).prior is Degradation.prior:  # none at all (missing data is a runtime error)
        usage_error(args, f"{degradation!r} has no prior to sample from; colddiff restore "
                    "--from-test-set N degrades test images and restores them")
    sampler, options = requested_sampler(args)
    tuned = model.tuned_grid(args.sample_steps) if sampler is None and not options else None
    if tuned is not None:
        print(f"colddiff sample: {args.sample_steps} steps on the model's tuned grid: {tuned['sampler']} "
              f"{tuned['sampler_kwargs']} (--sampler or --spacing to choose another)")
    try:
        samples = model.sample(args.n, args.sample_steps, seed=args.seed, sampler=sampler,
                               progress=not args.quiet, **options).cpu()
    except ValueError as error:  # a sampler option or a number of steps the sampler refuses
        usage_error(args, error)
    write_images(args, samples, samples, nrow=math.ceil(math.sqrt(args.n)))
    return 0
