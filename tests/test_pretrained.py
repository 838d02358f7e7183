"""Pretrained models: export from a checkpoint, SHA-256-checked float16 loading, sampling by name."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision import datasets

from colddiff import data, fmd, pretrained
from colddiff.cli import main
from colddiff.config import SAMPLING_FIELDS, TrainConfig, model_differences
from colddiff.degradations import PriorUnavailableError
from colddiff.training import Trainer


@pytest.fixture
def shipped(tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tiny model exported into a weights folder that stands in for the package's."""
    config = TrainConfig.preset("mnist-unet", net_kwargs={"channels": 8, "blocks": 1}, limit_train=128,
                                batch_size=64, epochs=1, sample_every=0, sample_steps=5, ema_start=0)
    Trainer(config, tmp_path / "run", quiet=True).fit()
    weights = tmp_path / "weights"
    pretrained.export(tmp_path / "run" / "checkpoints" / "last.pt", "tiny", weights,
                      card={"command": "test"})
    monkeypatch.setattr(pretrained, "weights_dir", lambda: weights)
    return weights


def test_export_and_load_round_trip(shipped: Path, tmp_path: Path) -> None:
    card = json.loads((shipped / "tiny.json").read_text())
    assert card["ema"] and card["command"] == "test" and card["epochs"] == 1
    assert pretrained.available() == ["tiny"]
    model = pretrained.load("tiny")
    reference = pretrained.from_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    for (key, ours), theirs in zip(model.denoiser.state_dict().items(),
                                   reference.denoiser.state_dict().values(), strict=True):
        torch.testing.assert_close(ours, theirs, atol=2e-3, rtol=2e-3, msg=key)  # float16 storage
    samples = model.sample(4)
    assert samples.shape == (4, 1, 28, 28) and torch.isfinite(samples).all()
    assert torch.equal(samples, model.sample(4)), "the same seed gives the same samples"


def test_altered_weights_and_unknown_names_are_refused(shipped: Path) -> None:
    weights = shipped / "tiny.pt"
    altered = bytearray(weights.read_bytes())
    altered[len(altered) // 2] ^= 0xFF
    weights.write_bytes(bytes(altered))
    with pytest.raises(pretrained.PretrainedError, match="SHA-256"):
        pretrained.load("tiny")
    with pytest.raises(pretrained.PretrainedError, match=r"name must be one of \['tiny'\]"):
        pretrained.load("mnist-gan")


def test_colddiff_list_models_shows_each_shipped_model_and_check_loads_it(
        shipped: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "models", "--check"]) == 0
    assert capsys.readouterr().out.splitlines() == ["tiny  shipped: gaussian, ddim sampler  [ok]"]
    weights = shipped / "tiny.pt"
    weights.write_bytes(weights.read_bytes()[:-8])  # a truncated download
    assert main(["list", "models"]) == 0, "without --check nothing is loaded"
    assert main(["list", "models", "--check"]) == 1
    assert "[BROKEN: PretrainedError:" in capsys.readouterr().out
    (shipped / "tiny.json").write_text("{not json")
    assert main(["list"]) == 0, "an unreadable card is listed, not a traceback"
    assert "  tiny  shipped: its card cannot be read" in capsys.readouterr().out.splitlines()


def test_cli_samples_a_pretrained_model_by_name(shipped: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sample", "--pretrained", "tiny", "-n", "4", "--out", str(tmp_path / "s.png"),
                 "--save-tensor", str(tmp_path / "s.pt")]) == 0
    assert torch.load(tmp_path / "s.pt", weights_only=True).shape == (4, 1, 28, 28)
    with pytest.raises(SystemExit) as exit_:
        main(["sample", "--pretrained", "nope", "-n", "4"])
    assert exit_.value.code == 2 and "--pretrained must be one of ['tiny']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sample", "--pretrained", "tiny", "--checkpoint", "x.pt"])


def test_a_checkpoint_before_ema_start_samples_with_the_raw_weights(tmp_path: Path, data_dir: Path) -> None:
    config = TrainConfig.preset("ddpm-short", net_kwargs={"channels": [4, 4]}, limit_train=128, batch_size=64,
                                epochs=1, sample_every=0, ema=0.9, ema_start=100)
    trainer = Trainer(config, tmp_path, quiet=True)
    trainer.fit()
    model = pretrained.from_checkpoint(tmp_path / "checkpoints" / "last.pt")
    for key, value in trainer.net.state_dict().items():
        assert torch.equal(model.denoiser.net.state_dict()[key], value), key


