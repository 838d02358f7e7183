"""Restoration degradations (super-resolution) and restoring degraded images part-way."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
import torch
from conftest import X0Oracle
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor

from colddiff import ColdSampler, Denoiser, Schedule, data, degradations, metrics
from colddiff.config import TrainConfig
from colddiff.degradations import Blur, Degradation, ImageMixing, Inpaint, SuperResolution, check_timesteps
from colddiff.training import Trainer


def digits(n: int = 8) -> Tensor:
    return data.load("mnist", train=False, image_size=32, limit=n).images


def test_super_resolution_by_hand() -> None:
    image = torch.arange(16, dtype=torch.float64).view(1, 1, 4, 4)
    area = SuperResolution(num_timesteps=2)
    assert torch.equal(area.degrade(image, 0), image)
    # t = 1: each 2x2 block becomes its mean; t = 2: the whole 4x4 image its mean (7.5).
    blocks = torch.tensor([[2.5, 2.5, 4.5, 4.5], [2.5, 2.5, 4.5, 4.5],
                           [10.5, 10.5, 12.5, 12.5], [10.5, 10.5, 12.5, 12.5]], dtype=torch.float64)
    assert torch.equal(area.degrade(image, 1)[0, 0], blocks)
    assert torch.equal(area.degrade(image, 2), torch.full_like(image, 7.5))
    nearest = SuperResolution(num_timesteps=2, mode="nearest")
    corners = torch.tensor([[0, 0, 2, 2], [0, 0, 2, 2], [8, 8, 10, 10], [8, 8, 10, 10]], dtype=torch.float64)
    assert torch.equal(nearest.degrade(image, 1)[0, 0], corners)
    assert torch.equal(nearest.degrade(image, 2), torch.zeros_like(image))
    # A batch with a different step per image gets each image's own.
    batch = image.expand(3, -1, -1, -1)
    mixed = area.degrade(batch, torch.tensor([2, 0, 1]))
    assert torch.equal(mixed[0], area.degrade(image, 2)[0]) and torch.equal(mixed[1], image[0])
    assert torch.equal(mixed[2, 0], blocks)


@given(index=st.integers(0, 63))
def test_super_resolution_loses_structure_step_by_step(data_dir: Path, index: int) -> None:
    clean = digits(64)[index:index + 1]
    deg = SuperResolution()  # 32 -> 16 -> 8 -> 4
    similarity = [float(metrics.ssim(deg.degrade(clean, t), clean)) for t in range(4)]
    assert similarity[0] == pytest.approx(1.0)
    assert all(later < earlier for earlier, later in itertools.pairwise(similarity))


@pytest.mark.parametrize("t_start", [1, 2, 3])
def test_a_perfect_restorer_undoes_super_resolution_from_any_step(data_dir: Path, t_start: int) -> None:
    clean = digits(4).double()
    deg = SuperResolution(image_shape=(1, 32, 32))
    sampler = ColdSampler(Denoiser(X0Oracle(clean), deg, predict="x0"), algorithm=2)
    restored = sampler.sample(deg.degrade(clean, t_start), t_start=t_start)
    torch.testing.assert_close(restored, clean, rtol=0, atol=1e-12)


def test_super_resolution_says_which_sizes_work() -> None:
    with pytest.raises(ValueError, match=r"needs image sides divisible by 2\^T = 8, got 28x28; resize "
                                         r"the images \(--image-size 32\) or use fewer halvings"):
        SuperResolution(image_shape=(1, 28, 28))
    deg = SuperResolution(num_timesteps=2)
    deg.degrade(torch.rand(1, 1, 28, 28), 2)  # 28 -> 14 -> 7
    with pytest.raises(ValueError, match="divisible by 2\\^T = 4, got 30x30"):
        deg.degrade(torch.rand(1, 1, 30, 30), 1)
    with pytest.raises(ValueError, match=r"mode must be one of \['area', 'nearest', 'bicubic'\], got 'cub'"):
        SuperResolution(mode="cub")  # type: ignore[arg-type]
    assert degradations.create("superres", num_timesteps=2).num_timesteps == 2


def test_a_super_resolution_model_trains_and_samples_from_degraded_digits(tmp_path: Path,
                                                                          data_dir: Path) -> None:
    config = TrainConfig(degradation="superres", image_size=32, predict="x0", sampler="cold",
                         net_kwargs={"channels": [4, 4]}, limit_train=64, batch_size=32, epochs=1,
                         sample_every=0)
    trainer = Trainer(config, tmp_path, quiet=True)
    assert trainer.degradation.num_timesteps == 3  # the config's 1000-step schedule is not its T
    trainer.fit()
    samples = trainer.sample(4)
    assert samples.shape == (4, 1, 32, 32) and bool(torch.isfinite(samples).all())


def test_noisy_blur_adds_its_noise_on_every_degraded_step() -> None:
    x0 = torch.rand(3, 1, 8, 8, dtype=torch.float64)
    plain, noisy = Blur(num_timesteps=10), Blur(num_timesteps=10, noise=0.05)
    assert not plain.has_source and noisy.has_source and plain.sample_source(x0) is None
    z = noisy.sample_source(x0, generator=torch.Generator().manual_seed(0))
    assert z is not None and z.shape == x0.shape
    t = torch.tensor([0, 4, 10])
    noisy_steps = torch.tensor([0.0, 1.0, 1.0], dtype=x0.dtype).view(3, 1, 1, 1)
    expected = plain.degrade(x0, t) + 0.05 * z * noisy_steps
    torch.testing.assert_close(noisy.degrade(x0, t, z), expected, rtol=0, atol=1e-15)
    torch.testing.assert_close(noisy.source_from_x0(noisy.degrade(x0, 7, z), 7, x0), z, rtol=0, atol=1e-12)
    with pytest.raises(NotImplementedError):
        plain.source_from_x0(x0, 7, x0)
    with pytest.raises(ValueError, match=r"noise must be a finite number >= 0, got -0\.1"):
        Blur(noise=-0.1)


@pytest.mark.parametrize("t_start", [None, 1, 13])
def test_a_perfect_restorer_undoes_noisy_blur_from_any_step(t_start: int | None) -> None:
    x0 = torch.rand(4, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    deg = Blur(num_timesteps=20, noise=0.1)
    z = deg.sample_source(x0, generator=torch.Generator().manual_seed(2))
    x_t = deg.degrade(x0, t_start or 20, z)
    sampler = ColdSampler(Denoiser(X0Oracle(x0), deg, predict="x0"), algorithm=2, source="estimate")
    restored = sampler.sample(x_t, 5 if t_start is None else None, t_start=t_start)
    torch.testing.assert_close(restored, x0, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match=r"is sampled with source='estimate' \(its source, noise, is "
                                         r"re-estimated at each step; the start is not it\)"):
        ColdSampler(Denoiser(X0Oracle(x0), deg, predict="x0"), source="fixed")


def test_the_noisy_blur_prior_is_the_plain_one_plus_its_noise(data_dir: Path) -> None:
    images = data.mnist(train=True, limit=512).images
    plain, noisy = Blur(noise=0.0).fit_prior(images), Blur(noise=0.2).fit_prior(images)
    a = plain.prior(2000, generator=torch.Generator().manual_seed(0))
    b = noisy.prior(2000, generator=torch.Generator().manual_seed(0))  # the same blur draws first
    assert float((b - a).std()) == pytest.approx(0.2, rel=0.02)
    assert float((b - a).mean()) == pytest.approx(0.0, abs=0.002)


def test_inpainting_masks_by_hand() -> None:
    deg = Inpaint(num_timesteps=3, center="middle", beta_start=1.0, beta_step=0.5)
    like = torch.zeros(1, 1, 5, 5, dtype=torch.float64)
    assert torch.equal(deg.masks(0, like), torch.ones_like(like))
    rows, cols = torch.meshgrid(torch.arange(5.0), torch.arange(5.0), indexing="ij")
    squared = ((rows - 2) ** 2 + (cols - 2) ** 2).double()
    z = [1 - torch.exp(-squared / (2 * beta**2)) for beta in (1.0, 1.5, 2.0)]
    torch.testing.assert_close(deg.masks(1, like)[0, 0], z[0], rtol=0, atol=1e-15)
    torch.testing.assert_close(deg.masks(3, like)[0, 0], z[0] * z[1] * z[2], rtol=0, atol=1e-15)
    assert deg.masks(2, like)[0, 0, 2, 2] == 0  # the centre is gone from the first step on
    # Masked pixels fade to the middle of the value range.
    white = torch.ones_like(like)
    assert deg.degrade(white, 3)[0, 0, 2, 2] == 0.5
    signed = Inpaint(num_timesteps=3, center="middle", value_range=(-1.0, 1.0))
    assert signed.degrade(white, 3)[0, 0, 2, 2] == 0.0
    # A random centre is each image's source.
    centred = Inpaint(num_timesteps=3, beta_start=1.0, beta_step=0.5)
    corner = centred.masks(1, like, torch.tensor([[0.0, 4.0]], dtype=torch.float64))[0, 0]
    torch.testing.assert_close(corner, 1 - torch.exp(-((rows - 0) ** 2 + (cols - 4) ** 2).double() / 2),
                               rtol=0, atol=1e-15)


def test_bansals_mnist_inpainting_is_the_default() -> None:
    deg = degradations.create("inpaint")
    assert deg.num_timesteps == 50 and deg.center == "random"
    torch.testing.assert_close(deg.beta, 0.1 * (torch.arange(50, dtype=torch.float64) + 11))
    centres = deg.sample_source(torch.zeros(1000, 1, 28, 28), generator=torch.Generator().manual_seed(0))
    assert centres is not None and centres.min() == -1 and centres.max() == 27  # as the official code
    assert torch.equal(centres, centres.floor())


@given(index=st.integers(0, 63), center=st.sampled_from(["middle", "random"]))
def test_inpainting_removes_more_of_the_digit_step_by_step(data_dir: Path, index: int, center: str) -> None:
    clean = digits(64)[index:index + 1]
    deg = Inpaint(center=center)  # type: ignore[arg-type]
    centres = deg.sample_source(clean, generator=torch.Generator().manual_seed(index))
    similarity = [float(metrics.ssim(deg.degrade(clean, t, centres), clean)) for t in range(0, 51, 10)]
    assert similarity[0] == pytest.approx(1.0)
    assert all(later < earlier for earlier, later in itertools.pairwise(similarity))


@pytest.mark.parametrize("t_start", [1, 20, 50])
def test_a_perfect_restorer_undoes_inpainting_from_any_step(data_dir: Path, t_start: int) -> None:
    clean = digits(4).double()
    for center in ("middle", "random"):
        deg = Inpaint(center=center, image_shape=(1, 32, 32))  # type: ignore[arg-type]
        centres = deg.sample_source(clean, generator=torch.Generator().manual_seed(0))
        sampler = ColdSampler(Denoiser(X0Oracle(clean), deg, predict="x0"), algorithm=2)
        restored = sampler.sample(deg.degrade(clean, t_start, centres), 10 if t_start >= 10 else None,
                                  t_start=t_start, source=centres)
        torch.testing.assert_close(restored, clean, rtol=0, atol=1e-12)


def test_inpainting_asks_for_its_centres() -> None:
    deg = Inpaint()
    x0 = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match=r"needs the mask centres: pass the source \(B, 2\)"):
        deg.degrade(x0, 3)
    with pytest.raises(ValueError, match=r"the mask centres must have shape \(2, 2\), got \(3, 2\)"):
        deg.degrade(x0, 3, torch.zeros(3, 2))
    sampler = ColdSampler(Denoiser(X0Oracle(x0), deg, predict="x0"))
    with pytest.raises(ValueError, match=r"needs the source each image was degraded with: pass it, "
                                         r"sample\(\.\.\., source=\.\.\.\)"):
        sampler.sample(deg.degrade(x0, 50, deg.sample_source(x0)))
    with pytest.raises(ValueError, match="source='estimate' needs a degradation that can recover its source"):
        ColdSampler(Denoiser(X0Oracle(x0), deg, predict="x0"), source="estimate")
    with pytest.raises(ValueError, match=r"center must be one of \['random', 'middle'\], got 'edge'"):
        Inpaint(center="edge")  # type: ignore[arg-type]


def test_an_inpainting_model_trains_and_samples_from_masked_digits(tmp_path: Path, data_dir: Path) -> None:
    config = TrainConfig(degradation="inpaint", predict="x0", sampler="cold", net_kwargs={"channels": [4, 4]},
                         limit_train=64, batch_size=32, epochs=1, sample_every=0)
    trainer = Trainer(config, tmp_path, quiet=True)
    assert trainer.degradation.num_timesteps == 50
    trainer.fit()
    samples = trainer.sample(4, sample_steps=10)  # from masked training digits, with their centres
    assert samples.shape == (4, 1, 28, 28) and bool(torch.isfinite(samples).all())


@pytest.fixture(scope="module")
def superres_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny super-resolution model trained for one epoch (its checkpoint)."""
    out = tmp_path_factory.mktemp("superres")
    config = TrainConfig(degradation="superres", image_size=32, predict="x0", sampler="cold",
                         net_kwargs={"channels": [4, 4]}, limit_train=64, batch_size=32, epochs=1,
                         sample_every=0)
    Trainer(config, out, quiet=True).fit()
    return out / "checkpoints" / "last.pt"


