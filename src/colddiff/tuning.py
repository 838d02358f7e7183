"""Tuned step grids: the ``K``-step grid that gives a trained model its best samples.

No fixed spacing is best for every model: on the Gaussian-data oracle a grid uniform in
log-SNR makes DPM-Solver++ nearly exact, while on the shipped ``mnist-ddpm`` it spends its
steps near ``T`` and scores worse than the uniform grid. Sabour et al. (2024, "Align Your
Steps") therefore optimise the grid for each model; they minimise an upper bound on the KL
divergence of the discretised sampler. :func:`tune_steps` minimises the quantity the project
reports instead, the Fréchet distance of the samples to held-out real images
(:mod:`colddiff.fmd`'s fixed half of the MNIST test set), by a direct search:

1. **Start.** Every named spacing (:data:`~colddiff.samplers.grids.SPACINGS` but
   ``"leading"``, whose first step is not ``T``) that gives ``K`` distinct steps for the
   degradation is scored; the best is the start.
2. **Coordinate search.** Each intermediate step ``t_k`` (the first call stays at ``T``, the
   end at 0) is moved towards its upper and its lower neighbour by a fraction of the gap
   (one half, then a quarter, ...), and the best move that lowers the score is kept. It stops
   after ``max_evaluations`` scored grids, or when no step moves by at least one.
3. **Validation.** The search scores every grid on the same ``n`` samples from one seed (common
   random numbers: two grids differ by their steps, not by their draws), which can flatter the
   winner. The tuned grid and the start are scored again on ``validation_n`` fresh samples (another
   seed) with the full protocol; :attr:`TunedGrid.recommended` is the tuned grid only where it
   wins there too, else the start.

``colddiff tune-steps`` runs it and stores the result under ``step_grids`` in the model's card
(or, for a training checkpoint, in ``CHECKPOINT.grids.json`` beside it), where
``Pretrained.sample`` and ``colddiff sample --sample-steps K`` find it.
"""

from __future__ import annotations

import itertools
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from colddiff.samplers.grids import SPACINGS

if TYPE_CHECKING:
    from colddiff.pretrained import Pretrained

__all__ = ["TunedGrid", "coordinate_search", "tune_steps"]

#: The named spacings tried as starts.
START_SPACINGS = tuple(name for name in SPACINGS if name != "leading")


@dataclass
class TunedGrid:
    """The result of :func:`tune_steps`.

    Attributes:
        sample_steps: ``K``, the network calls of the grid.
        sampler: The sampler's name.
        sampler_kwargs: Its options, without ``spacing``.
        start: The best named spacing (the search's start).
        start_steps: Its grid ``[T, ..., 0]``.
        steps: The tuned grid ``[T, ..., 0]``.
        search_fmd: The search's scores (the Fréchet distance on ``n`` samples from ``seed``) of
            ``{"start": ..., "tuned": ..., SPACING: ...}``, each named spacing that was tried.
        validation: The full protocol's ``fmd_ratio`` on the validation samples, of ``"start"``
            and ``"tuned"`` (empty when ``validation_n`` is 0).
        evaluations: The grids scored by the search.
        seconds: The wall time of the search and the validation.
        settings: ``n``, ``seed``, ``validation_n``, ``validation_seed``, ``max_evaluations`` and
            the model's ``guidance`` (a conditional model's samples are guided by it).
    """

    sample_steps: int
    sampler: str
    sampler_kwargs: dict[str, Any]
    start: str
    start_steps: list[int]
    steps: list[int]
    search_fmd: dict[str, float] = field(default_factory=dict)
    validation: dict[str, float] = field(default_factory=dict)
    evaluations: int = 0
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def recommended(self) -> list[int] | str:
        """The grid to sample with: the tuned steps, unless the validation prefers the start's
        named spacing."""
        if self.validation and self.validation["tuned"] >= self.validation["start"]:
            return self.start
        return self.steps

    def card_entry(self) -> dict[str, Any]:
        """What a model card stores under ``step_grids[str(K)]``: the sampler and its options
        (``spacing`` the recommended grid), the scores and the search's cost."""
        options = {**self.sampler_kwargs, "spacing": self.recommended}
        return {"sampler": self.sampler, "sampler_kwargs": options,
                "start": self.start, "start_steps": self.start_steps, "tuned_steps": self.steps,
                "search_fmd": self.search_fmd, "validation_fmd_ratio": self.validation,
                "evaluations": self.evaluations, "seconds": round(self.seconds, 1), **self.settings}


