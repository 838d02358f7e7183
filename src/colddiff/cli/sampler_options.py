"""``--sampler`` and its options, shared by ``train``, ``sample``, ``restore`` and ``export``.

Each built-in sampler option is a flag stored under the option's own name, so that the
sampler's messages (``algorithm must be 1 or 2``) come back as flags (``--algorithm``); the
sampler checks the values.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from colddiff.cli.arguments import key_values, spacing_value

if TYPE_CHECKING:
    from colddiff.config import TrainConfig

__all__ = ["SAMPLER_OPTIONS", "add_sampler_options", "requested_sampler", "sampler_changes"]

#: The built-in samplers' options, each a flag: ``(option, type, metavar, help)``.
SAMPLER_OPTIONS: list[tuple[str, Callable[[str], Any], str, str]] = [
    ("variance", str, "beta|posterior", "ddpm: the ancestral step's variance"),
    ("eta", float, "ETA", "ddim: in [0, 1], from deterministic (0) to ancestral (1); dpmsolver++ with "
     "--sampler-arg sde=true: the share of the SDE's noise in [0, 1], 0 the ODE, 1 the SDE"),
    ("algorithm", int, "1|2", "cold: Bansal's Algorithm 1 or 2"),
    ("source", str, "fixed|estimate", "cold: keep the starting source or re-estimate it each step"),
    ("order", int, "1|2|3", "dpmsolver++: 1 (DDIM), 2 (2M) or 3 (3M); unipc: 1, 2 or 3"),
    ("spacing", spacing_value, "NAME|STEPS",
     "the step grid: trailing (default), leading, linspace, quadratic, logsnr, karras, or the "
     "steps themselves, e.g. 1000,500,200,0"),
]


def add_sampler_options(group: argparse._ActionsContainer, default: str) -> None:
    """Add ``--sampler``, one flag per entry of :data:`SAMPLER_OPTIONS` and ``--sampler-arg``."""
    group.add_argument("--sampler", metavar="NAME",
                       help=f"ddpm, ddim, cold, dpmsolver++, unipc, soft or a plugin's (default: {default})")
    for name, kind, metavar, text in SAMPLER_OPTIONS:
        group.add_argument(f"--{name}", type=kind, metavar=metavar, help=text)
    group.add_argument("--sampler-arg", action="append", metavar="KEY=VALUE", default=[],
                       help="any other sampler option (a plugin's), VALUE read as TOML (repeatable)")


def requested_sampler(args: argparse.Namespace) -> tuple[str | None, dict[str, Any]]:
    """``(--sampler, its options)`` as given on the command line (``None`` and ``{}`` if not)."""
    options = {name: getattr(args, name) for name, *_ in SAMPLER_OPTIONS
               if getattr(args, name) is not None}
    return args.sampler, {**options, **key_values(args, "--sampler-arg", args.sampler_arg)}


def sampler_changes(args: argparse.Namespace, current: TrainConfig) -> dict[str, Any]:
    """``{"sampler": ..., "sampler_kwargs": ...}`` for the sampler options given on the command
    line, relative to ``current`` (a new sampler starts from no options); ``{}`` if none."""
    name, options = requested_sampler(args)
    if name is None and not options:
        return {}
    name = name or current.sampler
    kept = current.sampler_kwargs if name == current.sampler else {}
    return {"sampler": name, "sampler_kwargs": {**kept, **options}}