def test_cli_export(tmp_path: Path, data_dir: Path) -> None:
    config = TrainConfig.preset("ddpm-short", net_kwargs={"channels": [4, 4]}, limit_train=128,
                                batch_size=64, epochs=1, sample_every=0)
    Trainer(config, tmp_path / "run", quiet=True).fit()
    (tmp_path / "extra.json").write_text('{"command": "colddiff train ..."}')
    checkpoint = str(tmp_path / "run" / "checkpoints" / "last.pt")
    assert main(["export", "--checkpoint", checkpoint, "--name", "small", "--out", str(tmp_path / "w"),
                 "--card", str(tmp_path / "extra.json")]) == 0
    card = json.loads((tmp_path / "w" / "small.json").read_text())
    assert card["command"] == "colddiff train ..." and card["file"] == "small.pt"
    assert len(card["sha256"]) == 64


def tiny_checkpoint(preset: str, out: Path) -> str:
    """A one-epoch run of ``preset`` on a tiny CNN; the path of its checkpoint."""
    config = TrainConfig.preset(preset, net_kwargs={"channels": [4, 4]}, limit_train=128, batch_size=64,
                                epochs=1, sample_every=0)
    Trainer(config, out, quiet=True).fit()
    return str(out / "checkpoints" / "last.pt")


