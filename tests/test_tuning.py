"""Tuned step grids (colddiff.tuning, ``colddiff tune-steps``): the search finds known optima,
keeps its budget, scores what it says it scores, and the result is stored where sampling uses
it."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from colddiff import fmd, pretrained
from colddiff.tuning import START_SPACINGS, TunedGrid, coordinate_search, tune_steps
from tests.conftest import run_cli
from tests.test_pretrained import tiny_checkpoint


@st.composite
def grids(draw: st.DrawFn) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    """``(T, start, target)``: two strictly decreasing grids ``[T, ..., 0]`` of the same length."""
    total = draw(st.integers(10, 1000))
    calls = draw(st.integers(2, min(8, total)))

    def grid() -> tuple[int, ...]:
        inner = draw(st.lists(st.integers(1, total - 1), min_size=calls - 1, max_size=calls - 1, unique=True))
        return (total, *sorted(inner, reverse=True), 0)
    return total, grid(), grid()


@given(grids())
def test_the_search_finds_the_optimum_of_a_separable_convex_score(
        case: tuple[int, tuple[int, ...], tuple[int, ...]]) -> None:
    _, start, target = case
    calls: list[tuple[int, ...]] = []

    def score(grid: tuple[int, ...]) -> float:
        calls.append(grid)
        return float(sum((a - b) ** 2 for a, b in zip(grid, target, strict=True)))

    found = coordinate_search(start, score, max_evaluations=100_000)
    assert found == target
    assert len(calls) == len(set(calls)), "each grid is scored once"


@given(grids(), st.integers(1, 12))
def test_the_search_keeps_its_budget_and_the_grid_valid(case: tuple[int, tuple[int, ...], tuple[int, ...]],
                                                        budget: int) -> None:
    total, start, target = case
    calls: list[tuple[int, ...]] = []

    def distance(grid: tuple[int, ...]) -> float:
        return float(sum(abs(a - b) for a, b in zip(grid, target, strict=True)))

    def score(grid: tuple[int, ...]) -> float:
        calls.append(grid)
        assert grid[0] == total and grid[-1] == 0 and len(grid) == len(start)
        assert all(a > b for a, b in itertools.pairwise(grid)), grid
        return distance(grid)

    found = coordinate_search(start, score, max_evaluations=budget)
    assert 1 <= len(calls) <= budget and calls[0] == start
    assert found in calls and distance(found) == min(map(distance, calls)), "the best grid scored is returned"


def test_recommended_is_the_tuned_grid_only_where_the_validation_agrees() -> None:
    result = TunedGrid(3, "ddim", {}, "trailing", [10, 7, 3, 0], [10, 6, 2, 0])
    assert result.recommended == [10, 6, 2, 0], "no validation: the search's winner"
    result.validation = {"start": 1.20, "tuned": 1.10}
    assert result.recommended == [10, 6, 2, 0]
    assert result.card_entry()["sampler_kwargs"] == {"spacing": [10, 6, 2, 0]}
    result.validation = {"start": 1.10, "tuned": 1.10}
    assert result.recommended == "trailing", "a tie keeps the named spacing"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    return Path(tiny_checkpoint("ddpm-short", tmp_path_factory.mktemp("tune") / "run"))


def test_tune_steps_scores_the_named_spacings_then_searches(checkpoint: Path) -> None:
    model = pretrained.from_checkpoint(checkpoint)
    lines: list[str] = []
    result = tune_steps(model, 3, sampler="ddim", n=16, seed=3, max_evaluations=9, validation_n=0,
                        log=lines.append)
    named = {name: result.search_fmd[name] for name in START_SPACINGS if name in result.search_fmd}
    assert {"trailing", "linspace", "quadratic", "logsnr", "karras"} <= set(named)
    assert result.start == min(named, key=named.__getitem__)
    assert result.search_fmd["start"] == named[result.start]
    assert result.start_steps == model.sampler("ddim", spacing=result.start).timesteps(3)
    assert len(set(map(tuple, [model.sampler("ddim", spacing=name).timesteps(3) for name in named]))) \
        <= result.evaluations <= 9 and lines[0].startswith(f"start: {result.start}")
    # The score is the Fréchet distance of those samples to the test half, recomputed here.
    metric = fmd.FMD(across_processes=False)
    metric.reset(real=fmd.test_reference(metric))
    metric.update(model.sample(16, seed=3, sampler="ddim", spacing=result.steps), real=False)
    assert metric.compute() == pytest.approx(result.search_fmd["tuned"], abs=1e-4)
    with pytest.raises(ValueError, match="sample_steps must be an integer >= 2, got 1"):
        tune_steps(model, 1)
    with pytest.raises(ValueError, match=r"validation_n must be 0 \(no validation\) or at least 2, got 1"):
        tune_steps(model, 3, validation_n=1)


def test_tune_steps_on_the_command_line_stores_the_grid_where_sample_uses_it(
        checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_cli(capsys, "tune-steps", "--checkpoint", str(checkpoint), "--sample-steps", "3",
                               "-n", "8", "--max-evaluations", "7", "--validation-n", "8",
                               "--sampler", "ddim", "--eta", "0")
    assert status == 0, err
    stored = json.loads(pretrained.grids_file(checkpoint).read_text())
    entry = stored["step_grids"]["3"]
    assert entry["sampler"] == "ddim" and entry["sampler_kwargs"]["eta"] == 0
    assert set(entry["validation_fmd_ratio"]) == {"start", "tuned"}
    assert "--sampler ddim --sampler-arg eta=0.0 --spacing" in out and "--sample-steps 3" in out
    model = pretrained.from_checkpoint(checkpoint)
    assert model.tuned_grid(3) == entry and model.tuned_grid(4) is None
    status, out, err = run_cli(capsys, "sample", "--checkpoint", str(checkpoint), "--sample-steps", "3",
                               "-n", "4", "--out", str(tmp_path / "a.png"),
                               "--save-tensor", str(tmp_path / "a.pt"))
    assert status == 0 and "3 steps on the model's tuned grid: ddim" in out
    spacing = entry["sampler_kwargs"]["spacing"]
    by_hand = model.sample(4, 3, sampler="ddim", eta=0, spacing=spacing)
    written = torch.load(tmp_path / "a.pt", weights_only=True)
    assert torch.equal(written, by_hand), ((written - by_hand).abs().max(), spacing)
    grids = pretrained.grids_file(checkpoint)
    try:
        # Grids tuned for other weights (another optimiser step, or the raw weights) are not used, and
        # it says so; tuning again drops them.
        for key, value in (("optimiser_steps", stored["optimiser_steps"] + 1), ("ema", not stored["ema"])):
            grids.write_text(json.dumps({**stored, key: value}))
            with pytest.warns(UserWarning, match="was tuned for the weights of step") as record:
                assert pretrained.from_checkpoint(checkpoint).tuned_grid(3) is None
            assert {warning.filename for warning in record} == {__file__}, "it points at the caller's line"
        status, _, err = run_cli(capsys, "tune-steps", "--checkpoint", str(checkpoint), "--sample-steps", "2",
                                 "-n", "8", "--max-evaluations", "4", "--validation-n", "0",
                                 "--sampler", "ddim")
        assert status == 0, err
        assert set(json.loads(grids.read_text())["step_grids"]) == {"2"}, "the stale 3-step grid is dropped"
        # A damaged grids file is a warning, not a failure: it is only a cache of the search.
        grids.write_text("{not json")
        with pytest.warns(UserWarning, match="is not readable"):
            assert pretrained.from_checkpoint(checkpoint).tuned_grid(2) is None
    finally:
        grids.unlink(missing_ok=True)


def test_tune_steps_refuses_what_it_cannot_do(checkpoint: Path) -> None:
    model = pretrained.from_checkpoint(checkpoint)
    with pytest.raises(ValueError, match="sampler 'ddim' does not take order"):
        tune_steps(model, 3, sampler="ddim", sampler_options={"order": 2})
    with pytest.raises(ValueError, match=r"max_evaluations must be at least 5 \(the named spacings' grids"):
        tune_steps(model, 3, sampler="ddim", max_evaluations=2)
    with pytest.raises(ValueError, match="validation_seed must differ from seed"):
        tune_steps(model, 3, seed=4, validation_seed=4)