def _grid_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as image:
        return image.size


def test_restore_from_the_test_set_writes_four_rows_and_scores_them(
        superres_run: Path, tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from conftest import run_cli

    status, out, err = run_cli(capsys, "restore", "--checkpoint", str(superres_run), "--from-test-set", "5",
                               "--t", "2", "--out", str(tmp_path / "grid.png"), "--save-tensor",
                               str(tmp_path / "restored.pt"), "--device", "cpu")
    assert status == 0, err
    assert _grid_size(tmp_path / "grid.png") == (5 * 34 + 2, 4 * 34 + 2)  # clean, degraded, direct, sampled
    for label in ("degraded", "direct", "sampled"):
        assert f"{label}: SSIM" in out
    restored = torch.load(tmp_path / "restored.pt", weights_only=True)
    assert restored.shape == (5, 1, 32, 32) and 0 <= float(restored.min()) <= float(restored.max()) <= 1


def test_restore_takes_a_tensor_or_a_folder_and_names_bad_input(
        superres_run: Path, tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from conftest import run_cli
    from torchvision.utils import save_image

    degraded = SuperResolution().degrade(digits(3), 2)
    torch.save(degraded, tmp_path / "degraded.pt")
    folder = tmp_path / "pictures"
    folder.mkdir()
    for i, image in enumerate(degraded):
        save_image(image, folder / f"{i}.png")
    base = ["restore", "--checkpoint", str(superres_run), "--device", "cpu", "--out", str(tmp_path / "r.png")]
    for source in (tmp_path / "degraded.pt", folder):
        status, _, err = run_cli(capsys, *base, "--input", str(source), "--t", "2")
        assert status == 0, err
        assert _grid_size(tmp_path / "r.png") == (3 * 34 + 2, 3 * 34 + 2)  # degraded, direct, sampled
    torch.save(torch.rand(2, 1, 28, 28), tmp_path / "small.pt")
    status, _, err = run_cli(capsys, *base, "--input", str(tmp_path / "small.pt"), "--t", "2")
    assert status == 2
    assert "--input holds images of shape (2, 1, 28, 28); this model restores (N, 1, 32, 32)" in err
    status, _, err = run_cli(capsys, *base, "--input", str(tmp_path / "degraded.pt"), "--t", "4")
    assert status == 2 and "--t must be an integer in [1, 3] (the model's T), got 4" in err
    status, _, err = run_cli(capsys, *base, "--input", str(tmp_path / "degraded.pt"))
    assert status == 2 and "--t must be given with input images" in err
    (folder / "notes.png").write_text("not an image")
    status, _, err = run_cli(capsys, *base, "--input", str(folder), "--t", "2")
    assert status == 1 and "notes.png" in err
    status, _, err = run_cli(capsys, *base, "--input", str(folder), "--t", "2", "--on-error", "skip")
    assert status == 0, err
    assert err.startswith("colddiff restore: warning: skipped image file")
    assert "notes.png cannot be decoded" in err and len(err.strip().splitlines()) == 1
    torch.save((degraded * 255).to(torch.uint8), tmp_path / "bytes.pt")
    status, _, err = run_cli(capsys, *base, "--input", str(tmp_path / "bytes.pt"), "--t", "2")
    assert status == 2
    assert "--input must be a floating-point tensor of shape (B, C, H, W), got Tensor(3, 1, 32, 32)" in err
    torch.save(degraded[:0], tmp_path / "none.pt")
    status, _, err = run_cli(capsys, *base, "--input", str(tmp_path / "none.pt"), "--t", "2")
    assert status == 2 and "at least one image" in err
    status, _, err = run_cli(capsys, *base, "--input", str(tmp_path / "degraded.pt"), "--t", "2",
                             "--sampler", "ddim")
    assert status == 2 and "needs a denoiser for GaussianNoise" in err
    status, _, err = run_cli(capsys, "sample", "--checkpoint", str(superres_run), "-n", "2",
                             "--device", "cpu", "--out", str(tmp_path / "s.png"))
    assert status == 2 and "colddiff restore --from-test-set N degrades test images" in err


def test_restore_on_the_command_line_is_pretrained_restore(
        superres_run: Path, tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from conftest import run_cli

    from colddiff import pretrained

    degraded = SuperResolution().degrade(digits(3), 3)
    torch.save(degraded, tmp_path / "degraded.pt")
    status, _, err = run_cli(capsys, "restore", "--checkpoint", str(superres_run), "--device", "cpu",
                             "--input", str(tmp_path / "degraded.pt"), "--t", "3", "--out",
                             str(tmp_path / "r.png"), "--save-tensor", str(tmp_path / "r.pt"))
    assert status == 0, err
    _, sampled = pretrained.from_checkpoint(superres_run).restore(degraded, 3)
    torch.testing.assert_close(torch.load(tmp_path / "r.pt", weights_only=True), sampled)


def test_restoring_random_masks_from_files_asks_for_the_test_set(
        tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from conftest import run_cli

    config = TrainConfig(degradation="inpaint", predict="x0", sampler="cold", net_kwargs={"channels": [4]},
                         limit_train=32, batch_size=32, epochs=1, sample_every=0)
    Trainer(config, tmp_path / "run", quiet=True).fit()
    torch.save(torch.rand(2, 1, 28, 28), tmp_path / "masked.pt")
    base = ["restore", "--checkpoint", str(tmp_path / "run" / "checkpoints" / "last.pt"), "--device", "cpu",
            "--out", str(tmp_path / "r.png")]
    status, _, err = run_cli(capsys, *base, "--input", str(tmp_path / "masked.pt"), "--t", "10")
    assert status == 2 and "needs each degraded image's source (such as its mask centre)" in err
    status, _, err = run_cli(capsys, *base, "--from-test-set", "2", "--t", "10", "--sample-steps", "5")
    assert status == 0, err


@pytest.mark.parametrize("t_start", [3, 150])
def test_a_mixing_model_restored_part_way_estimates_its_fixed_source_once(t_start: int) -> None:
    """Part-way, x_t is far from its source: the fixed source is estimated from the first
    prediction, so a perfect restorer recovers the clean image exactly (with x_t as the source
    it would not)."""
    x0 = torch.rand(3, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    mixed_in = torch.rand(3, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    deg = ImageMixing(Schedule.preset("short"), mixed_in)
    x_t = deg.degrade(x0, t_start, mixed_in)
    sampler = ColdSampler(Denoiser(X0Oracle(x0), deg, predict="x0"), algorithm=2, source="fixed")
    restored = sampler.sample(x_t, min(10, t_start), t_start=t_start)
    torch.testing.assert_close(restored, x0, rtol=0, atol=1e-12)


class _Fade(Degradation):
    """A plugin-style degradation with a source that is not a MixingDegradation: its start
    stands in for its source (the default), as before sources of other kinds existed."""

    has_source = True

    def sample_source(self, x0: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        return torch.zeros_like(x0)

    def degrade(self, x0: Tensor, t: Tensor | int, source: Tensor | None = None) -> Tensor:
        steps = check_timesteps(t, x0, self.num_timesteps).to(x0.dtype)
        weight = (steps / self.num_timesteps).view(-1, 1, 1, 1)
        assert source is not None
        return (1 - weight) * x0 + weight * source


def test_a_plugin_source_that_its_start_stands_in_for_still_samples_with_a_fixed_source() -> None:
    x0 = torch.rand(2, 1, 6, 6, dtype=torch.float64)
    deg = _Fade(num_timesteps=10)
    sampler = ColdSampler(Denoiser(X0Oracle(x0), deg, predict="x0"), source="fixed")
    torch.testing.assert_close(sampler.sample(deg.degrade(x0, 10, torch.zeros_like(x0))), x0, rtol=0,
                               atol=1e-12)


def test_noisy_blur_is_refused_with_a_fixed_source_before_training(tmp_path: Path, data_dir: Path) -> None:
    config = TrainConfig.preset("fashion-cold", degradation="blur", degradation_kwargs={"noise": 0.05,
                                "num_timesteps": 10}, net_kwargs={"channels": [4]}, limit_train=64,
                                batch_size=32, epochs=1, sample_every=1, sample_n=4)
    with pytest.raises(ValueError, match="is sampled with source='estimate'"):
        Trainer(config, tmp_path / "fixed", quiet=True)
    hot = Trainer(config.replace(sampler_kwargs={"algorithm": 2, "source": "estimate"}), tmp_path / "hot",
                  quiet=True)
    hot.fit()
    assert (tmp_path / "hot" / "samples" / "epoch-001.png").exists()


def test_restoring_from_the_test_set_shows_the_restorer_no_hidden_source(
        tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """For Fashion-MNIST mixing the source is the mixed-in image: the restorer must not see it,
    so --from-test-set gives what restoring the same degraded images from Python gives."""
    from conftest import run_cli

    from colddiff import pretrained

    status, _, err = run_cli(capsys, "restore", "--pretrained", "mnist-fashion-cold", "--from-test-set", "4",
                             "--t", "100", "--sample-steps", "5", "--device", "cpu", "--out",
                             str(tmp_path / "r.png"), "--save-tensor", str(tmp_path / "r.pt"))
    assert status == 0, err
    model = pretrained.load("mnist-fashion-cold")
    deg = model.denoiser.degradation
    clean = data.load("mnist", train=False, limit=4).images
    degraded = deg.degrade(clean, 100, deg.sample_source(clean, generator=torch.Generator().manual_seed(0)))
    _, sampled = model.restore(degraded, 100, 5)
    torch.testing.assert_close(torch.load(tmp_path / "r.pt", weights_only=True), sampled)


def test_restore_a_blurred_digit_from_a_png_estimating_its_step(
        tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A digit blurred to t = 6, saved as a PNG (8 bits), restored by the shipped mnist-deblur with
    --t auto: the estimate is the true step (or within one) and the restoration is closer to the
    clean digit than the blurred one."""
    from conftest import run_cli
    from PIL import Image

    from colddiff import pretrained, restoration

    model = pretrained.load("mnist-deblur")
    clean = data.load("mnist", train=False, limit=1).images
    blurred, _ = model.degrade(clean, 6)
    pixels = (blurred[0, 0].clamp(0, 1) * 255).round().byte().numpy()
    Image.fromarray(pixels).save(tmp_path / "seven.png")
    Image.fromarray(pixels).convert("RGB").resize((56, 56)).save(tmp_path / "seven-large.jpg")
    status, out, err = run_cli(capsys, "restore", "--pretrained", "mnist-deblur", "--input",
                               str(tmp_path / "seven.png"), "--t", "auto", "--out", str(tmp_path / "r.png"),
                               "--save-tensor", str(tmp_path / "r.pt"))
    assert status == 0, err
    estimated = int(out.split("estimated --t ")[1].split()[0])
    assert abs(estimated - 6) <= 1 and "(of 1 to 20)" in out
    restored = torch.load(tmp_path / "r.pt", weights_only=True)
    assert restored.shape == (1, 1, 28, 28)
    assert float(metrics.rmse(restored, clean)) < float(metrics.rmse(blurred.clamp(0, 1), clean))

    batch = restoration.read_degraded(model, tmp_path / "seven.png", "auto")
    assert batch.estimate is not None and batch.t == batch.estimate.t == estimated
    assert batch.estimate.per_image == [estimated] and batch.estimate.mismatch.shape == (20,)
    torch.testing.assert_close(batch.degraded, torch.from_numpy(pixels)[None, None].float() / 255)
    large = restoration.read_degraded(model, tmp_path / "seven-large.jpg", 6)  # made grey and 28x28
    assert large.degraded.shape == (1, 1, 28, 28) and large.t == 6 and large.estimate is None
    with pytest.raises(ValueError, match=r"t must be given with input images: .* or 'auto' to estimate it"):
        restoration.read_degraded(model, tmp_path / "seven.png", None)


def whole(message: str) -> str:
    """A regular expression matching exactly ``message``."""
    return "^" + re.escape(message) + "$"


def test_inpainting_keeps_its_options_and_names_bad_ones_in_whole_messages() -> None:
    deg = Inpaint(num_timesteps=7, image_shape=(1, 8, 8), beta_step=0.0, noise=0.1)
    assert (deg.num_timesteps, deg.image_shape) == (7, (1, 8, 8))
    assert repr(deg) == "Inpaint(num_timesteps=7, center='random', beta=[1.1, 1.1], noise=0.1)"
    assert repr(Inpaint()) == "Inpaint(num_timesteps=50, center='random', beta=[1.1, 6])"
    for options, message in [
            ({"beta_start": -1.0}, "beta_start must be a finite number >= 0, got -1.0"),
            ({"beta_step": -0.5}, "beta_step must be a finite number >= 0, got -0.5"),
            ({"beta_start": 0.0}, "beta_start must be > 0, got 0.0")]:
        with pytest.raises(ValueError, match=whole(message)):
            Inpaint(**options)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=whole(
            "x0 must be a floating-point tensor of shape (B, C, H, W), got Tensor(1, 8, 8)")):
        deg.degrade(torch.rand(1, 8, 8), 1)
    # A noisy inpainting given no source, or a source of the noise alone, still asks for the centres.
    x0 = torch.rand(1, 1, 8, 8)
    with pytest.raises(ValueError, match=whole(
            "Inpaint(center='random') needs the mask centres: pass the source (B, 2) that "
            "sample_source drew")):
        deg.degrade(x0, 3)
    with pytest.raises(ValueError, match=whole("the mask centres must have shape (1, 2), got (1, 64)")):
        deg.degrade(x0, 3, torch.zeros(1, 64))


def test_a_noisy_inpainting_of_one_image_is_its_mask_plus_its_noise_by_hand() -> None:
    deg = Inpaint(num_timesteps=4, beta_start=1.5, beta_step=0.5, noise=0.2)
    x0 = torch.rand(1, 2, 6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    source = deg.sample_source(x0, generator=torch.Generator().manual_seed(1))
    assert source is not None and source.shape == (1, 2 + 72)
    (row, col), noise = source[0, :2].tolist(), source[:, 2:].view(1, 2, 6, 6)
    rows, cols = torch.meshgrid(torch.arange(6.0), torch.arange(6.0), indexing="ij")
    squared = ((rows - row) ** 2 + (cols - col) ** 2).double()
    mask = (1 - torch.exp(-squared / (2 * 1.5**2))) * (1 - torch.exp(-squared / (2 * 2.0**2)))
    expected = mask * x0 + (1 - mask) * 0.5 + 0.2 * noise
    torch.testing.assert_close(deg.degrade(x0, 2, source), expected, rtol=0, atol=1e-15)


def test_inpainting_masks_keep_the_images_type_with_widths_of_that_type() -> None:
    deg = Inpaint(num_timesteps=2, center="middle")  # beta 1.1 and 1.2: not exact in float32
    assert deg.masks(1, torch.zeros(1, 1, 5, 5)).dtype == torch.float32  # caches float32 widths
    rows, cols = torch.meshgrid(torch.arange(5.0), torch.arange(5.0), indexing="ij")
    squared = ((rows - 2) ** 2 + (cols - 2) ** 2).double()
    expected = (1 - torch.exp(-squared / (2 * 1.1**2))) * (1 - torch.exp(-squared / (2 * 1.2**2)))
    masks = deg.masks(2, torch.zeros(1, 1, 5, 5, dtype=torch.float64))
    torch.testing.assert_close(masks[0, 0], expected, rtol=0, atol=1e-15)
    half = torch.zeros(1, 1, 5, 5, dtype=torch.bfloat16)
    assert deg.masks(2, half).dtype == torch.bfloat16 and deg.degrade(half, 2).dtype == torch.bfloat16


def test_super_resolution_names_its_sizes_and_input_in_whole_messages() -> None:
    deg = SuperResolution(num_timesteps=2)
    with pytest.raises(ValueError, match=whole(
            "superres with T = 2 halvings needs image sides divisible by 2^T = 4, got 8x6; resize the "
            "images (--image-size 8) or use fewer halvings (degradation_kwargs num_timesteps)")):
        deg.degrade(torch.rand(1, 1, 8, 6), 1)
    with pytest.raises(ValueError, match=whole(
            "x0 must be a floating-point tensor of shape (B, C, H, W), got Tensor(1, 8, 8)")):
        deg.degrade(torch.rand(1, 8, 8), 1)


def test_restoring_a_plugin_source_part_way_needs_that_source() -> None:
    x0 = torch.rand(2, 1, 6, 6, dtype=torch.float64)
    deg = _Fade(num_timesteps=10)
    sampler = ColdSampler(Denoiser(X0Oracle(x0), deg, predict="x0"), source="fixed")
    with pytest.raises(ValueError) as error:
        sampler.sample(deg.degrade(x0, 4, torch.zeros_like(x0)), t_start=4)
    assert str(error.value) == (f"restoring {deg!r} part-way with a fixed source needs that source: pass "
                                "it, sample(..., source=...)")
