"""MkDocs hook: expand ``<!-- colddiff-help -->`` into the ``--help`` of every subcommand.

The command-line reference is therefore always the parser's own text.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from colddiff.cli import build_parser

MARKER = "<!-- colddiff-help -->"


def _subparsers(parser: argparse.ArgumentParser, prefix: str) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(prefix, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _subparsers(sub, f"{prefix} {name}")
    return found


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    if MARKER not in markdown:
        return markdown
    os.environ["COLUMNS"] = "100"
    sections = []
    for name, parser in _subparsers(build_parser(), "colddiff"):
        sections.append(f"## `{name}`\n\n```text\n{parser.format_help().rstrip()}\n```\n")
    return markdown.replace(MARKER, "\n".join(sections))
