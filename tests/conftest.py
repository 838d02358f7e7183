"""Shared test fixtures: the dataset folder, oracle networks and small helpers."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, settings
from torch import Tensor, nn

from colddiff.degradations import MixingDegradation
from colddiff.samplers import Sampler

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
# The project's own layout keeps the datasets beside the checkout; anywhere else, tests that need
# them skip (one summary line says so) unless COLDDIFF_DATA_DIR names a folder that holds them.
os.environ.setdefault("COLDDIFF_DATA_DIR", str(REPO.parent / "shared" / "data"))
DATA_ROOT = Path(os.environ["COLDDIFF_DATA_DIR"]).expanduser().resolve()
# Reference statistics are cached per test session, never in the user's cache.
os.environ["COLDDIFF_CACHE_DIR"] = tempfile.mkdtemp(prefix="colddiff-test-cache-")

NO_DATA = (f"needs real MNIST and Fashion-MNIST, which are not under {DATA_ROOT}: set COLDDIFF_DATA_DIR "
           "to a folder holding MNIST/raw and FashionMNIST/raw (torchvision's layout) to run it")


@pytest.fixture(autouse=True)
def _no_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """``precision = "auto"`` (the default) means fp32 in every test, on every CPU and GPU: a
    CPU with AVX-512 BF16 or AMX, or a GPU, would otherwise train and sample the tests' exact
    oracles (and the GPU's comparisons with the CPU) in bf16. Tests of ``"auto"`` itself patch
    the same probes to their own answer. Runs in child processes set ``precision`` themselves."""
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, probe, lambda: False, raising=False)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)


def _has_dataset(name: str) -> bool:
    return (DATA_ROOT / name / "raw" / "train-images-idx3-ubyte").exists()


def _refuse_downloads() -> None:
    """Make every torchvision download fail at once: the tests read data from disk or skip, and
    never reach the network (colddiff turns the failure into ``DatasetNotFoundError``)."""
    import importlib

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the colddiff tests never download datasets")

    for module in ("utils", "mnist", "cifar"):
        datasets_module = importlib.import_module(f"torchvision.datasets.{module}")
        for name in ("download_url", "download_and_extract_archive"):
            if hasattr(datasets_module, name):
                setattr(datasets_module, name, refuse)


_refuse_downloads()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``cuda`` skip on machines without a CUDA GPU."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
    """Every test that needs the datasets and lacks them is reported at one place with one reason
    (``-ra`` then prints a single line with their count): those that ask for ``data_dir``, and
    those that fail only because a dataset is missing (``DatasetNotFoundError``)."""
    from colddiff.data import DatasetNotFoundError

    report: pytest.TestReport = yield
    missing = call.excinfo is not None and call.excinfo.errisinstance(DatasetNotFoundError)
    skipped_for_data = report.skipped and NO_DATA in str(report.longrepr)
    if skipped_for_data or (missing and not (_has_dataset("MNIST") and _has_dataset("FashionMNIST"))):
        report.outcome = "skipped"
        report.longrepr = (str(Path(__file__)), 0, f"Skipped: {NO_DATA}")
    return report


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The dataset folder (``COLDDIFF_DATA_DIR``); tests needing real data skip without it."""
    if not (_has_dataset("MNIST") and _has_dataset("FashionMNIST")):
        pytest.skip(NO_DATA)
    return DATA_ROOT


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


class SmoothNet(nn.Module):
    """A stand-in network in float64 whose output is a smooth function of ``x_t`` and ``t / T``
    (plus ``offset``): a non-trivial oracle for step-by-step comparisons."""

    def __init__(self, offset: float = 0.0) -> None:
        super().__init__()
        self.offset = offset
        self.anchor = nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, x_t: Tensor, fraction: Tensor) -> Tensor:
        f = fraction.view(-1, 1, 1, 1).to(x_t.dtype)
        return torch.tanh(1.3 * x_t + 0.7 * f) - 0.4 * f * x_t.flip(-1) + self.offset + self.anchor


def trajectory(sampler: Sampler, x_T: Tensor, noise: list[Tensor], steps: int | None = None,
               **options: Any) -> Tensor:
    """``[x_T, ..., x_0]`` stacked: every state ``sampler`` visits from ``x_T``, with ``noise``
    injected in order (``options`` go to :meth:`~colddiff.samplers.Sampler.sample`)."""
    supply: Iterator[Tensor] = iter(noise)
    sampler.noise = lambda like, generator: next(supply)  # type: ignore[method-assign]
    states: list[Tensor] = []
    final = sampler.sample(x_T, steps, callback=lambda i, t, x_t, x0_hat: states.append(x_t.clone()),
                           **options)
    return torch.stack([*states, final])
