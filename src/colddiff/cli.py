"""The ``colddiff`` command line (also ``python -m colddiff``).

Usage errors exit with status 2 and one line saying what is wrong; runtime errors exit with
status 1 and a one-line message (``--debug`` shows the full traceback). Every argument, output
path and file format is checked before any work starts.

Building the parser imports nothing heavy (no PyTorch), so ``--help`` and ``--version`` answer
at once; each subcommand imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from colddiff import __version__, presets, runtime

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from colddiff.config import TrainConfig
    from colddiff.pretrained import Pretrained

__all__ = ["build_parser", "main"]

# Runtime errors are reported in one line with exit status 1: ValueError, RuntimeError and
# OSError cover colddiff's own (CheckpointError, DatasetNotFoundError, DatasetCorruptError,
# PriorUnavailableError, NonFiniteLossError, DegradationPluginError are subclasses).
_RUNTIME_ERRORS = (ValueError, RuntimeError, OSError, NotImplementedError)
_SCHEDULES = [*sorted(presets.SCHEDULES), "cosine"]
_KINDS = ["degradations", "nets", "samplers"]


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(kind: type, minimum: float, *, strict: bool = False, below: float | None = None
            ) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        too_small = value <= minimum if strict else value < minimum
        if too_small or (below is not None and value >= below) or not math.isfinite(value):
            bound = f"> {minimum}" if strict else f">= {minimum}"
            bound += f" and < {below}" if below is not None else ""
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value
    parse.__name__ = kind.__name__
    return parse


_POSITIVE = _number(int, 1)
_COUNT = _number(int, 0)


def _n_test(text: str) -> int:
    """``--n-test``: 2 to 5,000 test digits (the next as many give the FMD floor)."""
    value = _number(int, 2)(text)
    if value > 5000:
        raise argparse.ArgumentTypeError(f"must be at most 5000 (the next N test digits give the "
                                         f"real-image floor), got {value}")
    return int(value)


def _fraction(text: str) -> float:
    """A number in ``[0, 1]``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def _output_file(text: str) -> Path:
    """An output path that can be written: not a folder, its parent not a file."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {text}: {parent} is a file, not a folder")
    return path


def _image_file(text: str) -> Path:
    """An output image path whose extension Pillow can write (``.png``, ``.jpg``, ...)."""
    from PIL import Image

    path = _output_file(text)
    Image.init()
    writable = sorted(ext for ext, kind in Image.registered_extensions().items() if kind in Image.SAVE)
    if path.suffix.lower() not in writable:
        raise argparse.ArgumentTypeError(
            f"{text}: cannot write an image with extension {path.suffix or '(none)'!r}; use .png "
            f"(or one of {', '.join(e for e in writable if e in _COMMON_IMAGE_EXTENSIONS)})")
    return path


_COMMON_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


# The built-in samplers' options, each a flag: (flag, type, choices, help).
_SAMPLER_OPTIONS: list[tuple[str, Any, list[Any] | None, str]] = [
    ("variance", str, ["beta", "posterior"], "ddpm: the ancestral step's variance"),
    ("eta", _fraction, None, "ddim: in [0, 1], from deterministic (0) to ancestral (1)"),
    ("algorithm", int, [1, 2], "cold: Bansal's Algorithm 1 or 2"),
    ("source", str, ["fixed", "estimate"], "cold: keep the starting source or re-estimate it each step"),
    ("order", int, [1, 2], "dpmsolver++: 1 (DDIM) or 2 (2M)"),
]


def _add_sampler_options(group: argparse._ActionsContainer, default: str) -> None:
    """``--sampler`` and its options (for ``train``, ``sample`` and ``export``)."""
    group.add_argument("--sampler", metavar="NAME",
                       help=f"ddpm, ddim, cold, dpmsolver++ or a plugin's (default: {default})")
    for name, kind, choices, text in _SAMPLER_OPTIONS:
        group.add_argument(f"--{name}", type=kind, choices=choices, help=text)
    group.add_argument("--sampler-arg", action="append", metavar="KEY=VALUE", default=[],
                       help="any other sampler option (a plugin's), VALUE read as TOML (repeatable)")


def _add_model_options(command: argparse.ArgumentParser) -> None:
    """Which trained model, on which device, how: shared by ``sample`` and ``restore``."""
    model = command.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", type=Path, help="a training checkpoint")
    model.add_argument("--pretrained", metavar="NAME",
                       help="a model shipped with colddiff (mnist-ddpm, mnist-fashion-cold, mnist-deblur)")
    command.add_argument("--no-ema", action="store_true", help="use the raw weights, not the EMA")
    command.add_argument("--seed", type=_COUNT, default=0)
    command.add_argument("--device", default="auto")
    _add_speed_options(command)


def _add_outputs(command: argparse.ArgumentParser, default: str, tensor: str) -> None:
    """``--out`` (the image grid) and ``--save-tensor`` (``tensor``, as a tensor file)."""
    command.add_argument("--out", type=_image_file, default=Path(default),
                         help=f"the image grid (.png, .jpg, ...; default {default})")
    command.add_argument("--save-tensor", type=_output_file, metavar="FILE.pt",
                         help=f"also save {tensor} as a tensor (written first)")


def _add_speed_options(group: argparse._ActionsContainer) -> None:
    group.add_argument("--precision", choices=runtime.PRECISIONS,
                       help="the network's arithmetic: fp32, or bf16/fp16 autocast (default: the run's)")
    group.add_argument("--compile", nargs="?", const="default", choices=runtime.COMPILE_MODES,
                       metavar="MODE", help="torch.compile the network; MODE: "
                       + ", ".join(runtime.COMPILE_MODES) + " (default when given without one: default)")


def _sampler_changes(args: argparse.Namespace, current: TrainConfig) -> dict[str, Any]:
    """``{"sampler": ..., "sampler_kwargs": ...}`` for the sampler options given on the command
    line, relative to ``current`` (a new sampler starts from no options); ``{}`` if none."""
    options = {name: getattr(args, name) for name, *_ in _SAMPLER_OPTIONS
               if getattr(args, name) is not None}
    for item in args.sampler_arg:
        key, equals, text = item.partition("=")
        if not equals or not key.strip():
            args.subparser.error(f"--sampler-arg must be KEY=VALUE, got {item!r}")
        options[key.strip()] = _toml_value(text.strip())
    if args.sampler is None and not options:
        return {}
    name = args.sampler or current.sampler
    kept = current.sampler_kwargs if name == current.sampler else {}
    return {"sampler": name, "sampler_kwargs": {**kept, **options}}


def _toml_value(text: str) -> Any:
    """``text`` read as a TOML value (``2``, ``0.5``, ``true``, ``"x"``), else as a plain string."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib

    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def build_parser() -> argparse.ArgumentParser:
    """The ``colddiff`` argument parser with its subcommands."""
    parser = _Parser(prog="colddiff", description="Denoising and cold diffusion with any degradation.")
    parser.add_argument("--version", action="version", version=f"colddiff {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser,
                                     metavar="COMMAND")

    train = commands.add_parser("train", help="train a denoiser (a preset, a config, or both)",
                                description="Train a denoiser. Options override the preset or "
                                "config file; the resolved config is saved as OUT/config.toml.")
    train.set_defaults(subparser=train)
    source = train.add_argument_group("what to train")
    source.add_argument("--preset", choices=sorted(presets.TRAINING),
                        help="one of the reference study's models, or mnist-unet (colddiff's recipe)")
    source.add_argument("--config", type=Path, help="a config.toml to start from")
    source.add_argument("--degradation", help="a degradation name (see `colddiff degradations`)")
    source.add_argument("--schedule", choices=_SCHEDULES,
                        help="a linear preset of the report, or cosine with the same T")
    source.add_argument("--net", metavar="NAME",
                        help="network: cnn or unet (its default size unless the config gives net_kwargs)")
    source.add_argument("--predict", choices=["eps", "x0", "v"])
    source.add_argument("--data", "--dataset", dest="dataset", metavar="NAME|FOLDER",
                        help="training images: mnist (default), fashion_mnist, cifar10, or a folder of "
                        "PNG/JPEG images (then --image-size is required)")
    source.add_argument("--image-size", type=_POSITIVE, metavar="PIXELS",
                        help="resize and centre-crop the images to PIXELS x PIXELS")
    source.add_argument("--channels", type=int, choices=[1, 3], help="convert the images to grey or RGB")
    source.add_argument("--value-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                        help="pixel range the model sees: 0 1 (default) or -1 1; samples are saved in [0, 1]")
    source.add_argument("--data-workers", type=_COUNT, metavar="N",
                        help="DataLoader processes decoding a folder too large for memory (2)")
    source.add_argument("--on-error", choices=["raise", "skip"],
                        help="an image file that cannot be decoded stops the run (raise, default) or "
                        "is left out with a warning (skip)")
    run = train.add_argument_group("how to train")
    run.add_argument("--epochs", type=_POSITIVE)
    run.add_argument("--batch-size", type=_POSITIVE)
    run.add_argument("--lr", type=_number(float, 0, strict=True))
    run.add_argument("--limit-train", type=_POSITIVE, metavar="N", help="use the first N images")
    run.add_argument("--warmup", type=_COUNT, metavar="STEPS", help="linear learning-rate warm-up")
    run.add_argument("--seed", type=_COUNT)
    run.add_argument("--ema", type=_number(float, 0, strict=True, below=1), metavar="DECAY",
                     help="sample with an EMA of the weights (e.g. 0.999)")
    run.add_argument("--out", type=Path, help="run folder (default runs/PRESET)")
    run.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pt")
    run.add_argument("--overwrite", action="store_true",
                     help="start afresh in an OUT that holds a run, deleting its checkpoints, "
                     "metrics and samples")
    run.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    run.add_argument("--max-minutes", type=_number(float, 0, strict=True), metavar="M",
                     help="stop after M minutes of training (resumable mid-epoch)")
    run.add_argument("--checkpoint-every", type=_COUNT, metavar="STEPS",
                     help="also checkpoint every STEPS optimiser steps")
    run.add_argument("--keep-checkpoints", action="store_true", default=None,
                     help="keep checkpoints/epoch-NNN.pt")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    _add_speed_options(run)
    run.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                     help="channels-last memory layout for the network and the images")
    sampling = train.add_argument_group("samples during training")
    sampling.add_argument("--sample-every", type=_COUNT, metavar="K", help="every K epochs (0: never)")
    sampling.add_argument("--sample-n", type=_POSITIVE, metavar="N")
    sampling.add_argument("--sample-steps", type=_POSITIVE, metavar="S")
    _add_sampler_options(sampling, "the preset's or config's")
    sampling.add_argument("--fmd-every", type=_COUNT, metavar="K",
                          help="score samples with FMD every K epochs (logged in metrics.jsonl)")
    sampling.add_argument("--fmd-n", type=_POSITIVE, metavar="N", help="samples per FMD score (32)")

    sample = commands.add_parser("sample", help="draw samples from a trained checkpoint",
                                 description="Draw samples from a checkpoint into a PNG grid.")
    sample.set_defaults(subparser=sample)
    _add_model_options(sample)
    sample.add_argument("-n", type=_POSITIVE, default=64, help="number of samples (64)")
    sample.add_argument("--sample-steps", type=_POSITIVE, metavar="S",
                        help="sampling steps K <= T (default: the model's)")
    sample.add_argument("--steps", type=_POSITIVE, dest="old_steps", metavar="S",
                        help="deprecated spelling of --sample-steps")
    _add_sampler_options(sample, "the model's")
    _add_outputs(sample, "samples.png", "the raw samples")

    restore = commands.add_parser(
        "restore", help="restore degraded images with a trained model",
        description="Restore images degraded to step --t, one step at a time with the model's "
                    "sampler ('sampled') and in one step ('direct'), into a grid with a row each "
                    "(and the clean images first with --from-test-set, plus SSIM, PSNR, RMSE).")
    restore.set_defaults(subparser=restore)
    _add_model_options(restore)
    given = restore.add_mutually_exclusive_group(required=True)
    given.add_argument("--input", type=Path, metavar="FILE.pt|FOLDER",
                       help="degraded images: a tensor (N, C, H, W) in [0, 1] or a folder of images")
    given.add_argument("--from-test-set", type=_POSITIVE, metavar="N",
                       help="degrade the first N test images of the model's dataset, then restore them")
    restore.add_argument("--t", type=_POSITIVE, metavar="T",
                         help="the step the images are degraded to (required with --input; with "
                         "--from-test-set: default T)")
    restore.add_argument("--sample-steps", type=_POSITIVE, metavar="S",
                         help="steps of the sampled restoration (default: all t)")
    restore.add_argument("--on-error", choices=["raise", "skip"], default="raise",
                         help="a file in the --input folder that is not an image: stop, or leave it out")
    _add_sampler_options(restore, "the model's")
    _add_outputs(restore, "restored.png", "the sampled restorations")

    degrade = commands.add_parser("degrade", help="show the forward process on some images",
                                  description="Degrade the first N training images (MNIST unless "
                                  "--data says otherwise); one row per image, FRAMES columns from "
                                  "t = 0 to T.")
    degrade.set_defaults(subparser=degrade)
    degrade.add_argument("--degradation", required=True)
    degrade.add_argument("--schedule", choices=_SCHEDULES, default="default")
    degrade.add_argument("-n", "--n", type=_POSITIVE, default=4, dest="n",
                         help="images, one row each (4; -n as for sample, --n kept for old scripts)")
    degrade.add_argument("--frames", type=_number(int, 2), default=11)
    degrade.add_argument("--data", default="mnist", metavar="NAME|FOLDER",
                         help="mnist (default), fashion_mnist, cifar10 or a folder of images")
    degrade.add_argument("--image-size", type=_POSITIVE, metavar="PIXELS")
    degrade.add_argument("--channels", type=int, choices=[1, 3])
    degrade.add_argument("--on-error", choices=["raise", "skip"], default="raise",
                         help="an image file that cannot be decoded stops (raise) or is skipped")
    degrade.add_argument("--seed", type=_COUNT, default=0)
    degrade.add_argument("--out", type=_image_file, required=True)

    export = commands.add_parser(
        "export", help="turn a training checkpoint into a shippable float16 model with a card",
        description="Write NAME.pt (float16 weights; the EMA ones once the average has started) and "
        "NAME.json (model card) into OUT, for colddiff.pretrained.")
    export.set_defaults(subparser=export)
    export.add_argument("--checkpoint", type=Path, required=True)
    export.add_argument("--name", required=True)
    export.add_argument("--out", type=Path, required=True, help="folder for NAME.pt and NAME.json")
    export.add_argument("--card", type=Path, metavar="FILE.json", help="extra card fields (scores...)")
    shipped = export.add_argument_group("how the shipped model samples (default: as its training run)")
    _add_sampler_options(shipped, "the training run's")
    shipped.add_argument("--sample-steps", type=_POSITIVE, metavar="S")

    for name, text in (("list", "list the pluggable parts (degradations, nets, samplers) and their origin"),
                       ("degradations", "the same as `colddiff list degradations`")):
        listing = commands.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        listing.set_defaults(subparser=listing)
        if name == "list":
            listing.add_argument("kinds", nargs="*", metavar="KIND",
                                 help=f"any of {', '.join(_KINDS)} (default: all)")
        listing.add_argument("--check", action="store_true",
                             help="import each one and mark those that fail (exit 1 if any does)")

    study = commands.add_parser(
        "reproduce", help="reproduce a study: the reference study, or Bansal et al.'s MNIST restoration",
        description="--study report (default): train the reference study's four models, score them "
        "with FMD, and write figures 1-14, report.md and results.json into OUT. --study "
        "bansal-mnist: train Bansal et al.'s MNIST restoration models (blur, inpaint, superres), "
        "restore fully degraded test digits directly and with Algorithm 2, and write their FMD, "
        "SSIM, PSNR and RMSE, a figure per model, report.md and results.json into OUT.")
    study.set_defaults(subparser=study)
    study.add_argument("--study", choices=presets.STUDIES,
                       help="which study: report or bansal-mnist (default: the one OUT holds, else report)")
    study.add_argument("--out", type=Path, required=True)
    study.add_argument("--epochs", type=_POSITIVE,
                       help="epochs per model (report: 100, --quick 2; bansal-mnist: 20, --quick 1)")
    study.add_argument("--models", nargs="+", help="a subset of the study's models",
                       choices=[name for names in presets.STUDIES.values() for name in names])
    study.add_argument("--quick", action="store_true",
                       help="CI-sized: report: 1,024 images, 2 epochs, 50 sampling steps, 128 "
                       "full-protocol samples; bansal-mnist: 512 images, 1 epoch, 64 test digits")
    study.add_argument("--limit-train", type=_POSITIVE, metavar="N")
    report_only = study.add_argument_group("--study report only")
    report_only.add_argument("--eval-every", type=_POSITIVE, metavar="K",
                             help="report-protocol FMD every K epochs (1)")
    report_only.add_argument("--full-every", type=_POSITIVE, metavar="K",
                             help="full-protocol FMD every K epochs, and after the last "
                             "(10; --quick: only after the last)")
    report_only.add_argument("--sample-steps", type=_POSITIVE, metavar="S", help="(default: all T)")
    report_only.add_argument("--full-n", type=_number(int, 2), metavar="N",
                             help="full-protocol samples (1000)")
    bansal_only = study.add_argument_group("--study bansal-mnist only")
    bansal_only.add_argument("--n-test", type=_n_test, metavar="N",
                             help="test digits restored and scored, 2 to 5,000 (the next N give the "
                             "real-image floor; 1000; --quick: 64)")
    bansal_only.add_argument("--precision", choices=runtime.PRECISIONS,
                             help="training arithmetic (fp32; evaluation is always fp32)")
    study.add_argument("--device", default="auto")
    study.add_argument("--resume", action="store_true", help="continue an interrupted study")
    study.add_argument("--figures-only", action="store_true",
                       help="redraw figures and report.md from a finished study folder")
    study.add_argument("--quiet", action="store_true")

    fmd = commands.add_parser("fmd", help="the Frechet MNIST Distance: score samples, train the classifier",
                              description="The Frechet MNIST Distance.")
    fmd_commands = fmd.add_subparsers(dest="fmd_command", required=True, parser_class=_Parser,
                                      metavar="FMD_COMMAND")
    scorer = fmd_commands.add_parser(
        "score", help="score samples against MNIST",
        description="Score generated digits (a tensor file from `colddiff sample --save-tensor`, "
        "or a folder of 28x28 PNGs) with the Frechet MNIST Distance.")
    scorer.add_argument("samples", type=Path, metavar="SAMPLES")
    scorer.add_argument("--protocol", choices=["report", "full"], default="full")
    scorer.add_argument("--json", action="store_true", help="print the result as JSON")
    scorer.add_argument("--device", default="auto")
    scorer.add_argument("--precision", choices=runtime.PRECISIONS, default="fp32",
                        help="the classifier's arithmetic (fp32)")
    trainer = fmd_commands.add_parser(
        "train-classifier", help="train the feature classifier (reproduces the shipped weights)",
        description="Train an MNIST classifier and write its weights and a JSON card beside them.")
    trainer.add_argument("--arch", choices=["default", "report"], default="default")
    trainer.add_argument("--out", type=Path, required=True, metavar="FILE.pt")
    trainer.add_argument("--epochs", type=_POSITIVE, default=12)
    trainer.add_argument("--seed", type=_COUNT, default=0)
    trainer.add_argument("--lr", type=_number(float, 0, strict=True), default=3e-3)
    trainer.add_argument("--no-augment", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        handler = {"train": _train, "sample": _sample, "restore": _restore, "degrade": _degrade,
                   "list": _list, "degradations": _list, "fmd": _fmd, "export": _export,
                   "reproduce": _reproduce}[args.command]
        return handler(args, parser)
    except KeyboardInterrupt:
        print("colddiff: interrupted", file=sys.stderr)
        return 130
    except _RUNTIME_ERRORS as error:
        if args.debug:
            raise
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"colddiff {args.command}: error: {message}", file=sys.stderr)
        return 1


