"""Ctrl-C and SIGTERM stop a run after its step with a checkpoint; resuming where nothing was kept.

The signals are real (``os.kill`` of this process, or of the CLI's), sent from within a step or
an epoch hook; the tests need no dataset (images from Python, or a folder of PNG files).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import run_cli
from PIL import Image
from torch import Tensor

from colddiff import checkpoints
from colddiff.config import TrainConfig
from colddiff.training import NothingToResumeError, Trainer, TrainingInterrupted, interrupts
from colddiff.training.distributed import Processes

# precision fp32: some of these runs train in child processes, where the tests' fixture that
# makes "auto" mean fp32 does not reach.
TINY = {"net_kwargs": {"channels": [4, 4]}, "batch_size": 16, "sample_every": 0, "epochs": 2,
        "precision": "fp32"}
STEPS_PER_EPOCH = 8
IMAGES = torch.rand(STEPS_PER_EPOCH * 16, 1, 8, 8, generator=torch.Generator().manual_seed(0))


def tiny(**changes: Any) -> TrainConfig:
    return TrainConfig.preset("ddpm-short", **{**TINY, **changes})


def trainer(out: Path, config: TrainConfig | None = None, **options: Any) -> Trainer:
    return Trainer(config or tiny(), out, quiet=True, images=IMAGES, device="cpu", **options)


def records(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def weights(run: Path) -> dict[str, Tensor]:
    return checkpoints.load(run / "checkpoints" / "last.pt")["model"]  # type: ignore[no-any-return]


def write_folder(folder: Path, n: int) -> None:
    """``n`` small grey PNG files."""
    folder.mkdir(parents=True)
    pixels = torch.randint(0, 256, (n, 8, 8), generator=torch.Generator().manual_seed(2), dtype=torch.uint8)
    for i, picture in enumerate(pixels):
        Image.fromarray(picture.numpy(), mode="L").save(folder / f"{i:04d}.png")


def signal_after_step(monkeypatch: pytest.MonkeyPatch, step: int, *numbers: signal.Signals) -> None:
    """Send this process ``numbers`` from within optimiser step ``step`` (counted from 1), once
    its weights are updated."""
    optimise = Trainer._optimise

    def optimise_then_signal(self: Trainer, loss: Tensor) -> None:
        optimise(self, loss)
        if self.step + 1 == step:
            for number in numbers:
                os.kill(os.getpid(), number)

    monkeypatch.setattr(Trainer, "_optimise", optimise_then_signal)


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_mid_epoch_stops_after_the_step_and_the_run_resumes_bit_identically(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, number: signal.Signals) -> None:
    trainer(tmp_path / "straight").fit()
    handlers = {n: signal.getsignal(n) for n in interrupts.SIGNALS}

    signal_after_step(monkeypatch, STEPS_PER_EPOCH + 3, number)
    with pytest.raises(TrainingInterrupted) as stopped:
        trainer(tmp_path / "stopped").fit()
    assert {n: signal.getsignal(n) for n in interrupts.SIGNALS} == handlers, "handlers restored"
    message = str(stopped.value)
    assert f"stopped by {number.name} after step 11" in message and "fit(resume=True)" in message
    state = checkpoints.load(tmp_path / "stopped" / "checkpoints" / "last.pt")
    assert (state["epoch"], state["step"], state["batch_in_epoch"]) == (1, 11, 3), "mid-epoch"
    assert records(tmp_path / "stopped")[-1].items() >= {"epoch": 2, "partial": True, "batches": 3}.items()

    monkeypatch.undo()
    trainer(tmp_path / "stopped").fit(resume=True)
    assert_same_run(tmp_path / "stopped", tmp_path / "straight")


def assert_same_run(run: Path, reference: Path) -> None:
    """The same loss curve and the same final weights, to the bit."""
    assert [r["loss"] for r in records(run)] == [r["loss"] for r in records(reference)]
    assert all(torch.equal(weights(reference)[key], value) for key, value in weights(run).items())


def test_a_second_signal_aborts_at_once_keeping_the_last_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(interrupts, "REPEAT_WINDOW_S", 0.0)
    signal_after_step(monkeypatch, STEPS_PER_EPOCH + 3, signal.SIGINT, signal.SIGINT)
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt) as aborted:
        trainer(tmp_path).fit()
    assert type(aborted.value) is KeyboardInterrupt, "not the clean stop"
    assert signal.getsignal(signal.SIGINT) is handler
    assert checkpoints.load(tmp_path / "checkpoints" / "last.pt")["step"] == STEPS_PER_EPOCH


def test_the_same_signal_delivered_twice_at_once_is_one_interrupt(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C reaches a torchrun worker from the terminal and from torchrun: one stop."""
    signal_after_step(monkeypatch, 3, signal.SIGINT, signal.SIGINT)
    with pytest.raises(TrainingInterrupted, match="after step 3"):
        trainer(tmp_path).fit()


