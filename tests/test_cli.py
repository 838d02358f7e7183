"""The command line: every usage error exits 2 with one line; runtime errors exit 1 with one."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import run_cli
from PIL import Image

from colddiff import checkpoints
from colddiff.cli import main
from colddiff.config import TrainConfig

TINY = ["--limit-train", "128", "--batch-size", "64", "--sample-every", "0", "--quiet",
        "--device", "cpu"]


run = run_cli


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["bogus"], "invalid choice: 'bogus'"),
        (["train"], "give --preset or --config"),
        (["train", "--preset", "ddpm-huge"], "invalid choice: 'ddpm-huge'"),
        (["train", "--preset", "ddpm-default", "--epochs", "0"], "--epochs: must be >= 1, got 0"),
        (["train", "--preset", "ddpm-default", "--epochs", "two"], "--epochs: expected a int"),
        (["train", "--preset", "ddpm-default", "--batch-size", "-3"], "--batch-size: must be >= 1"),
        (["train", "--preset", "ddpm-default", "--lr", "0"], "--lr: must be > 0"),
        (["train", "--preset", "ddpm-default", "--lr", "nan"], "--lr: must be > 0"),
        (["train", "--preset", "ddpm-default", "--ema", "1.0"], "--ema: must be > 0 and < 1"),
        (["train", "--preset", "ddpm-default", "--sample-every", "-1"],
         "--sample-every: must be >= 0"),
        (["train", "--preset", "ddpm-default", "--net", "resnet"],
         "unknown net 'resnet'; available: .*cnn.*unet"),
        (["train", "--preset", "ddpm-default", "--degradation", "no_such_one"],
         "unknown degradation 'no_such_one'"),
        (["train", "--preset", "ddpm-default", "--device", "tpu"], "device must be"),
        (["train", "--preset", "ddpm-default", "--algorithm", "3"], "invalid choice: 3"),
        (["train", "--preset", "ddpm-default", "--schedule", "quadratic"], "invalid choice: 'quadratic'"),
        (["train", "--config", "{missing}"], "--config .*missing.toml: no such file"),
        (["train", "--config", "{bad_toml}"], "not valid TOML"),
        (["train", "--config", "{unknown_key}"], r"unknown config keys \['epoch'\]"),
        (["sample"], "one of the arguments --checkpoint --pretrained is required"),
        (["sample", "--checkpoint", "x.pt", "-n", "0"], "-n: must be >= 1"),
        (["sample", "--checkpoint", "x.pt", "--sampler", "euler"], "unknown sampler 'euler'; available: "),
        (["sample", "--checkpoint", "x.pt", "--eta", "2"], r"--eta: must be in \[0, 1\], got 2"),
        (["train", "--preset", "ddpm-default", "--order", "2"], "sampler 'ddpm' does not take order"),
        (["train", "--preset", "ddpm-default", "--sampler-arg", "x"], "--sampler-arg must be KEY=VALUE"),
        (["sample", "--checkpoint", "x.pt", "--source", "noise"], "invalid choice: 'noise'"),
        (["degrade", "--out", "x.png"], "required: --degradation"),
        (["degrade", "--degradation", "gaussian"], "required: --out"),
        (["degrade", "--degradation", "gaussian", "--out", "x.png", "--frames", "1"],
         "--frames: must be >= 2"),
        (["degrade", "--degradation", "no_such_one", "--out", "x.png"], "unknown degradation 'no_such_one'"),
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
