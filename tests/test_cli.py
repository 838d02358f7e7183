"""The command line: every usage error exits 2 with one line; runtime errors exit 1 with one."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import run_cli
from PIL import Image

from colddiff import checkpoints, degradations
from colddiff.cli import build_parser, errors, main, train
from colddiff.config import TrainConfig
from colddiff.degradations import GaussianNoise, registry

TINY = ["--limit-train", "128", "--batch-size", "64", "--sample-every", "0", "--quiet",
        "--device", "cpu"]


run = run_cli


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["bogus"], "invalid choice: 'bogus'"),
        (["train"], "give --preset or --config"),
        (["train", "--preset", "ddpm-huge"],
         r"--preset must be one of \[.*'ddpm-default'.*\], got 'ddpm-huge'"),
        (["train", "--preset", "ddpm-default", "--epochs", "0"], "--epochs must be an integer >= 1, got 0"),
        (["train", "--preset", "ddpm-default", "--epochs", "two"], "--epochs: invalid int value: 'two'"),
        (["train", "--preset", "ddpm-default", "--batch-size", "-3"], "--batch-size must be an integer >= 1"),
        (["train", "--preset", "ddpm-default", "--lr", "0"], "--lr must be a finite number > 0, got 0.0"),
        (["train", "--preset", "ddpm-default", "--lr", "nan"], "--lr must be a finite number > 0, got nan"),
        (["train", "--preset", "ddpm-default", "--ema", "1.0"], r"--ema must be a decay in \(0, 1\)"),
        (["train", "--preset", "ddpm-default", "--sample-every", "-1"],
         "--sample-every must be an integer >= 0, got -1"),
        (["train", "--preset", "ddpm-default", "--predict", "score"],
         r"--predict must be one of \['eps', 'x0', 'v'\], got 'score'"),
        (["train", "--preset", "ddpm-default", "--on-error", "ignore"], "--on-error must be one of"),
        (["train", "--preset", "ddpm-default", "--data", "some/folder"],
         "--data 'some/folder' is not a dataset name .* it needs --image-size"),
        (["train", "--preset", "ddpm-default", "--net", "resnet"],
         "unknown net 'resnet'; available: .*cnn.*unet"),
        (["train", "--preset", "ddpm-default", "--degradation", "no_such_one"],
         "unknown degradation 'no_such_one'"),
        (["train", "--preset", "ddpm-default", "--device", "tpu"], "--device must be"),
        (["train", "--preset", "fashion-cold", "--algorithm", "3"], "--algorithm must be 1 or 2, got 3"),
        (["train", "--preset", "ddpm-default", "--schedule", "quadratic"], "invalid choice: 'quadratic'"),
        (["train", "--config", "{missing}"], "--config .*missing.toml: no such file"),
        (["train", "--config", "{bad_toml}"], "not valid TOML"),
        (["train", "--config", "{unknown_key}"], r"unknown config keys \['epoch'\]"),
        (["sample"], "one of the arguments --checkpoint --pretrained is required"),
        (["sample", "--checkpoint", "x.pt", "-n", "0"], "-n: must be >= 1"),
        (["sample", "--pretrained", "mnist-ddpm", "--sampler", "euler"],
         "unknown sampler 'euler'; available: "),
        (["sample", "--pretrained", "mnist-ddpm", "--sampler", "ddim", "--eta", "2"],
         r"--eta must be a number in \[0, 1\], got 2.0"),
        (["sample", "--pretrained", "mnist-ddpm", "--sample-steps", "2000"],
         r"--sample-steps must be an integer in \[1, 1000\] or None, got 2000"),
        (["sample", "--pretrained", "fashion-cold"], "--pretrained must be one of"),
        (["train", "--preset", "ddpm-default", "--order", "2"], "sampler 'ddpm' does not take order"),
        (["train", "--preset", "ddpm-default", "--sampler-arg", "x"], "--sampler-arg must be KEY=VALUE"),
        (["sample", "--pretrained", "mnist-fashion-cold", "--source", "noise"],
         "--source must be 'fixed' or 'estimate', got 'noise'"),
        (["degrade", "--out", "x.png"], "required: --degradation"),
        (["degrade", "--degradation", "gaussian"], "required: --out"),
        (["degrade", "--degradation", "no_such_one", "--out", "x.png"], "unknown degradation 'no_such_one'"),
        (["degrade", "--degradation", "gaussian", "--out", "x.png", "--channels", "2"],
         r"--channels must be one of \[None, 1, 3\], got 2"),
    ],
)
def test_usage_errors_exit_2_with_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                           argv: list[str], message: str) -> None:
    (tmp_path / "bad.toml").write_text("epochs = = 1\n")
    (tmp_path / "unknown.toml").write_text("epoch = 1\n")
    files = {"missing": str(tmp_path / "missing.toml"), "bad_toml": str(tmp_path / "bad.toml"),
             "unknown_key": str(tmp_path / "unknown.toml")}
    status, _, err = run(capsys, *[arg.format(**files) for arg in argv])
    assert status == 2
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("colddiff")
    assert re.search(message, err), err


def test_runtime_errors_exit_1_with_one_line_and_debug_shows_the_traceback(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "text.pt").write_text("garbage")
    for checkpoint, message in [(tmp_path / "none.pt", "does not exist"),
                                (tmp_path / "text.pt", "not a readable checkpoint")]:
        status, _, err = run(capsys, "sample", "--checkpoint", str(checkpoint))
        assert status == 1 and message in err and len(err.strip().splitlines()) == 1
    with pytest.raises(checkpoints.CheckpointError):
        main(["--debug", "sample", "--checkpoint", str(tmp_path / "none.pt")])


def test_missing_data_is_a_one_line_runtime_error(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLDDIFF_DATA_DIR", str(tmp_path))
    # Simulate being offline even on a machine that is not.
    monkeypatch.setattr("torchvision.datasets.MNIST.mirrors", ["http://127.0.0.1:9/"])
    status, _, err = run(capsys, "degrade", "--degradation", "gaussian", "--out", str(tmp_path / "x.png"))
    assert status == 1 and "MNIST/raw" in err and len(err.strip().splitlines()) == 1


def test_train_sample_and_degrade_end_to_end(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                             data_dir: Path) -> None:
    out = tmp_path / "run"
    status, _, err = run(capsys, "train", "--preset", "fashion-cold", "--epochs", "1", "--out", str(out),
                         "--net", "cnn", "--source", "estimate", *TINY)
    assert status == 0, err
    assert (out / "config.toml").exists() and (out / "checkpoints" / "last.pt").exists()
    saved = TrainConfig.load(out / "config.toml")
    assert saved.sampler_kwargs == {"algorithm": 2, "source": "estimate"}, "--source overrides the preset"
    status, stdout, err = run(capsys, "sample", "--checkpoint", str(out / "checkpoints" / "last.pt"),
                              "-n", "9", "--sample-steps", "5", "--out", str(tmp_path / "grid.png"),
                              "--save-tensor", str(tmp_path / "samples.pt"))
    assert status == 0, err
    samples = torch.load(tmp_path / "samples.pt", weights_only=True)
    assert samples.shape == (9, 1, 28, 28) and torch.isfinite(samples).all()
    assert Image.open(tmp_path / "grid.png").size == (3 * 30 + 2, 3 * 30 + 2)
    status, stdout, err = run(capsys, "degrade", "--degradation", "fashion_mnist", "-n", "2",
                              "--frames", "5", "--out", str(tmp_path / "strip.png"))
    assert status == 0, err
    assert Image.open(tmp_path / "strip.png").size == (5 * 30 + 2, 2 * 30 + 2)
    status, stdout, _ = run(capsys, "degradations")
    assert status == 0 and re.search(r"^fashion_mnist +built-in$", stdout, re.MULTILINE)


def test_the_console_entry_points_work() -> None:
    result = subprocess.run([sys.executable, "-m", "colddiff", "--version"], capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == "colddiff 0.1.0"
    result = subprocess.run([sys.executable, "-m", "colddiff", "train", "--epochs", "0"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def test_the_forward_strip_needs_two_frames(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                            data_dir: Path) -> None:
    status, _, err = run(capsys, "degrade", "--degradation", "gaussian", "--out", str(tmp_path / "x.png"),
                         "--frames", "1")
    assert status == 2 and "--frames must be an integer >= 2, got 1" in err


def test_one_train_run_builds_its_degradation_once(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                   data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry.REGISTRY, "_registered", dict(registry.REGISTRY._registered))
    built = []

    @degradations.register("counted_noise")
    class CountedNoise(GaussianNoise):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            built.append(self)
            super().__init__(*args, **kwargs)

    status, _, err = run(capsys, "train", "--preset", "ddpm-short", "--degradation", "counted_noise",
                         "--epochs", "1", "--out", str(tmp_path / "run"), *TINY)
    assert status == 0, err
    assert len(built) == 1


def test_every_config_field_is_a_train_flag_or_said_not_to_be() -> None:
    fields = [field.name for field in dataclasses.fields(TrainConfig)]
    flags = [flag.field for flag in train.TRAIN_FLAGS]
    assert sorted(flags + list(train.NOT_FLAGS)) == sorted(fields)
    parser = next(action for action in build_parser()._actions if action.dest == "command").choices["train"]
    assert {flag: errors.flags_of(parser)[flag] for flag in flags}["dataset"] == "--data"


@pytest.mark.parametrize(("message", "expected"), [
    ("batch_size must be an integer >= 1, got 0", "--batch-size must be an integer >= 1, got 0"),
    ("epochs must be an integer >= 1", "--epochs must be an integer >= 1"),
    ("lower batch_size or raise limit_train", "lower --batch-size or raise --limit-train"),
    ('pass on_error="skip" to leave it out', "pass --on-error skip to leave it out"),
    ("continue it (resume=True)", "continue it (--resume)"),
    ("or call fit(resume=True)", "or call fit(resume=True)"),
    ("unknown net 'resnet'; the epochs and the seed", "unknown net 'resnet'; the epochs and the seed"),
    ("Blur() got an unexpected keyword argument 'image_size'",
     "Blur() got an unexpected keyword argument 'image_size'"),
    ("Inpaint needs its source: pass it, sample(..., source=...)",
     "Inpaint needs its source: pass it, sample(..., source=...)"),
])
def test_library_messages_are_told_in_flags(message: str, expected: str) -> None:
    flags = {"batch_size": "--batch-size", "epochs": "--epochs", "limit_train": "--limit-train",
             "on_error": "--on-error", "resume": "--resume", "net": "--net", "seed": "--seed",
             "image_size": "--image-size", "source": "--source"}
    assert errors.in_flags(message, flags) == expected
