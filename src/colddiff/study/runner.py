"""Run a study in its folder, as ``colddiff reproduce`` does: the reference study
(:mod:`~colddiff.study.reference`), Bansal et al.'s MNIST study (:mod:`~colddiff.study.bansal`)
or the cold-generation recipes (:mod:`~colddiff.study.generation`).

:func:`prepare` checks the request and settles the options: a new study takes the defaults (or
the quick ones) with the given changes; a resumed one the options saved in
``OUT/options.json`` with the given ones replacing theirs. :func:`run` then trains and
evaluates what is not finished, draws the figures and writes the report.

Example:
    >>> plan = prepare("runs/study", "bansal-mnist", changes={"epochs": 4})  # doctest: +SKIP
    >>> run(plan).report  # doctest: +SKIP
    PosixPath('runs/study/report.md')
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from colddiff import presets
from colddiff.study import bansal, figures, generation, reference

__all__ = ["OPTIONS_FILE", "STUDIES", "StudyOutcome", "StudyRun", "prepare", "run", "study_in"]

#: Where a study folder keeps the options it runs with (for ``resume``).
OPTIONS_FILE = "options.json"
# Options of where and how loudly a study runs, not of the study: never saved.
_WHERE = ("out", "device", "quiet")


def _draw_reference(folder: Path) -> tuple[list[str], list[str]]:
    drawn = figures.draw_figures(folder)
    return drawn["written"], drawn["skipped"]


@dataclass(frozen=True)
class _Study:
    options: Any  # the options dataclass, with a ``quick`` classmethod
    run: Callable[[Any], dict[str, Any]]
    draw: Callable[[Path], tuple[list[str], list[str]]]  # (figures written, figures skipped)
    write_report: Callable[[Path, list[str]], Path]


#: The studies by name: their options, how they run, draw and report.
STUDIES: dict[str, _Study] = {
    "report": _Study(reference.StudyOptions, reference.run_study, _draw_reference, reference.write_report),
    "bansal-mnist": _Study(bansal.BansalOptions, bansal.run_study,
                           lambda folder: (bansal.draw_figures(folder), []), bansal.write_report),
    "cold-generation": _Study(generation.GenerationOptions, generation.run_study,
                              lambda folder: (generation.draw_figures(folder), []), generation.write_report),
}


@dataclass
class StudyRun:
    """A checked request: which study, in which folder, with which options.

    Attributes:
        study: Its name (a key of :data:`STUDIES`).
        out: The study folder.
        options: The study's options, or ``None`` to redraw the figures and report only.
        resumed_from: The options file a resumed study's options were read from.
        replaced: The saved options the request changed (on resume).
    """

    study: str
    out: Path
    options: Any | None
    resumed_from: Path | None = None
    replaced: list[str] = field(default_factory=list)


@dataclass
class StudyOutcome:
    """What :func:`run` wrote: the figures (and those skipped, with why) and the report."""

    study: str
    written: list[str]
    skipped: list[str]
    report: Path


def study_in(folder: str | Path) -> str | None:
    """The study a folder holds: its ``results.json`` says, else its model folders' names do."""
    folder = Path(folder)
    if (folder / "results.json").exists():
        return str(json.loads((folder / "results.json").read_text()).get("study", "report"))
    models = {p.name for p in (folder / "models").glob("*")}
    return next((name for name, names in presets.STUDIES.items() if models & set(names)), None)


def prepare(out: str | Path, study: str | None = None, *, changes: dict[str, Any] | None = None,
            resume: bool = False, quick: bool = False, figures_only: bool = False,
            device: str = "auto", quiet: bool = False) -> StudyRun:
    """Check a study request and settle its options, before any work.

    Args:
        out: The study folder.
        study: A name of :data:`STUDIES` (default: the one ``out`` holds, else ``"report"``).
        changes: Options of the study that differ from its defaults (``epochs``, ``models``...).
        resume: Continue the study in ``out`` with its saved options (``changes`` replace theirs).
        quick: Start from the study's CI-sized options.
        figures_only: Only redraw the figures and report of a finished study.
        device: Where to train and evaluate.
        quiet: No progress output.

    Raises:
        ValueError: If the study or an option is unknown or not of this study, ``out`` holds
            another study, or a study already (``resume`` not given) or no finished one
            (``figures_only``).
    """
    out, changes = Path(out), dict(changes or {})
    if study is not None and study not in STUDIES:
        raise ValueError(f"study must be one of {list(STUDIES)}, got {study!r}")
    held = study_in(out)
    if study is not None and held is not None and study != held:
        raise ValueError(f"{out} holds the study {held!r}, not study={study!r}; choose another folder")
    study = study or held or "report"
    _check_options(study, changes)
    if figures_only:
        if not (out / "results.json").exists():
            raise ValueError(f"figures_only needs a finished study in {out} (no results.json)")
        return StudyRun(study, out, None)
    if (out / "models").exists() and not resume:
        raise ValueError(f"{out} already holds a study; pass resume=True to continue it, or choose "
                         "another folder to start afresh")
    kind, where = STUDIES[study].options, {"out": out, "device": device, "quiet": quiet}
    saved = out / OPTIONS_FILE
    if resume and saved.exists():
        previous = json.loads(saved.read_text())
        previous["models"] = tuple(previous["models"])
        replaced = sorted(key for key, value in changes.items() if previous.get(key) != value)
        return StudyRun(study, out, kind(**{**previous, **changes}, **where), saved, replaced)
    return StudyRun(study, out, kind.quick(**changes, **where) if quick else kind(**changes, **where))


def _check_options(study: str, changes: dict[str, Any]) -> None:
    """Refuse an option of another study, or of none."""
    def names(name: str) -> set[str]:
        return {option.name for option in dataclasses.fields(STUDIES[name].options)} - set(_WHERE)

    for key in changes:
        if key not in names(study):
            owner = next((name for name in STUDIES if key in names(name)), None)
            raise ValueError(f"{key} is an option of study={owner!r}, not of study={study!r}" if owner
                             else f"{key} is not an option of any study")


def run(plan: StudyRun) -> StudyOutcome:
    """Run the study :func:`prepare` settled (saving its options first), then draw its figures and
    write its report.

    Raises:
        ImportError: If matplotlib is missing (``pip install colddiff[plots]``).
    """
    study = STUDIES[plan.study]
    if plan.options is not None:
        plan.out.mkdir(parents=True, exist_ok=True)
        kept = {key: value for key, value in vars(plan.options).items() if key not in _WHERE}
        (plan.out / OPTIONS_FILE).write_text(json.dumps(kept, indent=2) + "\n")
        study.run(plan.options)
    written, skipped = study.draw(plan.out)
    return StudyOutcome(plan.study, written, skipped, study.write_report(plan.out, written))
