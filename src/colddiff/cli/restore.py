"""``colddiff restore``: restore degraded images with a trained model (:mod:`colddiff.restoration`)."""

from __future__ import annotations

import argparse

from colddiff.cli.arguments import POSITIVE, existing_path
from colddiff.cli.errors import usage_error
from colddiff.cli.model_options import add_model_options, add_outputs, load_model, write_images
from colddiff.cli.sampler_options import add_sampler_options, requested_sampler

__all__ = ["add_parser", "run"]


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
    given.add_argument("--input", type=existing_path, metavar="FILE.pt|FOLDER",
                       help="degraded images: a tensor (N, C, H, W) in [0, 1] or a folder of images")
    given.add_argument("--from-test-set", type=POSITIVE, metavar="N",
                       help="degrade the first N test images of the model's dataset, then restore them")
    restore.add_argument("--t", type=POSITIVE, metavar="T",
                         help="the step the images are degraded to (required with --input; with "
                         "--from-test-set: default T)")
    restore.add_argument("--sample-steps", type=POSITIVE, metavar="S",
                         help="steps of the sampled restoration (default: all t)")
    restore.add_argument("--on-error", choices=["raise", "skip"], default="raise",
                         help="a file in the --input folder that is not an image: stop, or leave it out")
    add_sampler_options(restore, "the model's")
    add_outputs(restore, "restored.png", "the sampled restorations")


def run(args: argparse.Namespace) -> int:
    """Restore ``--input`` or degraded test images; print their scores when the clean ones are known."""
    import torch

    from colddiff import restoration

    model = load_model(args)
    sampler, options = requested_sampler(args)
    try:
        if args.input is not None:
            batch = restoration.read_degraded(model, args.input, args.t, on_error=args.on_error)
        else:
            batch = restoration.degrade_test_images(model, args.from_test_set, args.t, seed=args.seed)
        direct, sampled = model.restore(batch.degraded, batch.t, args.sample_steps, source=batch.source,
                                        seed=args.seed, sampler=sampler, **options)
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
