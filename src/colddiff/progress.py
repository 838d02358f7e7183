"""Progress bars for long work: sampling, restoring, estimating a step, scoring, the studies.

Every function that can take long has a ``progress`` option (``False`` by default):
:func:`colddiff.sampling.generate`, :meth:`colddiff.pretrained.Pretrained.sample` and
:meth:`~colddiff.pretrained.Pretrained.restore`, :func:`colddiff.restoration.estimate_t`,
:func:`colddiff.fmd.score` and the studies. This module decides, in one place, how that shows:
a ``tqdm`` bar on stderr, only when ``progress`` is asked for and stderr is a terminal (so a
log file, a pipe or a test sees nothing), cleared when the work is done. The command line asks
for it unless ``--quiet`` is given.

Example:
    >>> with progress_bar(True, 3, "scoring") as bar:  # doctest: +SKIP
    ...     for _ in range(3):
    ...         bar.update(1)
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

if TYPE_CHECKING:
    from colddiff.samplers import Callback, Sampler

__all__ = ["progress_bar", "sampling_progress", "shows"]


def shows(progress: bool) -> bool:
    """Whether a bar asked for with ``progress`` shows: only on a terminal's stderr."""
    return progress and sys.stderr.isatty()


def progress_bar(progress: bool, total: int | None, description: str, unit: str = "step") -> tqdm[Any]:
    """A bar of ``total`` ``unit``s on stderr, labelled ``description``; it writes nothing
    unless :func:`shows` says so (its updates then cost nothing). Use it as a context manager,
    or close it."""
    return tqdm(total=total, desc=description, unit=unit, leave=False, file=sys.stderr,
                disable=not shows(progress), dynamic_ncols=True)


@contextmanager
def sampling_progress(progress: bool, sampler: Sampler, sample_steps: int | None, description: str, *,
                      t_start: int | None = None) -> Iterator[Callback | None]:
    """A sampler ``callback`` that advances a bar over the steps of one
    ``sampler.sample(x, sample_steps, t_start=t_start)`` call, or ``None`` when no bar shows
    (the sampler then runs exactly as without one).

    Example:
        >>> with sampling_progress(True, sampler, 50, "sampling") as callback:  # doctest: +SKIP
        ...     x0 = sampler.sample(x_T, 50, callback=callback)
    """
    if not shows(progress):
        yield None
        return
    try:
        steps: int | None = len(sampler.timesteps(sample_steps, t_start=t_start)) - 1
    except ValueError:  # the sampler says so itself, in its own words, when it runs
        steps = None
    with progress_bar(progress, steps, description) as bar:
        yield lambda i, t, x_t, x0_hat: bar.update(1)
