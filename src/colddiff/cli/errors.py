"""How the command line reports errors: in one line, naming its own flags.

The library names its Python arguments (``batch_size must be an integer >= 1``,
``on_error="skip"``); every option of a command is stored under its Python name (its argparse
``dest``: the :class:`~colddiff.config.TrainConfig` field, the sampler option...), so the
command's own parser is the one table that turns those names back into its flags
(``--batch-size must be an integer >= 1``, ``--on-error skip``).

A value the library refuses before any work starts, or a path given on the command line that
is missing or of the wrong kind (a folder for a file, a file for a folder), is a usage error
(exit status 2); a failure while working (a corrupt checkpoint, a dataset that cannot be found,
a diverging run) is a runtime error (exit status 1).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from typing import NoReturn

__all__ = ["RUNTIME_ERRORS", "flags_of", "in_flags", "usage_error"]

#: Errors reported in one line with exit status 1: ValueError, RuntimeError and OSError cover
#: colddiff's own (CheckpointError, DatasetNotFoundError, DatasetCorruptError,
#: PriorUnavailableError, NonFiniteLossError, DegradationPluginError are subclasses).
RUNTIME_ERRORS = (ValueError, RuntimeError, OSError, NotImplementedError)

# A name stands alone: not part of a longer word, a quoted string, a dotted path, a flag or the
# arguments of a call written out (``fit(resume=True)`` stays Python).
_ALONE_BEFORE = r"(?<![\w'\".-])(?<!\w\()"
_ALONE_AFTER = r"(?![\w'\"-])"


def flags_of(parser: argparse.ArgumentParser) -> dict[str, str]:
    """``{python name: flag}`` for every option of ``parser`` (its long spelling if it has one)."""
    return {action.dest: next((s for s in action.option_strings if s.startswith("--")),
                              action.option_strings[0])
            for action in parser._actions if action.option_strings and action.dest != "help"}


def in_flags(message: str, flags: Mapping[str, str]) -> str:
    """``message`` in one line, with the Python names of ``flags`` written as their flags.

    ``name=value`` becomes ``--flag value`` (``--flag`` alone for ``True``); a name with an
    underscore becomes its flag wherever it stands; a plain word (``epochs``, ``t``) only where
    it is the subject: at the start of the message or before "must". Python written out
    (``fit(resume=True)``, quoted names) is left as it is.

    Example:
        >>> in_flags('image_size must be >= 1; or on_error="skip"', {"image_size": "--image-size",
        ...          "on_error": "--on-error"})
        '--image-size must be >= 1; or --on-error skip'
    """
    message = " ".join(message.split())
    if not flags:
        return message
    names = "|".join(re.escape(name) for name in sorted(flags, key=len, reverse=True))

    def with_value(match: re.Match[str]) -> str:
        value = match[2].strip("'\"")
        return flags[match[1]] + ("" if value == "True" else f" {value}")

    message = re.sub(rf"{_ALONE_BEFORE}({names})=('[^']*'|\"[^\"]*\"|[\w+-][\w.+-]*)", with_value, message)

    def as_flag(match: re.Match[str]) -> str:
        subject = match.start() == 0 or match.string.startswith(" must", match.end())
        return flags[match[1]] if "_" in match[1] or subject else match[0]

    return re.sub(rf"{_ALONE_BEFORE}({names}){_ALONE_AFTER}", as_flag, message)


def usage_error(args: argparse.Namespace, error: BaseException | str) -> NoReturn:
    """Exit with status 2 and ``error`` in one line, in the flags of the command being run."""
    parser: argparse.ArgumentParser = args.subparser
    parser.error(in_flags(str(error), flags_of(parser)))
