"""colddiff against Bansal et al.'s official code (arpitbansal297/Cold-Diffusion-Models), step by step.

Each test re-implements the official formulas by hand, independently of colddiff's code (the
official code applies its per-step operators one after the other with ``torch.nn.functional``;
colddiff computes step ``t`` directly), and compares every step ``t``:

* blur: ``deblurring-diffusion-pytorch`` (README's MNIST command ``mnist_train.py --time_steps 20
  --blur_size 11 --blur_std 7.0 --blur_routine 'Constant'``): an 11x11 Gaussian of std 7
  (torchgeometry's ``get_gaussian_kernel2d``) as a depthwise convolution with circular padding,
  applied once per step;
* super-resolution: ``resolution-diffusion-pytorch`` (``runs.sh``: ``mnist_train.py --time_steps 3
  --resolution_routine 'Incremental_factor_2'``): step ``i`` shrinks the previous image to
  ``32 // 2^(i + 1)`` pixels with bicubic interpolation, no antialiasing, and enlarges it back
  with ``'nearest-exact'``;
* inpainting: ``defading-diffusion-pytorch`` (``mnist_train.py``, ``fade_routine
  'Random_Incremental'``): a ``(2N + 1)``-sided fade kernel, its first row and column dropped,
  cropped at a random offset ``0..N`` and multiplied in once per step.

The official step index ``i = 0..T-1`` is colddiff's ``t = i + 1``; its images lie in ``[-1, 1]``.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import pytest
import torch
from conftest import X0Oracle
from torch import Tensor, nn
from torch.nn import functional as F

from colddiff import ColdSampler, Denoiser, Schedule, degradations
from colddiff.config import TrainConfig
from colddiff.degradations import Blur, Inpaint, SuperResolution
from colddiff.training import Trainer


def images(shape: tuple[int, ...], dtype: torch.dtype = torch.float64, seed: int = 0) -> Tensor:
    """Random images in the official code's range ``[-1, 1]``."""
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype) * 2 - 1


# --- Blur ---------------------------------------------------------------------------------------


