"""``colddiff degrade``: show the forward process on some training images
(:func:`colddiff.study.strips.forward_strip`)."""

from __future__ import annotations

import argparse

from colddiff import presets
from colddiff.cli.arguments import COUNT, POSITIVE, data_source, image_file
from colddiff.cli.errors import usage_error

__all__ = ["add_parser", "run"]


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``degrade`` to ``commands``."""
    degrade = commands.add_parser("degrade", help="show the forward process on some images",
                                  description="Degrade the first N training images (MNIST unless "
                                  "--data says otherwise); one row per image, FRAMES columns from "
                                  "t = 0 to T.")
    degrade.set_defaults(subparser=degrade, handler=run)
    degrade.add_argument("--degradation", required=True)
    degrade.add_argument("--schedule", choices=[*sorted(presets.SCHEDULES), "cosine"], default="default")
    degrade.add_argument("-n", type=POSITIVE, default=4, help="images, one row each (4)")
    degrade.add_argument("--frames", type=int, default=11, help="steps shown, from t = 0 to T (11)")
    degrade.add_argument("--data", dest="dataset", default="mnist", metavar="NAME|FOLDER",
                         help="mnist (default), fashion_mnist, cifar10 or a folder of images")
    degrade.add_argument("--image-size", type=int, metavar="PIXELS")
    degrade.add_argument("--channels", type=int, help="1 or 3: convert the images to grey or RGB")
    degrade.add_argument("--on-error", default="raise",
                         help="an image file that cannot be decoded stops (raise) or is skipped (skip)")
    degrade.add_argument("--seed", type=COUNT, default=0)
    degrade.add_argument("--out", type=image_file, required=True)


def run(args: argparse.Namespace) -> int:
    """Write the strip of ``-n`` images as ``--out``."""
    from torchvision.utils import save_image

    from colddiff import data
    from colddiff.config import TrainConfig, build_degradation
    from colddiff.schedules import Schedule
    from colddiff.study.strips import forward_strip

    dataset = data_source(args, args.dataset)
    schedule = Schedule.cosine(1000) if args.schedule == "cosine" else Schedule.preset(args.schedule)
    try:
        config = TrainConfig(dataset=dataset, image_size=args.image_size, channels=args.channels,
                             on_error=args.on_error, degradation=args.degradation,
                             schedule=schedule.spec())
        degradation = build_degradation(config)
    except ValueError as error:
        usage_error(args, error)
    # Missing or broken files are runtime errors (exit 1), reported by main().
    x0 = data.load(config.dataset, image_size=config.image_size, channels=config.channels, limit=args.n,
                   on_error=args.on_error).images
    try:
        strip, times = forward_strip(degradation, x0, args.frames, seed=args.seed)
    except ValueError as error:
        usage_error(args, error)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_image(strip.flatten(0, 1).clamp(0, 1), args.out, nrow=args.frames)
    print(f"colddiff degrade: wrote {args.out} (t = {', '.join(map(str, times))})")
    return 0