def test_export_can_change_how_the_shipped_model_samples(tmp_path: Path, data_dir: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = tiny_checkpoint("fashion-cold", tmp_path / "run")
    assert main(["export", "--checkpoint", checkpoint, "--name", "cold", "--out", str(tmp_path / "w"),
                 "--source", "estimate", "--sample-steps", "20"]) == 0
    card = json.loads((tmp_path / "w" / "cold.json").read_text())
    assert card["sampling_changes"] == {
        "sampler_kwargs": {"trained": {"algorithm": 2, "source": "fixed"},
                           "shipped": {"algorithm": 2, "source": "estimate"}},
        "sample_steps": {"trained": None, "shipped": 20}}
    assert card["config"]["sampler_kwargs"]["source"] == "estimate"
    assert card["config"]["degradation"] == "fashion_mnist"
    stored = torch.load(tmp_path / "w" / "cold.pt", weights_only=True)
    assert stored["config"] == card["config"], "what loads is what the card says"
    with pytest.raises(ValueError, match=r"sampling keys must be among .*'sampler_kwargs'.*got \['lr'\]"):
        pretrained.export(checkpoint, "cold", tmp_path / "w", sampling={"lr": 1.0})
    with pytest.raises(ValueError, match="source must be 'fixed' or 'estimate'"):
        pretrained.export(checkpoint, "cold", tmp_path / "w",
                          sampling={"sampler_kwargs": {"source": "random"}})
    with pytest.raises(ValueError, match="DDIMSampler needs a denoiser for GaussianNoise"):
        pretrained.export(checkpoint, "cold", tmp_path / "w",
                          sampling={"sampler": "ddim", "sampler_kwargs": {}})
    pretrained.export(checkpoint, "same", tmp_path / "w",
                      sampling={"sampler_kwargs": {"algorithm": 2, "source": "fixed"}})
    assert "sampling_changes" not in json.loads((tmp_path / "w" / "same.json").read_text())
    with pytest.raises(SystemExit) as exit_:
        main(["export", "--checkpoint", checkpoint, "--name", "x", "--out", "w", "--source", "both"])
    assert exit_.value.code == 2
    assert "--source must be 'fixed' or 'estimate', got 'both'" in capsys.readouterr().err


def test_the_shipped_mnist_ddpm_loads_and_samples_without_data(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    monkeypatch.setenv("COLDDIFF_DATA_DIR", str(tmp_path))  # no dataset anywhere
    assert "mnist-ddpm" in pretrained.available()
    model = pretrained.load("mnist-ddpm")
    assert model.card["scores"][model.card["default_scores"]]["n_full"] == 1000
    samples = model.sample(2, sample_steps=3)
    assert samples.shape == (2, 1, 28, 28) and samples.min() >= 0 and samples.max() <= 1


def test_the_shipped_fashion_cold_starts_from_fashion_mnist_test_images(data_dir: Path) -> None:
    model = pretrained.load("mnist-fashion-cold")
    assert model.config.degradation == "fashion_mnist"
    assert model.card["scores"]["strided-50"]["n_full"] == 1000
    sampler = model.sampler()
    start = sampler.prior(3, generator=torch.Generator().manual_seed(0))
    fashion = data.fashion_mnist(train=False).images
    assert all(bool((fashion == image).all(dim=(1, 2, 3)).any()) for image in start)
    samples = sampler.sample(start, sample_steps=3)
    assert samples.shape == (3, 1, 28, 28) and samples.min() >= 0 and samples.max() <= 1


def test_the_shipped_fashion_hot_starts_from_a_fashion_mnist_image_plus_its_noise(data_dir: Path) -> None:
    model = pretrained.load("mnist-fashion-hot")
    degradation = model.denoiser.degradation
    level = float(degradation.noise_levels[-1])  # 1.0 * sqrt(1 - alpha_bar_T)
    assert level == pytest.approx(float((1 - degradation.schedule.alpha_bar[-1]).sqrt()), rel=1e-6)
    sampler = model.sampler()
    start = sampler.prior(3, generator=torch.Generator().manual_seed(0))
    fashion = data.fashion_mnist(train=False).images.flatten(1)
    nearest = torch.cdist(start.flatten(1), fashion).argmin(dim=1)
    residual = start.flatten(1) - fashion[nearest]  # the noise alone: 784 draws per image
    assert residual.mean().abs() < 0.1 and residual.std(dim=1).sub(level).abs().max() < 0.1 * level
    samples = sampler.sample(start, sample_steps=3)
    assert samples.shape == (3, 1, 28, 28) and samples.min() >= 0 and samples.max() <= 1


def test_the_shipped_conditional_mixing_model_draws_the_asked_digits(data_dir: Path) -> None:
    # 96.6% of 1,000 at its default guidance (its card); 20 samples, 2 of each digit, 50 steps
    model = pretrained.load("mnist-fashion-hot-cond")
    labels = torch.arange(10).repeat_interleave(2)
    samples = model.sample(20, seed=0, labels=labels)
    assert samples.shape == (20, 1, 28, 28) and samples.min() >= 0 and samples.max() <= 1
    assert fmd.class_scores(samples, labels).accuracy >= 0.85
    with pytest.raises(ValueError, match=re.escape("class '11' is not in the model's label set")):
        model.sample(2, labels=[1, 11])


def test_fashion_cold_without_its_dataset_says_where_to_put_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLDDIFF_DATA_DIR", str(tmp_path))  # no dataset, and no network:

    def offline(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(datasets, "FashionMNIST", offline)
    with pytest.raises(PriorUnavailableError, match=r"FashionMNIST.*COLDDIFF_DATA_DIR"):
        pretrained.load("mnist-fashion-cold").sample(2)
    status = main(["sample", "--pretrained", "mnist-fashion-cold", "-n", "2",
                   "--out", str(tmp_path / "s.png")])
    assert status == 1
    error, = capsys.readouterr().err.strip().splitlines()
    assert "FashionMNIST" in error and str(tmp_path) in error


@pytest.mark.parametrize("name", ["mnist-ddpm", "mnist-fashion-cold", "mnist-deblur", "mnist-ddpm-cond",
                                  "mnist-fashion-hot", "mnist-fashion-hot-cond"])
def test_the_committed_config_trains_and_samples_the_shipped_model(name: str) -> None:
    card = json.loads((pretrained.weights_dir() / f"{name}.json").read_text())
    committed = TrainConfig.load(Path(str(resources.files("colddiff")))
                                 / card["config_file"].removeprefix("src/colddiff/"))
    if committed.conditional and committed.classes is None:  # the label set comes from the data
        committed = committed.replace(classes=list(data.CLASSES[committed.dataset]))
    assert model_differences(card["config"], committed) == []
    shipped = TrainConfig.from_dict(card["config"])
    if name == "mnist-fashion-cold":  # repacked: the sampler's options under sampler_kwargs
        assert "source" not in card["config"] and "algorithm" not in card["config"]
        assert (shipped.sampler, shipped.sampler_kwargs) == ("cold", {"algorithm": 2, "source": "estimate"})
    elif name == "mnist-deblur":  # trained in bf16 for speed, shipped in fp32
        assert (shipped.sampler, shipped.sampler_kwargs) == ("cold", {"algorithm": 2})
        assert (committed.precision, shipped.precision) == ("bf16", "fp32")
        assert model_differences(card["config"], TrainConfig.preset("mnist-deblur")) == []
    elif name == "mnist-ddpm-cond":  # fine-tuned from mnist-ddpm, shipped at its measured guidance
        assert (shipped.sampler, shipped.sampler_kwargs) == ("ddpm", {"variance": "posterior"})
        assert (shipped.init_from, shipped.conditional, shipped.guidance) == ("mnist-ddpm", True, 1.05)
        assert shipped.classes == [str(digit) for digit in range(10)]
        assert card["guidance_scores"]["1.05"]["accuracy"] >= 0.98
        assert card["guidance_scores"]["1.05"]["fmd_ratio"] <= 1.1
    elif name == "mnist-fashion-hot-cond":  # mnist-fashion-hot made conditional, keeping its noise
        assert (shipped.sampler, shipped.sampler_kwargs) == ("cold", {"algorithm": 2, "source": "fixed"})
        assert (shipped.init_from, shipped.conditional, shipped.guidance) == ("mnist-fashion-hot", True, 1.0)
        assert shipped.classes == [str(digit) for digit in range(10)]
        assert shipped.degradation_kwargs == {"noise": {"level": 1.0, "shape": "schedule"}}
        assert card["guidance_scores"]["1.0"]["accuracy"] >= 0.95
        assert card["guidance_scores"]["1.0"]["fmd_ratio"] <= 1.3
    elif name == "mnist-fashion-hot":  # mnist-fashion-cold fine-tuned with a noise rising to 1.0
        assert (shipped.sampler, shipped.sampler_kwargs) == ("cold", {"algorithm": 2, "source": "fixed"})
        assert shipped.init_from == "mnist-fashion-cold"
        assert shipped.degradation_kwargs == {"noise": {"level": 1.0, "shape": "schedule"}}
    else:
        assert (shipped.sampler, shipped.sampler_kwargs) == ("ddpm", {"variance": "posterior"})
        assert card["default_scores"] == "ddpm-posterior-50"
    for field in SAMPLING_FIELDS:
        assert getattr(shipped, field) == getattr(committed, field), field
    assert committed.epochs == card["epochs"], "the committed config trains as long as the shipped run"


def test_a_sampler_is_chosen_as_samplers_create_chooses_it() -> None:
    """``model.sampler(name, **options)``: the shipped sampler's options are kept for it and
    dropped for another one."""
    model = pretrained.load("mnist-ddpm")
    assert model.config.sampler_kwargs == {"variance": "posterior"}
    assert model.sampler().variance == "posterior"  # type: ignore[attr-defined]
    assert model.sampler(variance="beta").variance == "beta"  # type: ignore[attr-defined]
    ddim = model.sampler("ddim", eta=0.5, clip_x0=False)
    assert type(ddim).__name__ == "DDIMSampler" and ddim.eta == 0.5 and not ddim.clip_x0  # type: ignore[attr-defined]
    dpm = model.sampler("dpmsolver++", order=1)
    assert type(dpm).__name__ == "DPMSolverSampler" and dpm.order == 1  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="does not take order"):
        model.sampler(order=1)


def test_python_and_the_command_line_sample_alike(tmp_path: Path) -> None:
    model = pretrained.load("mnist-ddpm")
    assert main(["sample", "--pretrained", "mnist-ddpm", "-n", "2", "--sample-steps", "3",
                 "--sampler", "ddim", "--seed", "4", "--out", str(tmp_path / "s.png"),
                 "--save-tensor", str(tmp_path / "s.pt")]) == 0
    from_cli = torch.load(tmp_path / "s.pt", weights_only=True)
    assert torch.equal(model.sample(2, 3, seed=4, sampler="ddim"), from_cli)
    assert not torch.equal(model.sample(2, 3, seed=4), from_cli), "the shipped sampler is ddpm"


def test_a_model_whose_prior_is_learned_samples_from_python(tmp_path: Path, data_dir: Path) -> None:
    """Blur's prior is fitted on the training images first, as ``colddiff sample`` does."""
    shipped = pretrained.load("mnist-deblur")
    assert not shipped.denoiser.degradation.prior_fitted
    assert main(["sample", "--pretrained", "mnist-deblur", "-n", "2", "--out", str(tmp_path / "s.png"),
                 "--save-tensor", str(tmp_path / "s.pt")]) == 0
    samples = shipped.sample(2)
    assert torch.equal(samples, torch.load(tmp_path / "s.pt", weights_only=True))
    config = TrainConfig.preset("mnist-deblur", net_kwargs={"channels": 8, "blocks": 1}, limit_train=128,
                                batch_size=64, epochs=1, sample_every=0, ema_start=0)
    Trainer(config, tmp_path / "run", quiet=True).fit()
    model = pretrained.from_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    samples = model.sample(2, sample_steps=4)
    assert samples.shape == (2, 1, 28, 28) and model.denoiser.degradation.prior_fitted


def test_export_refuses_bad_sampler_options_as_usage_errors(tmp_path: Path, data_dir: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = tiny_checkpoint("ddpm-short", tmp_path / "run")
    for option, message in ((["--sampler-arg", "oops"], "--sampler-arg must be KEY=VALUE"),
                            (["--order", "2"], "sampler 'ddpm' does not take order")):
        with pytest.raises(SystemExit) as exit_:
            main(["export", "--checkpoint", checkpoint, "--name", "x", "--out", str(tmp_path / "w"), *option])
        assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_a_shipped_model_samples_in_the_default_precision_whatever_sped_up_its_training(tmp_path: Path,
                                                                        data_dir: Path) -> None:
    config = TrainConfig.preset("ddpm-short", net_kwargs={"channels": [4, 4]}, limit_train=128, batch_size=64,
                                epochs=1, sample_every=0, precision="bf16")
    Trainer(config, tmp_path / "run", quiet=True).fit()
    card = json.loads(pretrained.export(tmp_path / "run" / "checkpoints" / "last.pt", "fast", tmp_path / "w")
                      .read_text())
    assert card["config"]["precision"] == "auto"  # bf16 only where the machine computes in it natively
    assert card["speed_changes"] == {"precision": {"trained": "bf16", "shipped": "auto"}}
    assert "sampling_changes" not in card


def test_every_shipped_model_is_at_most_8_mb() -> None:
    sizes = {path.name: path.stat().st_size for path in pretrained.weights_dir().glob("*.pt")}
    assert {"mnist-ddpm.pt", "mnist-deblur.pt", "mnist-fashion-cold.pt"} <= set(sizes)
    assert all(size <= 8 * 2**20 for size in sizes.values()), sizes


def test_the_shipped_deblurring_model_restores_fully_blurred_test_digits(
        tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from conftest import run_cli

    status, out, err = run_cli(capsys, "restore", "--pretrained", "mnist-deblur", "--from-test-set", "16",
                               "--device", "cpu", "--out", str(tmp_path / "r.png"))
    assert status == 0, err
    ssim = {row: float(re.search(rf"{row}: SSIM ([0-9.]+)", out)[1])  # type: ignore[index]
            for row in ("degraded", "direct", "sampled")}
    # Measured on 2026-11-30: degraded 0.034, direct 0.923, sampled 0.862 (t = T = 20).
    assert ssim["degraded"] < 0.1 and ssim["direct"] > 0.85 and ssim["sampled"] > 0.8, ssim
    with Image.open(tmp_path / "r.png") as grid:
        assert grid.size == (2 + 16 * 30, 2 + 4 * 30)  # clean, degraded, direct, sampled rows
    card = pretrained.load("mnist-deblur").card
    assert card["scores"]["bansal-mnist"]["n_test"] == 1000 and card["config"]["precision"] == "fp32"


@pytest.mark.parametrize("name", pretrained.available())
def test_every_tuned_grid_in_a_shipped_card_builds_its_sampler_on_its_own_steps(name: str) -> None:
    """A card's ``step_grids[K]`` is what ``--sample-steps K`` samples with: its sampler must take
    its options, and its grid must be ``K`` steps from ``T`` down to 0."""
    model = pretrained.load(name)
    grids = model.card.get("step_grids", {})
    for key in grids:
        entry = model.tuned_grid(int(key))
        assert entry is not None
        sampler = model.sampler(entry["sampler"], **entry["sampler_kwargs"])
        steps = sampler.timesteps(None if isinstance(entry["sampler_kwargs"]["spacing"], list) else int(key))
        assert len(steps) == int(key) + 1
        assert steps[0] == model.denoiser.degradation.num_timesteps and steps[-1] == 0
