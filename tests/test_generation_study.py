"""The cold-generation study (issue 24): every recipe at equal compute, is what its table says,
and the pipeline on a tiny budget (results, figure, report, resume) and its options."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import run_cli

from colddiff import presets
from colddiff.config import build_denoiser, build_sampler
from colddiff.degradations import Blur, Blurring, FashionMNISTMixing, GaussianNoise, Heat
from colddiff.samplers import ColdSampler, DDPMSampler, SoftSampler
from colddiff.study import generation
from colddiff.study.bansal import BansalOptions
from colddiff.study.generation import GenerationOptions, class_spread, recipe_config
from colddiff.study.models import ModelStudyOptions

#: Each recipe's degradation, its noise, loss and sampler, as the study documents them.
EXPECTED = {
    "gaussian": (GaussianNoise, 0.0, "mse", DDPMSampler),
    "mixing-cold": (FashionMNISTMixing, 0.0, "mse", ColdSampler),
    "mixing-noise": (FashionMNISTMixing, 0.05, "mse", ColdSampler),
    "blur-cold": (Blur, 0.0, "mse", ColdSampler),
    "blur-hot": (Blur, 0.05, "mse", ColdSampler),
    "heat": (Heat, 0.01, "mse", ColdSampler),
    "blurring": (Blurring, None, "mse", DDPMSampler),
    "mixing-soft": (FashionMNISTMixing, {"level": 0.5, "shape": "schedule"}, "soft", SoftSampler),
}


def test_the_recipes_are_the_issues_and_train_at_equal_compute(tmp_path: Path) -> None:
    assert generation.MODELS == tuple(EXPECTED) == presets.STUDIES["cold-generation"]
    options = GenerationOptions(out=tmp_path, epochs=3, limit_train=1000)
    configs = {name: recipe_config(name, options) for name in generation.MODELS}
    budget = {(c.epochs, c.limit_train, c.batch_size, c.lr, c.warmup, c.net, json.dumps(c.net_kwargs), c.ema,
               c.ema_start, json.dumps(c.schedule), c.seed, c.precision) for c in configs.values()}
    assert budget == {(3, 1000, 128, 5e-4, 500, "unet", '{"channels": 32, "blocks": 2, "attention": true}',
                       0.9995, 2000, json.dumps(presets.GENERATION_COMMON["schedule"]), 0, "fp32")}
    for name, (kind, noise, loss, sampler_kind) in EXPECTED.items():
        config = configs[name]
        denoiser = build_denoiser(config)
        deg = denoiser.degradation
        assert type(deg) is kind and denoiser.loss_name == loss == config.loss, name
        if noise is not None:
            assert deg.noise == noise, name
        assert type(build_sampler(config, denoiser)) is sampler_kind, name
    soft_levels = build_denoiser(configs["mixing-soft"]).degradation.noise_levels
    assert bool((soft_levels[1:] > soft_levels[:-1]).all()), "the soft sampler's noise steps add noise"
    assert configs["blur-hot"].sampler_kwargs == {"algorithm": 2, "source": "estimate"}
    assert configs["heat"].sampler_kwargs == {"source": "estimate", "fresh_noise": 1.25}
    assert [configs[name].sample_steps for name in generation.MODELS] == [50, 50, 50, 50, 50, 100, 50, 50]
    quick = GenerationOptions.quick(tmp_path)
    assert {recipe_config(name, quick).sample_steps for name in generation.MODELS} == {4}
    assert recipe_config("heat", quick).net_kwargs["channels"] == 8
    assert presets.GENERATION_COMMON["net_kwargs"]["channels"] == 32, "the shared table is not changed"


def test_the_class_spread_is_the_least_and_the_most_frequent_share() -> None:
    assert class_spread([10] * 10) == (0.1, 0.1)
    assert class_spread([0, 5, 15, 0, 0, 0, 0, 0, 0, 0]) == (0.0, 0.75)


def test_a_tiny_study_writes_results_figure_and_report_and_resumes(
        tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    models = ["gaussian", "blur-cold", "mixing-soft"]
    argv = ["reproduce", "--study", "cold-generation", "--quick", "--out", str(tmp_path), "--models", *models,
            "--limit-train", "128", "--n-samples", "8", "--device", "cpu", "--quiet"]
    status, out, err = run_cli(capsys, *argv)
    assert status == 0, err
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["study"] == "cold-generation" and list(results["models"]) == models
    for name, summary in results["models"].items():
        assert (summary["epochs"], summary["optimiser_steps"], summary["batch_size"]) == (1, 1, 128), name
        assert summary["n_samples"] == 8 and sum(summary["class_histogram"]) == 8
        assert (summary["min_class"], summary["max_class"]) == class_spread(summary["class_histogram"])
        assert math.isfinite(summary["fmd_ratio"]) and summary["fmd_ratio"] > 0
        assert summary["fmd_ratio"] == pytest.approx(summary["fmd"] / summary["train_baseline"])
        assert summary["network_calls"] == 4 and summary["ema"] is False
        saved = torch.load(tmp_path / "models" / name / "final.pt", weights_only=True)
        assert saved["samples"].shape == (8, 1, 28, 28)
    assert results["models"]["mixing-soft"]["loss"] == "soft"
    assert (tmp_path / "figures" / "cold-generation.png").exists()
    report = (tmp_path / "report.md").read_text()
    assert all(f"| {name} |" in report for name in models) and "| gaussian |" in report
    assert "| 1.00x |" in report and "figures/cold-generation.png" in report
    assert "**Barely trained:** gaussian, blur-cold, mixing-soft" in report

    # --resume keeps finished recipes; asked for another recipe it trains that one only.
    final = tmp_path / "models" / "gaussian" / "final.pt"
    stamp = final.stat().st_mtime_ns
    status, out, err = run_cli(capsys, "reproduce", "--out", str(tmp_path), "--resume", "--device", "cpu",
                               "--models", "gaussian", "heat")
    assert status == 0, err
    assert "gaussian: kept (1 epoch(s), 8 samples)" in out and "heat: training" in out
    assert final.stat().st_mtime_ns == stamp
    assert list(json.loads((tmp_path / "results.json").read_text())["models"]) == [
        "gaussian", "blur-cold", "heat", "mixing-soft"]


def test_study_options_from_python_are_checked_and_shared_with_bansals(tmp_path: Path) -> None:
    """The options every study of one model per folder shares are checked in one place."""
    assert issubclass(GenerationOptions, ModelStudyOptions) and issubclass(BansalOptions, ModelStudyOptions)
    refused = {"models": ((), "models must be among"),
               "epochs": (0, "epochs must be a positive integer, got 0"),
               "n_samples": (1, "n_samples must be an integer >= 2, got 1"),
               "channels": (True, "channels must be an integer >= 1, got True"),
               "sample_steps": (0, "sample_steps must be an integer >= 1 or None, got 0"),
               "precision": ("fp8", "precision must be one of")}
    for name, (value, message) in refused.items():
        with pytest.raises(ValueError, match=message):
            GenerationOptions(out=tmp_path, **{name: value})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"models must be among \['mnist-deblur'"):
        BansalOptions(out=tmp_path, models=("gaussian",))
