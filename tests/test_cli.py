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


DDPM = ["train", "--preset", "ddpm-default"]
SAMPLE = ["sample", "--pretrained", "mnist-ddpm"]
RESTORE = ["restore", "--pretrained", "mnist-deblur"]

#: ``(argv, exit status, message)`` for every command: usage errors (a value, an option, a file
#: or folder named on the command line that is missing or of the wrong kind) exit 2, failures
#: while working (a file that cannot be read) exit 1; ``{name}`` stands for a file of
#: :func:`_error_files`.
EXIT_TABLE: list[tuple[list[str], int, str]] = [
    ([], 2, "the following arguments are required: COMMAND"),
    (["bogus"], 2, "invalid choice: 'bogus'"),
    (["train"], 2, "give --preset or --config"),
    (["train", "--preset", "ddpm-huge"], 2,
     r"--preset must be one of \[.*'ddpm-default'.*\], got 'ddpm-huge'"),
    ([*DDPM, "--epochs", "0"], 2, "--epochs must be an integer >= 1, got 0"),
    ([*DDPM, "--epochs", "two"], 2, "--epochs: invalid int value: 'two'"),
    ([*DDPM, "--batch-size", "-3"], 2, "--batch-size must be an integer >= 1"),
    ([*DDPM, "--lr", "0"], 2, "--lr must be a finite number > 0, got 0.0"),
    ([*DDPM, "--lr", "nan"], 2, "--lr must be a finite number > 0, got nan"),
    ([*DDPM, "--ema", "1.0"], 2, r"--ema must be a decay in \(0, 1\)"),
    ([*DDPM, "--sample-every", "-1"], 2,
     "--sample-every must be an integer >= 0, got -1"),
    ([*DDPM, "--predict", "score"], 2,
     r"--predict must be one of \['eps', 'x0', 'v'\], got 'score'"),
    ([*DDPM, "--on-error", "ignore"], 2, "--on-error must be one of"),
    ([*DDPM, "--loss", "l1"], 2, r"--loss must be one of \['mse', 'soft'\], got 'l1'"),
    ([*DDPM, "--loss", "soft"], 2, r"--loss soft needs --predict x0 \(.*\), got --predict eps"),
    ([*DDPM, "--degradation", "blur", "--degradation-arg", "noise=-0.5"], 2,
     "noise must be a finite number >= 0, got -0.5"),
    ([*DDPM, "--data", "{folder}"], 2,
     "--data '.*folder' is not a dataset name .* it needs --image-size"),
    ([*DDPM, "--data", "{text}"], 2,
     "--data must be one of mnist, fashion_mnist, cifar10 or a folder of images; '.*notes.txt' is a file, "
     "not a folder"),
    ([*DDPM, "--data", "{missing}", "--image-size", "8"], 2,
     "or a folder of images; no folder '.*missing' exists"),
    ([*DDPM, "--net", "resnet"], 2, "unknown net 'resnet'; available: .*cnn.*unet"),
    ([*DDPM, "--degradation", "no_such_one"], 2, "unknown degradation 'no_such_one'"),
    ([*DDPM, "--degradation-arg", "speed=2"], 2,
     "'gaussian' does not take speed"),
    ([*DDPM, "--net-arg", "channels"], 2, "--net-arg must be KEY=VALUE, got 'channels'"),
    ([*DDPM, "--device", "tpu"], 2, "--device must be"),
    (["train", "--preset", "fashion-cold", "--algorithm", "3"], 2, "--algorithm must be 1 or 2, got 3"),
    ([*DDPM, "--schedule", "quadratic"], 2, "invalid choice: 'quadratic'"),
    (["train", "--config", "{missing}.toml"], 2, "--config: .*missing.toml: no such file"),
    (["train", "--config", "{folder}"], 2, "--config: .*folder is a folder; give a file"),
    (["train", "--config", "{bad_toml}"], 2, "not valid TOML"),
    (["train", "--config", "{unknown_key}"], 2, r"unknown config keys \['epoch'\]"),
    ([*DDPM, "--resume", "--out", "{empty}", "--device", "cpu"], 2,
     ".*empty holds no run to resume .*; start one there without --resume"),
    ([*DDPM, "--bogus"], 2, r"unrecognized arguments: --bogus \(see colddiff train --help\)"),
    ([*DDPM, "--order", "2"], 2, "sampler 'ddpm' does not take order"),
    ([*DDPM, "--sampler-arg", "x"], 2, "--sampler-arg must be KEY=VALUE"),
    (["sample"], 2, "one of the arguments --checkpoint --pretrained is required"),
    ([*SAMPLE, "-n", "0"], 2, "-n: must be >= 1"),
    (["sample", "--checkpoint", "{missing}.pt"], 2, "--checkpoint: .*missing.pt: no such file"),
    (["sample", "--checkpoint", "{folder}"], 2, "--checkpoint: .*folder is a folder, not a checkpoint file"),
    (["sample", "--checkpoint", "{text}"], 1, "notes.txt is not a readable checkpoint"),
    ([*SAMPLE, "--bogus"], 2,
     r"^colddiff sample: error: unrecognized arguments: --bogus \(see colddiff sample --help\)"),
    ([*SAMPLE, "--sampler", "euler"], 2, "unknown sampler 'euler'; available: "),
    ([*SAMPLE, "--sampler", "ddim", "--eta", "2"], 2,
     r"--eta must be a number in \[0, 1\], got 2.0"),
    ([*SAMPLE, "--sample-steps", "2000"], 2,
     r"--sample-steps must be an integer in \[1, 1000\] or None, got 2000"),
    ([*SAMPLE, "--spacing", "1000,x"], 2,
     r"argument --spacing: expected a spacing's name or comma-separated integer steps \(e.g. 1000,500,0\)"),
    ([*SAMPLE, "--spacing", "900,500,0"], 2,
     r"--spacing, as a list of steps, must hold at least 2 strictly decreasing integers from T = 1000"),
    (["sample", "--pretrained", "fashion-cold"], 2, "--pretrained must be one of"),
    (["tune-steps", "--pretrained", "mnist-ddpm", "--sample-steps", "1"], 2,
     "--sample-steps: must be >= 2, got 1"),
    (["tune-steps", "--pretrained", "mnist-ddpm", "--sample-steps", "3", "--spacing", "logsnr"], 2,
     "spacing is what tune-steps searches; leave --spacing out"),
    (["tune-steps", "--pretrained", "mnist-ddpm", "--sample-steps", "3", "--max-evaluations", "0"], 2,
     "--max-evaluations: must be >= 1"),
    (["tune-steps", "--pretrained", "mnist-ddpm", "--sample-steps", "3", "--validation-n", "1"], 2,
     r"--validation-n must be 0 \(no validation\) or at least 2, got 1"),
    (["tune-steps", "--checkpoint", "{text}", "--sample-steps", "3"], 1,
     "notes.txt is not a readable checkpoint"),
    (["sample", "--pretrained", "mnist-fashion-cold", "--source", "noise"], 2,
     "--source must be 'fixed' or 'estimate', got 'noise'"),
    ([*RESTORE, "--input", "{missing}", "--t", "3"], 2,
     "--input: .*missing: no such file or folder"),
    ([*RESTORE, "--input", "{text}", "--t", "3"], 1,
     r"notes.txt is not a readable input .* \(images are read from .png, .jpg, .jpeg files\)"),
    ([*RESTORE, "--input", "{empty}", "--t", "3"], 1, "empty holds no images"),
    ([*RESTORE, "--input", "{digits}", "--t", "21"], 2,
     r"--t must be an integer in \[1, 20\] \(the model's T\), got 21"),
    ([*RESTORE, "--from-test-set", "2", "--t", "auto"], 2,
     "--t auto estimates the step of --input images; --from-test-set degrades them to the step given"),
    (["restore", "--pretrained", "mnist-ddpm", "--input", "{digits}", "--t", "auto"], 2,
     "--t must be given for GaussianNoise: it can be estimated only for a degradation without a random"),
    ([*RESTORE, "--input", "{digits}", "--t", "0"], 2, "--t: must be >= 1, got 0"),
    ([*RESTORE, "--from-test-set", "2", "--bogus"], 2,
     r"\(see colddiff restore --help\)"),
    (["degrade", "--out", "x.png"], 2, "required: --degradation"),
    (["degrade", "--degradation", "gaussian"], 2, "required: --out"),
    (["degrade", "--degradation", "no_such_one", "--out", "x.png"], 2, "unknown degradation 'no_such_one'"),
    (["degrade", "--degradation", "gaussian", "--out", "x.png", "--channels", "2"], 2,
     r"--channels must be one of \[None, 1, 3\], got 2"),
    (["degrade", "--degradation", "gaussian", "--out", "x.png", "--data", "{text}"], 2,
     "is a file, not a folder"),
    (["export", "--checkpoint", "{missing}.pt", "--name", "x", "--out", "{empty}"], 2,
     "--checkpoint: .*missing.pt: no such file"),
    (["export", "--checkpoint", "{text}", "--name", "x", "--out", "{empty}", "--card", "{missing}.json"], 2,
     "--card: .*missing.json: no such file"),
    (["export", "--checkpoint", "{text}", "--name", "x", "--out", "{empty}"], 1, "not a readable checkpoint"),
    (["list", "bogus"], 2, "KIND must be among degradations, nets, samplers, models, got bogus"),
    (["degradations", "--bogus"], 2, r"\(see colddiff degradations --help\)"),
    (["reproduce", "--out", "{empty}", "--study", "nope"], 2, "--study must be one of"),
    (["reproduce", "--out", "{empty}", "--figures-only"], 2, "--figures-only needs a finished study"),
    (["fmd", "score", "{missing}.pt"], 2, "SAMPLES: .*missing.pt: no such file or folder"),
    (["fmd", "score", "{text}"], 1, "notes.txt is not a readable samples file"),
    (["fmd", "score", "{folder}"], 2, "must each be one 28x28 digit; 5 of 5 are not: a/0.png \\(8x8\\), "
     r"a/1.png \(8x8\), a/2.png \(8x8\), \.\.\. \(see"),
    (["fmd", "score", "{empty}"], 1, "empty holds no images"),
    (["fmd", "score", "{digits}", "--bogus"], 2,
     r"^colddiff fmd score: error: .*\(see colddiff fmd score --help\)"),
    (["fmd", "train-classifier", "--out", "x.pt", "--epochs", "0"], 2, "--epochs: must be >= 1, got 0"),
]


