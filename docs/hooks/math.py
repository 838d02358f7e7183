"""MkDocs hook: render ``$...$`` and ``$$...$$`` TeX to MathML at build time.

Browsers display MathML natively, so the built pages need no math script and no network.
Code blocks and inline code are left alone.
"""

from __future__ import annotations

import re
from typing import Any

from latex2mathml.converter import convert

_CODE = re.compile(r"(```.*?```|`[^`\n]*`)", re.DOTALL)
_DISPLAY = re.compile(r"\$\$(.+?)\$\$", re.DOTALL)
_INLINE = re.compile(r"(?<![\\$])\$(?!\s)([^$\n]+?)(?<!\s)\$(?!\$)")


def _display(match: re.Match[str]) -> str:
    return '\n<div class="math-display">' + convert(match.group(1).strip(), display="block") + "</div>\n"


def _inline(match: re.Match[str]) -> str:
    # The span keeps a line that starts with math a paragraph: Markdown treats <math> as a block.
    return '<span class="math-inline">' + convert(match.group(1)) + "</span>"


def render(markdown: str) -> str:
    """Replace TeX math outside code with MathML."""
    parts = _CODE.split(markdown)
    for i in range(0, len(parts), 2):  # even parts are outside code
        parts[i] = _INLINE.sub(_inline, _DISPLAY.sub(_display, parts[i]))
    return "".join(parts)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return render(markdown)
