"""``colddiff train``: train a denoiser from a preset, a config file, or both, with overrides.

Its flags that set a :class:`~colddiff.config.TrainConfig` field come from one table,
:data:`TRAIN_FLAGS`: each is stored under the field's name, copied into the config by one loop,
checked once (by the config, then by the :class:`~colddiff.training.Trainer` that builds the
model), and named in their messages by :mod:`colddiff.cli.errors`.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from colddiff import presets, runtime
from colddiff.cli.arguments import data_source, existing_file, key_values
from colddiff.cli.errors import usage_error
from colddiff.cli.sampler_options import add_sampler_options, sampler_changes

if TYPE_CHECKING:
    from colddiff.config import TrainConfig

__all__ = ["KEY_VALUE_FLAGS", "NOT_FLAGS", "TRAIN_FLAGS", "TrainFlag", "add_parser", "run", "train_config"]


@dataclass(frozen=True)
class TrainFlag:
    """A ``colddiff train`` flag that sets the :class:`~colddiff.config.TrainConfig` field
    ``field`` (stored under that name; ``None`` when not given, so the config's value stays).

    Attributes:
        field: The config field.
        group: The help section: ``"what"`` (to train), ``"how"`` (to train) or ``"samples"``
            (during training).
        help: The help text.
        type: Reads the text into the field's type (the config checks the value).
        metavar: The value's name in the help.
        flag: The flag (default: ``--`` and the field with dashes).
        options: Further :meth:`argparse.ArgumentParser.add_argument` keywords.
    """

    field: str
    group: str
    help: str | None = None
    type: Callable[[str], Any] | None = int
    metavar: str | tuple[str, ...] | None = None
    flag: str | None = None
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def add_to(self, group: argparse._ActionsContainer) -> None:
        """Add the flag to ``group``."""
        keywords = {"type": self.type, "metavar": self.metavar, **self.options}
        if keywords.get("action") is not None:  # a switch takes no value
            keywords = {key: value for key, value in keywords.items() if key not in ("type", "metavar")}
        group.add_argument(self.flag or "--" + self.field.replace("_", "-"), dest=self.field,
                           help=self.help, **keywords)


_MODES = ", ".join(runtime.COMPILE_MODES)

#: Every ``colddiff train`` flag that sets a config field, in the order of the help.
TRAIN_FLAGS: tuple[TrainFlag, ...] = (
    TrainFlag("degradation", "what", "a degradation name (see `colddiff degradations`)", str),
    TrainFlag("net", "what", "network: cnn or unet (its default size unless the config gives "
              "net_kwargs)", str, "NAME"),
    TrainFlag("predict", "what", "what the network predicts: eps, x0 or v", str, "TARGET"),
    TrainFlag("loss", "what", "the training loss: mse (default), or soft (Soft Diffusion's, after "
              "the corruption; with --predict x0)", str, "NAME"),
    TrainFlag("dataset", "what", "training images: mnist (default), fashion_mnist, cifar10, or a "
              "folder of PNG/JPEG images (then --image-size is required)", str, "NAME|FOLDER",
              flag="--data"),
    TrainFlag("image_size", "what", "resize and centre-crop the images to PIXELS x PIXELS",
              metavar="PIXELS"),
    TrainFlag("channels", "what", "1 or 3: convert the images to grey or RGB", metavar="C"),
    TrainFlag("value_range", "what", "pixel range the model sees: 0 1 (default) or -1 1; samples "
              "are saved in [0, 1]", float, ("LOW", "HIGH"), options={"nargs": 2}),
    TrainFlag("data_workers", "what", "DataLoader processes decoding a folder too large for memory "
              "(2)", metavar="N"),
    TrainFlag("on_error", "what", "an image file that cannot be decoded stops the run (raise, "
              "default) or is left out with a warning (skip)", str, "raise|skip"),
    TrainFlag("conditional", "what", "train a class-conditional model on the data's labels (a named "
              "dataset's, or a folder's class subfolders)",
              options={"action": "store_true", "default": None}),
    TrainFlag("init_from", "what", "start from the weights of a shipped model or a checkpoint (a "
              "conditional model from an unconditional one, a noisy model from a cold one)", str,
              "NAME|FILE"),
    TrainFlag("epochs", "how"),
    TrainFlag("batch_size", "how"),
    TrainFlag("lr", "how", "Adam's learning rate", float),
    TrainFlag("limit_train", "how", "use the first N images", metavar="N"),
    TrainFlag("warmup", "how", "linear learning-rate warm-up", metavar="STEPS"),
    TrainFlag("seed", "how"),
    TrainFlag("ema", "how", "sample with an EMA of the weights (e.g. 0.999)", float, "DECAY"),
    TrainFlag("cond_drop", "how", "conditional: the share of labels dropped to the null class in "
              "training (0.1)", float, "P"),
    TrainFlag("embedding_lr", "how", "conditional: Adam's learning rate for the class embedding "
              "(default: --lr; the fine-tune recipes from an unconditional model use 0.01)", float, "LR"),
    TrainFlag("max_minutes", "how", "stop after M minutes of training (resumable mid-epoch)", float,
              "M"),
    TrainFlag("checkpoint_every", "how", "also checkpoint every STEPS optimiser steps",
              metavar="STEPS"),
    TrainFlag("keep_checkpoints", "how", "keep checkpoints/epoch-NNN.pt",
              options={"action": "store_true", "default": None}),
    TrainFlag("precision", "how", "the network's arithmetic: fp32, bf16/fp16 autocast, or auto "
              "(bf16 where the device has native bf16, else fp32) (default: the config's, else auto; with "
              "--resume, the run's)", str, "NAME"),
    TrainFlag("compile", "how", f"torch.compile the network; MODE: {_MODES} (default when given "
              "without one: default)", str, "MODE", options={"nargs": "?", "const": "default"}),
    TrainFlag("channels_last", "how", "channels-last memory layout for the network and the images",
              options={"action": argparse.BooleanOptionalAction, "default": None}),
    TrainFlag("sample_every", "samples", "every K epochs (0: never)", metavar="K"),
    TrainFlag("sample_n", "samples", metavar="N"),
    TrainFlag("sample_steps", "samples", metavar="S"),
    TrainFlag("fmd_every", "samples", "score samples with FMD every K epochs (logged in "
              "metrics.jsonl)", metavar="K"),
    TrainFlag("fmd_n", "samples", "samples per FMD score (32)", metavar="N"),
    TrainFlag("guidance", "samples", "conditional: the classifier-free guidance of the samples (1)",
              float, "W"),
)

#: The config fields without a flag of their own in :data:`TRAIN_FLAGS`: ``schedule``
#: (``--schedule NAME``), ``sampler`` and ``sampler_kwargs`` (:mod:`colddiff.cli.sampler_options`),
#: ``degradation_kwargs`` and ``net_kwargs`` (updated by ``--degradation-arg`` and ``--net-arg``,
#: :data:`KEY_VALUE_FLAGS`), and those set in a config file.
NOT_FLAGS = ("schedule", "sampler", "sampler_kwargs", "degradation_kwargs", "net_kwargs", "ema_start",
             "clip_x0", "fmd_protocol", "classes")

#: The repeatable ``KEY=VALUE`` flags that update a config field holding options:
#: ``(field, flag, help)``.
KEY_VALUE_FLAGS = (
    ("degradation_kwargs", "--degradation-arg", "a degradation option (degradation_kwargs), VALUE read as "
     "TOML: num_timesteps=6, official=true, noise=0.05 (repeatable)"),
    ("net_kwargs", "--net-arg", "a network option (net_kwargs), VALUE read as TOML: channels=64 (unet), "
     "'channels=[8, 16]' (cnn), attention=true (repeatable; after --net, over that network's defaults)"),
)

_SCHEDULES = [*sorted(presets.SCHEDULES), "cosine"]


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``train`` to ``commands``."""
    train = commands.add_parser("train", help="train a denoiser (a preset, a config, or both)",
                                description="Train a denoiser. Options override the preset or "
                                "config file; the resolved config is saved as OUT/config.toml.")
    train.set_defaults(subparser=train, handler=run)
    groups = {"what": train.add_argument_group("what to train"),
              "how": train.add_argument_group("how to train"),
              "samples": train.add_argument_group("samples during training")}
    groups["what"].add_argument("--preset", metavar="NAME",
                                help="one of the reference study's models, or mnist-unet (colddiff's "
                                f"recipe): {', '.join(sorted(presets.TRAINING))}")
    groups["what"].add_argument("--config", type=existing_file, help="a config.toml to start from")
    groups["what"].add_argument("--schedule", choices=_SCHEDULES,
                                help="a linear preset of the report, or cosine with the same T")
    for flag in TRAIN_FLAGS:
        flag.add_to(groups[flag.group])
    for field, spelling, text in KEY_VALUE_FLAGS:
        groups["what"].add_argument(spelling, dest=field, action="append", default=[], metavar="KEY=VALUE",
                                    help=text)
    run_options = groups["how"]
    run_options.add_argument("--out", type=Path, help="run folder (default runs/PRESET)")
    run_options.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pt")
    run_options.add_argument("--overwrite", action="store_true",
                             help="start afresh in an OUT that holds a run, deleting its checkpoints, "
                             "metrics and samples")
    run_options.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    run_options.add_argument("--quiet", action="store_true", help="no progress output")
    add_sampler_options(groups["samples"], "the preset's or config's")


def run(args: argparse.Namespace) -> int:
    """Train: the config, then the Trainer, which builds and checks the model once."""
    from colddiff.training import NothingToResumeError, RunExistsError, Trainer, TrainingInterrupted

    config = train_config(args)
    out = args.out or Path("runs") / (args.preset or (args.config.stem if args.config else "train"))
    try:
        trainer = Trainer(config, out, device=args.device, quiet=args.quiet, overwrite=args.overwrite)
    except (ValueError, TypeError) as error:  # a model that cannot be built, an unknown device
        usage_error(args, error)
    try:
        trainer.fit(resume=args.resume)
    except RunExistsError as error:  # checked before any data is read: a usage error
        usage_error(args, f"{error.path} already holds a run ({', '.join(p.name for p in error.held)}); "
                    "continue it (--resume), choose another --out, or start it afresh (--overwrite), "
                    "which deletes that run's files")
    except NothingToResumeError as error:  # checked before any data is read: a usage error
        usage_error(args, error)
    except TrainingInterrupted as error:  # its checkpoint is written: say how to go on, in flags
        if trainer.processes.main:
            print(f"colddiff train: {error.what}; continue it with: colddiff train --out "
                  f"{shlex.quote(str(out))} --resume", file=sys.stderr)
        return 130
    if trainer.processes.main and not args.quiet:
        print(f"colddiff train: done; checkpoint {trainer.checkpoint_path}", file=sys.stderr)
    return 0


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The config the command line asks for: the preset, the config file or the resumed run's,
    with every given flag applied (usage errors exit with status 2)."""
    if args.resume and args.overwrite:
        usage_error(args, "--resume continues the run in OUT and --overwrite deletes it: give one")
    try:
        config = _starting_config(args)
        changes = {flag.field: getattr(args, flag.field) for flag in TRAIN_FLAGS
                   if getattr(args, flag.field) is not None}
        if "dataset" in changes:  # first: a file that is not a folder is told so, whatever else is given
            changes["dataset"] = data_source(args, changes["dataset"])
            if changes["dataset"] != config.dataset:
                changes["classes"] = None  # the new data's label set, not the config's
        if "init_from" in changes:
            changes["init_from"] = _model_source(args, changes["init_from"])
        if changes.get("net", config.net) != config.net:
            changes["net_kwargs"] = {}  # the other network's defaults, not this one's sizes
        for field, spelling, _ in KEY_VALUE_FLAGS:
            options = key_values(args, spelling, getattr(args, field))
            if options:
                changes[field] = {**changes.get(field, getattr(config, field)), **options}
        if args.schedule is not None:
            changes["schedule"] = _schedule_spec(args.schedule, config.schedule)
        config = config.replace(**changes, **sampler_changes(args, config))
    except (ValueError, OSError) as error:
        usage_error(args, error)
    dataset = data_source(args, config.dataset)  # a config file's folder, relative to here
    return config if dataset == config.dataset else config.replace(dataset=dataset)


def _model_source(args: argparse.Namespace, source: str) -> str:
    """``--init-from``: a shipped model's name, or an existing file (then as an absolute path);
    anything else exits with status 2."""
    from colddiff import pretrained

    if source in pretrained.available():
        return source
    path = Path(source).expanduser()
    if not path.is_file():
        usage_error(args, f"--init-from must be a shipped model ({', '.join(pretrained.available())}) or a "
                    f"checkpoint file; {source!r} is neither")
    return str(path.resolve())


def _starting_config(args: argparse.Namespace) -> TrainConfig:
    """The config the flags apply to: ``--config`` (with ``--preset``'s values over it), the
    preset, or on ``--resume`` the run's own ``config.toml``."""
    from colddiff.config import TrainConfig

    if args.config is not None:
        config = TrainConfig.load(args.config)
        if args.preset is None:
            return config
        preset = presets.TRAINING.get(args.preset, {})
        return TrainConfig.preset(args.preset, **{
            key: value for key, value in config.to_dict().items() if key not in preset})
    if args.preset is not None:
        return TrainConfig.preset(args.preset)
    if args.resume and args.out is not None and (args.out / "config.toml").exists():
        return TrainConfig.load(args.out / "config.toml")
    usage_error(args, "give --preset or --config (or --resume with --out of an existing run)")


def _schedule_spec(name: str, current: dict[str, Any]) -> dict[str, Any]:
    """The spec of ``--schedule NAME``; ``cosine`` keeps the ``T`` of the ``current`` spec."""
    from colddiff.schedules import Schedule

    if name == "cosine":
        return Schedule.cosine(int(current.get("num_timesteps", 1000))).spec()
    return Schedule.preset(name).spec()
