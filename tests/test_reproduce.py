"""The reference-study pipeline on a tiny budget: figures, report, results, resume, CLI paths."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from colddiff.cli import main
from colddiff.study import figures, reference


def status(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)


def test_a_tiny_study_writes_figures_report_and_results(tmp_path: Path, data_dir: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["reproduce", "--quick", "--out", str(tmp_path), "--models", "ddpm-short", "fashion-cold",
            "--epochs", "1", "--limit-train", "128", "--sample-steps", "4", "--full-n", "16", "--quiet"]
    assert main(argv) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert sorted(results["models"]) == ["ddpm-short", "fashion-cold"]
    for summary in results["models"].values():
        numbers = [summary["final_loss"], summary["report"]["fmd"],
                   summary["report"]["normalized_fmd"], summary["full"]["fmd"],
                   summary["full"]["fmd_ratio"], summary["sampling_seconds_per_image"]]
        assert all(math.isfinite(x) for x in numbers)
    written = sorted(p.name for p in (tmp_path / "figures").iterdir())
    # Figures 2 and 3 need the default-schedule model, which this study did not train.
    needs_default = {"fig02-forward-gaussian.png", "fig03-reverse-default.png"}
    assert written == sorted(set(figures.FIGURES) - needs_default)
    report = (tmp_path / "report.md").read_text()
    assert "| ddpm-short |" in report and "figures/fig14-fashion-samples.png" in report
    metrics = (tmp_path / "models" / "ddpm-short" / "metrics.jsonl").read_text()
    assert '"normalized_fmd"' in metrics

    # An existing study is not overwritten; --resume reuses finished models; --figures-only redraws.
    assert status(argv) == 2
    assert "pass --resume" in capsys.readouterr().err
    final = tmp_path / "models" / "ddpm-short" / "final.pt"
    stamp = final.stat().st_mtime_ns
    assert main([*argv, "--resume"]) == 0
    assert final.stat().st_mtime_ns == stamp, "finished models are not retrained"
    (tmp_path / "figures" / "fig05-loss.png").unlink()
    assert main(["reproduce", "--out", str(tmp_path), "--figures-only"]) == 0
    assert (tmp_path / "figures" / "fig05-loss.png").exists()


def test_figures_only_needs_a_finished_study(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert status(["reproduce", "--out", str(tmp_path), "--figures-only"]) == 2
    assert "no results.json" in capsys.readouterr().err


def test_quick_options_are_small() -> None:
    options = reference.StudyOptions.quick(Path("x"))
    assert (options.epochs, options.limit_train, options.sample_steps) == (2, 1024, 50)
    assert options.models == reference.MODELS