def _schedule_spec(name: str, current: dict[str, Any] | None = None) -> dict[str, Any]:
    """The spec of ``--schedule NAME``; ``cosine`` keeps the ``T`` of the ``current`` spec."""
    from colddiff.schedules import Schedule

    if name == "cosine":
        num_timesteps = Schedule.upgrade_spec(current or {}).get("num_timesteps", 1000)
        return Schedule.cosine(int(num_timesteps)).spec()
    return Schedule.preset(name).spec()


def _train_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> tuple[TrainConfig, Path]:
    from colddiff import degradations
    from colddiff.config import PRESETS, TrainConfig, check_buildable
    from colddiff.data import DATASETS
    from colddiff.runtime import resolve_device

    subparser: argparse.ArgumentParser = args.subparser
    out = args.out
    if args.config is not None and not args.config.is_file():
        subparser.error(f"--config {args.config}: no such file")
    if args.resume and args.overwrite:
        subparser.error("--resume continues the run in OUT and --overwrite deletes it: give one")
    try:
        if args.config is not None:
            config = TrainConfig.load(args.config)
            if args.preset is not None:
                config = TrainConfig.preset(args.preset, **{
                    k: v for k, v in config.to_dict().items() if k not in PRESETS[args.preset]})
        elif args.preset is not None:
            config = TrainConfig.preset(args.preset)
        elif args.resume and out is not None and (out / "config.toml").exists():
            config = TrainConfig.load(out / "config.toml")
        else:
            subparser.error("give --preset or --config (or --resume with --out of an existing run)")
        overrides = {
            "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
            "limit_train": args.limit_train, "seed": args.seed, "ema": args.ema,
            "sample_every": args.sample_every, "sample_n": args.sample_n,
            "sample_steps": args.sample_steps, "degradation": args.degradation, "net": args.net,
            "predict": args.predict, "dataset": args.dataset, "image_size": args.image_size,
            "channels": args.channels, "on_error": args.on_error, "data_workers": args.data_workers,
            "value_range": args.value_range,
            **_sampler_changes(args, config),
            "checkpoint_every": args.checkpoint_every,
            "keep_checkpoints": args.keep_checkpoints, "warmup": args.warmup,
            "max_minutes": args.max_minutes,
            "fmd_every": args.fmd_every, "fmd_n": args.fmd_n,
            "precision": args.precision, "compile": args.compile, "channels_last": args.channels_last,
        }
        if args.net is not None and args.net != config.net:
            overrides["net_kwargs"] = {}  # the other network's defaults, not this one's sizes
        if args.schedule is not None:
            overrides["schedule"] = _schedule_spec(args.schedule, config.schedule)
        config = config.replace(**{k: v for k, v in overrides.items() if v is not None})
        _check_data_source(config.dataset)
        if config.dataset not in (*DATASETS, "memory"):  # a folder: resumable from anywhere
            config = config.replace(dataset=str(Path(config.dataset).expanduser().resolve()))
        degradations.get(config.degradation)
        check_buildable(config)
        resolve_device(args.device)
    except (ValueError, OSError) as error:
        subparser.error(" ".join(str(error).split()))
    if out is None:
        out = Path("runs") / (args.preset or (args.config.stem if args.config else "train"))
    return config, out


