"""The example plugin package (examples/custom_degradation): its sampler and network honour the
contracts the plugin guide documents, installed or not."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from colddiff import ColdSampler, Denoiser, Schedule, degradations, nets
from colddiff.config import TrainConfig
from colddiff.training import Trainer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "custom_degradation" / "src"))
from colddiff_pixelate.net import TinyNet
from colddiff_pixelate.sampler import Damped


def blur_denoiser(seed: int = 0) -> Denoiser:
    torch.manual_seed(seed)
    blur = degradations.create("blur", num_timesteps=8, image_shape=(1, 8, 8))
    return Denoiser(TinyNet(in_channels=1, width=4), blur, predict="x0")


def trajectory(sampler: ColdSampler | Damped, x_T: torch.Tensor,
               sample_steps: int | None) -> list[torch.Tensor]:
    visited: list[torch.Tensor] = []
    sampler.sample(x_T, sample_steps, callback=lambda i, t, x_t, x0_hat: visited.append(x_t.clone()))
    return visited


@pytest.mark.parametrize(("damping", "algorithm"), [(1.0, 2), (0.0, 1)])
@pytest.mark.parametrize("sample_steps", [None, 3])
def test_damped_sampler_is_bansals_algorithm_at_its_ends(damping: float, algorithm: int,
                                                          sample_steps: int | None) -> None:
    denoiser = blur_denoiser()
    x_T = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    damped = trajectory(Damped(denoiser, damping=damping), x_T, sample_steps)
    bansal = trajectory(ColdSampler(denoiser, algorithm=algorithm), x_T, sample_steps)  # type: ignore[arg-type]
    assert len(damped) == len(bansal) == (sample_steps or 8)
    for ours, theirs in zip(damped, bansal, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)


@given(st.floats(0, 1))
def test_damped_step_blends_the_two_updates(damping: float) -> None:
    denoiser = blur_denoiser()
    deg = denoiser.degradation
    x_t, x0_hat = torch.rand(2, 2, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    t, s = torch.full((2,), 5), torch.full((2,), 3)
    step = Damped(denoiser, damping=damping).step(0, 5, 3, x_t, x0_hat, t, s, None)
    algorithm_1 = deg.degrade(x0_hat, s)
    algorithm_2 = x_t - deg.degrade(x0_hat, t) + deg.degrade(x0_hat, s)
    torch.testing.assert_close(step, (1 - damping) * algorithm_1 + damping * algorithm_2, rtol=0, atol=1e-6)


def test_damped_sampler_refuses_bad_options() -> None:
    with pytest.raises(ValueError, match=r"damping must be a number in \[0, 1\], got 1.5"):
        Damped(blur_denoiser(), damping=1.5)
    noisy = Denoiser(TinyNet(), degradations.create("gaussian", schedule=Schedule.preset("short")))
    with pytest.raises(ValueError, match="Damped needs a deterministic degradation"):
        Damped(noisy)


def test_tiny_net_keeps_the_shape_and_takes_the_data_channels() -> None:
    net = TinyNet(in_channels=3, width=8)
    x_t = torch.randn(2, 3, 12, 10)
    assert net(x_t, torch.tensor([0.0, 1.0])).shape == x_t.shape
    with pytest.raises(ValueError, match="width must be a positive integer, got 0"):
        TinyNet(width=0)


def test_plugin_net_and_sampler_train_and_sample_by_name(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Registered by name (as the entry points do when the package is installed), the network is
    built with the data's channels and the sampler is built from the config's options."""
    from colddiff import samplers

    if "tinynet" not in nets.available():  # not installed: register them as the entry points would
        monkeypatch.setattr(nets.REGISTRY, "_registered", dict(nets.REGISTRY._registered))
        monkeypatch.setattr(samplers.REGISTRY, "_registered", dict(samplers.REGISTRY._registered))
        nets.register("tinynet")(TinyNet)
        samplers.register("damped")(Damped)
    images = torch.rand(16, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    config = TrainConfig(degradation="blur", degradation_kwargs={"num_timesteps": 4}, net="tinynet",
                         net_kwargs={"width": 4}, predict="x0", sampler="damped",
                         sampler_kwargs={"damping": 0.5}, epochs=1, batch_size=8, sample_every=0)
    trainer = Trainer(config, tmp_path / "run", images=images)
    trainer.fit()
    assert isinstance(trainer.denoiser.net, TinyNet) and trainer.denoiser.net.inp.in_channels == 3
    samples = trainer.sample(2, sample_steps=2)
    assert samples.shape == (2, 3, 8, 8) and bool(torch.isfinite(samples).all())
