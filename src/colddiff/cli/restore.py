"""``colddiff restore``: restore degraded images with a trained model (:mod:`colddiff.restoration`)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Literal

from colddiff.cli.arguments import POSITIVE, existing_path
from colddiff.cli.errors import usage_error
from colddiff.cli.model_options import add_model_options, add_outputs, load_model, write_images
from colddiff.cli.sampler_options import add_sampler_options, requested_sampler

if TYPE_CHECKING:
    from colddiff.restoration import StepEstimate

__all__ = ["add_parser", "run", "step"]


def step(text: str) -> int | Literal["auto"]:
    """``--t``: a step >= 1, or ``auto``."""
    return "auto" if text == "auto" else int(POSITIVE(text))


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``restore`` to ``commands``."""
    restore = commands.add_parser(
        "restore", help="restore degraded images with a trained model",
        description="Restore images degraded to step --t, one step at a time with the model's "
                    "sampler ('sampled') and in one step ('direct'), into a grid with a row each "
                    "(and the clean images first with --from-test-set, plus SSIM, PSNR, RMSE).")
    restore.set_defaults(subparser=restore, handler=run)
    add_model_options(restore)
    given = restore.add_mutually_exclusive_group(required=True)
    given.add_argument("--input", type=existing_path, metavar="IMAGE|FOLDER|FILE.pt",
                       help="degraded images: an image file (.png, .jpg, .jpeg), a folder of them "
                       "(searched recursively), or a tensor file (N, C, H, W) in [0, 1]")
    given.add_argument("--from-test-set", type=POSITIVE, metavar="N",
                       help="degrade the first N test images of the model's dataset, then restore them")
    restore.add_argument("--t", type=step, metavar="T|auto",
                         help="the step the images are degraded to (required with --input; with "
                         "--from-test-set: default T); auto: estimate it for --input images, as the "
                         "step whose degradation of the one-step restoration best matches them "
                         "(T network passes; blur and superres only)")
    restore.add_argument("--sample-steps", type=POSITIVE, metavar="S",
                         help="steps of the sampled restoration (default: all t)")
    restore.add_argument("--on-error", choices=["raise", "skip"], default="raise",
                         help="a file in the --input folder that is not an image: stop, or leave it out")
    restore.add_argument("--quiet", action="store_true", help="no progress bar")
    add_sampler_options(restore, "the model's")
    add_outputs(restore, "restored.png", "the sampled restorations")


def run(args: argparse.Namespace) -> int:
    """Restore ``--input`` or degraded test images; print their scores when the clean ones are known."""
    import torch

    from colddiff import restoration

    if args.t == "auto" and args.input is None:
        usage_error(args, "--t auto estimates the step of --input images; --from-test-set degrades them "
                    "to the step given (default T)")
    model = load_model(args)
    sampler, options = requested_sampler(args)
    try:
        if args.input is not None:
            batch = restoration.read_degraded(model, args.input, args.t, on_error=args.on_error,
                                              progress=not args.quiet)
        else:
            batch = restoration.degrade_test_images(model, args.from_test_set, args.t, seed=args.seed)
        if batch.estimate is not None:
            print(_estimated(batch.estimate, model.denoiser.num_timesteps))
        direct, sampled = model.restore(batch.degraded, batch.t, args.sample_steps, source=batch.source,
                                        seed=args.seed, sampler=sampler, progress=not args.quiet, **options)
    except ValueError as error:  # images, steps or sampler options the model cannot take
        usage_error(args, error)
    rows = [batch.degraded, direct.cpu(), sampled.cpu()]
    if batch.clean is not None:
        for label, images in zip(("degraded", "direct", "sampled"), rows, strict=True):
            score = restoration.scores(images, batch.clean)
            print(f"{label:>9}: SSIM {score['ssim']:.4f}, PSNR {score['psnr']:.2f} dB, "
                  f"RMSE {score['rmse']:.4f}")
        rows.insert(0, batch.clean)
    write_images(args, torch.cat(rows), sampled.cpu(), nrow=len(batch.degraded))
    return 0


def _estimated(estimate: StepEstimate, total: int) -> str:
    """The line that tells the step ``--t auto`` found."""
    low, high = min(estimate.per_image), max(estimate.per_image)
    spread = "" if low == high else (f"; on their own the images look degraded to steps {low} to {high}: "
                                     "restore them one by one to give each its own")
    return f"colddiff restore: estimated --t {estimate.t} (of 1 to {total}){spread}"
