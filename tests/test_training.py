"""The Trainer: checkpoints that survive kills, exact resume, bad files, non-finite losses."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from colddiff import Schedule, checkpoints, degradations
from colddiff.config import TrainConfig
from colddiff.degradations import GaussianNoise, registry
from colddiff.denoisers import Denoiser
from colddiff.training import ConfigMismatchError, NonFiniteLossError, NothingToResumeError, Trainer

# precision fp32: some of these runs train in child processes, where the tests' fixture that
# makes "auto" mean fp32 does not reach.
TINY = {"net_kwargs": {"channels": [4, 4]}, "limit_train": 256, "batch_size": 32,
        "sample_every": 0, "epochs": 2, "precision": "fp32"}


def tiny(preset: str = "ddpm-short", **changes: object) -> TrainConfig:
    return TrainConfig.preset(preset, **{**TINY, **changes})


def losses(run: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_run_leaves_its_folder(tmp_path: Path, data_dir: Path) -> None:
    config = tiny(ema=0.9, sample_every=1, sample_n=4, sample_steps=5, keep_checkpoints=True)
    history = Trainer(config, tmp_path, quiet=True).fit()
    assert [r["epoch"] for r in history] == [1, 2]
    assert all(r["loss"] > 0 and r["images_per_s"] > 0 and r["wall_time_s"] > 0 for r in history)
    # Every run records its images' shape, MNIST's own here.
    assert TrainConfig.load(tmp_path / "config.toml") == config.replace(channels=1, image_size=28)
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["epoch-001.png", "epoch-002.png"]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "epoch-001.pt", "epoch-002.pt", "last.pt"]
    state = checkpoints.load(tmp_path / "checkpoints" / "last.pt")
    assert state["epoch"] == 2 and state["step"] == 16 and state["colddiff_version"] == "0.1.0"
    assert state["ema"] is not None and state["config"] == config.replace(channels=1, image_size=28).to_dict()
    assert set(state["rng"]) >= {"generator", "torch"}


def test_resumed_run_has_the_loss_curve_of_an_uninterrupted_one(tmp_path: Path, data_dir: Path) -> None:
    config = tiny(epochs=3, ema=0.95)
    Trainer(config, tmp_path / "straight", quiet=True).fit()
    Trainer(config.replace(epochs=1), tmp_path / "resumed", quiet=True).fit()
    Trainer(config, tmp_path / "resumed", quiet=True).fit(resume=True)
    assert losses(tmp_path / "resumed") == pytest.approx(losses(tmp_path / "straight"), rel=1e-6)
    a = checkpoints.load(tmp_path / "straight" / "checkpoints" / "last.pt")
    b = checkpoints.load(tmp_path / "resumed" / "checkpoints" / "last.pt")
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=1e-5, atol=1e-6)
    for key in a["ema"]:
        torch.testing.assert_close(a["ema"][key], b["ema"][key], rtol=1e-5, atol=1e-6)


def test_a_run_killed_mid_epoch_resumes_to_the_same_curve(tmp_path: Path, data_dir: Path) -> None:
    config = tiny(epochs=2, checkpoint_every=3, limit_train=512)
    config.save(tmp_path / "config.toml")
    command = [sys.executable, "-m", "colddiff", "train", "--config", str(tmp_path / "config.toml"),
               "--quiet", "--device", "cpu"]
    subprocess.run([*command, "--out", str(tmp_path / "straight")], check=True, timeout=300)

    killed = tmp_path / "killed"
    process = subprocess.Popen([*command, "--out", str(killed)])
    last = killed / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if last.exists() and checkpoints.load(last)["step"] >= 6:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    state = checkpoints.load(last)  # whatever moment the kill hit, last.pt is whole
    assert state["step"] >= 3
    subprocess.run([*command, "--out", str(killed), "--resume"], check=True, timeout=300)
    assert losses(killed) == pytest.approx(losses(tmp_path / "straight"), rel=1e-6)


KILL_WRITER = """
import sys, torch
from colddiff import checkpoints
path = sys.argv[1]
version = 0
while True:
    version += 1
    checkpoints.save({"version": version, "data": torch.full((2_000_000,), float(version))}, path)
    print(version, flush=True)