def test_a_signal_during_the_hooks_stops_before_the_next_epoch_but_lets_the_last_epoch_end(
        tmp_path: Path) -> None:
    def interrupt(trainer: Trainer, epoch: int) -> dict[str, Any]:
        os.kill(os.getpid(), signal.SIGINT)
        return {"hooked": epoch}

    with pytest.raises(TrainingInterrupted, match=f"after step {STEPS_PER_EPOCH};"):
        trainer(tmp_path, hooks=[interrupt]).fit()
    assert [r["hooked"] for r in records(tmp_path)] == [1], "the epoch's record is whole"
    assert checkpoints.load(tmp_path / "checkpoints" / "last.pt")["batch_in_epoch"] == 0
    history = trainer(tmp_path, hooks=[interrupt]).fit(resume=True)
    assert [r["epoch"] for r in history] == [2], "the run ended anyway: no error"


def test_outside_the_main_thread_no_handler_is_installed() -> None:
    seen = []

    def look() -> None:
        with interrupts.Interrupts(Processes(), torch.device("cpu"), notify=False).caught():
            seen.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=look)
    thread.start()
    thread.join()
    assert seen == [signal.getsignal(signal.SIGINT)]


# ---------------------------------------------------------------- torchrun
RANK_SCRIPT = """
import json, os, signal, sys, torch
from colddiff.config import TrainConfig
from colddiff.training import Trainer, TrainingInterrupted
out = sys.argv[1]
optimise = Trainer._optimise

def optimise_then_signal(self, loss):  # a signal for rank 1 alone, within step 3
    optimise(self, loss)
    if self.processes.rank == 1 and self.step + 1 == 3:
        os.kill(os.getpid(), signal.SIGTERM)

Trainer._optimise = optimise_then_signal
trainer = Trainer(TrainConfig.load(os.path.join(out, "input.toml")), out, device="cpu", quiet=True)
try:
    trainer.fit()
except TrainingInterrupted as error:
    with open(os.path.join(out, f"rank{trainer.processes.rank}.json"), "w") as f:
        json.dump({"step": trainer.step, "message": str(error)}, f)
"""


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is unavailable")
def test_under_torchrun_a_signal_to_one_process_stops_all_after_the_same_step(tmp_path: Path) -> None:
    from test_distributed import torchrun

    write_folder(tmp_path / "pictures", 128)
    config = tiny(dataset=str(tmp_path / "pictures"), image_size=8, channels=1, batch_size=8)
    config.save(tmp_path / "input.toml")
    (tmp_path / "rank.py").write_text(RANK_SCRIPT)
    torchrun(str(tmp_path / "rank.py"), str(tmp_path))
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [rank["step"] for rank in ranks] == [3, 3]
    assert "stopped by another process's signal after step 3" in ranks[0]["message"]
    assert "stopped by SIGTERM after step 3" in ranks[1]["message"]
    state = checkpoints.load(tmp_path / "checkpoints" / "last.pt")
    assert (state["step"], state["batch_in_epoch"], state["world_size"]) == (3, 3, 2)


