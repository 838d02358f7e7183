"""``colddiff tune-steps``: search a model's best ``K``-step grid (:mod:`colddiff.tuning`) and store
it where ``colddiff sample --sample-steps K`` finds it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from colddiff.cli.arguments import COUNT, POSITIVE, number, output_file
from colddiff.cli.errors import usage_error
from colddiff.cli.model_options import add_model_options, load_model
from colddiff.cli.sampler_options import add_sampler_options, requested_sampler

__all__ = ["add_parser", "run", "store", "stored"]


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
    content = stored(args)  # checked before the search, so that its result is not lost

    def log(line: str) -> None:
        print(f"colddiff tune-steps: {line}", flush=True)

    try:
        result = tune_steps(model, args.sample_steps, sampler=sampler, sampler_options=options, n=args.n,
                            seed=args.seed, max_evaluations=args.max_evaluations,
                            validation_n=args.validation_n, validation_seed=args.seed + 1, log=log)
    except ValueError as error:
        usage_error(args, error)
    entry = result.card_entry()
    path = store(args, content, entry, model.card)
    grid = entry["sampler_kwargs"]["spacing"]
    steps = ",".join(map(str, grid)) if isinstance(grid, list) else grid
    print(f"colddiff tune-steps: {result.evaluations} grids scored in {result.seconds:.0f} s; wrote the "
          f"{args.sample_steps}-step grid to {path}\n  the same by hand: --sampler {result.sampler} "
          + "".join(f"--sampler-arg {k}={json.dumps(v)} " for k, v in result.sampler_kwargs.items())
          + f"--spacing {steps} --sample-steps {args.sample_steps}")
    return 0


def stored(args: argparse.Namespace) -> dict[str, Any]:
    """What ``--out`` (default: the card, or ``CHECKPOINT.grids.json``) holds now (``{}`` for a new
    file); exit status 2 if it is not a JSON object or cannot be written."""
    import os

    from colddiff.pretrained import grids_file

    path: Path = args.out or grids_file(args.checkpoint)
    args.out = path
    try:
        content = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, json.JSONDecodeError) as error:
        usage_error(args, f"--out {path} is not a JSON file colddiff can update: {error}")
    folder = path.parent if path.parent != Path("") else Path(".")
    if not isinstance(content, dict) or not os.access(folder, os.W_OK) or (
            path.exists() and not os.access(path, os.W_OK)):
        usage_error(args, f"--out {path} cannot take the grid (not a JSON object, or not writable); "
                    "give --out FILE.json")
    return content


def store(args: argparse.Namespace, content: dict[str, Any], entry: dict[str, Any],
          card: dict[str, Any]) -> Path:
    """Write ``entry`` under ``step_grids[K]`` of ``--out`` (its other content kept), atomically;
    for a checkpoint with the optimiser step and weights (EMA or raw) it was tuned for, dropping
    the grids tuned for other weights."""
    from colddiff.checkpoints import atomic_write_text

    if args.checkpoint is not None:
        tuned_for = {"optimiser_steps": card["optimiser_steps"], "ema": card["ema"]}
        if any(content.get(key) != value for key, value in tuned_for.items()):
            content["step_grids"] = {}
        content.update(tuned_for)
    content.setdefault("step_grids", {})[str(args.sample_steps)] = entry
    try:
        atomic_write_text(args.out, json.dumps(content, indent=2) + "\n")
    except OSError as error:
        print(json.dumps(entry), file=sys.stderr)
        usage_error(args, f"cannot write {args.out} ({error}); the grid is printed above")
    return Path(args.out)