def _check_data_source(dataset: str) -> None:
    """Refuse a ``--data`` that is neither a dataset name nor an existing folder (a usage error)."""
    from colddiff.data import DATASETS

    if dataset not in (*DATASETS, "memory") and not Path(dataset).expanduser().is_dir():
        raise ValueError(f"--data must be one of {', '.join(DATASETS)} or a folder of images; "
                         f"{dataset!r} is neither (no such folder)")


def _train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from colddiff.training import RunExistsError, Trainer

    config, out = _train_config(args, parser)
    trainer = Trainer(config, out, device=args.device, quiet=args.quiet, overwrite=args.overwrite)
    try:
        trainer.fit(resume=args.resume)
    except RunExistsError as error:  # checked before any data is read: a usage error
        args.subparser.error(" ".join(str(error).split()))
    if trainer.processes.main and not args.quiet:
        print(f"colddiff train: done; checkpoint {trainer.checkpoint_path}", file=sys.stderr)
    return 0


def _sample(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import torch

    from colddiff.config import to_unit_range
    from colddiff.degradations import Degradation
    from colddiff.sampling import ensure_prior

    subparser: argparse.ArgumentParser = args.subparser
    model, device = _load_model(args)
    if args.old_steps is not None:
        if args.sample_steps is not None:
            subparser.error("give --sample-steps only (--steps is its deprecated spelling)")
        print("colddiff sample: --steps is deprecated, use --sample-steps", file=sys.stderr)
        args.sample_steps = args.old_steps
    total = model.denoiser.num_timesteps
    if args.sample_steps is not None and args.sample_steps > total:
        subparser.error(f"--sample-steps must be at most the model's T = {total}, got {args.sample_steps}")
    ensure_prior(model.denoiser.degradation, model.config)
    try:
        changes = _sampler_changes(args, model.config)
        sampler = model.sampler(changes.get("sampler"), **changes.get("sampler_kwargs", {}))
    except ValueError as error:
        subparser.error(" ".join(str(error).split()))
    generator = torch.Generator(device).manual_seed(args.seed)
    sample_steps = args.sample_steps or model.config.sample_steps
    degradation = model.denoiser.degradation
    if type(degradation).prior is Degradation.prior:  # none at all (missing data is a runtime error)
        subparser.error(f"{degradation!r} has no prior to sample from; colddiff restore "
                        "--from-test-set N degrades test images and restores them")
    x_T = sampler.prior(args.n, generator=generator)
    samples = to_unit_range(sampler.sample(x_T, sample_steps, generator=generator), model.config).cpu()
    _write(args, samples, samples, nrow=math.ceil(math.sqrt(args.n)))
    return 0


def _write(args: argparse.Namespace, grid: Tensor, tensor: Tensor, nrow: int) -> None:
    """Save ``tensor`` to ``--save-tensor`` (first: it survives a failing image write) and
    ``grid`` as the image ``--out``, and say so."""
    import torch
    from torchvision.utils import save_image

    written = []
    if args.save_tensor is not None:
        args.save_tensor.parent.mkdir(parents=True, exist_ok=True)
        torch.save(tensor, args.save_tensor)
        written.append(str(args.save_tensor))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid.clamp(0, 1), args.out, nrow=nrow)
    written.insert(0, str(args.out))
    print(f"colddiff {args.command}: wrote {' and '.join(written)}")