"""


def test_a_checkpoint_killed_while_writing_leaves_the_last_good_one(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    for attempt in range(5):
        writer = subprocess.Popen([sys.executable, "-c", KILL_WRITER, str(path)],
                                  stdout=subprocess.PIPE, text=True)
        assert writer.stdout is not None
        for _ in range(2 + attempt):  # let a few complete writes happen
            writer.stdout.readline()
        time.sleep(0.013 * attempt)  # then kill at varying moments within a write
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        state = checkpoints.load(path, required=("version", "data"))
        assert torch.all(state["data"] == state["version"])
    assert not [p for p in tmp_path.iterdir() if p.name != "last.pt" and not p.name.endswith(".tmp")]


def test_a_malicious_checkpoint_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pt"
    torch.save({"format": checkpoints.FORMAT, "config": {}, "model": Payload()}, evil)
    with pytest.raises(checkpoints.CheckpointError, match=r"refusing to load.*weights_only=True"):
        checkpoints.load(evil)
    assert not marker.exists()


def test_corrupt_foreign_and_incomplete_files_get_clear_errors(tmp_path: Path) -> None:
    good = checkpoints.save({"config": {}, "model": {"w": torch.ones(1000)}}, tmp_path / "good.pt")
    (tmp_path / "truncated.pt").write_bytes(good.read_bytes()[:500])
    (tmp_path / "text.pt").write_text("not a checkpoint")
    torch.save({"model": {}}, tmp_path / "foreign.pt")
    checkpoints.save({"model": {}}, tmp_path / "incomplete.pt")
    for name, message in [("truncated.pt", "truncated"), ("text.pt", "not a readable"),
                          ("foreign.pt", "not a colddiff checkpoint"),
                          ("incomplete.pt", r"lacks \['config'\]"), ("missing.pt", "does not exist")]:
        with pytest.raises(checkpoints.CheckpointError, match=message):
            checkpoints.load(tmp_path / name)


def test_non_finite_loss_stops_with_epoch_and_step_and_keeps_the_checkpoint(
        tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Trainer(tiny(epochs=1), tmp_path, quiet=True).fit()
    before = (tmp_path / "checkpoints" / "last.pt").read_bytes()
    real_loss = Denoiser.loss
    calls = {"n": 0}

    def exploding(self, x0, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        loss = real_loss(self, x0, **kwargs)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(Denoiser, "loss", exploding)
    with pytest.raises(NonFiniteLossError, match=r"nan at epoch 2, step 11 .*last good checkpoint"):
        Trainer(tiny(epochs=2), tmp_path, quiet=True).fit(resume=True)
    assert (tmp_path / "checkpoints" / "last.pt").read_bytes() == before


def test_resume_refuses_a_different_model(tmp_path: Path, data_dir: Path) -> None:
    Trainer(tiny(epochs=1), tmp_path, quiet=True).fit()
    with pytest.raises(ConfigMismatchError, match=r"net_kwargs: checkpoint has .*\[4, 4\].*\[8, 8\]"):
        Trainer(tiny(net_kwargs={"channels": [8, 8]}), tmp_path, quiet=True).fit(resume=True)
    with pytest.raises(ConfigMismatchError, match="schedule"):
        Trainer(tiny("ddpm-default"), tmp_path, quiet=True).fit(resume=True)
    with pytest.raises(ConfigMismatchError, match="degradation"):
        Trainer(tiny("fashion-cold", schedule=tiny().schedule), tmp_path, quiet=True).fit(resume=True)
    with pytest.raises(NothingToResumeError, match="holds no run to resume"):
        Trainer(tiny(), tmp_path / "elsewhere", quiet=True).fit(resume=True)


def test_config_round_trips_and_rejects_bad_values(tmp_path: Path) -> None:
    for preset in ("ddpm-default", "ddpm-long", "ddpm-short", "fashion-cold"):
        config = TrainConfig.preset(preset, ema=0.999, limit_train=100)
        config.save(tmp_path / "c.toml")
        assert TrainConfig.load(tmp_path / "c.toml") == config
    assert TrainConfig.preset("ddpm-long").schedule == {
        "kind": "linear", "beta_start": 1e-4, "beta_end": 0.004, "num_timesteps": 5000}
    fashion = TrainConfig.preset("fashion-cold")
    assert (fashion.degradation, fashion.predict, fashion.sampler, fashion.sampler_kwargs) == (
        "fashion_mnist", "x0", "cold", {"algorithm": 2, "source": "fixed"})
    assert TrainConfig().net_kwargs == {"channels": [16, 32, 64, 32, 16]}
    for changes, argument in [({"epochs": 0}, "epochs"), ({"lr": -1.0}, "lr"), ({"ema": 1.0}, "ema"),
                              ({"predict": "v2"}, "predict"), ({"net": "resnet"}, "net"),
                              ({"sampler": "euler"}, "sampler"), ({"limit_train": 0}, "limit_train")]:
        with pytest.raises(ValueError, match=argument):
            TrainConfig(**changes)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"unknown config keys \['epoch'\]"):
        TrainConfig.from_dict({"epoch": 3})
    (tmp_path / "bad.toml").write_text("epochs = = 3")
    with pytest.raises(ValueError, match="not valid TOML"):
        TrainConfig.load(tmp_path / "bad.toml")
    with pytest.raises(ValueError, match="preset must be one of"):
        TrainConfig.preset("ddpm-huge")


def test_warmup_ramps_the_learning_rate(tmp_path: Path, data_dir: Path) -> None:
    trainer = Trainer(tiny(epochs=1, warmup=100, lr=1e-3), tmp_path, quiet=True)
    trainer.fit()
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * 8 / 100)


def test_ema_starts_from_the_weights_at_ema_start(tmp_path: Path, data_dir: Path) -> None:
    trainer = Trainer(tiny(epochs=1, ema=0.5, ema_start=8), tmp_path / "a", quiet=True)
    trainer.fit()  # 256 images / batch 32 = 8 steps: the average restarts at the last one
    assert trainer.ema is not None and trainer.sampling_denoiser().net is trainer.ema.module
    for key, value in trainer.net.state_dict().items():
        torch.testing.assert_close(trainer.ema.module.state_dict()[key], value, msg=key)
    late = Trainer(tiny(epochs=1, ema=0.5, ema_start=100), tmp_path / "b", quiet=True)
    late.fit()
    assert late.sampling_denoiser() is late.denoiser, "before ema_start, sampling uses the raw weights"


def test_a_time_budget_stops_mid_epoch_and_the_run_resumes_to_the_same_curve(
        tmp_path: Path, data_dir: Path) -> None:
    config = tiny(epochs=2)
    Trainer(config, tmp_path / "straight", quiet=True).fit()
    history = Trainer(config.replace(max_minutes=1e-6), tmp_path / "budget", quiet=True).fit()
    assert len(history) == 1 and history[0]["partial"] and history[0]["batches"] == 1
    assert checkpoints.load(tmp_path / "budget" / "checkpoints" / "last.pt")["batch_in_epoch"] == 1
    Trainer(config, tmp_path / "budget", quiet=True).fit(resume=True)
    assert losses(tmp_path / "budget") == pytest.approx(losses(tmp_path / "straight"), rel=1e-6)


def test_resuming_a_run_whose_time_budget_is_spent_keeps_its_metrics_and_says_why(
        tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tiny(epochs=2, max_minutes=1e-6)
    Trainer(config, tmp_path, quiet=True).fit()
    before = (tmp_path / "metrics.jsonl").read_text()
    assert json.loads(before)["partial"]
    capsys.readouterr()
    assert Trainer(config, tmp_path).fit(resume=True) == []
    assert (tmp_path / "metrics.jsonl").read_text() == before
    assert re.search(r"the time budget, max_minutes = 1e-06, is used up \([0-9.]+ minutes trained over "
                     r"all sessions\): nothing to train; resume with a larger max_minutes, or none",
                     capsys.readouterr().err)


def test_a_time_budget_is_used_in_full(tmp_path: Path, data_dir: Path) -> None:
    """The run stops only once its counted wall time reaches the budget, also when checkpoints
    within the epoch have already added part of the epoch to the total."""
    config = tiny(epochs=10_000, max_minutes=0.04, checkpoint_every=1)
    history = Trainer(config, tmp_path, quiet=True).fit()
    assert history[-1]["wall_time_s"] >= 0.04 * 60  # partial, or the epoch ended right at the budget


def test_a_new_sampler_starts_without_the_old_options() -> None:
    config = TrainConfig.from_dict({"sampler": "cold",
                                    "sampler_kwargs": {"algorithm": 1, "source": "estimate"}})
    assert config.replace(sampler="ddim").sampler_kwargs == {}
    with pytest.raises(ValueError, match=r"unknown config keys \['algorithm'\]"):
        TrainConfig.from_dict({"sampler": "cold", "algorithm": 1})


def test_one_run_builds_its_degradation_once(tmp_path: Path, data_dir: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The degradation, denoiser and sampler are built once per Trainer: not again to check the
    config, nor for each sample grid, nor when the EMA weights take over the sampling."""
    monkeypatch.setattr(registry.REGISTRY, "_registered", dict(registry.REGISTRY._registered))
    built: list[GaussianNoise] = []

    @degradations.register("counted_noise")
    class CountedNoise(GaussianNoise):
        def __init__(self, schedule: Schedule | None = None,
                     image_shape: tuple[int, int, int] = (1, 28, 28)) -> None:
            super().__init__(schedule, image_shape=image_shape)
            built.append(self)

    config = tiny(degradation="counted_noise", ema=0.9, ema_start=4, checkpoint_every=3,
                  sample_every=1, sample_n=4, sample_steps=2)
    trainer = Trainer(config, tmp_path, quiet=True)
    sampler = trainer.sampler()
    history = trainer.fit()
    assert [record["epoch"] for record in history] == [1, 2]
    assert (tmp_path / "samples" / "epoch-002.png").exists()
    assert trainer.sample(2, 2).shape == (2, 1, 28, 28)
    assert trainer.sampler() is sampler and sampler.denoiser.net is trainer.ema.module  # type: ignore[union-attr]
    assert built == [trainer.degradation]
