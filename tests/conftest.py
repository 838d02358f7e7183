"""Shared test fixtures: the dataset folder, oracle networks and small helpers."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings
from torch import Tensor, nn

from colddiff.degradations import MixingDegradation

settings.register_profile(
    "default", deadline=None, max_examples=25,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
# Mutation testing runs the tests once per mutant: fewer examples there (docs/contributing.md).
settings.register_profile(
    "mutation", deadline=None, max_examples=5, derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("COLDDIFF_DATA_DIR", str(REPO.parent / "shared" / "data"))
# Reference statistics are cached per test session, never in the user's cache.
os.environ["COLDDIFF_CACHE_DIR"] = tempfile.mkdtemp(prefix="colddiff-test-cache-")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``cuda`` skip on machines without a CUDA GPU."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The dataset folder (``COLDDIFF_DATA_DIR``); tests needing real data skip without it."""
    root = Path(os.environ["COLDDIFF_DATA_DIR"]).resolve()
    if not (root / "MNIST" / "raw" / "train-images-idx3-ubyte").exists():
        pytest.skip(f"real MNIST not found under {root}; set COLDDIFF_DATA_DIR")
    return root


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``colddiff ARGV`` in-process: ``(exit status, stdout, stderr)``."""
    from colddiff.cli import main

    try:
        status = main(list(argv))
    except SystemExit as exit_:
        status = int(exit_.code or 0)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


class X0Oracle(nn.Module):
    """A perfect clean-image predictor for a known batch: always returns that batch."""

    def __init__(self, x0: Tensor) -> None:
        super().__init__()
        self.register_buffer("x0", x0)
        self.anchor = nn.Parameter(torch.zeros((), dtype=x0.dtype))  # a device and dtype

    def forward(self, x_t: Tensor, t: Tensor) -> Tensor:
        return self.x0.expand_as(x_t).clone()


class EpsOracle(nn.Module):
    """The exact noise predictor when the data is the point mass at ``point``."""

    def __init__(self, degradation: MixingDegradation, point: Tensor) -> None:
        super().__init__()
        self.degradation = degradation
        self.register_buffer("point", point)
        self.anchor = nn.Parameter(torch.zeros((), dtype=point.dtype))

    def forward(self, x_t: Tensor, t: Tensor) -> Tensor:
        steps = torch.round(t * self.degradation.num_timesteps).long()
        return self.degradation.source_from_x0(x_t, steps, self.point.expand_as(x_t))
