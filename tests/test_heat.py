"""The ``heat`` degradation (Rissanen et al. 2023, Inverse Heat Dissipation) against exact oracles:
a by-hand 2-D DCT, the official code's pipeline, constant images, single DCT basis images, the
closed-form statistics of Gaussian data, and the paper's sampler written out step by step."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.fft
import torch
from torch import Tensor, nn

from colddiff import Denoiser, Schedule, degradations
from colddiff.degradations import Heat
from colddiff.degradations.heat import dct_matrix, heat_frequencies
from colddiff.samplers import ColdSampler
from tests.conftest import X0Oracle

H, W = 5, 7  # not square: a mix-up of the axes would show
EYE = torch.eye(H * W, dtype=torch.float64)


def _images(seed: int, n: int = 3, channels: int = 2) -> Tensor:
    return torch.rand(n, channels, H, W, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _basis(n: int, m: int) -> Tensor:
    """The DCT-II basis image ``(n, m)`` written out:
    ``s_n s_m cos(pi n (2i + 1) / 2H) cos(pi m (2j + 1) / 2W)``."""
    i = torch.arange(H, dtype=torch.float64)[:, None]
    j = torch.arange(W, dtype=torch.float64)[None, :]
    rows = math.sqrt((1 if n == 0 else 2) / H) * torch.cos(math.pi * n * (2 * i + 1) / (2 * H))
    cols = math.sqrt((1 if m == 0 else 2) / W) * torch.cos(math.pi * m * (2 * j + 1) / (2 * W))
    return rows * cols


def _outer(image: Tensor) -> Tensor:
    return torch.outer(image.ravel(), image.ravel())


def _eigenvalue(n: int, m: int) -> float:
    """``lambda_nm = pi^2 (n^2 / H^2 + m^2 / W^2)``, the Neumann Laplacian's eigenvalue."""
    return math.pi**2 * (n**2 / H**2 + m**2 / W**2)


