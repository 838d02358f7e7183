"""Soft Diffusion (Daras et al. 2023) for every linear corruption ``x_t = C_t x_0 + s_t z``: the
contract (``corrupt`` is the degradation without its noise, and really is affine), the loss
measured after corruption against closed forms, and the Momentum Sampler against Song et al.'s
VE reverse-diffusion sampler (``C_t = I``), Bansal et al.'s Algorithm 2 (no noise), the data
(a perfect denoiser) and the paper's algorithm written out step by step."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.fft
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor, nn

from colddiff import Denoiser, Schedule, samplers
from colddiff.config import TrainConfig, build_denoiser
from colddiff.degradations import (
    Blur,
    Blurring,
    Degradation,
    GaussianNoise,
    Heat,
    ImageMixing,
    Inpaint,
    SuperResolution,
    check_timesteps,
)
from colddiff.samplers import ColdSampler, SoftSampler
from colddiff.training import Trainer
from tests.conftest import SmoothNet, X0Oracle, trajectory

T = 6
SHAPE = (3, 1, 8, 8)
SCHEDULE = Schedule.linear(0.05, 0.5, T)


def _images(seed: int, n: int = SHAPE[0]) -> Tensor:
    return torch.rand(n, *SHAPE[1:], dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _noise(seed: int) -> Tensor:
    return torch.randn(SHAPE, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


MIXED_IN = _images(99, 10)

#: Every built-in linear corruption that takes ``noise``, small: ``make(noise)``.
WITH_NOISE: dict[str, Callable[[object], Degradation]] = {
    "blur": lambda noise: Blur(num_timesteps=T, sigma_max=2.0, noise=noise),
    "heat": lambda noise: Heat(num_timesteps=T, sigma_max=4.0, noise=noise),
    "superres": lambda noise: SuperResolution(num_timesteps=2, noise=noise),
    "superres_bicubic": lambda noise: SuperResolution(num_timesteps=2, mode="bicubic", noise=noise),
    "inpaint": lambda noise: Inpaint(num_timesteps=T, noise=noise),
    "mixing": lambda noise: ImageMixing(SCHEDULE, MIXED_IN, noise=noise),
}
#: And every built-in linear corruption, noisy.
NOISY: dict[str, Callable[[], Degradation]] = {
    **{name: (lambda make=make: make(0.1)) for name, make in WITH_NOISE.items()},
    "gaussian": lambda: GaussianNoise(SCHEDULE, image_shape=SHAPE[1:]),
    "blurring": lambda: Blurring(SCHEDULE, sigma_max=3.0, image_shape=SHAPE[1:]),
}


class Identity(Degradation):
    """``x_t = x_0 + s_t z``: the variance-exploding diffusion, ``C_t = I``."""

    linear = True
    start_is_source = False

    def degrade(self, x0: Tensor, t: Tensor | int, source: Tensor | None = None) -> Tensor:
        return self.add_noise(x0, check_timesteps(t, x0, self.num_timesteps), self.split_noise(source, x0)[1])


class Squared(Degradation):
    """``x_t = x_0^2``: not a linear corruption (``linear`` is left ``False``)."""

    def degrade(self, x0: Tensor, t: Tensor | int, source: Tensor | None = None) -> Tensor:
        return x0**2 if t else x0


def _start(deg: Degradation, x0: Tensor, seed: int) -> tuple[Tensor, Tensor | None]:
    """``(x_T, source)`` for ``x0``."""
    source = deg.sample_source(x0, generator=torch.Generator().manual_seed(seed))
    return deg.degrade(x0, deg.num_timesteps, source), source


# ---------------------------------------------------------------------------------- the contract
@pytest.mark.parametrize("name", NOISY)
def test_corrupt_is_the_degradation_without_its_noise(name: str) -> None:
    deg = NOISY[name]()
    assert deg.linear
    x0 = _images(0)
    source = deg.sample_source(x0, generator=torch.Generator().manual_seed(1))
    noise = source if isinstance(deg, GaussianNoise) else deg.split_noise(source, x0)[1]
    assert noise is not None
    for t in range(deg.num_timesteps + 1):
        level = float(deg.corruption_noise[t])
        torch.testing.assert_close(deg.corrupt(x0, t, source) + level * noise, deg.degrade(x0, t, source),
                                   rtol=0, atol=1e-15)
    expected = ((1 - SCHEDULE.alpha_bar).sqrt() if isinstance(deg, (GaussianNoise, Blurring))
                else deg.noise_levels)
    torch.testing.assert_close(deg.corruption_noise, expected, rtol=0, atol=0)


@pytest.mark.parametrize("name", NOISY)
@given(a=st.floats(-3, 3), b=st.floats(-3, 3), t=st.integers(0, 6), seed=st.integers(0, 1000))
def test_corrupt_is_affine_in_the_clean_image(name: str, a: float, b: float, t: int, seed: int) -> None:
    """``C(a x + b y) - C(0) = a (C(x) - C(0)) + b (C(y) - C(0))``, the own source fixed: what
    ``linear = True`` claims."""
    deg = NOISY[name]()
    t = min(t, deg.num_timesteps)
    x, y = _images(seed), _images(seed + 1)
    source = deg.sample_source(x, generator=torch.Generator().manual_seed(seed))
    zero = deg.corrupt(torch.zeros_like(x), t, source)
    combined = deg.corrupt(a * x + b * y, t, source) - zero
    expected = a * (deg.corrupt(x, t, source) - zero) + b * (deg.corrupt(y, t, source) - zero)
    torch.testing.assert_close(combined, expected, rtol=0, atol=1e-12)


def test_a_degradation_that_is_not_a_linear_corruption_is_refused_by_name() -> None:
    deg = Squared(num_timesteps=T)
    assert not deg.linear
    with pytest.raises(ValueError, match=r"Squared is not a linear corruption x_t = C_t x0 \+ s_t z"):
        deg.corrupt(_images(0), 1)
    with pytest.raises(ValueError, match=r"sampler='soft' needs a degradation that is a linear corruption "
                                         r".*; Squared is not one, use sampler='cold'"):
        samplers.create("soft", Denoiser(SmoothNet(0.5), deg, predict="x0"))
    with pytest.raises(ValueError, match=r"loss='soft' needs a degradation that is a linear corruption "
                                         r".*; Squared is not one, use loss='mse'"):
        Denoiser(SmoothNet(0.5), deg, predict="x0", loss="soft")


@pytest.mark.parametrize(("options", "message"), [
    ({"loss": "l1", "predict": "x0"}, r"^loss must be one of \['mse', 'soft'\], got 'l1'$"),
    ({"loss": "soft", "predict": "eps"}, r"^loss='soft' needs predict='x0' .*, got predict='eps'$"),
])
def test_a_bad_loss_is_refused_by_name(options: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Denoiser(SmoothNet(0.5), GaussianNoise(SCHEDULE), **options)  # type: ignore[arg-type]


def test_the_soft_sampler_refuses_noise_that_shrinks_with_t() -> None:
    deg = Blur(num_timesteps=3, sigma_max=2.0, noise=[0.0, 0.2, 0.1, 0.3])
    with pytest.raises(ValueError, match=r"sampler='soft' needs noise levels s_t that do not decrease as t "
                                         r"grows; Blur\(.*\) has \[0\.0, 0\.2, 0\.1, 0\.3\]"):
        SoftSampler(Denoiser(SmoothNet(0.5), deg, predict="x0"))


def test_inpainting_needs_its_mask_centres() -> None:
    sampler = SoftSampler(Denoiser(SmoothNet(0.5), Inpaint(num_timesteps=T), predict="x0"))
    with pytest.raises(ValueError, match=r"needs the source each image was degraded with: pass it"):
        sampler.sample(_images(2))


# ---------------------------------------------------------------------------------- the loss
def _blur_by_hand(deg: Blur, x: Tensor, t: Tensor) -> Tensor:
    """``A_t x A_t^T`` per image, with the blur's own matrices written as a product by hand."""
    matrices = deg.operators(SHAPE[-1])[t]
    return torch.stack([matrices[i] @ x[i] @ matrices[i].T for i in range(len(t))])