def official_kernel(size: int, std: float, dtype: torch.dtype) -> Tensor:
    """torchgeometry's ``get_gaussian_kernel2d((size, size), (std, std))``: the outer product of
    ``exp(-(x - size // 2)^2 / (2 std^2))``, ``x = 0..size-1``, normalised to sum one."""
    gauss = [math.exp(-((x - size // 2) ** 2) / (2 * std**2)) for x in range(size)]
    line = torch.tensor([g / sum(gauss) for g in gauss], dtype=dtype)
    return line[:, None] @ line[None, :]


def official_blurs(x0: Tensor, num_timesteps: int, size: int = 11, std: float = 7.0) -> list[Tensor]:
    """``[x_0, x_1, ..., x_T]``: the official 'Constant' blur routine, one circular-padded
    depthwise convolution per step."""
    channels, pad = x0.shape[1], (size - 1) // 2
    weight = official_kernel(size, std, x0.dtype).expand(channels, 1, size, size)
    levels = [x0]
    for _ in range(num_timesteps):
        levels.append(F.conv2d(F.pad(levels[-1], (pad, pad, pad, pad), mode="circular"), weight,
                               groups=channels))
    return levels


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float64, 1e-12), (torch.float32, 1e-6)])
@pytest.mark.parametrize("shape", [(2, 1, 32, 32), (2, 3, 32, 24)])
def test_the_official_blur_matches_the_official_code_at_every_step(
        dtype: torch.dtype, tolerance: float, shape: tuple[int, ...]) -> None:
    x0 = images(shape, dtype)
    blur = Blur(official=True)
    assert (blur.num_timesteps, blur.kernel_size, blur.kernel_std) == (20, 11, 7.0)
    for t, expected in enumerate(official_blurs(x0, 20)):
        torch.testing.assert_close(blur.degrade(x0, t), expected, rtol=0, atol=tolerance)
    # One step per image, as in training.
    steps = torch.tensor([20, 7])
    expected = torch.stack([official_blurs(x0, 20)[int(t)][i] for i, t in enumerate(steps)])
    torch.testing.assert_close(blur.degrade(x0, steps), expected, rtol=0, atol=tolerance)


def test_any_repeated_kernel_matches_the_official_routine() -> None:
    x0 = images((3, 2, 7, 9))  # sides smaller than the kernel: the image wraps around more than once
    blur = Blur(num_timesteps=6, kernel_size=5, kernel_std=1.5)
    for t, expected in enumerate(official_blurs(x0, 6, size=5, std=1.5)):
        torch.testing.assert_close(blur.degrade(x0, t), expected, rtol=0, atol=1e-12)
    identity = Blur(num_timesteps=3, kernel_size=1, kernel_std=2.0)
    assert torch.equal(identity.degrade(x0, 3), x0)


def test_the_official_blur_reaches_13_6_pixels_and_keeps_t_20_with_any_schedule() -> None:
    blur = degradations.create("blur", schedule=Schedule.preset("default"), official=True)
    assert isinstance(blur, Blur)
    assert blur.num_timesteps == 20, "official=True is T = 20, not the schedule's length"
    assert Blur(official=True, num_timesteps=30).num_timesteps == 30
    assert float(blur.sigma[-1]) == pytest.approx(13.58, abs=0.01) and blur.sigma_max == float(blur.sigma[-1])
    assert float(blur.sigma[1]) == pytest.approx(3.04, abs=0.01), "the kernel's own standard deviation"
    constant = torch.full((1, 1, 32, 32), 0.25, dtype=torch.float64)
    torch.testing.assert_close(blur.degrade(constant, 20), constant, rtol=0, atol=1e-12)
    assert repr(blur) == "Blur(num_timesteps=20, official=True)"
    assert repr(Blur(kernel_size=5, kernel_std=1.5, noise=0.1)) == (
        "Blur(num_timesteps=20, kernel_size=5, kernel_std=1.5, noise=0.1)")
    assert repr(Blur(num_timesteps=4, sigma_max=2.0)) == "Blur(num_timesteps=4, sigma_max=2.0)"


class TinyNet(nn.Module):
    """An untrained network: enough to run a sampler end to end."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1, dtype=torch.float64)

    def forward(self, x_t: Tensor, t: Tensor) -> Tensor:
        return torch.as_tensor(self.conv(x_t))


@pytest.mark.parametrize("noise", [0.0, 0.05])
def test_the_official_blur_fits_its_prior_and_cold_samples(noise: float) -> None:
    train = images((200, 1, 16, 16)) * 0.5 + 0.5
    blur = Blur(official=True, noise=noise, image_shape=(1, 16, 16)).fit_prior(train)
    start = blur.prior(4, generator=torch.Generator().manual_seed(1)).double()
    assert start.shape == (4, 1, 16, 16)
    source: Literal["fixed", "estimate"] = "estimate" if noise else "fixed"
    sampler = ColdSampler(Denoiser(TinyNet(), blur, predict="x0"), algorithm=2, source=source)
    sampled = sampler.sample(start, 7)
    assert sampled.shape == start.shape and bool(torch.isfinite(sampled).all())
    # A perfect restorer undoes it exactly, in every step and in 7 strided ones.
    x0 = train[:4]
    z = blur.sample_source(x0, generator=torch.Generator().manual_seed(2))
    for sample_steps in (None, 7):
        sampler = ColdSampler(Denoiser(X0Oracle(x0), blur, predict="x0"), algorithm=2, source=source)
        restored = sampler.sample(blur.degrade(x0, 20, z), sample_steps)
        torch.testing.assert_close(restored, x0, rtol=0, atol=1e-10)


# --- Super-resolution ---------------------------------------------------------------------------


def official_resolutions(x0: Tensor, num_timesteps: int) -> list[Tensor]:
    """``[x_0, ..., x_T]``: the official 'Incremental_factor_2' routine: step ``i`` shrinks the
    previous image by ``d = N - N // 2^(i + 1)`` pixels (bicubic, no antialiasing) and enlarges it
    back (``'nearest-exact'``)."""
    size = x0.shape[-1]
    levels = [x0]
    for i in range(num_timesteps):
        d = size - size // 2 ** (i + 1)
        small = F.interpolate(levels[-1], size=size - d, mode="bicubic", antialias=False)
        levels.append(F.interpolate(small, size=size, mode="nearest-exact"))
    return levels


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float64, 1e-12), (torch.float32, 1e-6)])
def test_bicubic_super_resolution_matches_the_official_code_at_every_step(
        dtype: torch.dtype, tolerance: float) -> None:
    x0 = images((3, 2, 32, 32), dtype)
    superres = SuperResolution(num_timesteps=3, mode="bicubic")
    official = official_resolutions(x0, 3)
    for t, expected in enumerate(official):
        torch.testing.assert_close(superres.degrade(x0, t), expected, rtol=0, atol=tolerance)
    steps = torch.tensor([1, 3, 0])
    expected = torch.stack([official[int(t)][i] for i, t in enumerate(steps)])
    torch.testing.assert_close(superres.degrade(x0, steps), expected, rtol=0, atol=tolerance)
    # Bicubic weights sum to one: images in [0, 1] give the official [-1, 1] results, mapped.
    for t, expected in enumerate(official):
        torch.testing.assert_close(superres.degrade((x0 + 1) / 2, t), (expected + 1) / 2,
                                   rtol=0, atol=tolerance)


def test_bicubic_differs_from_area_only_in_the_first_halving() -> None:
    x0 = images((2, 1, 32, 32))
    bicubic, area = SuperResolution(mode="bicubic"), SuperResolution(mode="area")
    assert float((bicubic.degrade(x0, 1) - area.degrade(x0, 1)).abs().max()) > 0.1
    # From t = 2 on, each step is the 2x2 block mean of the previous one (as documented).
    first = bicubic.degrade(x0, 1)[..., ::2, ::2]  # the 16x16 image of the first step
    for t in (2, 3):
        means = F.avg_pool2d(first, 2 ** (t - 1)).repeat_interleave(2**t, -2).repeat_interleave(2**t, -1)
        torch.testing.assert_close(bicubic.degrade(x0, t), means, rtol=0, atol=1e-12)


def test_bicubic_super_resolution_works_on_any_divisible_shape() -> None:
    x0 = images((2, 3, 16, 8))
    superres = SuperResolution(num_timesteps=2, mode="bicubic", image_shape=(3, 16, 8))
    level = x0
    for t in (1, 2):
        small = F.interpolate(level, size=(16 // 2**t, 8 // 2**t), mode="bicubic", antialias=False)
        level = F.interpolate(small, size=(16, 8), mode="nearest-exact")
        torch.testing.assert_close(superres.degrade(x0, t), level, rtol=0, atol=1e-12)
    assert repr(superres) == "SuperResolution(num_timesteps=2, mode='bicubic')"


# --- Inpainting ---------------------------------------------------------------------------------


def official_fade_kernels(size: int, num_timesteps: int, dtype: torch.dtype) -> list[Tensor]:
    """The official 'Random_Incremental' fade kernels: ``1 - g / max(g)`` for a ``(2N + 1)``-sided
    Gaussian ``g`` of std ``0.1 (i + 11)``, its first row and column dropped (``2N x 2N``)."""
    kernels = []
    for i in range(num_timesteps):
        gauss = official_kernel(2 * size + 1, 0.1 * (i + 11), dtype)
        kernels.append((1 - gauss / gauss.max())[1:, 1:])
    return kernels


def official_fades(x0: Tensor, offsets: list[tuple[int, int]], num_timesteps: int) -> list[Tensor]:
    """``[x_0, ..., x_T]``: each image multiplied once per step by its kernel's ``N x N`` crop at
    its offset ``(rand_x, rand_y)``."""
    size = x0.shape[-1]
    kernels = official_fade_kernels(size, num_timesteps, x0.dtype)
    levels = [x0]
    for kernel in kernels:
        crops = torch.stack([kernel[r:r + size, c:c + size] for r, c in offsets])[:, None]
        levels.append(crops * levels[-1])
    return levels


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float64, 1e-12), (torch.float32, 1e-6)])
def test_inpainting_matches_the_official_code_at_every_step(dtype: torch.dtype, tolerance: float) -> None:
    size = 32
    offsets = [(0, 0), (size, size), (0, size), (5, 17), (31, 1)]  # the extremes of randint(0, N + 1)
    x0 = images((len(offsets), 1, size, size), dtype)
    centres = torch.tensor([[size - 1 - r, size - 1 - c] for r, c in offsets], dtype=dtype)
    inpaint = Inpaint(value_range=(-1.0, 1.0))  # masked pixels fade to 0, as the official products do
    for t, expected in enumerate(official_fades(x0, offsets, 50)):
        torch.testing.assert_close(inpaint.degrade(x0, t, centres), expected, rtol=0, atol=tolerance)


def test_inpainting_centres_range_as_the_official_ones() -> None:
    inpaint = Inpaint()
    for height, width in ((32, 32), (28, 20)):
        centres = inpaint.sample_source(torch.zeros(20000, 1, height, width),
                                        generator=torch.Generator().manual_seed(0))
        assert centres is not None and centres.dtype == torch.float32
        for axis, side in enumerate((height, width)):
            counts = torch.bincount(centres[:, axis].long() + 1, minlength=side + 1)
            assert len(counts) == side + 1, f"centres from -1 to {side - 1}"
            mean = 20000 / (side + 1)
            assert 0.7 * mean < int(counts.min()) and int(counts.max()) < 1.3 * mean, "uniform"
    assert Inpaint(center="middle").sample_source(torch.zeros(2, 1, 8, 8)) is None


# --- Strided sampling ---------------------------------------------------------------------------


@pytest.mark.parametrize(("num_timesteps", "sample_steps"), [(20, 3), (20, 7), (50, 7), (5, 2), (20, 20)])
def test_strided_grids_round_half_up_where_k_does_not_divide_t(num_timesteps: int, sample_steps: int) -> None:
    x0 = images((2, 1, 8, 8)) * 0.5 + 0.5
    blur = Blur(num_timesteps=num_timesteps, kernel_size=3, kernel_std=1.0)
    expected = [math.floor(Fraction(num_timesteps * k, sample_steps) + Fraction(1, 2))
                for k in range(sample_steps, -1, -1)]
    sampler = ColdSampler(Denoiser(X0Oracle(x0), blur, predict="x0"), algorithm=2)
    assert sampler.timesteps(sample_steps) == expected
    seen: list[int] = []
    restored = sampler.sample(blur.degrade(x0, num_timesteps), sample_steps,
                              callback=lambda i, t, x_t, x0_hat: seen.append(t))
    assert seen == expected[:-1]
    torch.testing.assert_close(restored, x0, rtol=0, atol=1e-10)


# --- Configs and bad input ----------------------------------------------------------------------


def test_official_settings_train_from_a_config(tmp_path: Path, data_dir: Path) -> None:
    for name, kwargs in (("blur", {"official": True}), ("superres", {"mode": "bicubic"})):
        config = TrainConfig(degradation=name, degradation_kwargs=kwargs, image_size=32, predict="x0",
                             sampler="cold", net_kwargs={"channels": [4, 4]}, limit_train=64, batch_size=32,
                             epochs=1, sample_every=0)
        trainer = Trainer(config, tmp_path / name, quiet=True)
        assert trainer.degradation.num_timesteps == {"blur": 20, "superres": 3}[name]
        trainer.fit()
        samples = trainer.sample(4, sample_steps=3)
        assert samples.shape == (4, 1, 32, 32) and bool(torch.isfinite(samples).all())


ODD = r"^kernel_size must be an odd integer >= 1 \(1, 3, 5, \.\.\.\), got "
POSITIVE = r"^kernel_std must be a finite number > 0, got "


@pytest.mark.parametrize(("kind", "options", "message"), [
    (SuperResolution, {"mode": "cubic"},
     r"^mode must be one of \['area', 'nearest', 'bicubic'\], got 'cubic'$"),
    (Blur, {"official": "yes"}, r"^official must be True or False, got 'yes'$"),
    (Blur, {"official": True, "kernel_size": 5},
     r"^official=True is kernel_size=11 and kernel_std=7\.0 \(T = 20 unless num_timesteps is given\): "
     r"leave out kernel_size$"),
    (Blur, {"official": True, "sigma_max": 3.0, "kernel_std": 1.0}, r"leave out sigma_max, kernel_std$"),
    (Blur, {"kernel_size": 11},
     r"^kernel_size and kernel_std go together \(.*\), got kernel_size=11 and kernel_std=None$"),
    (Blur, {"kernel_std": 7.0}, r"got kernel_size=None and kernel_std=7\.0$"),
    (Blur, {"kernel_size": 4, "kernel_std": 1.0}, ODD + "4$"),
    (Blur, {"kernel_size": 0, "kernel_std": 1.0}, ODD + "0$"),
    (Blur, {"kernel_size": 3.0, "kernel_std": 1.0}, ODD + r"3\.0$"),
    (Blur, {"kernel_size": True, "kernel_std": 1.0}, ODD + "True$"),
    (Blur, {"kernel_size": 3, "kernel_std": 0}, POSITIVE + "0$"),
    (Blur, {"kernel_size": 3, "kernel_std": float("inf")}, POSITIVE + "inf$"),
    (Blur, {"kernel_size": 3, "kernel_std": 1.0, "sigma_max": 2.0},
     r"^sigma_max is the direct blur's width; .*: leave sigma_max out$"),
    (Blur, {"sigma_max": "6"}, r"^sigma_max must be a finite number > 0, got '6'$"),
    (Blur, {"noise": -0.1}, r"^noise must be a finite number >= 0, got -0\.1$"),
])
def test_bad_official_options_name_the_argument_and_what_it_accepts(
        kind: type[degradations.Degradation], options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        kind(**options)


def test_a_kernel_wider_than_the_image_adds_every_wrapped_tap() -> None:
    """On sides 4 and 3 the 5-tap kernel's offsets -2 and 2 (and -1 and 2 on 3) land on the same
    pixel: the circulant matrix adds their taps, as the official circular padding does."""
    x0 = images((2, 1, 4, 3))
    blur = Blur(num_timesteps=3, kernel_size=5, kernel_std=1.5)
    for t, expected in enumerate(official_blurs(x0, 3, size=5, std=1.5)):
        torch.testing.assert_close(blur.degrade(x0, t), expected, rtol=0, atol=1e-12)
    for size in (3, 4, 9):  # one axis's step keeps each row's mass
        step = blur.operators(size)[1]
        torch.testing.assert_close(step.sum(dim=1), torch.ones(size, dtype=torch.float64), rtol=0, atol=1e-15)
        assert (step >= 0).all()


def test_a_kernel_size_without_its_std_is_named_in_a_whole_message() -> None:
    with pytest.raises(ValueError, match="^" + re.escape(
            "kernel_size and kernel_std go together (a kernel_size x kernel_size Gaussian of std "
            "kernel_std, applied once per step), got kernel_size=5 and kernel_std=None") + "$"):
        Blur(kernel_size=5)
