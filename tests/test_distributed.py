"""Two CPU processes under torchrun: identical weights on both ranks, and a resumable checkpoint."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from colddiff import checkpoints
from colddiff.config import TrainConfig

RANK_SCRIPT = """
import os, sys, torch
from colddiff.config import TrainConfig
from colddiff.training import Trainer
out = sys.argv[1]
trainer = Trainer(TrainConfig.load(os.path.join(out, "input.toml")), out, device="cpu", quiet=True)
trainer.fit()
torch.save(trainer.net.state_dict(), os.path.join(out, f"rank{trainer.processes.rank}.pt"))
"""


def torchrun(*args: str) -> None:
    executable = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    assert executable is not None
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([executable, "--standalone", "--nproc_per_node", "2", *args],
                            timeout=300, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"torchrun failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is unavailable")
def test_two_processes_end_with_identical_weights_and_resume(tmp_path: Path, data_dir: Path) -> None:
    config = TrainConfig.preset("ddpm-short", net_kwargs={"channels": [4, 4]}, limit_train=256,
                                batch_size=32, epochs=1, sample_every=0, precision="fp32")  # child processes
    config.save(tmp_path / "input.toml")
    (tmp_path / "rank.py").write_text(RANK_SCRIPT)
    torchrun(str(tmp_path / "rank.py"), str(tmp_path))

    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    state = checkpoints.load(tmp_path / "checkpoints" / "last.pt")
    assert state["world_size"] == 2
    assert state["step"] == 4, "256 images / 2 processes / batch 32 = 4 steps per epoch"
    for key in rank0:
        assert torch.equal(state["model"][key], rank0[key])

    torchrun("-m", "colddiff", "train", "--out", str(tmp_path), "--resume", "--epochs", "2",
             "--quiet", "--device", "cpu")
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2]
    assert checkpoints.load(tmp_path / "checkpoints" / "last.pt")["step"] == 8


FMD_SCRIPT = """
import json, os, sys, torch
import torch.distributed as dist
from colddiff import data, fmd
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
images = data.mnist(train=False).images[:2400]
metric = fmd.FMD()
metric.update(images[:1200][rank::world], real=True)     # each process streams its share
metric.update(images[1200:][rank::world], real=False)
value = metric.compute()
if rank == 0:
    with open(sys.argv[1], "w") as f:
        json.dump({"fmd": value}, f)
dist.destroy_process_group()
"""


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is unavailable")
def test_streaming_fmd_sums_statistics_across_processes(tmp_path: Path, data_dir: Path) -> None:
    from colddiff import data, fmd

    (tmp_path / "fmd.py").write_text(FMD_SCRIPT)
    torchrun(str(tmp_path / "fmd.py"), str(tmp_path / "out.json"))
    distributed = json.loads((tmp_path / "out.json").read_text())["fmd"]
    images = data.mnist(train=False).images[:2400]
    single = fmd.FMD()
    single.update(images[:1200], real=True)
    single.update(images[1200:], real=False)
    assert distributed == pytest.approx(single.compute(), rel=1e-6)
