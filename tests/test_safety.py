"""Nothing lost, nothing misleading: run folders, early validation, corrupt and unsafe files,
shape checks, and a command line that answers --help and --version without importing PyTorch."""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import run_cli
from PIL import Image
from torch import Tensor, nn

from colddiff import Denoiser, Schedule, checkpoints, data, nets
from colddiff.config import TrainConfig
from colddiff.degradations import GaussianNoise
from colddiff.training import RunExistsError, Trainer

TINY = ["--limit-train", "128", "--batch-size", "64", "--sample-every", "0", "--quiet", "--device", "cpu"]
TINY_CONFIG = {"net_kwargs": {"channels": [4, 4]}, "limit_train": 256, "batch_size": 32,
               "sample_every": 0, "epochs": 1}


run = run_cli


def metrics(run_folder: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (run_folder / "metrics.jsonl").read_text().splitlines()]


# ---------------------------------------------------------------- 1. a run folder is never mixed
def test_training_into_a_folder_holding_a_run_is_refused_and_overwrite_starts_clean(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "run"
    status, _, err = run(capsys, "train", "--preset", "ddpm-short", "--epochs", "2", "--out", str(out),
                         *TINY)
    assert status == 0, err
    before = {name: (out / name).read_bytes() for name in ("config.toml", "metrics.jsonl")}
    checkpoint = (out / "checkpoints" / "last.pt").read_bytes()

    status, _, err = run(capsys, "train", "--preset", "ddpm-default", "--epochs", "1", "--out", str(out),
                         *TINY)
    assert status == 2 and len(err.strip().splitlines()) == 1
    assert re.search(r"already holds a run.*resume.*out.*overwrite", err), err
    assert (out / "checkpoints" / "last.pt").read_bytes() == checkpoint, "the old run is untouched"
    assert all((out / name).read_bytes() == text for name, text in before.items())

    status, _, err = run(capsys, "train", "--preset", "ddpm-default", "--epochs", "1", "--out", str(out),
                         "--resume", "--overwrite", *TINY)
    assert status == 2 and "give one" in err

    status, _, err = run(capsys, "train", "--preset", "ddpm-default", "--epochs", "1", "--out", str(out),
                         "--overwrite", *TINY)
    assert status == 0, err
    assert [record["epoch"] for record in metrics(out)] == [1], "metrics of one run only"
    assert TrainConfig.load(out / "config.toml").schedule["num_timesteps"] == 1000
    assert checkpoints.load(out / "checkpoints" / "last.pt")["config"]["schedule"]["num_timesteps"] == 1000


def test_the_python_api_refuses_a_folder_holding_a_run_too(tmp_path: Path, data_dir: Path) -> None:
    config = TrainConfig.preset("ddpm-short", **TINY_CONFIG)
    Trainer(config, tmp_path, quiet=True).fit()
    with pytest.raises(RunExistsError, match=r"already holds a run .*resume.*overwrite") as refused:
        Trainer(config, tmp_path, quiet=True).fit()
    assert refused.value.path == tmp_path and tmp_path / "metrics.jsonl" in refused.value.held
    (tmp_path / "notes.txt").write_text("mine")
    Trainer(config.replace(epochs=2), tmp_path, quiet=True, overwrite=True).fit()
    assert [record["epoch"] for record in metrics(tmp_path)] == [1, 2]
    assert (tmp_path / "notes.txt").read_text() == "mine", "overwrite deletes only the run's own files"


# ---------------------------------------------------------------- 2. a true message when the loss blows up
def test_a_loss_that_blows_up_before_any_checkpoint_says_none_was_written(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "run"
    status, _, err = run(capsys, "train", "--preset", "ddpm-short", "--epochs", "1", "--lr", "1e6",
                         "--out", str(out), "--limit-train", "512", "--batch-size", "32",
                         "--sample-every", "0", "--quiet", "--device", "cpu")
    assert status == 1 and len(err.strip().splitlines()) == 1
    assert "no checkpoint was written" in err and "is kept" not in err, err
    assert not (out / "checkpoints" / "last.pt").exists()
    # Nothing of that run is worth keeping (only its config.toml): it may be started again there.
    status, _, err = run(capsys, "train", "--preset", "ddpm-short", "--epochs", "1", "--out", str(out),
                         *TINY)
    assert status == 0, err


# ---------------------------------------------------------------- 3. outputs checked before the work
@pytest.mark.parametrize(("out", "message"), [
    ("grid.txt", r"--out: .*grid\.txt: cannot write an image with extension '\.txt'; use \.png"),
    ("{folder}", r"--out: .* is a folder; give a file name"),
    ("{file}/grid.png", r"--out: cannot write .*: .* is a file, not a folder"),
])
def test_sample_checks_its_output_paths_before_sampling(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                        out: str, message: str) -> None:
    (tmp_path / "a_file").write_text("")
    out = out.format(folder=tmp_path, file=tmp_path / "a_file")
    status, _, err = run(capsys, "sample", "--pretrained", "mnist-ddpm", "-n", "1", "--out", out)
    assert status == 2 and len(err.strip().splitlines()) == 1
    assert re.search(message, err), err
    status, _, err = run(capsys, "sample", "--pretrained", "mnist-ddpm", "-n", "1", "--save-tensor",
                         str(tmp_path), "--out", str(tmp_path / "ok.png"))
    assert status == 2 and "--save-tensor" in err and "is a folder" in err


def test_the_tensor_is_written_even_if_the_image_fails(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_save_image(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("torchvision.utils.save_image", failing_save_image)
    status, _, err = run(capsys, "sample", "--pretrained", "mnist-ddpm", "-n", "2", "--sample-steps", "2",
                         "--out", str(tmp_path / "grid.png"), "--save-tensor", str(tmp_path / "s.pt"))
    assert status == 1 and "disk full" in err
    assert torch.load(tmp_path / "s.pt", weights_only=True).shape == (2, 1, 28, 28)


# ---------------------------------------------------------------- 4. orphaned temporary files
def test_temporary_files_of_interrupted_writes_are_removed_on_the_next_start(tmp_path: Path,
                                                                              data_dir: Path) -> None:
    config = TrainConfig.preset("ddpm-short", **TINY_CONFIG)
    Trainer(config, tmp_path, quiet=True).fit()
    orphans = [tmp_path / "checkpoints" / ".last.pt.k2j3h4_9.tmp", tmp_path / ".metrics.jsonl.abcdefgh.tmp",
               tmp_path / ".config.toml.x1x1x1x1.tmp",
               tmp_path / "checkpoints" / ".epoch-001.pt.q9q9q9q9.tmp"]
    foreign = [tmp_path / "checkpoints" / "notes.tmp", tmp_path / ".cache.tmp", tmp_path / "last.pt.tmp",
               tmp_path / ".notes.txt.abcdefgh.tmp"]
    for path in orphans + foreign:
        path.write_bytes(b"x" * 100)
    Trainer(config.replace(epochs=2), tmp_path, quiet=True).fit(resume=True)
    assert not any(path.exists() for path in orphans)
    assert all(path.exists() for path in foreign), "only files named like ours are removed"


# ---------------------------------------------------------------- 5. epoch time over a resume
def test_epoch_time_and_images_per_second_cover_the_whole_resumed_epoch(tmp_path: Path,
                                                                        data_dir: Path) -> None:
    config = TrainConfig.preset("ddpm-short", **{**TINY_CONFIG, "limit_train": 512})  # 16 steps
    first = Trainer(config.replace(max_minutes=1e-6), tmp_path, device="cpu", quiet=True).fit()
    assert first[0]["partial"] and first[0]["batches"] == 1
    resumed = Trainer(config, tmp_path, device="cpu", quiet=True).fit(resume=True)[0]
    assert "partial" not in resumed
    assert resumed["epoch_time_s"] > first[0]["epoch_time_s"]  # type: ignore[operator]
    images = resumed["images_per_s"] * resumed["epoch_time_s"]  # type: ignore[operator]
    rounding = resumed["images_per_s"] * 0.0005 + 0.005 * resumed["epoch_time_s"]  # type: ignore[operator]
    assert images == pytest.approx(16 * 32, rel=0.01, abs=rounding), "images/s and time: the same images"


# ---------------------------------------------------------------- 6. corrupt dataset files
@pytest.fixture
def damaged_mnist(tmp_path: Path, data_dir: Path) -> Path:
    """A copy of MNIST's raw folder (symlinks, the test split copied) for damaging."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (raw / name).symlink_to(data_dir / "MNIST" / "raw" / name)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / name).write_bytes((data_dir / "MNIST" / "raw" / name).read_bytes())
    return tmp_path


@pytest.mark.parametrize(("file", "damage", "problem"), [
    ("t10k-images-idx3-ubyte", lambda b: b"\x00\x00\x09\x03" + b[4:], r"header starts with 00000903"),
    ("t10k-images-idx3-ubyte", lambda b: b[: len(b) // 2], r"announces 10000 items .*truncated"),
    ("t10k-labels-idx1-ubyte", lambda b: b[:3], r"shorter than an IDX header"),
    ("t10k-images-idx3-ubyte", lambda b: b[:12] + (32).to_bytes(4, "big") + b[16:], r"not 28x28"),
])
def test_a_corrupt_dataset_file_is_named_with_what_to_do(damaged_mnist: Path, file: str, damage: object,
                                                          problem: str, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = damaged_mnist / "MNIST" / "raw" / file
    path.write_bytes(damage(path.read_bytes()))  # type: ignore[operator]
    data.datasets._read.cache_clear()
    with pytest.raises(data.DatasetCorruptError, match=re.escape(str(path)) + r" is corrupt: .*" + problem
                       + r".*Delete it so that it is downloaded again, or replace it"):
        data.mnist(train=False, root=damaged_mnist)
    assert len(data.mnist(train=True, root=damaged_mnist, limit=3)) == 3, "the intact split still loads"
    fmd_input = damaged_mnist / "samples.pt"
    torch.save(torch.rand(4, 1, 28, 28), fmd_input)
    monkeypatch.setenv("COLDDIFF_DATA_DIR", str(damaged_mnist))
    monkeypatch.setenv("COLDDIFF_CACHE_DIR", str(damaged_mnist / "cache"))
    status, _, err = run(capsys, "fmd", "score", str(fmd_input), "--protocol", "report")
    assert status == 1 and len(err.strip().splitlines()) == 1 and f"{path} is corrupt" in err, err


# ---------------------------------------------------------------- 7. unsafe and foreign files
def test_fmd_score_refuses_a_malicious_file_as_unsafe_without_advising_weights_only_false(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pt"
    torch.save({"samples": Payload()}, evil)
    status, _, err = run(capsys, "fmd", "score", str(evil))
    assert status == 1 and len(err.strip().splitlines()) == 1
    assert "refusing to load samples file" in err and "as unsafe" in err and "nothing in it was run" in err
    assert "weights_only=False" not in err and "will likely succeed" not in err
    assert not marker.exists()


def test_a_bare_pickle_is_called_a_bare_pickle(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bare = tmp_path / "bare.pt"
    bare.write_bytes(pickle.dumps({"format": checkpoints.FORMAT, "x": [1, 2]}, protocol=4))
    with pytest.raises(checkpoints.CheckpointError, match=r"is a bare pickle \(protocol 4\), not a file "
                       r"written by torch.save"):
        checkpoints.load(bare)
    status, _, err = run(capsys, "fmd", "score", str(bare))
    assert status == 1 and "bare pickle" in err and "weights_only=False" not in err
    legacy = tmp_path / "legacy.pt"
    torch.save({"format": checkpoints.FORMAT, "config": {}, "model": {}}, legacy,
               _use_new_zipfile_serialization=False)
    assert checkpoints.load(legacy)["config"] == {}, "torch.save's legacy format is still read"
    legacy.write_bytes(legacy.read_bytes()[:40])
    with pytest.raises(checkpoints.CheckpointError, match="not a readable checkpoint"):
        checkpoints.load(legacy)


# ---------------------------------------------------------------- 8. usage errors exit 2
def test_steps_above_T_and_a_folder_as_checkpoint_are_usage_errors(capsys: pytest.CaptureFixture[str],
                                                                    tmp_path: Path) -> None:
    status, _, err = run(capsys, "sample", "--pretrained", "mnist-ddpm", "--sample-steps", "5000",
                         "--out", str(tmp_path / "x.png"))
    assert status == 2 and "--sample-steps must be an integer in [1, 1000] or None, got 5000" in err
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    checkpoints.save({"config": {}, "model": {}}, tmp_path / "run" / "checkpoints" / "last.pt")
    status, _, err = run(capsys, "sample", "--checkpoint", str(tmp_path / "run"))
    assert status == 2 and "is a folder, not a checkpoint file; did you mean" in err
    assert str(tmp_path / "run" / "checkpoints" / "last.pt") in err


def test_a_sampler_that_cannot_work_is_refused_before_training(capsys: pytest.CaptureFixture[str],
                                                               tmp_path: Path) -> None:
    status, _, err = run(capsys, "train", "--preset", "ddpm-default", "--degradation", "blur",
                         "--predict", "x0", "--out", str(tmp_path / "r"), *TINY)
    assert status == 2 and "DDPMSampler needs a denoiser for GaussianNoise" in err
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------- 9. the network's output shape
class _ThreeChannels(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 1)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return self.conv(x)  # type: ignore[no-any-return]


def test_a_network_whose_output_does_not_match_its_input_is_refused_naming_both_shapes() -> None:
    den = Denoiser(_ThreeChannels(), GaussianNoise(Schedule.preset("short")), predict="eps")
    x0 = torch.rand(2, 1, 28, 28)
    with pytest.raises(ValueError, match=r"shaped like its input x_t \(2, 1, 28, 28\), got \(2, 3, 28, 28\)"):
        den.loss(x0)
    with pytest.raises(ValueError, match=r"net must be an nn.Module with parameters .*got function"):
        Denoiser(lambda x, t: x, GaussianNoise(), predict="eps")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"got an nn.Module without parameters"):
        Denoiser(nn.Identity(), GaussianNoise(), predict="eps")
    assert Denoiser(nets.CNN(channels=[4, 4]), GaussianNoise()).loss(x0).isfinite()


# ---------------------------------------------------------------- 10. what a run records and says at start
def test_every_run_records_its_image_shape_and_says_how_many_images_an_epoch_leaves_out(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = tmp_path / "pictures"
    folder.mkdir()
    pixels = torch.randint(0, 256, (300, 8, 8, 3), generator=torch.Generator().manual_seed(3),
                           dtype=torch.uint8)
    for i, picture in enumerate(pixels):
        Image.fromarray(picture.numpy(), mode="RGB").save(folder / f"{i:03d}.png")
    TrainConfig.from_dict({"net_kwargs": {"channels": [4, 4]}}).save(tmp_path / "tiny.toml")
    status, _, err = run(capsys, "train", "--preset", "ddpm-short", "--config", str(tmp_path / "tiny.toml"),
                         "--data", str(folder), "--image-size", "8", "--batch-size", "128", "--epochs", "1",
                         "--sample-every", "0", "--device", "cpu", "--out", str(tmp_path / "folder-run"))
    assert status == 0, err
    assert "300 images, 2 steps per epoch (256 images: 44 left out of each, other ones each time)" in err
    saved = TrainConfig.load(tmp_path / "folder-run" / "config.toml")
    assert (saved.channels, saved.image_size) == (3, 8), "a folder's default channels, recorded"

    config = TrainConfig.preset("ddpm-short", **{**TINY_CONFIG, "batch_size": 128})
    trainer = Trainer(config, tmp_path / "memory-run", images=pixels[:256].permute(0, 3, 1, 2) / 255)
    trainer.fit()
    assert "256 images, 2 steps per epoch, " in capsys.readouterr().err, "none left out: not a word"
    assert (trainer.config.channels, trainer.config.image_size) == (3, 8)


# ---------------------------------------------------------------- 13. instant --help and --version
def test_help_and_version_do_not_import_pytorch() -> None:
    code = ("import sys\nfrom colddiff.cli import main\n"
            "for argv in (['--version'], ['--help'], ['train', '--help'], ['sample', '--help']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "heavy = sorted(m for m in ('torch', 'torchvision', 'numpy', 'scipy') if m in sys.modules)\n"
            "print('HEAVY', heavy)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "HEAVY []", result.stdout[-500:]
    assert "--overwrite" in result.stdout and "ddpm-default" in result.stdout
