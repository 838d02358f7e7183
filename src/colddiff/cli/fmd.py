"""``colddiff fmd``: score samples with the Fréchet MNIST Distance, or train its classifier
(:mod:`colddiff.fmd`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from colddiff import runtime
from colddiff.cli.arguments import COUNT, POSITIVE, Parser, existing_path, number
from colddiff.cli.errors import usage_error

__all__ = ["add_parser", "run"]


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``fmd score`` and ``fmd train-classifier`` to ``commands``."""
    fmd = commands.add_parser("fmd", help="the Frechet MNIST Distance: score samples, train the classifier",
                              description="The Frechet MNIST Distance.")
    fmd_commands = fmd.add_subparsers(dest="fmd_command", required=True, parser_class=Parser,
                                      metavar="FMD_COMMAND")
    scorer = fmd_commands.add_parser(
        "score", help="score samples against MNIST",
        description="Score generated digits (a tensor file from `colddiff sample --save-tensor`, "
        "or a folder of 28x28 images, read as `colddiff train --data` reads one) with the Frechet "
        "MNIST Distance. Samples of a conditional model (their file carries the asked classes) "
        "also get the classifier's accuracy against those classes and each class's Frechet "
        "distance to the real digits of that class.")
    scorer.set_defaults(subparser=scorer, handler=run)
    scorer.add_argument("samples", type=existing_path, metavar="SAMPLES")
    scorer.add_argument("--protocol", choices=["report", "full"], default="full")
    scorer.add_argument("--json", action="store_true", help="print the result as JSON")
    scorer.add_argument("--device", default="auto")
    scorer.add_argument("--precision", choices=runtime.PRECISIONS, default="fp32",
                        help="the classifier's arithmetic (fp32)")
    scorer.add_argument("--quiet", action="store_true", help="no progress bar")
    trainer = fmd_commands.add_parser(
        "train-classifier", help="train the feature classifier (reproduces the shipped weights)",
        description="Train an MNIST classifier and write its weights and a JSON card beside them.")
    trainer.set_defaults(subparser=trainer, handler=run)
    trainer.add_argument("--arch", choices=["default", "report"], default="default")
    trainer.add_argument("--out", type=Path, required=True, metavar="FILE.pt")
    trainer.add_argument("--epochs", type=POSITIVE, default=12)
    trainer.add_argument("--seed", type=COUNT, default=0)
    trainer.add_argument("--lr", type=number(float, 0, strict=True), default=3e-3)
    trainer.add_argument("--no-augment", action="store_true")


def run(args: argparse.Namespace) -> int:
    """Score the samples, or train and save the classifier."""
    from colddiff import fmd
    from colddiff.runtime import resolve_device

    if args.fmd_command == "score":
        try:
            samples, labels, classes = fmd.load_labelled_samples(args.samples)
            device = resolve_device(args.device)
            result = fmd.score(samples, protocol=args.protocol, device=device, precision=args.precision,
                               progress=not args.quiet)
            by_class = None if labels is None else fmd.class_scores(
                samples, labels, classes, device=device, precision=args.precision)
        except ValueError as error:  # a device, or samples that are not digits the classifier scores
            usage_error(args, error)
        if args.json:
            print(json.dumps({**result.to_dict(), **({"classes": by_class.to_dict()} if by_class else {})},
                             indent=2))
        else:
            print(fmd.describe(result) + (f"\n{fmd.describe_classes(by_class)}" if by_class else ""))
        return 0
    model, record = fmd.train_classifier(args.arch, epochs=args.epochs, seed=args.seed, lr=args.lr,
                                         augment=not args.no_augment,
                                         log=lambda line: print(line, file=sys.stderr, flush=True))
    record["command"] = (f"colddiff fmd train-classifier --arch {args.arch} --out {args.out} "
                         f"--epochs {args.epochs} --seed {args.seed} --lr {args.lr:g}"
                         + (" --no-augment" if args.no_augment else ""))
    card = fmd.save_classifier(model, args.out, record)
    print(f"colddiff fmd: wrote {args.out} (test accuracy {card['test_accuracy']:.2%}, "
          f"sha256 {card['sha256'][:12]}...)")
    return 0