def _error_files(folder: Path) -> dict[str, str]:
    """The files and folders that :data:`EXIT_TABLE` names, made in ``folder``."""
    (folder / "bad.toml").write_text("epochs = = 1\n")
    (folder / "unknown.toml").write_text("epoch = 1\n")
    (folder / "notes.txt").write_text("not a tensor, not an image")
    (folder / "empty").mkdir()
    (folder / "folder" / "a").mkdir(parents=True)
    for i in range(5):
        Image.new("L", (8, 8)).save(folder / "folder" / "a" / f"{i}.png")
    (folder / "digits").mkdir()
    for i in range(2):
        Image.new("L", (28, 28), 255 * i).save(folder / "digits" / f"{i}.png")
    names = {"missing": "missing", "bad_toml": "bad.toml", "unknown_key": "unknown.toml", "text": "notes.txt",
             "empty": "empty", "folder": "folder", "digits": "digits"}
    return {key: str(folder / name) for key, name in names.items()}


def test_every_command_exits_2_for_usage_errors_and_1_for_failures_with_one_line(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    files = _error_files(tmp_path)
    for argv, expected, message in EXIT_TABLE:
        status, _, err = run(capsys, *[arg.format(**files) for arg in argv])
        assert (status, len(err.strip().splitlines())) == (expected, 1), (argv, err)
        assert err.startswith("colddiff") and re.search(message, err.strip()), (argv, err)
    commands = {argv[0] if argv[0] != "fmd" else " ".join(argv[:2]) for argv, *_ in EXIT_TABLE if argv}
    parser_commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    assert commands >= {*parser_commands} - {"fmd"} | {"fmd score", "fmd train-classifier"}


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    (tmp_path / "text.pt").write_text("garbage")
    with pytest.raises(checkpoints.CheckpointError):
        main(["--debug", "sample", "--checkpoint", str(tmp_path / "text.pt")])


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


def test_degradation_and_net_options_on_the_command_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                         data_dir: Path) -> None:
    parser = build_parser()
    config = train.train_config(parser.parse_args(
        ["train", "--preset", "fashion-cold", "--degradation", "blur", "--degradation-arg", "official=true",
         "--degradation-arg", "noise=0.05", "--net", "unet", "--net-arg", "channels=8",
         "--net-arg", "attention=false"]))
    assert config.degradation_kwargs == {"official": True, "noise": 0.05}
    assert config.net_kwargs == {"channels": 8, "attention": False}, "over the new network's defaults"
    preset = TrainConfig.preset("mnist-deblur")
    config = train.train_config(parser.parse_args(["train", "--preset", "mnist-deblur",
                                                   "--net-arg", "blocks=1"]))
    assert config.net_kwargs == {**preset.net_kwargs, "blocks": 1}, "the preset's other options are kept"
    out = tmp_path / "run"
    status, _, err = run(capsys, "train", "--preset", "fashion-cold", "--degradation", "blur",
                         "--degradation-arg", "num_timesteps=6", "--net-arg", "channels=[4]", "--epochs", "1",
                         "--out", str(out), *TINY)
    assert status == 0, err
    saved = TrainConfig.load(out / "config.toml")
    assert saved.degradation_kwargs == {"num_timesteps": 6} and saved.net_kwargs == {"channels": [4]}
    from colddiff import pretrained

    assert pretrained.from_checkpoint(out / "checkpoints" / "last.pt").denoiser.num_timesteps == 6


