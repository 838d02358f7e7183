"""Conditional models on the command line: ``train --conditional``, ``sample --class / --classes
/ --guidance`` (labels saved with the samples, a grid row per class), ``fmd score`` per class,
and every refusal as a usage error in flags."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch
from conftest import run_cli
from PIL import Image

from colddiff.config import TrainConfig

TRAIN = ["train", "--data", "mnist", "--limit-train", "256", "--conditional", "--cond-drop", "0.2",
         "--guidance", "2", "--net", "cnn", "--net-arg", "channels=[4, 8, 4]", "--predict", "x0",
         "--epochs", "1", "--batch-size", "64", "--sample-every", "0", "--sampler", "ddim",
         "--sample-steps", "3", "--quiet"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """A conditional MNIST model trained for one tiny epoch by ``colddiff train``."""
    from colddiff.cli import main

    out = tmp_path_factory.mktemp("conditional")
    assert main([*TRAIN, "--preset", "ddpm-default", "--out", str(out)]) == 0
    config = TrainConfig.load(out / "config.toml")
    assert (config.conditional, config.classes, config.cond_drop, config.guidance) == (
        True, [str(d) for d in range(10)], 0.2, 2.0)
    return out / "checkpoints" / "last.pt"


def saved(path: Path) -> dict[str, object]:
    loaded = torch.load(path, weights_only=True)
    assert isinstance(loaded, dict)
    return loaded


def test_sample_one_class_some_classes_or_all_with_labels_saved(
        checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    every = [d for d in range(10) for _ in "ab"]
    for options, labels, rows in ((["--class", "7", "-n", "4"], [7] * 4, 1),
                                  (["--classes", "0, 1,2", "-n", "7"], [0, 0, 0, 1, 1, 2, 2], 3),
                                  (["-n", "20", "--guidance", "0"], every, 10)):
        status, _, err = run_cli(capsys, "sample", "--checkpoint", str(checkpoint), "--sample-steps", "2",
                                   "--out", str(tmp_path / "s.png"), "--save-tensor", str(tmp_path / "s.pt"),
                                   "--quiet", *options)
        assert status == 0, err
        samples = saved(tmp_path / "s.pt")
        assert samples["labels"].tolist() == labels  # type: ignore[attr-defined]
        assert samples["images"].shape == (len(labels), 1, 28, 28)  # type: ignore[attr-defined]
        assert samples["classes"] == [str(d) for d in range(10)]
        width = max(labels.count(c) for c in set(labels))
        assert Image.open(tmp_path / "s.png").size == (2 + 30 * width, 2 + 30 * rows)


@pytest.mark.parametrize(("options", "message"), [
    (["--class", "12"], "--class: class '12' is not in the model's label set; accepted: a name among "
                        "['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'] or an index in [0, 9]"),
    (["--classes", "1,x"], "--classes: class 'x' is not in the model's label set"),
    (["--guidance", "-1"], "--guidance must be a finite number >= 0"),
    (["--guidance", "nan"], "--guidance must be a finite number >= 0"),
    (["--class", "1", "--classes", "1,2"], "argument --classes: not allowed with argument --class"),
])
def test_bad_classes_and_guidance_are_usage_errors_in_flags(
        checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str],
        message: str) -> None:
    status, _, err = run_cli(capsys, "sample", "--checkpoint", str(checkpoint), "-n", "2",
                             "--sample-steps", "1", "--out", str(tmp_path / "s.png"), *options)
    assert status == 2 and message in err, err


@pytest.mark.parametrize(("options", "message"), [
    (["--class", "3"], "--class given to an unconditional model (mnist-ddpm): it has no classes; train one "
                       "with --conditional"),
    (["--classes", "3,4"], "--classes given to an unconditional model (mnist-ddpm)"),
    (["--guidance", "2"], "--guidance given to an unconditional model (2.0)"),
])
def test_an_unconditional_model_refuses_classes_and_guidance(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str) -> None:
    status, _, err = run_cli(capsys, "sample", "--pretrained", "mnist-ddpm", "-n", "2", "--sample-steps", "1",
                             "--out", str(tmp_path / "s.png"), *options)
    assert status == 2 and message in err, err


@pytest.mark.parametrize(("options", "message"), [
    (["--cond-drop", "1.5"], "--cond-drop must be a probability in [0, 1)"),
    (["--embedding-lr", "0"], "--embedding-lr must be a finite number > 0, got 0.0"),
    (["--init-from", "no-such-model"], "--init-from must be a shipped model (mnist-ddpm, "),
])
def test_bad_training_options_are_usage_errors_in_flags(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str) -> None:
    status, _, err = run_cli(capsys, *TRAIN, "--preset", "ddpm-default", "--out", str(tmp_path), *options)
    assert status == 2 and message in err, err
    status, _, err = run_cli(capsys, "train", "--preset", "ddpm-default", "--cond-drop", "0.2", "--out",
                             str(tmp_path))
    assert status == 2 and "--cond-drop is for a conditional model" in err, err
    status, _, err = run_cli(capsys, "train", "--preset", "ddpm-default", "--embedding-lr", "0.01", "--out",
                             str(tmp_path))
    assert status == 2 and "--embedding-lr is for a conditional model" in err, err


def test_fmd_score_adds_the_accuracy_and_each_class_s_distance(
        checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run_cli(capsys, "sample", "--checkpoint", str(checkpoint), "--classes", "3,8", "-n", "6",
                             "--sample-steps", "2", "--out", str(tmp_path / "s.png"), "--save-tensor",
                             str(tmp_path / "s.pt"), "--quiet")
    assert status == 0, err
    status, out, err = run_cli(capsys, "fmd", "score", str(tmp_path / "s.pt"), "--json", "--quiet")
    assert status == 0, err
    result = json.loads(out)
    assert result["n_samples"] == 6
    by_class = result["classes"]
    assert sorted(by_class["per_class"]) == ["3", "8"] and by_class["n_samples"] == 6
    from colddiff import fmd

    samples = saved(tmp_path / "s.pt")
    with torch.no_grad():
        predicted = fmd.load_classifier()(samples["images"]).argmax(1)  # type: ignore[arg-type]
    assert by_class["accuracy"] == pytest.approx(float((predicted == samples["labels"]).float().mean()))
    for row in by_class["per_class"].values():
        assert row["n"] == 3 and row["fd"] > 0
        assert row["fd_ratio"] == pytest.approx(row["fd"] / row["train_baseline"])
    status, out, _ = run_cli(capsys, "fmd", "score", str(tmp_path / "s.pt"), "--quiet")
    assert "classifier accuracy against the asked classes" in out and "class 8: 3 samples" in out


def test_the_guidance_benchmark_scores_each_scale_in_quick_mode(checkpoint: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.guidance import main

    assert main(["--checkpoint", str(checkpoint), "--quick", "--json", str(tmp_path / "g.json")]) == 0
    report = json.loads((tmp_path / "g.json").read_text())
    assert report["n"] == 20 and report["sample_steps"] == 2
    assert [row["guidance"] for row in report["results"]] == [0.0, 1.0, 3.0]
    assert [row["network_evaluations"] for row in report["results"]] == [2, 2, 4]  # 3: two per step
    for row in report["results"]:
        assert 0 <= row["accuracy"] <= 1 and sum(row["class_histogram"]) == 20
        assert math.isfinite(row["fmd_ratio"]) and row["fmd_ratio"] > 0
        assert sorted(row["per_class"]) == [str(d) for d in range(10)]
        assert all(c["n"] == 2 and math.isfinite(c["fd_ratio"]) for c in row["per_class"].values())
        assert row["mean_class_fd_ratio"] == pytest.approx(
            sum(c["fd_ratio"] for c in row["per_class"].values()) / 10)


def test_export_records_the_label_set_and_the_default_guidance(checkpoint: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run_cli(capsys, "export", "--checkpoint", str(checkpoint), "--name", "digits", "--out",
                             str(tmp_path), "--guidance", "3.5")
    assert status == 0, err
    card = json.loads((tmp_path / "digits.json").read_text())
    assert card["classes"] == card["config"]["classes"] == [str(d) for d in range(10)]
    assert card["config"]["guidance"] == 3.5
    assert card["sampling_changes"]["guidance"] == {"trained": 2.0, "shipped": 3.5}
    status, _, err = run_cli(capsys, "export", "--checkpoint", str(checkpoint), "--name", "bad", "--out",
                             str(tmp_path), "--guidance", "-2")
    assert status == 2 and "--guidance must be a finite number >= 0" in err, err
