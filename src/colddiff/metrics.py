"""Restoration metrics: SSIM, PSNR and RMSE between restored and clean images, per image.

These are the numbers of Bansal et al. 2022's restoration tables (beside FID, for which
colddiff has the Fréchet MNIST Distance in :mod:`colddiff.fmd`). Each function takes two
batches ``(B, C, H, W)`` of the same shape, on any device, with pixel values in
``[0, data_range]`` (``[0, 1]`` for colddiff's images), and returns one value per image ``(B,)``
in float32 at least; average them for a table row.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F

from colddiff.degradations.base import check_images

__all__ = ["psnr", "rmse", "ssim"]

#: The constants of Wang et al. 2004 (eq. 7 and section III.B): ``C1 = (K1 L)^2``, ``C2 = (K2 L)^2``.
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _pair(images: Tensor, reference: Tensor) -> tuple[Tensor, Tensor]:
    """Both batches, checked to be same-shaped ``(B, C, H, W)`` floats, in a common type of at
    least float32 (the sums of squares lose too much in 16 bits)."""
    check_images("images", images)
    check_images("reference", reference)
    if images.shape != reference.shape:
        raise ValueError(f"images and reference must have the same shape, got {tuple(images.shape)} "
                         f"and {tuple(reference.shape)}")
    dtype = torch.promote_types(torch.promote_types(images.dtype, reference.dtype), torch.float32)
    return images.to(dtype), reference.to(images.device, dtype)


def _mean_squared_error(images: Tensor, reference: Tensor) -> Tensor:
    images, reference = _pair(images, reference)
    return (images - reference).square().flatten(1).mean(1)


def rmse(images: Tensor, reference: Tensor) -> Tensor:
    """Root mean squared error per image, over all pixels and channels.

    Returns:
        ``(B,)`` values, 0 for identical images.
    """
    return _mean_squared_error(images, reference).sqrt()


def psnr(images: Tensor, reference: Tensor, *, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio per image, ``10 log10(data_range^2 / MSE)`` in decibels.

    Returns:
        ``(B,)`` values; ``inf`` for identical images.
    """
    _check_range(data_range)
    return 10 * torch.log10(data_range**2 / _mean_squared_error(images, reference))


def ssim(images: Tensor, reference: Tensor, *, data_range: float = 1.0, window_size: int = 11,
         sigma: float = 1.5) -> Tensor:
    """Structural similarity per image (Wang et al. 2004, "Image Quality Assessment: From Error
    Visibility to Structural Similarity", eq. 13 with the Gaussian window of section III.C).

    With ``mu``, ``sigma^2`` and ``sigma_xy`` the Gaussian-weighted local means, variances and
    covariance (``window_size x window_size``, standard deviation ``sigma``; population, not
    sample, moments)::

        SSIM(x, y) = (2 mu_x mu_y + C1) (2 sigma_xy + C2)
                     / ((mu_x^2 + mu_y^2 + C1) (sigma_x^2 + sigma_y^2 + C2))

    with ``C1 = (0.01 data_range)^2`` and ``C2 = (0.03 data_range)^2``, averaged over every
    position where the window fits inside the image (no padding) and over the channels, each
    channel on its own. This is the definition torchmetrics' and scikit-image's
    (``gaussian_weights=True``, ``use_sample_covariance=False``) SSIM compute.

    Returns:
        ``(B,)`` values in ``[-1, 1]``, 1 for identical images.

    Raises:
        ValueError: If the images are smaller than the window, or an argument is out of range.
    """
    _check_range(data_range)
    if isinstance(window_size, bool) or not isinstance(window_size, int) or window_size < 1 \
            or window_size % 2 == 0:
        raise ValueError(f"window_size must be an odd positive integer, got {window_size!r}")
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a number > 0, got {sigma!r}")
    images, reference = _pair(images, reference)
    channels, height, width = images.shape[1:]
    if min(height, width) < window_size:
        raise ValueError(f"ssim needs images of at least {window_size}x{window_size} pixels (the "
                         f"window), got {height}x{width}; pass a smaller window_size")
    offsets = torch.arange(window_size, dtype=images.dtype, device=images.device) - window_size // 2
    gaussian = torch.exp(-offsets.square() / (2 * sigma**2))
    gaussian = gaussian / gaussian.sum()
    window = (gaussian[:, None] * gaussian[None, :]).expand(channels, 1, window_size, window_size)

    def local_mean(x: Tensor) -> Tensor:
        return F.conv2d(x, window, groups=channels)

    mu_x, mu_y = local_mean(images), local_mean(reference)
    var_x = local_mean(images * images) - mu_x.square()
    var_y = local_mean(reference * reference) - mu_y.square()
    covariance = local_mean(images * reference) - mu_x * mu_y
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    similarity = ((2 * mu_x * mu_y + c1) * (2 * covariance + c2)
                  / ((mu_x.square() + mu_y.square() + c1) * (var_x + var_y + c2)))
    return similarity.flatten(1).mean(1)


def _check_range(data_range: float) -> None:
    if not (isinstance(data_range, (int, float)) and math.isfinite(data_range) and data_range > 0):
        raise ValueError(f"data_range must be a number > 0 (1.0 for images in [0, 1]), got {data_range!r}")
