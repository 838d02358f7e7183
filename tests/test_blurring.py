"""The ``blurring`` degradation (Hoogeboom & Salimans 2023, Blurring Diffusion Models) against
exact oracles: the paper's schedule and forward process written out with SciPy's DCT, the
closed-form moments of Gaussian data per frequency, the posterior ``q(x_s | x_t, x_0)`` by
Gaussian conditioning on full pixel covariances, the paper's ancestral sampler written out step
by step, and, with the blur off, the Gaussian diffusion of the same schedule over whole sampler
trajectories."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.fft
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor

from colddiff import Denoiser, Schedule, degradations, samplers
from colddiff.degradations import Blurring, GaussianNoise
from tests.conftest import SmoothNet, X0Oracle, trajectory

H, W = 5, 7  # not square: a mix-up of the axes would show
SCHEDULE = Schedule.linear(1e-3, 0.2, 30)
SHAPE = (2, 1, H, W)


def _images(seed: int, shape: tuple[int, ...] = SHAPE) -> Tensor:
    return torch.rand(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _noise(seed: int, shape: tuple[int, ...] = SHAPE) -> Tensor:
    return torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _dct(x: np.ndarray) -> np.ndarray:
    return scipy.fft.dctn(x, axes=(-2, -1), norm="ortho")


def _idct(u: np.ndarray) -> np.ndarray:
    return scipy.fft.idctn(u, axes=(-2, -1), norm="ortho")


def _papers_alpha_sigma(t: int, num_timesteps: int, alpha_bar: float, sigma_max: float,
                        min_scale: float) -> tuple[np.ndarray, float]:
    """The paper's ``alpha_t`` per frequency and ``sigma_t``, from its text: ``sigma_B(t) =
    sigma_max sin^2(t pi / 2)``, ``tau = sigma_B^2 / 2``, ``d = (1 - d_min) exp(-lambda tau) +
    d_min`` with ``lambda = freqs_h^2 + freqs_w^2``, ``freqs = pi linspace(0, N - 1, N) / N``, and
    ``alpha = a d`` (time ``t / T`` in ``[0, 1]``)."""
    fraction = t / num_timesteps
    tau = (sigma_max * np.sin(fraction * np.pi / 2) ** 2) ** 2 / 2
    freqs_h = np.pi * np.linspace(0, H - 1, H) / H
    freqs_w = np.pi * np.linspace(0, W - 1, W) / W
    labda = freqs_h[:, None] ** 2 + freqs_w[None, :] ** 2
    scaling = np.exp(-labda * tau) * (1 - min_scale) + min_scale
    return math.sqrt(alpha_bar) * scaling, math.sqrt(1 - alpha_bar)


# ---------------------------------------------------------------------------------- options
def test_the_defaults_are_the_papers() -> None:
    deg = degradations.create("blurring", schedule=SCHEDULE)
    assert isinstance(deg, Blurring) and deg.num_timesteps == 30 and deg.image_shape == (1, 28, 28)
    assert (deg.sigma_max, deg.min_scale) == (20.0, 0.001)
    assert deg.has_source and deg.invertible and deg.recovers_source and not deg.start_is_source
    torch.testing.assert_close(deg.noise_levels, (1 - SCHEDULE.alpha_bar).sqrt(), rtol=0, atol=0)
    assert repr(deg) == ("Blurring(schedule=Schedule.linear(beta_start=0.001, beta_end=0.2, "
                         "num_timesteps=30), sigma_max=20.0, min_scale=0.001)")
    assert Blurring().schedule == Schedule.preset("default")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"sigma_max": -1.0}, "sigma_max must be a finite number >= 0, got -1.0"),
    ({"sigma_max": math.inf}, "sigma_max must be a finite number >= 0, got inf"),
    ({"sigma_max": True}, "sigma_max must be a finite number >= 0, got True"),
    ({"min_scale": 0.0}, r"min_scale must be a number in \(0, 1\], got 0.0"),
    ({"min_scale": 1.5}, r"min_scale must be a number in \(0, 1\], got 1.5"),
    ({"min_scale": math.nan}, r"min_scale must be a number in \(0, 1\], got nan"),
    ({"min_scale": "0.5"}, r"min_scale must be a number in \(0, 1\], got '0.5'"),
    ({"sigma_max": "3"}, r"sigma_max must be a finite number >= 0, got '3'"),
    ({"schedule": "default"}, "schedule must be a colddiff.Schedule or None, got str"),
    ({"image_shape": (28, 28)}, r"image_shape must be three positive ints \(C, H, W\)"),
])
def test_bad_options_are_named(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Blurring(**kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- the paper's equations
@pytest.mark.parametrize(("sigma_max", "min_scale"), [(20.0, 0.001), (3.0, 0.01), (0.7, 1.0)])
def test_the_schedule_is_the_papers_step_by_step(sigma_max: float, min_scale: float) -> None:
    deg = Blurring(SCHEDULE, sigma_max=sigma_max, min_scale=min_scale)
    alpha = deg.signal(H, W)
    for t in range(31):
        expected_alpha, expected_sigma = _papers_alpha_sigma(t, 30, float(SCHEDULE.alpha_bar[t]), sigma_max,
                                                             min_scale)
        torch.testing.assert_close(alpha[t], torch.from_numpy(expected_alpha), rtol=1e-13, atol=1e-16)
        assert float(deg.noise_levels[t]) == pytest.approx(expected_sigma, rel=1e-15, abs=0)
        blur = sigma_max * math.sin(math.pi * t / 60) ** 2
        assert float(deg.blur_sigma[t]) == pytest.approx(blur, rel=1e-14, abs=1e-300)
        assert float(deg.tau[t]) == pytest.approx(blur**2 / 2, rel=1e-14, abs=1e-300)
    assert torch.equal(alpha[0], torch.ones(H, W, dtype=torch.float64)), "t = 0 is the clean image"


@pytest.mark.parametrize("t", [0, 1, 13, 30])
def test_degrade_is_the_papers_diffuse_with_scipys_dct(t: int) -> None:
    """``z_t = IDCT(alpha_t * DCT(x)) + sigma_t eps`` (the paper's forward process in pixels)."""
    deg = Blurring(SCHEDULE, sigma_max=4.0)
    x0, eps = _images(0), _noise(1)
    alpha, sigma = _papers_alpha_sigma(t, 30, float(SCHEDULE.alpha_bar[t]), 4.0, 0.001)
    expected = _idct(alpha * _dct(x0.numpy())) + sigma * eps.numpy()
    torch.testing.assert_close(deg.degrade(x0, t, eps), torch.from_numpy(expected), rtol=0, atol=1e-14)
    torch.testing.assert_close(deg.degrade(x0, t), torch.from_numpy(_idct(alpha * _dct(x0.numpy()))),
                               rtol=0, atol=1e-14)
    steps = torch.tensor([t, 30 - t])  # each image its own step
    mixed = deg.degrade(x0, steps, eps)
    torch.testing.assert_close(mixed[1], deg.degrade(x0[1:], 30 - t, eps[1:])[0], rtol=0, atol=1e-15)
    assert torch.equal(deg.degrade(x0, 0, eps), x0), "t = 0 is exactly the image"


def test_the_clean_image_and_the_noise_determine_each_other() -> None:
    deg = Blurring(SCHEDULE, sigma_max=4.0)
    x0, eps = _images(2), _noise(3)
    for t in (1, 15, 30):
        x_t = deg.degrade(x0, t, eps)
        torch.testing.assert_close(deg.x0_from_source(x_t, t, eps), x0, rtol=0, atol=1e-10)
        torch.testing.assert_close(deg.source_from_x0(x_t, t, x0), eps, rtol=0, atol=1e-12)
    assert torch.equal(deg.source_from_x0(x0, 0, x0), torch.zeros_like(x0)), "no noise at t = 0"


def test_gaussian_data_has_its_closed_form_moments_per_frequency() -> None:
    """For ``x_0 ~ N(mu, V S V^T)`` (``S`` diagonal in the DCT basis), ``x_t ~ N(V alpha_t V^T mu,
    V (alpha_t^2 S + sigma_t^2) V^T)``: the covariance's square root pushed through the
    degradation exactly, read in the DCT basis built from SciPy."""
    deg = Blurring(SCHEDULE, sigma_max=3.0)
    basis = torch.from_numpy(_idct(np.eye(H * W).reshape(H * W, H, W))).reshape(H * W, H * W).T  # V
    variances = torch.linspace(0.05, 1.0, H * W, dtype=torch.float64)
    root = basis * variances.sqrt()
    mean = _images(4, (1, 1, H, W))
    for t in (1, 10, 30):
        alpha, sigma = _papers_alpha_sigma(t, 30, float(SCHEDULE.alpha_bar[t]), 3.0, 0.001)
        alpha_flat = torch.from_numpy(alpha).flatten()
        pushed = deg.degrade(root.T.reshape(-1, 1, H, W), t).reshape(H * W, H * W).T
        covariance = basis.T @ (pushed @ pushed.T + sigma**2 * torch.eye(H * W, dtype=torch.float64)) @ basis
        expected = torch.diag(alpha_flat**2 * variances + sigma**2)
        torch.testing.assert_close(covariance, expected, rtol=0, atol=1e-14)
        expected_mean = basis @ (alpha_flat * (basis.T @ mean.flatten()))
        torch.testing.assert_close(deg.degrade(mean, t).flatten(), expected_mean, rtol=0, atol=1e-14)


@pytest.mark.parametrize("variance", ["posterior", "beta"])
@pytest.mark.parametrize(("t", "s"), [(30, 29), (12, 5), (7, 0), (1, 0)])
def test_one_ddpm_step_is_the_posterior_by_gaussian_conditioning_in_pixels(t: int, s: int,
                                                                         variance: str) -> None:
    """``q(x_s | x_t, x_0)`` from the joint Gaussian of ``(x_s, x_t)`` with full ``(HW) x (HW)``
    matrices: ``x_s = A_s x_0 + sigma_s e``, ``x_t = A_{t|s} x_s + ...``, so ``Cov(x_t, x_s) =
    sigma_s^2 A_{t|s}``, ``Cov(x_t) = sigma_t^2 I`` and the conditional is the Schur complement;
    the noise enters through the covariance's symmetric square root. With ``variance="beta"``
    the noise has the covariance of ``q(x_t | x_s)`` instead, ``sigma_t^2 I - sigma_s^2 A_{t|s}
    A_{t|s}^T``."""
    deg = Blurring(SCHEDULE, sigma_max=3.0, image_shape=(1, H, W))
    size = H * W
    operators = deg.degrade(torch.eye(size, dtype=torch.float64).reshape(size, 1, H, W),
                            torch.tensor([t] * size)).reshape(size, size).T  # A_t
    operators_s = deg.degrade(torch.eye(size, dtype=torch.float64).reshape(size, 1, H, W),
                              torch.tensor([s] * size)).reshape(size, size).T  # A_s
    transition = operators @ torch.linalg.inv(operators_s)  # A_{t|s}
    sigma_s, sigma_t = float(deg.noise_levels[s]), float(deg.noise_levels[t])
    cross = sigma_s**2 * transition  # Cov(x_t, x_s)
    gain = cross.T / sigma_t**2
    covariance = sigma_s**2 * torch.eye(size, dtype=torch.float64) - gain @ cross
    if variance == "beta":
        covariance = sigma_t**2 * torch.eye(size, dtype=torch.float64) - cross @ transition.T
    values, vectors = torch.linalg.eigh((covariance + covariance.T) / 2)
    root = vectors @ torch.diag(values.clamp(min=0).sqrt()) @ vectors.T
    x0, x_t, z = _images(5, (1, 1, H, W)), _noise(6, (1, 1, H, W)), _noise(7, (1, 1, H, W))
    mean = operators_s @ x0.flatten() + gain @ (x_t.flatten() - operators @ x0.flatten())
    expected = mean + (root @ z.flatten() if s > 0 else 0)
    sampler = samplers.create("ddpm", Denoiser(X0Oracle(x0), deg, predict="x0"), variance=variance,
                              spacing=[30, s], clip_x0=False)  # from t_start = t, the steps t, s
    sampler.noise = lambda like, generator: z  # type: ignore[method-assign]
    x_s = sampler.sample(x_t, t_start=t)
    torch.testing.assert_close(x_s.flatten(), expected, rtol=0, atol=1e-12)


def test_ddpm_is_the_papers_denoising_loop_step_by_step() -> None:
    """The paper's sampler written out in NumPy with SciPy's DCT, from its equations (with a
    ``d_min`` of 0.05, so that dividing by ``alpha_t`` does not blow the two roundings apart):
    ``alpha_ts = alpha_t / alpha_s``, ``sigma2_ts = sigma_t^2 - alpha_ts^2 sigma_s^2``,
    ``sigma2_denoise = 1 / (1 / sigma_s^2 + alpha_ts^2 / sigma2_ts)``,
    ``mu = sigma2_denoise (alpha_ts / sigma2_ts u_t + alpha_s / sigma_s^2 (u_t - sigma_t u_eps) /
    alpha_t)``, ``z_s = IDCT(mu + sqrt(sigma2_denoise) * DCT(z))``; the last step returns the mean."""
    deg = Blurring(SCHEDULE, sigma_max=3.0, min_scale=0.05, image_shape=SHAPE[1:])
    net = SmoothNet()
    sampler = samplers.create("ddpm", Denoiser(net, deg, predict="eps"), variance="posterior",
                              clip_x0=False)
    x_T, noise = _noise(8), [_noise(100 + k) for k in range(30)]
    ours = trajectory(sampler, x_T, noise)
    z = x_T.numpy()
    expected = [z]
    for i, t in enumerate(range(30, 0, -1)):
        s = t - 1
        alpha_t, sigma_t = _papers_alpha_sigma(t, 30, float(SCHEDULE.alpha_bar[t]), 3.0, 0.05)
        alpha_s, sigma_s = _papers_alpha_sigma(s, 30, float(SCHEDULE.alpha_bar[s]), 3.0, 0.05)
        with torch.no_grad():
            eps = net(torch.from_numpy(z), torch.full((2,), t / 30, dtype=torch.float64)).numpy()
        u_t, u_eps = _dct(z), _dct(eps)
        u_x = (u_t - sigma_t * u_eps) / alpha_t
        if s == 0:
            z = _idct(u_x)
        else:
            alpha_ts = alpha_t / alpha_s
            sigma2_ts = sigma_t**2 - alpha_ts**2 * sigma_s**2
            sigma2_denoise = 1 / (1 / sigma_s**2 + alpha_ts**2 / sigma2_ts)
            mu = sigma2_denoise * (alpha_ts / sigma2_ts * u_t + alpha_s / sigma_s**2 * u_x)
            z = _idct(mu + np.sqrt(sigma2_denoise) * _dct(noise[i].numpy()))
        expected.append(z)
    torch.testing.assert_close(ours, torch.from_numpy(np.stack(expected)), rtol=0, atol=1e-10)


def test_ddim_is_the_deterministic_step_per_frequency_written_out() -> None:
    """``u_s = alpha_s u_0_hat + sqrt(sigma_s^2 - c^2) (u_t - alpha_t u_0_hat) / sigma_t + c z``,
    ``c = eta sigma_{t->s}``, with SciPy's DCT, over a strided run (``d_min = 0.05``, as above)."""
    deg = Blurring(SCHEDULE, sigma_max=3.0, min_scale=0.05, image_shape=SHAPE[1:])
    net = SmoothNet()
    for eta in (0.0, 0.6):
        sampler = samplers.create("ddim", Denoiser(net, deg), eta=eta, clip_x0=False)
        x_T, noise = _noise(9), [_noise(200 + k) for k in range(6)]
        ours = trajectory(sampler, x_T, noise, steps=6)
        z, expected = x_T.numpy(), [x_T.numpy()]
        for i, (t, s) in enumerate(zip(range(30, 0, -5), range(25, -1, -5), strict=True)):
            alpha_t, sigma_t = _papers_alpha_sigma(t, 30, float(SCHEDULE.alpha_bar[t]), 3.0, 0.05)
            alpha_s, sigma_s = _papers_alpha_sigma(s, 30, float(SCHEDULE.alpha_bar[s]), 3.0, 0.05)
            with torch.no_grad():
                eps = net(torch.from_numpy(z), torch.full((2,), t / 30, dtype=torch.float64)).numpy()
            u_t = _dct(z)
            u_x = (u_t - sigma_t * _dct(eps)) / alpha_t
            alpha_ts = alpha_t / alpha_s
            posterior = (sigma_t**2 - alpha_ts**2 * sigma_s**2) * sigma_s**2 / sigma_t**2
            c = eta * np.sqrt(posterior)
            u_s = alpha_s * u_x + np.sqrt(np.maximum(sigma_s**2 - c**2, 0)) * (u_t - alpha_t * u_x) / sigma_t
            z = _idct(u_s + c * _dct(noise[i].numpy()))
            expected.append(z)
        torch.testing.assert_close(ours, torch.from_numpy(np.stack(expected)), rtol=0, atol=1e-10)


# ---------------------------------------------------------------------------------- blur off
@pytest.mark.parametrize("off", [{"sigma_max": 0.0}, {"min_scale": 1.0}])
def test_without_blur_degrade_is_the_gaussian_diffusion_bit_for_bit(off: dict[str, float]) -> None:
    blurring, gaussian = Blurring(SCHEDULE, **off), GaussianNoise(SCHEDULE)
    x0, eps = _images(10), _noise(11)
    for t in range(31):
        assert torch.equal(blurring.degrade(x0, t, eps), gaussian.degrade(x0, t, eps))


@pytest.mark.parametrize(("name", "options"), [
    ("ddpm", {"variance": "beta"}), ("ddpm", {"variance": "posterior"}), ("ddim", {"eta": 0.0}),
    ("ddim", {"eta": 0.4}), ("ddim", {"eta": 1.0}), ("cold", {"source": "estimate"}),
])
@pytest.mark.parametrize("predict", ["eps", "x0"])
@pytest.mark.parametrize("steps", [None, 7])
def test_without_blur_every_sampler_trajectory_is_the_gaussian_diffusions(
        name: str, options: dict[str, object], predict: str, steps: int | None) -> None:
    schedule = Schedule.preset("short")  # 200 steps
    net = SmoothNet()
    trajectories = []
    for deg in (GaussianNoise(schedule, image_shape=SHAPE[1:]),
                Blurring(schedule, sigma_max=0.0, image_shape=SHAPE[1:])):
        sampler = samplers.create(name, Denoiser(net, deg, predict=predict), **options)  # type: ignore[arg-type]
        trajectories.append(trajectory(sampler, _noise(12), [_noise(300 + k) for k in range(200)], steps))
    torch.testing.assert_close(trajectories[1], trajectories[0], rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------- properties
@given(height=st.integers(1, 9), width=st.integers(1, 9), seed=st.integers(0, 2**16))
def test_the_dct_is_orthonormal(height: int, width: int, seed: int) -> None:
    deg = Blurring(SCHEDULE)
    x = _images(seed, (2, 3, height, width)) - 0.5
    u = deg.to_frequency(x)
    torch.testing.assert_close(u.square().sum((-2, -1)), x.square().sum((-2, -1)), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(deg.from_frequency(u), x, rtol=0, atol=1e-14)
    torch.testing.assert_close(u, torch.from_numpy(_dct(x.numpy())), rtol=0, atol=1e-14)


@given(sigma_max=st.floats(0, 40), min_scale=st.floats(1e-4, 1), beta_end=st.floats(1e-3, 0.5),
       t=st.integers(0, 30), s=st.integers(0, 30), data_variance=st.floats(0, 1))
def test_the_process_is_a_gaussian_diffusion_per_frequency(sigma_max: float, min_scale: float,
                                                           beta_end: float, t: int, s: int,
                                                           data_variance: float) -> None:
    """``d_t`` in ``[d_min, 1]`` and not increasing; the marginal variance ``alpha_t^2 v +
    sigma_t^2`` of data with variance ``v <= 1`` per frequency in ``[0, 1]``; for ``s < t`` the
    transition variance and the posterior variance (at most ``sigma_s^2``) are never negative,
    and the posterior mean keeps the mean: ``w_0 + w_t alpha_t = alpha_s``."""
    deg = Blurring(Schedule.linear(1e-4, beta_end, 30), sigma_max=sigma_max, min_scale=min_scale)
    dissipation = deg.dissipation(H, W)
    assert bool((dissipation >= min_scale * (1 - 1e-12)).all()) and bool((dissipation <= 1).all())
    assert bool((dissipation[1:] <= dissipation[:-1]).all())
    variance = deg.signal(H, W)[t] ** 2 * data_variance + deg.noise_levels[t] ** 2
    assert bool((variance >= 0).all()) and bool((variance <= 1 + 1e-12).all())
    if s < t:
        x0_weight, xt_weight, posterior = deg.posterior(t, s, H, W)
        alpha = deg.signal(H, W)
        torch.testing.assert_close(x0_weight + xt_weight * alpha[t], alpha[s], rtol=1e-12, atol=1e-15)
        assert bool((deg.transition(t, s, H, W)[1] >= -1e-15).all())
        assert bool((posterior >= -1e-15).all())
        assert bool((posterior <= deg.noise_levels[s] ** 2 + 1e-15).all())


# ---------------------------------------------------------------------------------- training and sampling
def test_the_training_target_is_the_noise() -> None:
    deg = Blurring(SCHEDULE, sigma_max=3.0, image_shape=SHAPE[1:])
    net = SmoothNet()
    denoiser = Denoiser(net, deg)  # predict="eps", the paper's
    x0, t = _images(13), torch.tensor([4, 27])
    loss = denoiser.loss(x0, generator=torch.Generator().manual_seed(14), t=t)
    eps = torch.randn(SHAPE, generator=torch.Generator().manual_seed(14), dtype=torch.float64)
    with torch.no_grad():
        expected = (net(deg.degrade(x0, t, eps), t.double() / 30) - eps).square().mean()
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-15, atol=0)


@pytest.mark.parametrize(("name", "options"), [("ddpm", {}), ("ddim", {}), ("cold", {"source": "estimate"})])
def test_a_perfect_denoiser_generates_the_data(name: str, options: dict[str, object]) -> None:
    deg = Blurring(SCHEDULE, sigma_max=3.0, image_shape=SHAPE[1:])
    x0 = _images(15)
    x_T = deg.degrade(x0, 30, deg.sample_source(x0, generator=torch.Generator().manual_seed(16)))
    sampler = samplers.create(name, Denoiser(X0Oracle(x0), deg, predict="x0"), **options)  # type: ignore[arg-type]
    for steps in (None, 4):
        torch.testing.assert_close(sampler.sample(x_T, steps, generator=torch.Generator().manual_seed(17)),
                                   x0, rtol=0, atol=1e-12)


def test_the_prior_is_a_standard_normal_of_the_image_shape() -> None:
    deg = Blurring(SCHEDULE, image_shape=(3, 4, 6))
    drawn = deg.prior(5, generator=torch.Generator().manual_seed(18))
    assert torch.equal(drawn, torch.randn((5, 3, 4, 6), generator=torch.Generator().manual_seed(18)))


@pytest.mark.parametrize(("name", "options", "message"), [
    ("dpmsolver++", {}, r"DPMSolverSampler needs a denoiser for GaussianNoise; for Blurring use "
     r"DDPMSampler or DDIMSampler \(sampler 'ddpm' or 'ddim'\)"),
    ("unipc", {}, "UniPCSampler needs a denoiser for GaussianNoise; for Blurring use DDPMSampler"),
    ("ddim", {"spacing": "logsnr"}, "spacing='logsnr' needs the noise levels of a mixing degradation"),
    ("cold", {}, r"is sampled with source='estimate'"),
])
def test_samplers_that_cannot_run_it_say_which_can(name: str, options: dict[str, object],
                                                   message: str) -> None:
    denoiser = Denoiser(SmoothNet(), Blurring(SCHEDULE))
    with pytest.raises(ValueError, match=message):
        samplers.create(name, denoiser, **options)


def test_predicting_v_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="predict='v' needs a mixing degradation"):
        Denoiser(SmoothNet(), Blurring(SCHEDULE), predict="v")


def test_degrade_names_its_clean_image_argument() -> None:
    with pytest.raises(ValueError) as error:
        Blurring(SCHEDULE).degrade(torch.zeros(H, W), 3)
    assert str(error.value) == ("x0 must be a floating-point tensor of shape (B, C, H, W), "
                                f"got Tensor({H}, {W})")


@pytest.mark.parametrize(("name", "options"), [("ddpm", {}), ("ddim", {"eta": 0.0}), ("ddim", {"eta": 0.5})])
def test_float32_images_are_sampled_in_float32(name: str, options: dict[str, object]) -> None:
    """The per-frequency step weights (float64) follow the images' dtype; without noise the
    float32 trajectory is the float64 one rounded."""
    deg = Blurring(SCHEDULE, sigma_max=3.0, image_shape=SHAPE[1:])
    x_T = _noise(19)
    ours = samplers.create(name, Denoiser(SmoothNet().float(), deg), **options).sample(  # type: ignore[arg-type]
        x_T.float(), 5, generator=torch.Generator().manual_seed(20))
    assert ours.dtype == torch.float32
    if options.get("eta") == 0.0:
        reference = samplers.create(name, Denoiser(SmoothNet(), deg), **options).sample(  # type: ignore[arg-type]
            x_T, 5, generator=torch.Generator().manual_seed(20))
        torch.testing.assert_close(ours, reference.float(), rtol=0, atol=1e-5)


def test_one_degradation_serves_images_of_any_size() -> None:
    """The per-frequency signal is cached per image size: each size gets its own."""
    deg = Blurring(SCHEDULE, sigma_max=3.0)
    small, large = _images(21, (2, 1, 4, 6)), _images(22, (2, 1, 9, 5))
    first = deg.degrade(small, 12), deg.degrade(large, 12)
    torch.testing.assert_close(first[0], Blurring(SCHEDULE, sigma_max=3.0).degrade(small, 12), rtol=0, atol=0)
    torch.testing.assert_close(first[1], Blurring(SCHEDULE, sigma_max=3.0).degrade(large, 12), rtol=0, atol=0)
    assert deg.signal(4, 6).shape == (31, 4, 6) and deg.signal(9, 5).shape == (31, 9, 5)


@pytest.mark.parametrize(("name", "options"), [("ddpm", {}), ("ddim", {"eta": 0.5})])
def test_the_noise_comes_from_the_generator(name: str, options: dict[str, object]) -> None:
    deg = Blurring(SCHEDULE, sigma_max=3.0, image_shape=SHAPE[1:])
    results = []
    for global_seed in (0, 1):
        torch.manual_seed(global_seed)
        sampler = samplers.create(name, Denoiser(SmoothNet(), deg), **options)  # type: ignore[arg-type]
        results.append(sampler.sample(_noise(23), 5, generator=torch.Generator().manual_seed(24)))
    assert torch.equal(results[0], results[1])
