"""Restoration degradations (super-resolution) and restoring degraded images part-way."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from conftest import X0Oracle
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor

from colddiff import ColdSampler, Denoiser, data, degradations, metrics
from colddiff.config import TrainConfig
from colddiff.degradations import SuperResolution
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
                                         r"the images \(image_size, e.g. 24\) or lower num_timesteps"):
        SuperResolution(image_shape=(1, 28, 28))
    deg = SuperResolution(num_timesteps=2)
    deg.degrade(torch.rand(1, 1, 28, 28), 2)  # 28 -> 14 -> 7
    with pytest.raises(ValueError, match="divisible by 2\\^T = 4, got 30x30"):
        deg.degrade(torch.rand(1, 1, 30, 30), 1)
    with pytest.raises(ValueError, match=r"mode must be one of \['area', 'nearest'\], got 'bicubic'"):
        SuperResolution(mode="bicubic")  # type: ignore[arg-type]
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
