"""Argument types shared by the commands: numbers with bounds, output files, TOML values.

They only read text into values and check what no library function checks (an output path
that can be written, an image extension Pillow can write); the values of a training config,
a sampler or a study are checked once, by the library, and reported by :mod:`colddiff.cli.errors`.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from colddiff.cli.errors import usage_error

__all__ = ["COUNT", "POSITIVE", "Parser", "checkpoint_file", "data_source", "existing_file", "existing_path",
           "image_file", "key_values", "number", "output_file", "spacing_value", "toml_value"]

#: Image extensions named in the message when an output extension cannot be written.
COMMON_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line and exit 2, and point to the help of
    the command they concern."""

    def error(self, message: str) -> NoReturn:
        """Print ``message`` in one line, with where to find help, and exit with status 2."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                   namespace: argparse.Namespace | None = None) -> argparse.Namespace:
        """Parse ``args``; an option no parser knows is reported by the command it was given to
        (``colddiff sample: error: unrecognized arguments: --bogus (see colddiff sample --help)``)."""
        parsed, unknown = self.parse_known_args(args, namespace)
        if unknown:
            parser: argparse.ArgumentParser = getattr(parsed, "subparser", self)
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        return parsed


def number(kind: type, minimum: float, *, strict: bool = False, below: float | None = None
           ) -> Callable[[str], Any]:
    """An argument type: ``kind`` (``int`` or ``float``) read from the text, finite, at least
    ``minimum`` (above it if ``strict``) and under ``below`` if given."""
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


#: An integer >= 1 (a count of images, steps...).
POSITIVE = number(int, 1)
#: An integer >= 0 (a seed...).
COUNT = number(int, 0)


def output_file(text: str) -> Path:
    """An output path that can be written: not a folder, its parent not a file."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {text}: {parent} is a file, not a folder")
    return path


def existing_path(text: str) -> Path:
    """An input file or folder that exists."""
    path = Path(text).expanduser()
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text}: no such file or folder")
    return path


def existing_file(text: str) -> Path:
    """An input file that exists (not a folder)."""
    path = Path(text).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    return path


def checkpoint_file(text: str) -> Path:
    """A checkpoint file that exists; for a run folder, the message names its checkpoint."""
    path = Path(text).expanduser()
    hint = path / "checkpoints" / "last.pt"
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder, not a checkpoint file"
                                         + (f"; did you mean {hint}?" if hint.is_file() else ""))
    return existing_file(text)


def image_file(text: str) -> Path:
    """An output image path whose extension Pillow can write (``.png``, ``.jpg``, ...)."""
    from PIL import Image

    path = output_file(text)
    Image.init()
    writable = sorted(ext for ext, kind in Image.registered_extensions().items() if kind in Image.SAVE)
    if path.suffix.lower() not in writable:
        raise argparse.ArgumentTypeError(
            f"{text}: cannot write an image with extension {path.suffix or '(none)'!r}; use .png "
            f"(or one of {', '.join(e for e in writable if e in COMMON_IMAGE_EXTENSIONS)})")
    return path


def toml_value(text: str) -> Any:
    """``text`` read as a TOML value (``2``, ``0.5``, ``true``, ``"x"``), else as a plain string."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib

    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def spacing_value(text: str) -> str | list[int]:
    """``--spacing``: a spacing's name as given (the sampler checks it), or comma-separated
    integer steps (``1000,500,0``) as a list."""
    if "," not in text and not text.strip().isdigit():
        return text
    try:
        return [int(step) for step in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a spacing's name or comma-separated integer steps (e.g. 1000,500,0), got {text!r}"
        ) from None


def key_values(args: argparse.Namespace, flag: str, items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` items (of the repeatable ``flag``) as a dict, each VALUE read as TOML
    (:func:`toml_value`); an item without ``=`` or a key exits with status 2."""
    options = {}
    for item in items:
        key, equals, text = item.partition("=")
        if not equals or not key.strip():
            usage_error(args, f"{flag} must be KEY=VALUE, got {item!r}")
        options[key.strip()] = toml_value(text.strip())
    return options


def data_source(args: argparse.Namespace, dataset: str) -> str:
    """``--data``: a dataset name, or an existing folder (then as an absolute path, so that a
    run resumes from anywhere); anything else exits with status 2."""
    from colddiff.data import DATASETS

    if dataset in (*DATASETS, "memory"):
        return dataset
    folder = Path(dataset).expanduser()
    if not folder.is_dir():
        what = f"{dataset!r} is a file, not a folder" if folder.exists() else f"no folder {dataset!r} exists"
        usage_error(args, f"--data must be one of {', '.join(DATASETS)} or a folder of images; {what}")
    return str(folder.resolve())
