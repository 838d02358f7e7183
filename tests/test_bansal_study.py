"""Bansal et al.'s MNIST restoration study: exact scores with a perfect restorer, the pipeline on
a tiny budget (results, figures, report, resume), and the CLI's study options."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import X0Oracle, run_cli
from torch import Tensor

from colddiff import Denoiser, data, degradations, fmd, metrics, pretrained
from colddiff.config import TrainConfig, build_denoiser
from colddiff.study import bansal


def test_each_preset_is_the_degradation_and_length_the_study_documents() -> None:
    built = {name: build_denoiser(TrainConfig.preset(name)).degradation for name in bansal.MODELS}
    assert [(type(d).__name__, d.num_timesteps) for d in built.values()] == [
        ("Blur", 20), ("Inpaint", 50), ("SuperResolution", 2)]
    # Only inpainting's source (its mask centres) is side information a restorer is given.
    assert [d.source_is_given for d in built.values()] == [False, True, False]
    assert not degradations.create("gaussian").source_is_given
    assert not degradations.Blur(noise=0.1).source_is_given  # its noise is what restoration removes


def oracle_model(preset: str, clean: Tensor) -> pretrained.Pretrained:
    """The study's model for ``preset`` with a perfect network for the batch ``clean``."""
    config = TrainConfig.preset(preset)
    degradation = build_denoiser(config).degradation
    return pretrained.Pretrained(preset, config, Denoiser(X0Oracle(clean), degradation, predict="x0"), {})


@pytest.mark.parametrize("preset", bansal.MODELS)
def test_a_perfect_restorer_scores_perfectly_and_the_degraded_row_is_scored_as_degraded(
        preset: str, data_dir: Path) -> None:
    test = data.mnist(train=False, limit=24).images
    clean, reference = test[:12], test[12:]
    model = oracle_model(preset, clean)
    result = bansal.evaluate(model, clean, reference, seed=3)
    images, scores = result["images"], result["scores"]
    torch.testing.assert_close(images["direct"], clean, rtol=0, atol=0)
    torch.testing.assert_close(images["sampled"], clean, rtol=0, atol=1e-6)
    for row in ("direct", "sampled"):
        assert scores[row]["ssim"] == pytest.approx(1.0, abs=1e-5)
        assert scores[row]["rmse"] == pytest.approx(0.0, abs=1e-6)
        assert scores[row]["fmd"] == pytest.approx(0.0, abs=1e-3)
    # The degraded row: the clean digits degraded to T with the seed's source, scored independently.
    degradation = model.denoiser.degradation
    source = degradation.sample_source(clean, generator=torch.Generator().manual_seed(3))
    degraded = degradation.degrade(clean, degradation.num_timesteps, source).clamp(0, 1)
    torch.testing.assert_close(images["degraded"], degraded, rtol=0, atol=0)
    assert scores["degraded"] == pytest.approx({
        "fmd": fmd.distance(degraded, clean), "ssim": float(metrics.ssim(degraded, clean).mean()),
        "psnr": float(metrics.psnr(degraded, clean).mean()),
        "rmse": float(metrics.rmse(degraded, clean).mean())})
    assert scores["degraded"]["ssim"] < 0.75 and scores["degraded"]["rmse"] > 0.1
    assert result["real_fmd"] == pytest.approx(fmd.distance(reference, clean))


def test_restoring_in_batches_restores_each_image_as_in_one_batch(data_dir: Path) -> None:
    torch.manual_seed(0)
    model = pretrained.Pretrained("inpaint", TrainConfig.preset("mnist-inpaint"),
                                  build_denoiser(TrainConfig.preset("mnist-inpaint",
                                                                    net_kwargs={"channels": 8})).eval(), {})
    test = data.mnist(train=False, limit=14).images
    whole = bansal.evaluate(model, test[:7], test[7:], batch_size=7)
    parts = bansal.evaluate(model, test[:7], test[7:], batch_size=3)  # the centres are sliced with the images
    for row in bansal.ROWS:
        torch.testing.assert_close(parts["images"][row], whole["images"][row], rtol=0, atol=1e-5)


