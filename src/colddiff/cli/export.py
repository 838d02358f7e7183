"""``colddiff export``: turn a training checkpoint into a shippable model
(:func:`colddiff.pretrained.export`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from colddiff.cli.arguments import POSITIVE, checkpoint_file, existing_file
from colddiff.cli.errors import usage_error
from colddiff.cli.sampler_options import add_sampler_options, sampler_changes

__all__ = ["add_parser", "run"]


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``export`` to ``commands``."""
    export = commands.add_parser(
        "export", help="turn a training checkpoint into a shippable float16 model with a card",
        description="Write NAME.pt (float16 weights; the EMA ones once the average has started) and "
        "NAME.json (model card) into OUT, for colddiff.pretrained.")
    export.set_defaults(subparser=export, handler=run)
    export.add_argument("--checkpoint", type=checkpoint_file, required=True)
    export.add_argument("--name", required=True)
    export.add_argument("--out", type=Path, required=True, help="folder for NAME.pt and NAME.json")
    export.add_argument("--card", type=existing_file, metavar="FILE.json",
                        help="extra card fields (scores...)")
    shipped = export.add_argument_group("how the shipped model samples (default: as its training run)")
    add_sampler_options(shipped, "the training run's")
    shipped.add_argument("--sample-steps", type=POSITIVE, metavar="S")
    shipped.add_argument("--guidance", type=float, metavar="W",
                         help="a conditional model: its default classifier-free guidance")


def run(args: argparse.Namespace) -> int:
    """Export, with the sampler options given as the shipped model's."""
    from colddiff import checkpoints, pretrained
    from colddiff.config import TrainConfig

    extra = json.loads(args.card.read_text()) if args.card is not None else {}
    steps = {name: getattr(args, name) for name in ("sample_steps", "guidance")
             if getattr(args, name) is not None}
    trained = TrainConfig.from_dict(checkpoints.load(args.checkpoint)["config"])
    try:
        card = pretrained.export(args.checkpoint, args.name, args.out, card=extra,
                                 sampling=sampler_changes(args, trained) | steps)
    except ValueError as error:  # a sampler or options the model cannot sample with
        usage_error(args, error)
    print(f"colddiff export: wrote {card.with_suffix('.pt')} and {card}")
    return 0
