"""The same results on a CUDA GPU as on the CPU (skipped without CUDA; benchmarks/gpu_check.sh
runs them).

Tolerances: the GPU may run float32 convolutions in TF32 (cuDNN's default, 10-bit mantissa),
so network outputs agree to about 1e-3 relative, not bit for bit; random draws differ between
the devices' generators, so comparisons feed both devices the same inputs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from colddiff import DDPMSampler, checkpoints, data, fmd, pretrained
from colddiff.config import TrainConfig
from colddiff.training import Trainer

pytestmark = pytest.mark.cuda

#: Relative tolerance of one network evaluation, CUDA (TF32 convolutions) against the CPU.
NET_RTOL = 1e-2


def test_the_loss_and_its_gradients_are_the_cpus(tmp_path: Path, data_dir: Path) -> None:
    config = TrainConfig.preset("mnist-unet", net_kwargs={"channels": 16, "blocks": 1, "attention": True},
                                limit_train=64, batch_size=64, epochs=1, sample_every=0, warmup=0)
    results = {}
    # Random weights everywhere: the U-Net's last layer starts at zero, which would leave every
    # other gradient zero and the loss independent of the network.
    generator = torch.Generator().manual_seed(0)
    initial = Trainer(config, tmp_path / "init", device="cpu").net.state_dict()
    weights = {key: (torch.randn(value.shape, generator=generator) * 0.1 if value.is_floating_point()
                     else value) for key, value in initial.items()}
    for device in ("cpu", "cuda"):
        trainer = Trainer(config, tmp_path / device, device=device, quiet=True)
        trainer.net.load_state_dict(weights)
        x0 = data.mnist(train=True, limit=64).images.to(device)
        t = torch.arange(1, 1000, 1000 // 64)[:64].to(device)
        torch.manual_seed(0)
        noise = torch.randn(x0.shape).to(device)
        trainer.degradation.sample_source = lambda x, generator=None, noise=noise: noise  # type: ignore[method-assign]
        loss = trainer.denoiser.loss(x0, t=t)
        loss.backward()  # type: ignore[no-untyped-call]
        results[device] = (loss.item(), {name: p.grad.cpu() for name, p in trainer.net.named_parameters()
                                         if p.grad is not None})
    assert results["cuda"][0] == pytest.approx(results["cpu"][0], rel=NET_RTOL)
    assert results["cuda"][1].keys() == results["cpu"][1].keys()
    assert all(gradient.abs().sum() > 0 for gradient in results["cpu"][1].values())
    for name, gradient in results["cpu"][1].items():
        difference = (results["cuda"][1][name] - gradient).norm()
        assert difference <= NET_RTOL * gradient.norm() + 1e-8, name


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_training_on_the_gpu_runs_in_every_precision(tmp_path: Path, data_dir: Path, precision: str) -> None:
    config = TrainConfig.preset("ddpm-short", net_kwargs={"channels": [8, 8]}, limit_train=2048,
                                batch_size=256, epochs=2, sample_every=1, sample_n=4, sample_steps=5,
                                ema=0.9, precision=precision, checkpoint_every=3)
    trainer = Trainer(config, tmp_path, device="cuda", quiet=True)
    history = trainer.fit()
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in history)
    assert history[-1]["loss"] < history[0]["loss"]
    state = checkpoints.load(trainer.checkpoint_path)  # read back on the CPU
    assert {v.dtype for v in state["model"].values() if v.is_floating_point()} == {torch.float32}


def test_a_compiled_gpu_run_trains_like_an_eager_one(tmp_path: Path, data_dir: Path) -> None:
    config = TrainConfig.preset("ddpm-short", net_kwargs={"channels": [8, 8]}, limit_train=2048,
                                batch_size=256, epochs=1, sample_every=1, sample_n=4, sample_steps=5,
                                precision="bf16")
    eager, = Trainer(config, tmp_path / "eager", device="cuda", quiet=True).fit()
    compiled, = Trainer(config.replace(compile="reduce-overhead"), tmp_path / "compiled", device="cuda",
                        quiet=True).fit()
    assert compiled["compile_time_s"] > 0
    # The same seed, data and noise; compiled kernels round differently in bf16.
    assert compiled["loss"] == pytest.approx(eager["loss"], rel=0.05)


def test_sampling_on_the_gpu_follows_the_cpus_trajectory() -> None:
    """Deterministic 10-step DDIM from the same start, on both devices: the same images."""
    results = {}
    for device in ("cpu", "cuda"):
        model = pretrained.load("mnist-ddpm", device)
        sampler = model.sampler("ddim")
        x_T = torch.randn(16, 1, 28, 28, generator=torch.Generator().manual_seed(0)).to(device)
        results[device] = sampler.sample(x_T, 10).cpu()
    # Ten network calls, each within NET_RTOL; images in [0, 1].
    assert (results["cuda"] - results["cpu"]).abs().mean() < 0.01


def test_ancestral_sampling_in_bf16_on_the_gpu_gives_digits() -> None:
    model = pretrained.load("mnist-ddpm", "cuda")
    model.denoiser.precision = "bf16"
    samples = model.sample(256, sample_steps=50).clamp(0, 1).cpu()
    result = fmd.score(samples, protocol="full", device="cuda")
    assert result.fmd_ratio is not None and result.fmd_ratio < 3  # the card: 1.19 at 1,000 samples
    assert isinstance(model.sampler(), DDPMSampler)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_fmd_on_the_gpu_is_the_cpus(data_dir: Path, precision: str) -> None:
    images = data.mnist(train=True, limit=512).images
    cpu = fmd.score(images, protocol="full", device="cpu")
    gpu = fmd.score(images, protocol="full", device="cuda", precision=precision)
    assert gpu.fmd == pytest.approx(cpu.fmd, rel=0.02 if precision == "bf16" else 1e-3)
    assert gpu.class_histogram == pytest.approx(cpu.class_histogram, abs=3)


@pytest.mark.parametrize(("name", "options"), [("ddpm", {"variance": "posterior"}), ("ddim", {"eta": 0.5}),
                                               ("soft", {})])
def test_blurring_diffusion_samples_on_the_gpu_as_on_the_cpu(name: str, options: dict[str, object]) -> None:
    """The DCT basis and the per-frequency weights on the GPU: in float64 (no TF32) the same
    trajectory as on the CPU, from the same start and noise."""
    from conftest import SmoothNet, trajectory

    from colddiff import Denoiser, Schedule, samplers
    from colddiff.degradations import Blurring

    runs = {}
    for device in ("cpu", "cuda"):
        deg = Blurring(Schedule.preset("short"), sigma_max=3.0, image_shape=(1, 6, 7))
        denoiser = Denoiser(SmoothNet(0.5).to(device), deg, predict="x0")
        sampler = samplers.create(name, denoiser, **options)
        draws = torch.randn(20, 3, 1, 6, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        x_T = torch.randn(3, 1, 6, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        runs[device] = trajectory(sampler, x_T.to(device), list(draws.to(device)), 10).cpu()
    torch.testing.assert_close(runs["cuda"], runs["cpu"], rtol=0, atol=1e-10)


def test_a_conditional_model_trains_and_samples_with_guidance_on_the_gpu_as_on_the_cpu(
        tmp_path: Path, data_dir: Path) -> None:
    """Labels on the GPU in training (bf16, a guided sample grid), and 10 guided DDIM steps (one
    call of 2B each) from the same start on both devices."""
    config = TrainConfig.preset("mnist-unet", conditional=True, guidance=2.0, limit_train=256, batch_size=64,
                                net_kwargs={"channels": 16, "blocks": 1, "attention": True}, epochs=1,
                                sample_every=1, sample_n=20, sample_steps=5, precision="bf16")
    history = Trainer(config, tmp_path, device="cuda", quiet=True).fit()
    assert torch.isfinite(torch.tensor(history[-1]["loss"]))
    model = pretrained.from_checkpoint(tmp_path / "checkpoints" / "last.pt", ema=False)
    model.denoiser.precision = "fp32"
    with torch.no_grad():  # weights under which the labels matter
        generator = torch.Generator().manual_seed(0)
        for parameter in model.denoiser.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    x_T = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 2, 3, 7, 8, 9, 10])  # 10: the null class
    results = {}
    for device in ("cpu", "cuda"):
        sampler = model.sampler("ddim")
        sampler.denoiser.to(device)
        results[device] = sampler.sample(x_T.to(device), 10, labels=labels, guidance=3.0).cpu()
    assert (results["cuda"] - results["cpu"]).abs().mean() < 0.01