def test_pretrained_degrade_gives_the_restorer_only_side_information(data_dir: Path) -> None:
    clean = data.mnist(train=False, limit=3).images
    inpaint = oracle_model("mnist-inpaint", clean)
    degraded, centres = inpaint.degrade(clean, 50, seed=1)
    deg = inpaint.denoiser.degradation
    expected = deg.sample_source(clean, generator=torch.Generator().manual_seed(1))
    assert centres is not None and torch.equal(centres, expected)
    torch.testing.assert_close(degraded, deg.degrade(clean, 50, expected), rtol=0, atol=0)
    noisy = pretrained.Pretrained("noisy", TrainConfig(degradation="blur", predict="x0", sampler="cold"),
                                  Denoiser(X0Oracle(clean), degradations.Blur(noise=0.1), predict="x0"), {})
    degraded, hidden = noisy.degrade(clean, 20, seed=1)
    assert hidden is None and not torch.equal(degraded, degradations.Blur().degrade(clean, 20))


def test_a_tiny_study_writes_results_figures_and_report_and_resumes(
        tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["reproduce", "--study", "bansal-mnist", "--quick", "--out", str(tmp_path), "--epochs", "1",
            "--limit-train", "128", "--n-test", "6", "--device", "cpu", "--quiet"]
    status, out, err = run_cli(capsys, *argv)
    assert status == 0, err
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["study"] == "bansal-mnist" and list(results["models"]) == list(bansal.MODELS)
    for preset, summary in results["models"].items():
        trained = (summary["n_test"], summary["seed"], summary["epochs"], summary["limit_train"])
        assert trained == (6, 0, 1, 128)
        assert summary["precision"] == "fp32" and summary["ema"] is False  # 1 step < ema_start
        for row in bansal.ROWS:
            assert sorted(summary["scores"][row]) == ["fmd", "psnr", "rmse", "ssim"]
            assert all(math.isfinite(v) for v in summary["scores"][row].values()), (preset, row)
        saved = torch.load(tmp_path / "models" / preset / "final.pt", weights_only=True)
        assert saved["clean"].shape == saved["sampled"].shape == (6, 1, 28, 28)
    figures = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert figures == [f"bansal-{preset}.png" for preset in bansal.MODELS]
    report = (tmp_path / "report.md").read_text()
    for preset in bansal.MODELS:
        assert f"| {preset} |" in report and f"figures/bansal-{preset}.png" in report
    assert "How this differs from Bansal et al." in report and "3 figures" in out
    assert "| mnist-deblur | 1 | 128 | fp32 | no |" in report
    assert "**Barely trained:** mnist-deblur, mnist-inpaint, mnist-superres" in report
    saved = json.loads((tmp_path / "options.json").read_text())
    assert (saved["epochs"], saved["limit_train"], saved["n_test"]) == (1, 128, 6)

    # Not overwritten; --resume keeps finished models, with the saved options (no --quick, no
    # --limit-train or --n-test given again); --figures-only finds the study by itself.
    assert run_cli(capsys, *argv)[0] == 2
    final = tmp_path / "models" / "mnist-inpaint" / "final.pt"
    stamp = final.stat().st_mtime_ns
    status, out, _ = run_cli(capsys, "reproduce", "--out", str(tmp_path), "--resume", "--device", "cpu")
    assert status == 0 and f"resuming with the options of {tmp_path / 'options.json'}" in out
    assert "mnist-inpaint: kept (1 epoch(s), scored on 6 digits)" in out
    assert final.stat().st_mtime_ns == stamp, "finished models are not retrained"
    (tmp_path / "figures" / "bansal-mnist-deblur.png").unlink()
    assert run_cli(capsys, "reproduce", "--out", str(tmp_path), "--figures-only")[0] == 0
    assert (tmp_path / "figures" / "bansal-mnist-deblur.png").exists()
    # The folder's study is inferred, and another one is refused.
    status, _, err = run_cli(capsys, "reproduce", "--study", "report", "--out", str(tmp_path), "--resume")
    assert status == 2 and f"{tmp_path} holds the study 'bansal-mnist', not --study report" in err

    # Asked for other digits, a finished model is scored again (not retrained: same epochs).
    checkpoint = tmp_path / "models" / "mnist-inpaint" / "checkpoints" / "last.pt"
    trained = checkpoint.stat().st_mtime_ns
    status, _, err = run_cli(capsys, "reproduce", "--quick", "--resume", "--out", str(tmp_path), "--models",
                             "mnist-inpaint", "--epochs", "1", "--limit-train", "128", "--n-test", "4",
                             "--device", "cpu", "--quiet")
    assert status == 0, err
    assert checkpoint.stat().st_mtime_ns == trained and final.stat().st_mtime_ns != stamp
    results = json.loads((tmp_path / "results.json").read_text())
    assert list(results["models"]) == list(bansal.MODELS), "models finished earlier stay in the results"
    assert [results["models"][name]["n_test"] for name in bansal.MODELS] == [6, 4, 6]


def test_a_model_trained_beforehand_by_its_preset_is_evaluated_not_retrained(
        tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "models" / "mnist-superres"
    status, _, err = run_cli(capsys, "train", "--preset", "mnist-superres", "--epochs", "1", "--limit-train",
                             "128", "--sample-every", "0", "--device", "cpu", "--out", str(folder), "--quiet")
    assert status == 0, err
    checkpoint = folder / "checkpoints" / "last.pt"
    stamp = checkpoint.stat().st_mtime_ns
    status, _, err = run_cli(capsys, "reproduce", "--study", "bansal-mnist", "--quick", "--resume", "--out",
                             str(tmp_path), "--models", "mnist-superres", "--limit-train", "128",
                             "--n-test", "4", "--device", "cpu", "--quiet")
    assert status == 0, err
    assert checkpoint.stat().st_mtime_ns == stamp
    assert list(json.loads((tmp_path / "results.json").read_text())["models"]) == ["mnist-superres"]

    # Asked for more epochs, it trains on from its checkpoint and is scored again.
    status, _, err = run_cli(capsys, "reproduce", "--quick", "--resume", "--out", str(tmp_path), "--epochs",
                             "2", "--limit-train", "128", "--n-test", "4", "--device", "cpu", "--quiet",
                             "--models", "mnist-superres")
    assert status == 0, err
    summary = json.loads((tmp_path / "results.json").read_text())["models"]["mnist-superres"]
    assert summary["epochs"] == 2 and summary["optimiser_steps"] == 2


@pytest.mark.parametrize(("argv", "message"), [
    (["--study", "bansal-mnist", "--full-n", "5"], "--full-n is an option of --study report, not of --study "
                                                   "bansal-mnist"),
    (["--n-test", "5"], "--n-test is an option of --study bansal-mnist, not of --study report"),
    (["--study", "bansal-mnist", "--models", "ddpm-short"],
     "--models must be among ['mnist-deblur', 'mnist-inpaint', 'mnist-superres'], got ['ddpm-short']"),
    (["--models", "mnist-deblur"], "--models must be among ['ddpm-default'"),
    (["--study", "bansal"],
     "--study must be one of ['report', 'bansal-mnist', 'cold-generation'], got 'bansal'"),
    (["--study", "bansal-mnist", "--n-test", "5001"], "--n-test must be an integer in [2, 5000] (the next"),
    (["--study", "bansal-mnist", "--precision", "fp8"], "--precision must be one of"),
    (["--study", "cold-generation", "--n-test", "5"],
     "--n-test is an option of --study bansal-mnist, not of --study cold-generation"),
    (["--n-samples", "5"], "--n-samples is an option of --study cold-generation, not of --study report"),
    (["--study", "cold-generation", "--models", "ddpm-short"], "--models must be among ['gaussian', "),
    (["--study", "cold-generation", "--n-samples", "1"], "--n-samples: must be >= 2"),
])
def test_study_options_are_checked_against_the_study(argv: list[str], message: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run_cli(capsys, "reproduce", "--out", str(tmp_path), *argv)
    assert status == 2 and message in err
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize(("changes", "message"), [
    ({"models": ("mnist-deblur", "ddpm-short")}, "models must be among"),
    ({"models": ()}, "models must be among"),
    ({"n_test": 5001}, r"n_test must be an integer in \[2, 5000\]"),
    ({"n_test": 1}, r"n_test must be an integer in \[2, 5000\]"),
    ({"epochs": 0}, "epochs must be a positive integer, got 0"),
    ({"precision": "fp8"}, "precision must be one of"),
])
def test_study_options_from_python_are_checked(changes: dict[str, object], message: str,
                                               tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=message):
        bansal.BansalOptions(out=tmp_path, **changes)  # type: ignore[arg-type]
