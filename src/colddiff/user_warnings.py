"""Warnings that point at the user's line: the first caller outside the colddiff package, however
deep inside colddiff the warning is raised (a fixed ``stacklevel`` is right for one call path
only: ``Sampler.timesteps`` and ``Sampler.sample`` reach the same check at different depths)."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

__all__ = ["warn"]

_PACKAGE = str(Path(__file__).resolve().parent)


def _outside_stacklevel() -> int:
    """The ``stacklevel`` of the first frame outside the package, counted from the caller of
    :func:`warn`."""
    frame = sys._getframe(2)  # the caller of warn()
    level = 2
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(_PACKAGE):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message, category)`` attributed to the first caller outside colddiff."""
    warnings.warn(message, category, stacklevel=_outside_stacklevel())