def _load_model(args: argparse.Namespace) -> tuple[Pretrained, torch.device]:
    """The model of ``--checkpoint`` / ``--pretrained`` on ``--device``, with ``--precision``
    and ``--compile`` applied; usage errors exit with status 2."""
    from colddiff import pretrained, samplers
    from colddiff.runtime import resolve_device

    subparser: argparse.ArgumentParser = args.subparser
    if args.sampler is not None and args.sampler not in samplers.available():
        subparser.error(f"unknown sampler {args.sampler!r}; available: {', '.join(samplers.available())}")
    if args.checkpoint is not None and args.checkpoint.is_dir():
        hint = args.checkpoint / "checkpoints" / "last.pt"
        subparser.error(f"--checkpoint {args.checkpoint} is a folder, not a checkpoint file"
                        + (f"; did you mean {hint}?" if hint.is_file() else ""))
    if args.pretrained is not None and args.pretrained not in pretrained.available():
        subparser.error(f"--pretrained must be one of {pretrained.available()}, got {args.pretrained!r}")
    try:
        device = resolve_device(args.device)
    except ValueError as error:
        subparser.error(f"--device: {error}")
    if args.pretrained is not None:
        model = pretrained.load(args.pretrained, device)
    else:
        model = pretrained.from_checkpoint(args.checkpoint, device, ema=not args.no_ema)
    if args.precision is not None:
        model.denoiser.precision = args.precision
    if args.compile not in (None, "off"):
        model.denoiser.compile(mode=args.compile)
    return model, device


