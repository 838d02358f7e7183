"""``colddiff tune-steps``: search a model's best ``K``-step grid (:mod:`colddiff.tuning`) and store
it where ``colddiff sample --sample-steps K`` finds it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from colddiff.cli.arguments import COUNT, POSITIVE, number, output_file
from colddiff.cli.errors import usage_error
from colddiff.cli.model_options import add_model_options, load_model
from colddiff.cli.sampler_options import add_sampler_options, requested_sampler

__all__ = ["add_parser", "run", "store"]


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``tune-steps`` to ``commands``."""
    tune = commands.add_parser(
        "tune-steps", help="search the K-step grid with the best Fréchet distance for a model",
        description="Search the K-step grid (the steps a sampler visits) that gives a model's samples "
        "the lowest Fréchet distance to held-out MNIST test digits: the best named spacing first, then "
        "one step at a time; checked at the end on fresh samples. The result goes into the model's card "
        "(--pretrained) or CHECKPOINT.grids.json (--checkpoint), where colddiff sample --sample-steps K "
        "uses it.")
    tune.set_defaults(subparser=tune, handler=run)
    add_model_options(tune)
    tune.add_argument("--sample-steps", type=number(int, 2), required=True, metavar="K",
                      help="the network calls of the grid (at least 2)")
    tune.add_argument("-n", type=number(int, 2), default=250, help="samples per scored grid (250)")
    tune.add_argument("--max-evaluations", type=POSITIVE, default=30, metavar="E",
                      help="the most grids the search scores, the named spacings included (30)")
    tune.add_argument("--validation-n", type=COUNT, default=1000, metavar="N",
                      help="fresh samples of the final check against the best named spacing (1000; 0: none)")
    tune.add_argument("--out", type=output_file, metavar="FILE.json",
                      help="where to store the grid (default: the model's card, or CHECKPOINT.grids.json)")
    add_sampler_options(tune, "the model's")


def run(args: argparse.Namespace) -> int:
    """Tune, say what was found, and store it."""
    from colddiff.tuning import tune_steps

    model = load_model(args)
    sampler, options = requested_sampler(args)
    if "spacing" in options:
        usage_error(args, "spacing is what tune-steps searches; leave --spacing out")
    if args.out is None and args.pretrained is not None:
        from colddiff.pretrained import weights_dir
        args.out = weights_dir() / f"{args.pretrained}.json"
    def log(line: str) -> None:
        print(f"colddiff tune-steps: {line}", flush=True)

    try:
        result = tune_steps(model, args.sample_steps, sampler=sampler, sampler_options=options, n=args.n,
                            seed=args.seed, max_evaluations=args.max_evaluations,
                            validation_n=args.validation_n, log=log)
    except ValueError as error:
        usage_error(args, error)
    entry = result.card_entry()
    path = store(args, entry, model.card)
    grid = entry["sampler_kwargs"]["spacing"]
    steps = ",".join(map(str, grid)) if isinstance(grid, list) else grid
    print(f"colddiff tune-steps: {result.evaluations} grids scored in {result.seconds:.0f} s; wrote the "
          f"{args.sample_steps}-step grid to {path}\n  the same by hand: --sampler {result.sampler} "
          + "".join(f"--{k.replace('_', '-')} {v} " for k, v in result.sampler_kwargs.items())
          + f"--spacing {steps}")
    return 0


def store(args: argparse.Namespace, entry: dict[str, Any], card: dict[str, Any]) -> Path:
    """Write ``entry`` under ``step_grids[K]`` of ``--out`` (a card or a grids file, its other
    content kept), atomically; for a checkpoint by default into ``CHECKPOINT.grids.json``,
    with the checkpoint's optimiser step (the grids apply to those weights only)."""
    from colddiff.checkpoints import atomic_write_text
    from colddiff.pretrained import grids_file

    path: Path = args.out or grids_file(args.checkpoint)
    try:
        content = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, json.JSONDecodeError) as error:
        usage_error(args, f"--out {path} is not a JSON file colddiff can update: {error}")
    if args.checkpoint is not None:
        content["optimiser_steps"] = card["optimiser_steps"]
    content.setdefault("step_grids", {})[str(args.sample_steps)] = entry
    try:
        atomic_write_text(path, json.dumps(content, indent=2) + "\n")
    except OSError as error:
        usage_error(args, f"cannot write {path} ({error}); give --out FILE.json")
    return path
