"""The ``colddiff`` command line (also ``python -m colddiff``).

One module per command, each with its parser (``add_parser``) and its handler (``run``):
:mod:`~colddiff.cli.train`, :mod:`~colddiff.cli.sample`, :mod:`~colddiff.cli.tune_steps`,
:mod:`~colddiff.cli.restore`,
:mod:`~colddiff.cli.degrade`, :mod:`~colddiff.cli.export`, :mod:`~colddiff.cli.listing`
(``list``, ``degradations``), :mod:`~colddiff.cli.reproduce` and :mod:`~colddiff.cli.fmd`;
this module wires them. The library checks the values and names its Python arguments;
:mod:`~colddiff.cli.errors` reports its refusals in the command's flags.

Usage errors exit with status 2 and one line saying what is wrong (an unknown option points to
the command's own ``--help``); runtime errors exit with status 1 and a one-line message
(``--debug`` shows the full traceback); warnings are one line each. Every argument is checked
before any work starts, including that each file or folder it names exists and is of the right
kind.

Building the parser imports nothing heavy (no PyTorch), so ``--help`` and ``--version`` answer
at once; each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from colddiff import __version__
from colddiff.cli import degrade, export, fmd, listing, reproduce, restore, sample, train, tune_steps
from colddiff.cli.arguments import Parser
from colddiff.cli.errors import RUNTIME_ERRORS, flags_of, in_flags

__all__ = ["build_parser", "main"]

#: The command modules, in the order of ``colddiff --help``.
COMMANDS = (train, sample, tune_steps, restore, degrade, export, listing, reproduce, fmd)


def build_parser() -> argparse.ArgumentParser:
    """The ``colddiff`` argument parser with its subcommands."""
    parser = Parser(prog="colddiff", description="Denoising and cold diffusion with any degradation.")
    parser.add_argument("--version", action="version", version=f"colddiff {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warnings(args)
            return int(args.handler(args))
    except KeyboardInterrupt:
        print("colddiff: interrupted", file=sys.stderr)
        return 130
    except RUNTIME_ERRORS as error:
        if args.debug:
            raise
        message = in_flags(str(error), flags_of(args.subparser)) or type(error).__name__
        print(f"{args.subparser.prog}: error: {message}", file=sys.stderr)
        return 1


def _one_line_warnings(args: argparse.Namespace) -> Callable[..., None]:
    """A :func:`warnings.showwarning` that prints each warning (a file ``--on-error skip`` left
    out...) in one line on stderr, in the command's flags, without the source line."""
    flags = flags_of(args.subparser)

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None, **_: Any) -> None:
        print(f"{args.subparser.prog}: warning: {in_flags(str(message), flags)}", file=file or sys.stderr)
    return show