def test_the_defaults_are_the_papers_mnist_setting() -> None:
    heat = degradations.create("heat", schedule=Schedule.preset("default"))  # the length is not used
    assert isinstance(heat, Heat) and heat.num_timesteps == 100
    assert heat.noise == 0.01 and heat.noise_levels.tolist() == [0.0] + [0.01] * 100
    assert heat.sigma[0] == 0 and heat.tau[0] == 0
    torch.testing.assert_close(heat.sigma[1], torch.tensor(0.5, dtype=torch.float64), rtol=1e-15, atol=0)
    torch.testing.assert_close(heat.sigma[-1], torch.tensor(20.0, dtype=torch.float64), rtol=1e-14, atol=0)
    ratios = heat.sigma[2:] / heat.sigma[1:-1]  # a log scale: one ratio, 40^(1/99)
    torch.testing.assert_close(ratios, torch.full_like(ratios, 40 ** (1 / 99)), rtol=1e-12, atol=0)
    torch.testing.assert_close(heat.tau, heat.sigma**2 / 2, rtol=0, atol=0)
    assert heat.start_is_source is False and heat.recovers_source and not heat.invertible
    assert repr(heat) == "Heat(num_timesteps=100, sigma_min=0.5, sigma_max=20.0, noise=0.01)"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"sigma_min": 0.0}, "sigma_min must be a finite number > 0, got 0.0"),
    ({"sigma_max": math.nan}, "sigma_max must be a finite number > 0, got nan"),
    ({"sigma_min": 3.0, "sigma_max": 2.0},
     "sigma_min must be at most sigma_max, got sigma_min=3.0 and sigma_max=2.0"),
    ({"noise": -0.01}, "noise must be a finite number >= 0, got -0.01"),
    ({"noise": [0.0, 0.01]}, r"noise, as a schedule, must be T \+ 1 = 101 finite numbers .*; got 2 values"),
])
def test_bad_options_are_named(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Heat(**kwargs)  # type: ignore[arg-type]


def test_the_dct_matrix_is_scipys_orthonormal_dct() -> None:
    for size in (1, 5, 8):
        matrix = dct_matrix(size)
        expected = scipy.fft.dct(np.eye(size), axis=0, norm="ortho")
        torch.testing.assert_close(matrix, torch.from_numpy(expected), rtol=0, atol=1e-14)
        identity = torch.eye(size, dtype=torch.float64)
        torch.testing.assert_close(matrix @ matrix.T, identity, rtol=0, atol=1e-14)
    expected = torch.tensor([0, 1, 2, 3], dtype=torch.float64) * math.pi / 4
    torch.testing.assert_close(heat_frequencies(4), expected)


@pytest.mark.parametrize("k", [0, 1, 7, 30])
def test_the_heat_blur_is_the_by_hand_eigenbasis_operator(k: int) -> None:
    """``F(t) = sum_nm exp(-lambda_nm t) b_nm b_nm^T`` over the basis images, as one
    ``(H W) x (H W)`` matrix, applied to each flattened channel."""
    heat = Heat(num_timesteps=30, noise=0.0)
    tau = float(heat.tau[k])
    pairs = [(n, m) for n in range(H) for m in range(W)]
    operator = sum(math.exp(-_eigenvalue(n, m) * tau) * _outer(_basis(n, m)) for n, m in pairs)
    x0 = _images(0)
    expected = (x0.reshape(-1, H * W) @ operator.T).reshape(x0.shape)
    torch.testing.assert_close(heat.degrade(x0, k), expected, rtol=0, atol=1e-13)


@pytest.mark.parametrize("k", [1, 12, 30])
def test_the_heat_blur_is_the_official_codes_dct_pipeline(k: int) -> None:
    """AaltoML's ``DCTBlur``: ``idct_2d(dct_2d(x) * exp(-(freqs_h^2 + freqs_w^2) * sigma^2 / 2))``,
    with ``freqs = pi * linspace(0, N - 1, N) / N``."""
    heat = Heat(num_timesteps=30, noise=0.0)
    x0 = _images(1)
    freqs_h = np.pi * np.linspace(0, H - 1, H) / H
    freqs_w = np.pi * np.linspace(0, W - 1, W) / W
    sigma = float(heat.sigma[k])
    scale = np.exp(-(freqs_h[:, None] ** 2 + freqs_w[None, :] ** 2) * sigma**2 / 2)
    expected = scipy.fft.idctn(scipy.fft.dctn(x0.numpy(), axes=(-2, -1), norm="ortho") * scale,
                               axes=(-2, -1), norm="ortho")
    torch.testing.assert_close(heat.degrade(x0, k), torch.from_numpy(expected), rtol=0, atol=1e-13)


def test_heat_keeps_a_constant_image_at_every_step() -> None:
    heat = Heat(num_timesteps=20, noise=0.0)
    constant = torch.full((2, 3, H, W), 0.37, dtype=torch.float64)
    for k in range(21):
        torch.testing.assert_close(heat.degrade(constant, k), constant, rtol=0, atol=1e-14)
    assert torch.equal(heat.degrade(_images(2), 0), _images(2))  # k = 0: exactly the image


@pytest.mark.parametrize(("n", "m"), [(0, 0), (1, 0), (0, 1), (2, 3), (4, 6)])
def test_a_dct_basis_image_is_scaled_by_exp_minus_lambda_tau(n: int, m: int) -> None:
    heat = Heat(num_timesteps=10, sigma_max=3.0, noise=0.0)
    basis = _basis(n, m).expand(1, 1, H, W)
    for k in range(11):
        factor = math.exp(-_eigenvalue(n, m) * float(heat.tau[k]))
        torch.testing.assert_close(heat.degrade(basis, k), factor * basis, rtol=0, atol=1e-14)


def test_gaussian_data_has_its_closed_form_covariance_at_every_step() -> None:
    """For ``x_0 ~ N(mu, V S V^T)`` (``S`` diagonal in the DCT basis) ``x_k ~ N(F_k mu,
    V S exp(-2 Lambda t_k) V^T + sigma^2 I)``: the degradation pushed through the covariance's
    square root (its columns, a batch of images) and its noise, computed exactly."""
    heat = Heat(num_timesteps=8, sigma_max=3.0, noise=0.02)
    basis = torch.stack([_basis(n, m).flatten() for n in range(H) for m in range(W)], dim=1)  # V
    variances = torch.linspace(0.05, 1.0, H * W, dtype=torch.float64)
    eigenvalues = torch.tensor([_eigenvalue(n, m) for n in range(H) for m in range(W)], dtype=torch.float64)
    root = basis * variances.sqrt()  # V S^(1/2): its columns as images
    mean = torch.rand(1, 1, H, W, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    for k in (1, 4, 8):
        pushed = heat.degrade(root.T.reshape(-1, 1, H, W), k).reshape(H * W, H * W).T  # F_k V S^(1/2)
        covariance = pushed @ pushed.T + float(heat.noise_levels[k]) ** 2 * EYE
        decay = torch.exp(-2 * eigenvalues * float(heat.tau[k]))
        expected = basis @ torch.diag(variances * decay) @ basis.T + 0.02**2 * EYE
        torch.testing.assert_close(covariance, expected, rtol=0, atol=1e-14)
        expected_mean = (basis @ (torch.exp(-eigenvalues * float(heat.tau[k])) * (basis.T @ mean.flatten())))
        torch.testing.assert_close(heat.degrade(mean, k).flatten(), expected_mean, rtol=0, atol=1e-14)


def test_the_prior_is_the_gaussian_of_the_fully_blurred_images_plus_the_noise() -> None:
    """Exactly the push-forward of the training images' mean and covariance through ``F_K`` (plus
    the jitter that keeps it positive definite), and ``sigma^2 I`` more when drawing."""
    heat = Heat(num_timesteps=8, sigma_max=3.0, noise=0.05)
    images = _images(4, n=40, channels=1)
    assert not heat.prior_fitted
    with pytest.raises(degradations.PriorUnavailableError, match=r"heat\.fit_prior\(training_images\)"):
        heat.prior(2)
    heat.fit_prior(images, jitter=1e-5)
    blurred = heat.degrade(images, 8).flatten(1)
    centred = blurred - blurred.mean(0)
    assert heat._prior_mean is not None and heat._prior_scale is not None
    torch.testing.assert_close(heat._prior_mean.flatten(), blurred.mean(0), rtol=0, atol=1e-14)
    expected_covariance = centred.T @ centred / 39 + 1e-5 * EYE
    torch.testing.assert_close(heat._prior_scale @ heat._prior_scale.T, expected_covariance, rtol=0,
                               atol=1e-12)
    generator = torch.Generator().manual_seed(5)
    z = torch.randn((3, H * W), generator=generator, dtype=torch.float64)
    plain = heat._prior_mean.flatten() + z @ heat._prior_scale.T
    noise = 0.05 * torch.randn((3, 1, H, W), generator=generator, dtype=torch.float64)
    expected = (plain.view(3, 1, H, W) + noise).float()
    drawn = heat.prior(3, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(drawn, expected, rtol=0, atol=0)


class _Shrink(nn.Module):
    """A stand-in network whose clean-image guess depends on its input and the time."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, x_t: Tensor, t: Tensor) -> Tensor:
        return 0.8 * x_t + 0.1 * t.view(-1, 1, 1, 1) + self.anchor


def test_the_cold_sampler_with_fresh_noise_is_the_papers_sampler_step_by_step() -> None:
    """The official loop: ``u_mean = mu(u, k); u = u_mean + delta * eps`` for ``k = K..1``, returning
    the last ``u_mean``; ``mu(u, k) = F(t_{k-1}) x0_hat(u, k)`` for a clean-image network and
    ``delta = 1.25 sigma``."""
    heat = Heat(num_timesteps=6, sigma_max=4.0, noise=0.01)
    net = _Shrink()
    denoiser = Denoiser(net, heat, predict="x0")
    sampler = ColdSampler(denoiser, source="estimate", fresh_noise=1.25, clip_x0=False)
    x_T = _images(6)
    draws = [_images(100 + k) - 0.5 for k in range(6)]
    supply = iter(draws)
    sampler.noise = lambda like, generator: next(supply)  # type: ignore[method-assign]
    sampled = sampler.sample(x_T)
    u = x_T
    with torch.no_grad():
        for i, k in enumerate(range(6, 0, -1)):
            x0_hat = net(u, torch.full((3,), k / 6, dtype=torch.float64))
            u_mean = heat.degrade(x0_hat, k - 1)
            u = u_mean + 1.25 * 0.01 * draws[i]
    torch.testing.assert_close(sampled, u_mean, rtol=0, atol=1e-14)


def test_a_perfect_restorer_generates_the_clean_image_from_the_noisy_blur() -> None:
    heat = Heat(num_timesteps=10, noise=0.01)
    x0 = _images(7)
    x_T = heat.degrade(x0, 10, heat.sample_source(x0, generator=torch.Generator().manual_seed(8)))
    for fresh in (None, 1.25):
        denoiser = Denoiser(X0Oracle(x0), heat, predict="x0")
        sampler = ColdSampler(denoiser, source="estimate", fresh_noise=fresh)
        sampled = sampler.sample(x_T, generator=torch.Generator().manual_seed(9))
        torch.testing.assert_close(sampled, x0, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="is sampled with source='estimate'"):
        ColdSampler(Denoiser(X0Oracle(x0), heat, predict="x0"))


def test_equal_widths_are_one_constant_blur_and_the_image_shape_is_kept() -> None:
    heat = Heat(num_timesteps=3, sigma_min=2.0, sigma_max=2.0, image_shape=(1, 8, 8))
    assert heat.image_shape == (1, 8, 8)
    assert heat.sigma.dtype == torch.float64
    torch.testing.assert_close(heat.sigma, torch.tensor([0.0, 2.0, 2.0, 2.0], dtype=torch.float64),
                               rtol=1e-15, atol=0)
