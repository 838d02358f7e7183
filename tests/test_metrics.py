"""SSIM, PSNR and RMSE against scikit-image's, on random images and real MNIST."""

from __future__ import annotations

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
