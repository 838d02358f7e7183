"""``colddiff list`` and ``colddiff degradations``: the pluggable parts and where they come from,
and the shipped pretrained models."""

from __future__ import annotations

import argparse

from colddiff.cli.errors import usage_error

__all__ = ["KINDS", "add_parser", "run"]

#: What ``colddiff list`` shows: the registries, by module name, and the shipped models.
KINDS = ["degradations", "nets", "samplers", "models"]


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``list`` and ``degradations`` to ``commands``."""
    for name, text in (("list", "list the pluggable parts (degradations, nets, samplers) and their origin, "
                                 "and the shipped models"),
                       ("degradations", "the same as `colddiff list degradations`")):
        listing = commands.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        listing.set_defaults(subparser=listing, handler=run)
        if name == "list":
            listing.add_argument("kinds", nargs="*", metavar="KIND",
                                 help=f"any of {', '.join(KINDS)} (default: all)")
        listing.add_argument("--check", action="store_true",
                             help="import each one (load each model) and mark those that fail (exit 1 if "
                             "any does)")


def run(args: argparse.Namespace) -> int:
    """Print each registry's names and origins (and, with ``--check``, whether they import)."""
    import importlib

    kinds = getattr(args, "kinds", None) or (["degradations"] if args.command == "degradations" else KINDS)
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown:
        usage_error(args, f"KIND must be among {', '.join(KINDS)}, got {', '.join(unknown)}")
    failed = 0
    for kind in dict.fromkeys(kinds):
        if kind == "models":
            available, problems = _shipped_models(args.check)
        else:
            registry = importlib.import_module(f"colddiff.{kind}").REGISTRY
            available = registry.available()
            problems = registry.check() if args.check else {}
        if len(kinds) > 1:
            print(f"{kind}:")
        width = max(map(len, available), default=0)
        for name, origin in available.items():
            status = ""
            if args.check:
                status = "  [ok]" if problems[name] is None else f"  [BROKEN: {problems[name]}]"
                failed += problems[name] is not None
            print(f"{'  ' if len(kinds) > 1 else ''}{name:<{width}}  {origin}{status}")
    return 1 if failed else 0


def _shipped_models(check: bool) -> tuple[dict[str, str], dict[str, str | None]]:
    """Each shipped model's name and what it is (from its card), and with ``check`` whether it
    loads (its weights whole, as :func:`colddiff.pretrained.load` checks them)."""
    import json

    from colddiff import pretrained

    described: dict[str, str] = {}
    problems: dict[str, str | None] = {}
    for name in pretrained.available():
        try:
            config = json.loads((pretrained.weights_dir() / f"{name}.json").read_text())["config"]
            noise = " with noise" if config.get("degradation_kwargs", {}).get("noise") else ""
            conditional = ", conditional" if config.get("conditional") else ""
            sampler = f"{config['sampler']} sampler"
            described[name] = f"shipped: {config['degradation']}{noise}, {sampler}{conditional}"
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            described[name] = "shipped: its card cannot be read"
        if check:
            try:
                pretrained.load(name)
                problems[name] = None
            except Exception as error:  # reported on one line, as for a broken plugin
                problems[name] = " ".join(f"{type(error).__name__}: {error}".split())
    return described, problems