@pytest.mark.parametrize("name", ["gaussian", "mixing", "blur", "inpaint"])
def test_the_soft_loss_is_the_error_after_corruption_in_closed_form(name: str) -> None:
    """``mean((C_t (x0_hat - x0))^2)``: ``C_t = sqrt(alpha_bar_t)`` for Gaussian noise and
    mixing (the mixed-in image cancels), the blur's matrices, inpainting's masks."""
    deg = NOISY[name]()
    net = SmoothNet(0.5)
    denoiser = Denoiser(net, deg, predict="x0", loss="soft")
    x0, t = _images(3), torch.tensor([1, 4, 6])
    loss = denoiser.loss(x0, generator=torch.Generator().manual_seed(4), t=t)
    source = deg.sample_source(x0, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        error = net(deg.degrade(x0, t, source), t.double() / T) - x0
    if name in ("gaussian", "mixing"):
        corrupted = SCHEDULE.alpha_bar[t].sqrt().view(-1, 1, 1, 1) * error
    elif name == "blur":
        corrupted = _blur_by_hand(deg, error, t)  # type: ignore[arg-type]
    else:
        assert isinstance(deg, Inpaint)
        corrupted = deg.masks(t, x0, deg.split_noise(source, x0)[0]) * error
    torch.testing.assert_close(loss.detach(), corrupted.square().mean(), rtol=1e-13, atol=0)
    assert denoiser.loss_name == "soft" and "loss='soft'" in repr(denoiser)
    plain = Denoiser(net, deg, predict="x0").loss(x0, generator=torch.Generator().manual_seed(4), t=t)
    torch.testing.assert_close(plain.detach(), error.square().mean(), rtol=1e-13, atol=0)


def test_a_config_trains_with_the_soft_loss_and_sampler(tmp_path: Path) -> None:
    config = TrainConfig(dataset="memory", degradation="blur",
                         degradation_kwargs={"num_timesteps": 4, "noise": 0.05}, predict="x0", loss="soft",
                         sampler="soft", net_kwargs={"channels": [4, 4]}, epochs=1, batch_size=8,
                         sample_every=0, ema=0.9)
    assert build_denoiser(config).loss_name == "soft"
    trainer = Trainer(config, tmp_path, images=torch.rand(16, 1, 8, 8), quiet=True)
    assert trainer.denoiser.loss_name == "soft" and trainer._ema_denoiser is not None
    assert trainer._ema_denoiser.loss_name == "soft", "the EMA and DDP twins keep the loss"
    assert isinstance(trainer._sampler, SoftSampler)
    history = trainer.fit()
    assert math.isfinite(history[-1]["loss"])
    with pytest.raises(ValueError, match="loss='soft' needs predict='x0'"):
        Trainer(config.replace(predict="eps", degradation="gaussian", degradation_kwargs={}), tmp_path / "b",
                images=torch.rand(16, 1, 8, 8), quiet=True)


# ---------------------------------------------------------------------------------- the sampler
def test_with_the_identity_it_is_songs_ve_reverse_diffusion_sampler() -> None:
    """Song et al. (2021), Algorithm 2's predictor with the score ``(x0_hat - x) / sigma_i^2``:
    ``x <- x + (sigma_i^2 - sigma_{i-1}^2) score``, then ``+ sqrt(sigma_i^2 - sigma_{i-1}^2) z``
    (none at the last step); a geometric noise schedule, every step and a strided grid."""
    levels = [0.0, *(0.01 * 50 ** (np.arange(T) / (T - 1))).tolist()]
    deg = Identity(num_timesteps=T, noise=levels)
    net = SmoothNet(0.5)
    for steps, grid in ((None, list(range(T, -1, -1))), (3, [6, 4, 2, 0])):
        sampler = SoftSampler(Denoiser(net, deg, predict="x0"), clip_x0=False)
        noise = [_noise(10 + k) for k in range(T)]
        ours = trajectory(sampler, _noise(9) * 0.5, noise, steps)
        x, expected = _noise(9) * 0.5, [_noise(9) * 0.5]
        for i, (t, s) in enumerate(itertools.pairwise(grid)):
            with torch.no_grad():
                score = (net(x, torch.full((3,), t / T, dtype=torch.float64)) - x) / levels[t] ** 2
            x = x + (levels[t] ** 2 - levels[s] ** 2) * score
            if s > 0:
                x = x + math.sqrt(levels[t] ** 2 - levels[s] ** 2) * noise[i]
            expected.append(x)
        torch.testing.assert_close(ours, torch.stack(expected), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", WITH_NOISE)
@pytest.mark.parametrize("steps", [None, 2])
def test_without_noise_it_is_bansals_algorithm_2_bit_for_bit(name: str, steps: int | None) -> None:
    deg = WITH_NOISE[name](0.0)
    x0 = _images(5)
    x_T, source = _start(deg, x0, 6)
    given = {"source": source} if isinstance(deg, Inpaint) else {}
    trajectories = [trajectory(cls(Denoiser(SmoothNet(0.5), deg, predict="x0")), x_T, [], steps, **given)  # type: ignore[abstract]
                    for cls in (SoftSampler, ColdSampler)]
    assert torch.equal(trajectories[0], trajectories[1])


@pytest.mark.parametrize("name", NOISY)
@pytest.mark.parametrize("steps", [None, 3])
def test_a_perfect_denoiser_generates_the_data(name: str, steps: int | None) -> None:
    deg = NOISY[name]()
    x0 = _images(7)
    x_T, source = _start(deg, x0, 8)
    given = {"source": source} if isinstance(deg, Inpaint) else {}
    sampler = SoftSampler(Denoiser(X0Oracle(x0), deg, predict="x0"))
    sampled = sampler.sample(x_T, min(steps or 99, deg.num_timesteps),
                             generator=torch.Generator().manual_seed(9), **given)  # type: ignore[arg-type]
    torch.testing.assert_close(sampled, x0, rtol=0, atol=1e-12)


def test_restoring_part_way_estimates_a_mixings_source_once() -> None:
    """From ``t_start < T`` the mixed-in image is estimated from the first prediction and kept: a
    perfect denoiser then restores the image exactly."""
    deg = WITH_NOISE["mixing"](0.0)
    x0 = _images(11)
    x_t = deg.degrade(x0, 4, deg.sample_source(x0, generator=torch.Generator().manual_seed(12)))
    sampled = SoftSampler(Denoiser(X0Oracle(x0), deg, predict="x0")).sample(x_t, t_start=4)
    torch.testing.assert_close(sampled, x0, rtol=0, atol=1e-12)


def _papers_algorithm(corrupt: Callable[[Tensor, int], Tensor], levels: list[float], net: nn.Module,
                      x_T: Tensor, grid: list[int], noise: list[Tensor], clip: bool = True) -> Tensor:
    """The Momentum Sampler as the paper writes it: ``x0_hat = h(x_t, t)``, ``y_t = C_t x0_hat``,
    the score ``(y_t - x_t) / s_t^2``; ``x' = x_t + (s_t^2 - s_s^2) score + sqrt(s_t^2 - s_s^2) z``
    (the noise step; no ``z`` at the last step), ``x_s = x' + C_s x0_hat - y_t`` (the correction)."""
    x, states = x_T, [x_T]
    for i, (t, s) in enumerate(itertools.pairwise(grid)):
        with torch.no_grad():
            x0_hat = net(x, torch.full((x.shape[0],), t / grid[0], dtype=torch.float64))
        x0_hat = x0_hat.clamp(0, 1) if clip else x0_hat
        y_t = corrupt(x0_hat, t)
        score = (y_t - x) / levels[t] ** 2
        moved = x + (levels[t] ** 2 - levels[s] ** 2) * score
        if s > 0:
            moved = moved + math.sqrt(levels[t] ** 2 - levels[s] ** 2) * noise[i]
        x = moved + corrupt(x0_hat, s) - y_t
        states.append(x)
    return torch.stack(states)


@pytest.mark.parametrize("steps", [None, 4])
def test_noisy_blur_takes_the_papers_steps(steps: int | None) -> None:
    levels = np.linspace(0, 0.3, T + 1).tolist()
    deg = Blur(num_timesteps=T, sigma_max=2.0, noise=levels)
    net = SmoothNet(0.5)
    grid = list(range(T, -1, -1)) if steps is None else [6, 5, 3, 2, 0]
    noise = [_noise(20 + k) for k in range(T)]
    x_T = deg.degrade(_images(13), T, _noise(14))
    ours = trajectory(SoftSampler(Denoiser(net, deg, predict="x0")), x_T, noise, steps)
    if steps is not None:
        assert SoftSampler(Denoiser(net, deg, predict="x0")).timesteps(steps) == grid

    def corrupt(x: Tensor, t: int) -> Tensor:
        return _blur_by_hand(deg, x, torch.full((x.shape[0],), t))

    reference = _papers_algorithm(corrupt, levels, net, x_T, grid, noise)
    torch.testing.assert_close(ours[:-1], reference[:-1], rtol=0, atol=1e-12)
    torch.testing.assert_close(ours[-1], reference[-1].clamp(0, 1), rtol=0, atol=1e-12)


def test_blurring_takes_the_papers_steps_with_scipys_dct() -> None:
    """``C_t = V diag(alpha_t) V^T`` of blurring diffusion, applied with SciPy's DCT by hand."""
    deg = Blurring(SCHEDULE, sigma_max=3.0, image_shape=SHAPE[1:])
    alpha = deg.signal(8, 8).numpy()
    levels = deg.noise_levels.tolist()
    net = SmoothNet(0.5)
    noise = [_noise(30 + k) for k in range(T)]
    x_T = _noise(15)
    ours = trajectory(SoftSampler(Denoiser(net, deg, predict="x0"), clip_x0=False), x_T, noise)

    def corrupt(x: Tensor, t: int) -> Tensor:
        dct = scipy.fft.dctn(x.numpy(), axes=(-2, -1), norm="ortho")
        return torch.from_numpy(scipy.fft.idctn(alpha[t] * dct, axes=(-2, -1), norm="ortho"))

    reference = _papers_algorithm(corrupt, levels, net, x_T, list(range(T, -1, -1)), noise, clip=False)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-12)


def _options(sampler: SoftSampler) -> tuple[object, ...]:
    return sampler.grid.spacing, sampler.grid.rho, sampler.final_denoise, sampler.clip_x0, sampler.data_range


def test_the_soft_samplers_defaults_are_the_base_samplers() -> None:
    denoiser = Denoiser(SmoothNet(0.5), WITH_NOISE["blur"](0.1), predict="x0")
    assert _options(SoftSampler(denoiser)) == ("trailing", 7.0, False, True, (0.0, 1.0))
    custom = SoftSampler(denoiser, spacing="quadratic", rho=3.0, final_denoise=True, clip_x0=False,
                         data_range=(-1.0, 1.0))
    assert _options(custom) == ("quadratic", 3.0, True, False, (-1.0, 1.0))


def test_the_noise_comes_from_the_generator_and_only_where_the_level_drops() -> None:
    """Fresh noise only where ``s_t`` drops (here: growing levels), drawn from ``generator``, so
    that the global seed changes nothing; a constant level draws none at all."""
    growing = Identity(num_timesteps=T, noise=[0.0, *(0.05 * (k + 1) for k in range(T))])
    results = []
    for global_seed in (0, 1):
        torch.manual_seed(global_seed)
        sampler = SoftSampler(Denoiser(SmoothNet(0.5), growing, predict="x0"), clip_x0=False)
        results.append(sampler.sample(_noise(3), generator=torch.Generator().manual_seed(4)))
    assert torch.equal(results[0], results[1])
    other_seed = SoftSampler(Denoiser(SmoothNet(0.5), growing, predict="x0"), clip_x0=False).sample(
        _noise(3), generator=torch.Generator().manual_seed(5))
    assert not torch.equal(results[0], other_seed)
    generator = torch.Generator().manual_seed(6)
    state = generator.get_state()
    constant = Identity(num_timesteps=T, noise=0.1)
    SoftSampler(Denoiser(SmoothNet(0.5), constant, predict="x0")).sample(_noise(3), generator=generator)
    assert torch.equal(generator.get_state(), state)


def test_corrupt_refuses_a_nonlinear_degradation_with_the_whole_message() -> None:
    with pytest.raises(ValueError) as error:
        Squared(num_timesteps=T).corrupt(_images(0), 1)
    assert str(error.value) == ("Squared is not a linear corruption x_t = C_t x0 + s_t z "
                                "(Degradation.linear is False)")


def test_the_soft_loss_gives_the_network_its_labels() -> None:
    class Recorder(nn.Module):
        conditioning, num_classes = "class", 3

        def __init__(self) -> None:
            super().__init__()
            self.anchor = nn.Parameter(torch.zeros((), dtype=torch.float64))
            self.seen: list[Tensor] = []

        def forward(self, x_t: Tensor, fraction: Tensor, labels: Tensor) -> Tensor:
            self.seen.append(labels)
            return x_t + self.anchor

    net = Recorder()
    labels = torch.tensor([2, 0, 1])
    Denoiser(net, WITH_NOISE["blur"](0.1), predict="x0", loss="soft", cond_drop=0.0).loss(
        _images(30), generator=torch.Generator().manual_seed(31), labels=labels)
    seen, = net.seen
    assert torch.equal(seen, labels)