# ---------------------------------------------------------------- the command line
def test_ctrl_c_stops_the_cli_with_a_checkpoint_and_status_130_and_resume_goes_on(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder, out = tmp_path / "pictures", tmp_path / "run"
    write_folder(folder, 256)
    command = [sys.executable, "-m", "colddiff", "train", "--preset", "ddpm-short", "--data", str(folder),
               "--image-size", "8", "--channels", "1", "--batch-size", "16", "--epochs", "1000",
               "--checkpoint-every", "3", "--sample-every", "0", "--device", "cpu", "--out", str(out)]
    tiny_config = {"net_kwargs": {"channels": [4, 4]}, "precision": "fp32"}
    TrainConfig.from_dict(tiny_config).save(tmp_path / "tiny.toml")
    process = subprocess.Popen([*command, "--config", str(tmp_path / "tiny.toml")],
                               stderr=subprocess.PIPE, text=True)
    last, deadline = out / "checkpoints" / "last.pt", time.monotonic() + 120
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    state = checkpoints.load(last)
    assert state["step"] >= 3
    assert "SIGINT: stopping after this step with a checkpoint (interrupt again to abort at once)" in err
    resume = re.search(r"continue it with: (colddiff train --out \S+ --resume)", err)
    assert resume is not None and f"after step {state['step']};" in err, err

    epochs = ["--epochs", str(state["epoch"] + 1)]  # the open epoch, finished
    status, _, err = run_cli(capsys, *shlex.split(resume[1])[1:], *epochs, "--quiet", "--device", "cpu")
    assert status == 0, err
    assert checkpoints.load(last)["step"] == (state["epoch"] + 1) * 256 // 16
    assert not records(out)[-1].get("partial")


# ---------------------------------------------------------------- resuming where nothing was kept
def test_resume_where_a_run_stopped_before_its_first_checkpoint_starts_it_from_step_0(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = trainer(tmp_path / "straight").config
    trainer(tmp_path / "straight").fit()
    (tmp_path / "killed").mkdir()
    config.save(tmp_path / "killed" / "config.toml")  # all a run killed in its first epoch leaves
    Trainer(config, tmp_path / "killed", images=IMAGES, device="cpu").fit(resume=True)
    assert "holds no checkpoint (its run stopped before the first): starting it from step 0" in \
        capsys.readouterr().err
    assert_same_run(tmp_path / "killed", tmp_path / "straight")


def test_the_cli_resumes_a_run_killed_before_its_first_checkpoint_from_step_0(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_folder(tmp_path / "pictures", 32)
    (tmp_path / "run").mkdir()
    config = tiny(dataset=str(tmp_path / "pictures"), image_size=8, channels=1, epochs=1)
    config.save(tmp_path / "run" / "config.toml")
    status, _, err = run_cli(capsys, "train", "--out", str(tmp_path / "run"), "--resume", "--device", "cpu")
    assert status == 0 and "starting it from step 0" in err, err
    assert checkpoints.load(tmp_path / "run" / "checkpoints" / "last.pt")["step"] == 2


def test_resume_with_nothing_to_resume_says_how_to_start_afresh(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(NothingToResumeError, match=r"holds no run to resume .*without resume=True"):
        trainer(tmp_path / "empty").fit(resume=True)
    trainer(tmp_path / "run", tiny(epochs=1, keep_checkpoints=True)).fit()
    (tmp_path / "run" / "checkpoints" / "last.pt").unlink()
    with pytest.raises(NothingToResumeError, match=r"last.pt is missing.*overwrite=True.*copy "
                                                   r"checkpoints/epoch-001.pt to last.pt"):
        trainer(tmp_path / "run").fit(resume=True)

    status, _, err = run_cli(capsys, "train", "--preset", "ddpm-short", "--out", str(tmp_path / "none"),
                             "--resume", "--quiet", "--device", "cpu")
    assert status != 0 and "without --resume" in err and "resume=True" not in err, err