class _Objective:
    """The search's score of a grid: the Fréchet distance of ``n`` samples (one seed) to the
    held-out half of the MNIST test set, each grid scored once."""

    def __init__(self, model: Pretrained, sampler: str, options: dict[str, Any], n: int, seed: int) -> None:
        from colddiff import fmd

        self.model, self.sampler, self.options, self.n, self.seed = model, sampler, options, n, seed
        self.metric = fmd.FMD(across_processes=False)
        self.reference = fmd.test_reference(self.metric)
        self.scores: dict[tuple[int, ...], float] = {}

    def __call__(self, steps: tuple[int, ...]) -> float:
        if steps not in self.scores:
            samples = self.model.sample(self.n, seed=self.seed, sampler=self.sampler,
                                        **{**self.options, "spacing": list(steps)})
            self.metric.reset(real=self.reference)
            self.metric.update(samples, real=False)
            self.scores[steps] = self.metric.compute()
        return self.scores[steps]


def tune_steps(model: Pretrained, sample_steps: int, *, sampler: str | None = None,
               sampler_options: dict[str, Any] | None = None, n: int = 250, seed: int = 0,
               max_evaluations: int = 30, validation_n: int = 1000, validation_seed: int = 1,
               log: Callable[[str], None] | None = None) -> TunedGrid:
    """Search the ``sample_steps``-step grid with the lowest Fréchet distance (see the module).

    Args:
        model: A trained model generating MNIST-sized digits (``(1, 28, 28)``): the score is the
            shipped MNIST classifier's Fréchet distance.
        sample_steps: ``K``, the network calls (at least 2: a 1-step grid has nothing to tune).
        sampler: The sampler (default: the model's); ``spacing`` in its options is ignored.
        sampler_options: Its options (default: the model's when ``sampler`` is the model's).
        n: Samples per scored grid (at least 2).
        seed: Their seed.
        max_evaluations: The most grids the search scores, the named starts included (at least
            as many as they give distinct grids).
        validation_n: Samples of the final check of the tuned grid against the start (0: none).
        validation_seed: Their seed (not ``seed``).
        log: Called with one line per improvement (e.g. ``print``).

    Raises:
        ValueError: If an argument is out of range (the message names it), the model does not
            generate ``(1, 28, 28)`` images, or no named spacing gives ``K`` distinct steps.
    """
    _check(model, sample_steps, n, max_evaluations, validation_n)
    if validation_n and validation_seed == seed:
        raise ValueError(f"validation_seed must differ from seed (the validation draws fresh samples), "
                         f"got {validation_seed} for both")
    started = time.perf_counter()
    name = sampler or model.config.sampler
    options = {k: v for k, v in (sampler_options or {}).items() if k != "spacing"}
    score = _Objective(model, name, options, n, seed)
    model.sampler(name, **options)  # a bad sampler or option is reported as such, here
    starts = _named_grids(model, name, options, sample_steps)
    if not starts:
        raise ValueError(f"sample_steps={sample_steps}: no spacing among {list(START_SPACINGS)} gives "
                         f"{sample_steps} distinct steps for this model")
    distinct = len(set(starts.values()))
    if max_evaluations < distinct:
        raise ValueError(f"max_evaluations must be at least {distinct} (the named spacings' grids, each "
                         f"scored first), got {max_evaluations}")
    tried = {spacing: score(steps) for spacing, steps in starts.items()}
    start = min(tried, key=tried.__getitem__)
    say = log or (lambda line: None)
    say(f"start: {start} (FMD {tried[start]:.4f} on {n} samples); tried {_rounded(tried)}")
    steps = coordinate_search(starts[start], score, max_evaluations - distinct + 1, say)
    search_fmd = _rounded({**tried, "start": tried[start], "tuned": score(steps)})
    result = TunedGrid(sample_steps, name, options, start, list(starts[start]), list(steps),
                       search_fmd=search_fmd, evaluations=len(score.scores),
                       settings={"n": n, "seed": seed, "validation_n": validation_n,
                                 "validation_seed": validation_seed, "max_evaluations": max_evaluations,
                                 "guidance": model.config.guidance})
    if validation_n and steps == starts[start]:  # nothing moved: nothing to check
        ratio = _validation_ratio(model, name, options, steps, validation_n, validation_seed)
        result.validation = {"start": ratio, "tuned": ratio}
    elif validation_n:
        result.validation = {which: _validation_ratio(model, name, options, grid, validation_n,
                                                      validation_seed)
                             for which, grid in (("start", starts[start]), ("tuned", steps))}
        say(f"validation ({validation_n} samples, seed {validation_seed}): FMD ratio "
            f"{result.validation['start']:.4f} ({start}) -> {result.validation['tuned']:.4f} (tuned)")
    result.seconds = time.perf_counter() - started
    return result


