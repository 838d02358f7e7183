"""``colddiff sample``: draw samples from a trained model into an image grid."""

from __future__ import annotations

import argparse
import math
from typing import TYPE_CHECKING

from colddiff.cli.arguments import POSITIVE
from colddiff.cli.errors import usage_error
from colddiff.cli.model_options import add_model_options, add_outputs, load_model, write_images
from colddiff.cli.sampler_options import add_sampler_options, requested_sampler

if TYPE_CHECKING:
    from torch import Tensor

    from colddiff.pretrained import Pretrained

__all__ = ["add_parser", "run"]


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``sample`` to ``commands``."""
    sample = commands.add_parser("sample", help="draw samples from a trained checkpoint",
                                 description="Draw samples from a checkpoint into a PNG grid (a "
                                 "conditional model's: one row per class).")
    sample.set_defaults(subparser=sample, handler=run)
    add_model_options(sample)
    sample.add_argument("-n", type=POSITIVE, default=64, help="number of samples (64)")
    sample.add_argument("--sample-steps", type=POSITIVE, metavar="S",
                        help="sampling steps K <= T (default: the model's); a K the model has a tuned "
                        "grid for (colddiff tune-steps) samples on that grid")
    sample.add_argument("--quiet", action="store_true", help="no progress bar")
    conditional = sample.add_argument_group("a conditional model")
    chosen = conditional.add_mutually_exclusive_group()
    chosen.add_argument("--class", dest="sample_class", metavar="C",
                        help="sample class C only (its name, e.g. 7 or Sneaker, or its index)")
    chosen.add_argument("--classes", dest="sample_classes", metavar="C1,C2,...",
                        help="an equal share of each of these classes (default: of every class)")
    conditional.add_argument("--guidance", type=float, metavar="W",
                             help="classifier-free guidance: 1 the plain conditional model, 0 the "
                             "unconditional one, above 1 stronger (default: the model's, else 1)")
    add_sampler_options(sample, "the model's")
    add_outputs(sample, "samples.png", "the raw samples (with their labels, for a conditional model)")


def requested_labels(args: argparse.Namespace, model: Pretrained) -> Tensor | None:
    """The label of each of the ``-n`` samples: ``--class``, ``--classes``, or for a conditional
    model an equal share of every class; ``None`` for an unconditional model (exit status 2 if
    classes are asked of it, or one is not in the label set)."""
    from colddiff.conditioning import class_labels

    asked = args.sample_class if args.sample_class is not None else args.sample_classes
    flag = "--class" if args.sample_class is not None else "--classes"
    if model.classes is None:
        if asked is not None:
            usage_error(args, f"{flag} given to an unconditional model ({model.name}): it has no classes; "
                        "train one with --conditional")
        return None
    try:
        chosen = None if asked is None else model.labels(
            [asked] if args.sample_class is not None else asked.split(",")).tolist()
    except ValueError as error:
        usage_error(args, f"{flag}: {error}")
    return class_labels(args.n, len(model.classes), chosen)


def run(args: argparse.Namespace) -> int:
    """Sample with the model's sampler, or the one the flags ask for."""
    from colddiff.conditioning import class_rows
    from colddiff.degradations import Degradation

    model = load_model(args)
    degradation = model.denoiser.degradation
    if type(degradation).prior is Degradation.prior:  # none at all (missing data is a runtime error)
        usage_error(args, f"{degradation!r} has no prior to sample from; colddiff restore "
                    "--from-test-set N degrades test images and restores them")
    labels = requested_labels(args, model)
    sampler, options = requested_sampler(args)
    tuned = model.tuned_grid(args.sample_steps) if sampler is None and not options else None
    if tuned is not None:
        print(f"colddiff sample: {args.sample_steps} steps on the model's tuned grid: {tuned['sampler']} "
              f"{tuned['sampler_kwargs']} (--sampler or --spacing to choose another)")
    try:
        samples = model.sample(args.n, args.sample_steps, seed=args.seed, sampler=sampler,
                               progress=not args.quiet, labels=labels, guidance=args.guidance,
                               **options).cpu()
    except ValueError as error:  # a sampler option, a number of steps or a guidance it refuses
        usage_error(args, error)
    if labels is None:
        write_images(args, samples, samples, nrow=math.ceil(math.sqrt(args.n)))
        return 0
    grid, nrow = class_rows(samples, labels)
    write_images(args, grid, {"images": samples, "labels": labels, "classes": list(model.classes or ())},
                 nrow=nrow)
    return 0