def test_a_skipped_file_is_one_warning_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = tmp_path / "pictures"
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (12, 10), (80 * i, 0, 0)).save(folder / f"{i}.jpg")
    (folder / "0-broken.png").write_text("not an image")
    status, _, err = run(capsys, "degrade", "--degradation", "blur", "--data", str(folder),
                         "--image-size", "8", "-n", "2", "--frames", "3", "--on-error", "skip",
                         "--out", str(tmp_path / "a.png"))
    assert status == 0, err
    broken = folder / "0-broken.png"
    assert err.strip().splitlines() == [f"colddiff degrade: warning: skipped image file {broken} cannot be "
                                        f"decoded: cannot identify image file '{broken}'"]


def test_long_commands_show_a_progress_bar_only_on_a_terminal(capsys: pytest.CaptureFixture[str],
                                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    Image.new("L", (28, 28), 128).save(tmp_path / "grey.png")
    sample = ["sample", "--pretrained", "mnist-ddpm", "-n", "1", "--sample-steps", "2", "--out",
              str(tmp_path / "s.png")]
    restore = ["restore", "--pretrained", "mnist-deblur", "--input", str(tmp_path / "grey.png"), "--t",
               "auto", "--sample-steps", "1", "--out", str(tmp_path / "r.png")]
    for argv, bars in ((sample, ["sampling 1"]), (restore, ["estimating t", "restoring 1"])):
        status, _, err = run(capsys, *argv)
        assert (status, err) == (0, ""), "stderr is not a terminal: no bar"
        with monkeypatch.context() as terminal:
            terminal.setattr(sys.stderr, "isatty", lambda: True)
            status, _, err = run(capsys, *argv)
            assert status == 0 and all(f"{bar}: " in err for bar in bars) and "|" in err, err
            if argv is sample:
                assert run(capsys, *argv, "--quiet")[::2] == (0, ""), "--quiet: no bar"
