"""SSIM, PSNR and RMSE against scikit-image's, on random images and real MNIST."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from skimage import metrics as reference_metrics
from torch import Tensor

from colddiff import data, metrics


def skimage_ssim(images: Tensor, reference: Tensor) -> Tensor:
    """scikit-image's SSIM with Wang et al.'s Gaussian window (sigma 1.5, 11x11)."""
    return torch.tensor([reference_metrics.structural_similarity(
        a.permute(1, 2, 0).double().numpy(), b.permute(1, 2, 0).double().numpy(), channel_axis=2,
        data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
        for a, b in zip(images, reference, strict=True)], dtype=torch.float64)


def noisy(images: Tensor, level: float, seed: int) -> Tensor:
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed), dtype=images.dtype)
    return (images + level * noise).clamp(0, 1)


@given(batch=st.integers(1, 3), channels=st.sampled_from([1, 3]), height=st.integers(11, 40),
       width=st.integers(11, 40), level=st.floats(0.0, 1.0), seed=st.integers(0, 2**16))
def test_ssim_is_scikit_images_on_random_images(batch: int, channels: int, height: int, width: int,
                                                level: float, seed: int) -> None:
    clean = torch.rand(batch, channels, height, width, generator=torch.Generator().manual_seed(seed))
    degraded = noisy(clean, level, seed + 1)
    torch.testing.assert_close(metrics.ssim(degraded, clean).double(), skimage_ssim(degraded, clean),
                               rtol=0, atol=1e-4)


@pytest.mark.parametrize("level", [0.05, 0.3])
def test_the_metrics_are_scikit_images_on_real_digits(data_dir: Path, level: float) -> None:
    clean = data.mnist(train=False, limit=64).images
    degraded = noisy(clean, level, 0)
    torch.testing.assert_close(metrics.ssim(degraded, clean).double(), skimage_ssim(degraded, clean),
                               rtol=0, atol=1e-4)
    pairs = [(a.double().numpy(), b.double().numpy()) for a, b in zip(degraded, clean, strict=True)]
    expected_mse = torch.tensor([reference_metrics.mean_squared_error(b, a) for a, b in pairs])
    expected_psnr = torch.tensor([reference_metrics.peak_signal_noise_ratio(b, a, data_range=1.0)
                                  for a, b in pairs])
    torch.testing.assert_close(metrics.rmse(degraded, clean).double(), expected_mse.sqrt(), rtol=1e-5, atol=0)
    torch.testing.assert_close(metrics.psnr(degraded, clean).double(), expected_psnr, rtol=1e-5, atol=0)


def test_identical_images_score_perfectly_and_worse_ones_worse(data_dir: Path) -> None:
    clean = data.mnist(train=False, limit=16).images
    assert torch.equal(metrics.ssim(clean, clean), torch.ones(16))
    assert torch.equal(metrics.rmse(clean, clean), torch.zeros(16))
    assert torch.isinf(metrics.psnr(clean, clean)).all()
    slightly, badly = noisy(clean, 0.05, 1), noisy(clean, 0.5, 1)
    assert (metrics.ssim(badly, clean) < metrics.ssim(slightly, clean)).all()
    assert (metrics.psnr(badly, clean) < metrics.psnr(slightly, clean)).all()


def test_a_known_error_gives_known_values() -> None:
    clean = torch.zeros(2, 1, 12, 12)
    shifted = clean + torch.tensor([0.1, 0.5]).view(2, 1, 1, 1)
    torch.testing.assert_close(metrics.rmse(shifted, clean), torch.tensor([0.1, 0.5]))
    expected_psnr = torch.tensor([20.0, 10 * np.log10(4.0)], dtype=torch.float32)
    torch.testing.assert_close(metrics.psnr(shifted, clean), expected_psnr)
    # A constant shift d of flat images: only the luminance term, (C1) / (d^2 + C1).
    c1 = (0.01 * 1.0) ** 2
    torch.testing.assert_close(metrics.ssim(shifted, clean),
                               torch.tensor([c1 / (0.01 + c1), c1 / (0.25 + c1)]))


def test_types_are_kept_or_raised_to_float32() -> None:
    images = torch.rand(2, 1, 16, 16, dtype=torch.float64)
    assert metrics.ssim(images, images.flip(0)).dtype == torch.float64
    assert metrics.psnr(images.bfloat16(), images.flip(0).bfloat16()).dtype == torch.float32


@pytest.mark.parametrize(("call", "message"), [
    (lambda: metrics.ssim(torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)),
     "ssim needs images of at least 11x11 pixels"),
    (lambda: metrics.rmse(torch.rand(2, 1, 8, 8), torch.rand(3, 1, 8, 8)),
     r"images and reference must have the same shape, got \(2, 1, 8, 8\) and \(3, 1, 8, 8\)"),
    (lambda: metrics.psnr(torch.rand(1, 8, 8), torch.rand(1, 8, 8)),
     r"images must be a floating-point tensor of shape \(B, C, H, W\), got Tensor\(1, 8, 8\)"),
    (lambda: metrics.psnr(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8), data_range=0),
     "data_range must be a number > 0"),
    (lambda: metrics.ssim(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16), window_size=4),
     "window_size must be an odd positive integer, got 4"),
])
def test_bad_input_is_named(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


@pytest.mark.parametrize(("data_range", "sigma"), [(2.0, 1.5), (1.0, 0.5)])
def test_ssim_with_any_range_and_width_is_scikit_images_in_float64(data_range: float, sigma: float) -> None:
    clean = torch.rand(2, 3, 20, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    clean = clean * data_range
    degraded = clean + 0.2 * data_range * torch.rand(clean.shape, generator=torch.Generator().manual_seed(4),
                                                     dtype=torch.float64)
    expected = torch.tensor([reference_metrics.structural_similarity(
        a.permute(1, 2, 0).numpy(), b.permute(1, 2, 0).numpy(), channel_axis=2, data_range=data_range,
        gaussian_weights=True, sigma=sigma, win_size=11, use_sample_covariance=False)
        for a, b in zip(degraded, clean, strict=True)], dtype=torch.float64)
    torch.testing.assert_close(metrics.ssim(degraded, clean, data_range=data_range, sigma=sigma), expected,
                               rtol=0, atol=1e-7)  # skimage truncates the window at 3.5 sigma
    # 10 log10(data_range^2 / MSE) with a constant error of 0.1: MSE = 0.01.
    torch.testing.assert_close(metrics.psnr(clean + 0.1, clean, data_range=data_range),
                               torch.full((2,), 10 * np.log10(data_range**2 / 0.01), dtype=torch.float64))


def test_a_one_pixel_window_compares_pixels_alone() -> None:
    x = torch.rand(1, 1, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = torch.rand(1, 1, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    c1 = 0.01**2  # no variance in a 1x1 window: only the luminance term is left
    expected = ((2 * x * y + c1) / (x * x + y * y + c1)).mean().view(1)
    torch.testing.assert_close(metrics.ssim(x, y, window_size=1), expected, rtol=0, atol=1e-15)


def test_half_precision_is_scored_as_its_float32_values() -> None:
    images = torch.rand(2, 1, 12, 12, generator=torch.Generator().manual_seed(0)).bfloat16()
    reference = torch.rand(2, 1, 12, 12, generator=torch.Generator().manual_seed(1))
    for a, b in [(images, reference.bfloat16()), (images, reference), (images.float(), reference.bfloat16())]:
        assert torch.equal(metrics.ssim(a, b), metrics.ssim(a.float(), b.float()))


@pytest.mark.parametrize(("options", "message"), [
    ({"window_size": -1}, "window_size must be an odd positive integer, got -1"),
    ({"window_size": True}, "window_size must be an odd positive integer, got True"),
    ({"sigma": 0.0}, "sigma must be a number > 0, got 0.0"),
    ({"sigma": -1.0}, "sigma must be a number > 0, got -1.0"),
    ({"sigma": float("inf")}, "sigma must be a number > 0, got inf"),
])
def test_bad_ssim_options_are_named_in_whole_messages(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        metrics.ssim(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16), **options)  # type: ignore[arg-type]


def test_a_bad_reference_is_named() -> None:
    with pytest.raises(ValueError, match="^" + re.escape(
            "reference must be a floating-point tensor of shape (B, C, H, W), got Tensor(1, 8, 8)") + "$"):
        metrics.rmse(torch.rand(1, 1, 8, 8), torch.rand(1, 8, 8))