def _check(model: Pretrained, sample_steps: int, n: int, max_evaluations: int, validation_n: int) -> None:
    for argument, value, low in (("sample_steps", sample_steps, 2), ("n", n, 2),
                                 ("max_evaluations", max_evaluations, 1), ("validation_n", validation_n, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{argument} must be an integer >= {low}, got {value!r}")
    if 0 < validation_n < 2:
        raise ValueError(f"validation_n must be 0 (no validation) or at least 2, got {validation_n}")
    shape = model.denoiser.degradation.image_shape
    if shape is not None and tuple(shape) != (1, 28, 28):
        raise ValueError(f"tune_steps scores MNIST-sized digits (1, 28, 28) with the shipped classifier; "
                         f"this model generates {tuple(shape)}")
    if sample_steps > model.denoiser.degradation.num_timesteps:
        raise ValueError(f"sample_steps must be at most T = {model.denoiser.degradation.num_timesteps}, "
                         f"got {sample_steps}")


def _named_grids(model: Pretrained, sampler: str, options: dict[str, Any], sample_steps: int
                 ) -> dict[str, tuple[int, ...]]:
    """Each named spacing's ``K``-step grid, for those that give ``K`` distinct steps."""
    grids = {}
    for spacing in START_SPACINGS:
        try:
            built = model.sampler(sampler, **options, spacing=spacing)
        except ValueError:  # e.g. "logsnr" on a degradation without noise levels
            continue
        with warnings.catch_warnings():  # a grid that rounds to repeated steps is left out below
            warnings.simplefilter("ignore", UserWarning)
            steps = tuple(built.timesteps(sample_steps))
        if len(steps) == sample_steps + 1:
            grids[spacing] = steps
    return grids


def coordinate_search(steps: tuple[int, ...], score: Callable[[tuple[int, ...]], float],
                      max_evaluations: int, log: Callable[[str], None] | None = None) -> tuple[int, ...]:
    """Step 2 of the module's search, on any score of a grid ``[T, ..., 0]``: move one
    intermediate step at a time towards a neighbour by ``fraction`` of the gap while the score
    drops; ``fraction`` halves (from 1/2) after a sweep without a move.

    Args:
        steps: The start grid, strictly decreasing; its first and last steps stay.
        score: The score to lower; each grid is scored once.
        max_evaluations: The most grids scored (the start included).
        log: Called with one line per improvement.

    Returns:
        The best grid found.
    """
    scores: dict[tuple[int, ...], float] = {}

    def scored(grid: tuple[int, ...]) -> float:
        if grid not in scores:
            scores[grid] = score(grid)
        return scores[grid]

    fraction, best = 0.5, scored(steps)
    while len(scores) < max_evaluations:
        moved = False
        for k in range(1, len(steps) - 1):
            candidates = [c for c in _moves(steps, k, fraction) if c not in scores]
            results = [(scored(c), c) for c in candidates[:max(0, max_evaluations - len(scores))]]
            if results and min(results)[0] < best:  # ties keep the current grid
                best, steps = min(results)
                moved = True
                if log is not None:
                    log(f"step {k}: {list(steps)} (FMD {best:.4f})")
        if not moved:
            if fraction * max(a - b for a, b in itertools.pairwise(steps)) < 1:
                break
            fraction /= 2
    return steps


def _moves(steps: tuple[int, ...], k: int, fraction: float) -> list[tuple[int, ...]]:
    """``steps`` with ``steps[k]`` moved up and down by ``fraction`` of the gap to each neighbour
    (at least one step, staying strictly between them)."""
    moves = []
    for neighbour in (steps[k - 1], steps[k + 1]):
        gap = neighbour - steps[k]
        moved = steps[k] + int(math.copysign(max(1, round(abs(gap) * fraction)), gap))
        if min(steps[k - 1], steps[k + 1]) < moved < max(steps[k - 1], steps[k + 1]) and moved != steps[k]:
            moves.append((*steps[:k], moved, *steps[k + 1:]))
    return moves


def _validation_ratio(model: Pretrained, sampler: str, options: dict[str, Any], steps: tuple[int, ...],
                      n: int, seed: int) -> float:
    """The full protocol's FMD ratio of ``n`` samples on ``steps``."""
    from colddiff import fmd

    samples = model.sample(n, seed=seed, sampler=sampler, **{**options, "spacing": list(steps)})
    ratio = fmd.score(samples, protocol="full", seed=0).fmd_ratio
    assert ratio is not None  # the full protocol always has one
    return round(ratio, 4)


def _rounded(scores: dict[str, float]) -> dict[str, float]:
    return {key: round(value, 4) for key, value in scores.items()}