def _restore(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import torch

    from colddiff import checkpoints, data, metrics

    subparser: argparse.ArgumentParser = args.subparser
    model, _ = _load_model(args)
    degradation = model.denoiser.degradation
    changes = _sampler_changes(args, model.config)
    try:
        sampler = model.sampler(changes.get("sampler"), **changes.get("sampler_kwargs", {}))
    except ValueError as error:
        subparser.error(" ".join(str(error).split()))
    total = degradation.num_timesteps
    if args.t is None and args.input is not None:
        subparser.error("--input needs --t, the step the images are degraded to")
    t = args.t if args.t is not None else total
    if t > total:
        subparser.error(f"--t must lie in [1, {total}] (the model's T), got {t}")
    if args.sample_steps is not None and args.sample_steps > t:
        subparser.error(f"--sample-steps must be at most --t = {t}, got {args.sample_steps}")
    shape = degradation.image_shape or model.config.image_shape
    clean = source = None
    if args.input is not None:
        if degradation.source_is_given and getattr(sampler, "source", None) != "estimate":
            subparser.error(f"{degradation!r} needs each degraded image's source (such as its mask "
                            "centre), which --input cannot give; use --from-test-set, or restore from "
                            "Python: model.restore(images, t, source=...)")
        if args.input.is_dir():
            size = shape[-1] if shape is not None else None
            degraded = data.load(args.input, image_size=size, channels=shape[0] if shape else None,
                                 on_error=args.on_error).images
        elif args.input.is_file():
            degraded = checkpoints.safe_load(args.input, "cpu", what="--input")
            if not isinstance(degraded, torch.Tensor):
                subparser.error(f"--input {args.input} must hold one tensor (N, C, H, W), "
                                f"got {type(degraded).__name__}")
        else:
            subparser.error(f"--input {args.input}: no such file or folder")
        if degraded.ndim != 4 or (shape is not None and tuple(degraded.shape[1:]) != tuple(shape)):
            expected = f"(N, {', '.join(map(str, shape))})" if shape is not None else "(N, C, H, W)"
            subparser.error(f"--input holds images of shape {tuple(degraded.shape)}; this model "
                            f"restores {expected}")
        if not degraded.is_floating_point() or len(degraded) == 0 or not bool(torch.isfinite(degraded).all()):
            subparser.error(f"--input must hold at least one image of finite floating-point values on the "
                            f"[0, 1] scale, got {len(degraded)} of dtype {degraded.dtype}"
                            + ("" if not degraded.is_floating_point() or len(degraded) == 0
                               else " with NaN or infinite values"))
        degraded = degraded.float()
    else:
        name = model.config.dataset
        if name not in data.DATASETS:
            subparser.error(f"--from-test-set needs a model trained on a named dataset "
                            f"({', '.join(data.DATASETS)}); this one trained on {name!r}: use --input")
        clean = data.load(name, train=False, image_size=model.config.image_size,
                          channels=model.config.channels, limit=args.from_test_set).images
        degraded, source = model.degrade(clean, t, seed=args.seed)
    direct, sampled = model.restore(degraded, t, args.sample_steps, source=source, seed=args.seed,
                                    sampler=changes.get("sampler"), **changes.get("sampler_kwargs", {}))
    rows = [degraded, direct.cpu(), sampled.cpu()]
    if clean is not None:
        rows.insert(0, clean)
        for label, images in zip(("degraded", "direct", "sampled"), rows[1:], strict=True):
            print(f"{label:>9}: SSIM {float(metrics.ssim(images, clean).mean()):.4f}, "
                  f"PSNR {float(metrics.psnr(images, clean).mean()):.2f} dB, "
                  f"RMSE {float(metrics.rmse(images, clean).mean()):.4f}")
    _write(args, torch.cat(rows), sampled.cpu(), nrow=len(degraded))
    return 0


def _degrade(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import torch
    from torchvision.utils import save_image

    from colddiff import data, degradations
    from colddiff.config import TrainConfig, build_degradation

    try:
        degradations.get(args.degradation)
        config = TrainConfig(dataset=args.data, image_size=args.image_size, channels=args.channels,
                             degradation=args.degradation, schedule=_schedule_spec(args.schedule))
        _check_data_source(config.dataset)
    except ValueError as error:
        args.subparser.error(" ".join(str(error).split()))
    # Missing or broken files are runtime errors (exit 1), reported by main().
    x0 = data.load(args.data, image_size=args.image_size, channels=args.channels, limit=args.n,
                   on_error=args.on_error).images
    deg = build_degradation(config, tuple(x0.shape[1:]))  # type: ignore[arg-type]
    generator = torch.Generator().manual_seed(args.seed)
    source = deg.sample_source(x0, generator=generator)
    times = [round(deg.num_timesteps * k / (args.frames - 1)) for k in range(args.frames)]
    frames = torch.stack([deg.degrade(x0, t, source) for t in times], dim=1)  # (n, frames, C, H, W)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_image(frames.flatten(0, 1).clamp(0, 1), args.out, nrow=args.frames)
    print(f"colddiff degrade: wrote {args.out} (t = {', '.join(map(str, times))})")
    return 0


def _list(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import importlib

    kinds = getattr(args, "kinds", None) or (["degradations"] if args.command == "degradations" else _KINDS)
    unknown = [kind for kind in kinds if kind not in _KINDS]
    if unknown:
        args.subparser.error(f"KIND must be among {', '.join(_KINDS)}, got {', '.join(unknown)}")
    failed = 0
    for kind in dict.fromkeys(kinds):
        registry = importlib.import_module(f"colddiff.{kind}").REGISTRY
        available = registry.available()
        problems = registry.check() if args.check else {}
        if len(kinds) > 1:
            print(f"{kind}:")
        width = max(map(len, available))
        for name, origin in available.items():
            status = ""
            if args.check:
                status = "  [ok]" if problems[name] is None else f"  [BROKEN: {problems[name]}]"
                failed += problems[name] is not None
            print(f"{'  ' if len(kinds) > 1 else ''}{name:<{width}}  {origin}{status}")
    return 1 if failed else 0


def _export(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from colddiff import checkpoints, pretrained
    from colddiff.config import TrainConfig, check_buildable

    extra = json.loads(args.card.read_text()) if args.card is not None else {}
    steps = {"sample_steps": args.sample_steps} if args.sample_steps is not None else {}
    trained = TrainConfig.from_dict(checkpoints.load(args.checkpoint)["config"])
    sampling = _sampler_changes(args, trained) | steps
    try:
        check_buildable(trained.replace(**sampling))
    except ValueError as error:
        args.subparser.error(" ".join(str(error).split()))
    card = pretrained.export(args.checkpoint, args.name, args.out, card=extra, sampling=sampling)
    print(f"colddiff export: wrote {card.with_suffix('.pt')} and {card}")
    return 0


def _study_in(out: Path) -> str | None:
    """The study a folder holds: its ``results.json`` says, else its model folders' names do."""
    if (out / "results.json").exists():
        return str(json.loads((out / "results.json").read_text()).get("study", "report"))
    models = {p.name for p in (out / "models").glob("*")}
    return next((study for study, names in presets.STUDIES.items() if models & set(names)), None)


def _study_options(kind: Any, out: Path, changes: dict[str, Any], args: argparse.Namespace) -> Any:
    """The options of a study run: on ``--resume``, those saved in ``OUT/options.json`` with the
    ones given now replacing theirs; else the defaults (or ``--quick``'s) with the given ones.
    Saves them for the next resume."""
    saved = out / "options.json"
    if args.resume and saved.exists():
        previous = json.loads(saved.read_text())
        previous["models"] = tuple(previous["models"])
        replaced = sorted(key for key, value in changes.items() if previous.get(key) != value)
        if not args.quiet:
            print(f"colddiff reproduce: resuming with the options of {saved}"
                  + (f", replacing {', '.join(replaced)}" if replaced else ""))
        options = kind(out=out, **{**previous, **changes}, device=args.device, quiet=args.quiet)
    else:
        options = (kind.quick(out, **changes, device=args.device, quiet=args.quiet) if args.quick
                   else kind(out=out, **changes, device=args.device, quiet=args.quiet))
    out.mkdir(parents=True, exist_ok=True)
    kept = {key: value for key, value in vars(options).items() if key not in ("out", "device", "quiet")}
    saved.write_text(json.dumps(kept, indent=2) + "\n")
    return options


def _reproduce(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from colddiff.study import bansal, figures, reproduce

    out: Path = args.out
    held = _study_in(out)
    if args.study is not None and held is not None and args.study != held:
        args.subparser.error(f"{out} holds a --study {held} study, not --study {args.study}; "
                             "choose another --out")
    args.study = args.study or held or "report"
    own = {"report": ("eval_every", "full_every", "sample_steps", "full_n"),
           "bansal-mnist": ("n_test", "precision")}
    for study, names in own.items():
        given = [name for name in names if study != args.study and getattr(args, name) is not None]
        if given:
            args.subparser.error(f"--{given[0].replace('_', '-')} is an option of --study {study}, "
                                 f"not of --study {args.study}")
    wrong = sorted(set(args.models or ()) - set(presets.STUDIES[args.study]))
    if wrong:
        args.subparser.error(f"--models for --study {args.study} must be among "
                             f"{', '.join(presets.STUDIES[args.study])}, got {', '.join(wrong)}")
    if args.figures_only:
        if not (out / "results.json").exists():
            args.subparser.error(f"--figures-only needs a finished study in {out} (no results.json)")
    else:
        if (out / "models").exists() and not args.resume:
            args.subparser.error(f"{out} already holds a study; pass --resume to continue it, or "
                                 "choose another --out to start afresh")
        changes: dict[str, Any] = {key: getattr(args, key) for key in (
            "epochs", "limit_train", *own[args.study]) if getattr(args, key) is not None}
        if args.models:
            changes["models"] = tuple(args.models)
        options = _study_options(reproduce.StudyOptions if args.study == "report" else bansal.BansalOptions,
                                 out, changes, args)
        (reproduce.run_study if args.study == "report" else bansal.run_study)(options)
    if args.study == "report":
        drawn = figures.draw_figures(out)
        written, skipped = drawn["written"], drawn["skipped"]
        report = reproduce.write_report(out, written)
    else:
        written, skipped = bansal.draw_figures(out), []
        report = bansal.write_report(out, written)
    print(f"colddiff reproduce: {len(written)} figures in {out / 'figures'}, {report}, "
          f"{out / 'results.json'}" + (f"; skipped {skipped}" if skipped else ""))
    return 0


def _fmd(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from colddiff import fmd
    from colddiff.runtime import resolve_device

    if args.fmd_command == "score":
        result = fmd.score(fmd.load_samples(args.samples), protocol=args.protocol,
                           device=resolve_device(args.device), precision=args.precision)
        if args.json:
            print(json.dumps(result.to_dict(), indent=2))
        else:
            print(fmd.describe(result))
    elif args.fmd_command == "train-classifier":
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
