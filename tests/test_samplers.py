"""Samplers against exact oracles: a perfect denoiser must recover the data."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from conftest import EpsOracle, X0Oracle
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor

from colddiff import ColdSampler, DDPMSampler, Denoiser, Schedule, nets
from colddiff.degradations import Blur, GaussianNoise, ImageMixing
from colddiff.samplers import DDIMSampler, DPMSolverSampler, Sampler, UniPCSampler
from colddiff.samplers.grids import StepGrid
from colddiff.samplers.multistep import MultistepSampler

SCHEDULE = Schedule.preset("default")
SHAPE = (1, 6, 6)


def clean_batch(seed: int = 0, n: int = 4, dtype: torch.dtype = torch.float64) -> Tensor:
    return torch.rand(n, 1, 6, 6, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@given(steps=st.sampled_from([None, 1, 7, 50, 999]), seed=st.integers(0, 1000))
def test_algorithm2_with_re_estimated_source_and_perfect_oracle_recovers_x0(
        steps: int | None, seed: int) -> None:
    x0 = clean_batch(seed)
    g = torch.Generator().manual_seed(seed)
    sources = torch.rand(9, 1, 6, 6, dtype=torch.float64)
    for deg in (GaussianNoise(SCHEDULE, image_shape=SHAPE),
                ImageMixing(SCHEDULE, sources, image_shape=SHAPE)):
        x_T = deg.degrade(x0, deg.num_timesteps, deg.sample_source(x0, generator=g))
        for algorithm in (1, 2):
            sampler = ColdSampler(Denoiser(X0Oracle(x0), deg, predict="x0"),
                                  algorithm=algorithm, source="estimate")
            torch.testing.assert_close(sampler.sample(x_T, sample_steps=steps), x0, rtol=0, atol=1e-12)


@given(steps=st.sampled_from([None, 3, 100]), seed=st.integers(0, 1000))
def test_algorithm2_with_fixed_source_misses_by_the_predicted_constant(
        steps: int | None, seed: int) -> None:
    x0 = clean_batch(seed)
    deg = ImageMixing(SCHEDULE, torch.rand(9, 1, 6, 6, dtype=torch.float64), image_shape=SHAPE)
    source = deg.sample_source(x0, generator=torch.Generator().manual_seed(seed))
    x_T = deg.degrade(x0, deg.num_timesteps, source)
    sampler = ColdSampler(Denoiser(X0Oracle(x0), deg, predict="x0"), algorithm=2, source="fixed")
    alpha_bar_T = SCHEDULE.alpha_bar[-1].item()
    # The telescoping sum leaves x0 + (1 - sqrt(1 - alpha_bar_T)) x_T - sqrt(alpha_bar_T) x0.
    expected = x0 + (1 - math.sqrt(1 - alpha_bar_T)) * x_T - math.sqrt(alpha_bar_T) * x0
    result = sampler.sample(x_T, sample_steps=steps)
    torch.testing.assert_close(result, expected, rtol=0, atol=1e-12)
    assert 0 < (result - x0).abs().max() < 0.01


@pytest.mark.parametrize("algorithm", [1, 2])
def test_blur_is_inverted_exactly_by_a_perfect_oracle(algorithm: int) -> None:
    x0 = clean_batch()
    deg = Blur(num_timesteps=20, image_shape=SHAPE)
    sampler = ColdSampler(Denoiser(X0Oracle(x0), deg, predict="x0"), algorithm=algorithm)
    torch.testing.assert_close(sampler.sample(deg.degrade(x0, 20), sample_steps=5), x0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("variance", ["beta", "posterior"])
@pytest.mark.parametrize("steps", [None, 10])
@pytest.mark.parametrize("clip_x0", [True, False])
def test_ddpm_with_an_exact_eps_oracle_lands_on_a_point_mass(
        variance: str, steps: int | None, clip_x0: bool) -> None:
    point = clean_batch(n=1)
    deg = GaussianNoise(SCHEDULE, image_shape=(1, 6, 6))
    sampler = DDPMSampler(Denoiser(EpsOracle(deg, point), deg, predict="eps"),
                          variance=variance, clip_x0=clip_x0)  # type: ignore[arg-type]
    g = torch.Generator().manual_seed(0)
    x_T = sampler.prior(8, generator=g).double()
    result = sampler.sample(x_T, sample_steps=steps, generator=g)
    torch.testing.assert_close(result, point.expand_as(result), rtol=0, atol=1e-9)


def test_ddpm_matches_ho_et_al_algorithm_2_step_by_step() -> None:
    schedule = Schedule.linear(1e-4, 0.2, 30)
    deg = GaussianNoise(schedule, image_shape=(1, 12, 12))
    torch.manual_seed(0)
    den = Denoiser(nets.CNN(image_size=(12, 12), channels=(8, 8)), deg, predict="eps")
    x_T = torch.randn(3, 1, 12, 12, generator=torch.Generator().manual_seed(1))
    ours = DDPMSampler(den, clip_x0=False).sample(x_T, generator=torch.Generator().manual_seed(2))

    beta, alpha_bar = schedule.beta.float(), schedule.alpha_bar.float()
    g = torch.Generator().manual_seed(2)
    x = x_T.clone()
    with torch.no_grad():
        for t in range(30, 0, -1):
            eps = den(x, torch.full((3,), t))
            x = (x - beta[t] / torch.sqrt(1 - alpha_bar[t]) * eps) / torch.sqrt(1 - beta[t])
            if t > 1:
                x = x + torch.sqrt(beta[t]) * torch.empty_like(x).normal_(generator=g)
    torch.testing.assert_close(ours, x, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("predict", ["eps", "x0"])
def test_re_estimated_algorithm2_is_ddim_with_eta_zero(predict: str) -> None:
    deg = GaussianNoise(SCHEDULE, image_shape=(1, 10, 10))
    torch.manual_seed(0)
    den = Denoiser(nets.CNN(image_size=(10, 10), channels=(8, 8)), deg, predict=predict)  # type: ignore[arg-type]
    x_T = torch.randn(2, 1, 10, 10, generator=torch.Generator().manual_seed(1))
    sampler = ColdSampler(den, algorithm=2, source="estimate", clip_x0=False)
    times = sampler.timesteps(20)
    ours = sampler.sample(x_T, sample_steps=20)

    # Song et al. (2021), eq. 12 with sigma_t = 0.
    alpha_bar = SCHEDULE.alpha_bar.float()
    x = x_T.clone()
    with torch.no_grad():
        for t, s in itertools.pairwise(times):
            t_batch = torch.full((2,), t)
            if predict == "eps":
                eps = den(x, t_batch)
                x0_hat = (x - torch.sqrt(1 - alpha_bar[t]) * eps) / torch.sqrt(alpha_bar[t])
            else:
                x0_hat = den(x, t_batch)
                eps = (x - torch.sqrt(alpha_bar[t]) * x0_hat) / torch.sqrt(1 - alpha_bar[t])
            x = torch.sqrt(alpha_bar[s]) * x0_hat + torch.sqrt(1 - alpha_bar[s]) * eps
    torch.testing.assert_close(ours, x, rtol=1e-4, atol=1e-4)


def test_the_same_seed_gives_bit_identical_samples_and_callbacks_see_each_step() -> None:
    deg = GaussianNoise(Schedule.preset("short"), image_shape=(1, 8, 8))
    torch.manual_seed(0)
    den = Denoiser(nets.CNN(image_size=(8, 8), channels=(4, 4)), deg)
    den.train()
    seen: list[tuple[int, int]] = []

    def run(callback=None) -> Tensor:  # type: ignore[no-untyped-def]
        g = torch.Generator().manual_seed(123)
        sampler = DDPMSampler(den)
        return sampler.sample(sampler.prior(3, generator=g), sample_steps=25, generator=g, callback=callback)

    first = run(lambda i, t, x_t, x0_hat: seen.append((i, t)))
    assert torch.equal(first, run())
    assert not torch.equal(first, DDPMSampler(den).sample(first, sample_steps=25))
    assert seen == list(enumerate(DDPMSampler(den).timesteps(25)[:-1]))
    assert seen[0] == (0, 200) and seen[-1][1] == 8
    assert den.training, "sampling restores the denoiser's mode"
    first += 1  # a normal tensor, usable outside inference mode


def test_strided_timesteps_are_evenly_spaced_and_cover_both_ends() -> None:
    sampler = ColdSampler(Denoiser(X0Oracle(clean_batch()), Blur(num_timesteps=1000), predict="x0"))
    assert sampler.timesteps(None) == list(range(1000, -1, -1))
    assert sampler.timesteps(4) == [1000, 750, 500, 250, 0]
    assert sampler.timesteps(1) == [1000, 0]
    times = sampler.timesteps(333)
    assert len(set(times)) == 334 and times == sorted(times, reverse=True)


def test_bad_sampler_arguments_raise_naming_the_argument() -> None:
    gaussian = Denoiser(X0Oracle(clean_batch()), GaussianNoise(SCHEDULE), predict="x0")
    blur = Denoiser(X0Oracle(clean_batch()), Blur(), predict="x0")
    mixing = Denoiser(X0Oracle(clean_batch()), ImageMixing(SCHEDULE, torch.rand(2, 1, 6, 6)),
                      predict="x0")
    cases = [
        (lambda: ColdSampler(gaussian, algorithm=3), "algorithm"),  # type: ignore[arg-type]
        (lambda: ColdSampler(gaussian, source="noise"), "source"),  # type: ignore[arg-type]
        (lambda: DDPMSampler(mixing), "GaussianNoise"),
        (lambda: DDPMSampler(blur), "GaussianNoise"),
        (lambda: DDPMSampler(gaussian, variance="small"), "variance"),  # type: ignore[arg-type]
        (lambda: DDPMSampler(gaussian, data_range=(1.0, 0.0)), "data_range"),
        (lambda: DDPMSampler(gaussian.net), "denoiser"),  # type: ignore[arg-type]
        (lambda: ColdSampler(gaussian).sample(torch.zeros(2, 1, 28, 28, dtype=torch.float64), sample_steps=0),
         "sample_steps"),
        (lambda: ColdSampler(gaussian).sample(torch.zeros(2, 1, 28, 28, dtype=torch.float64), 1001),
         "sample_steps"),
        (lambda: ColdSampler(gaussian).sample(torch.zeros(6, 6)), "x_T"),
        (lambda: ColdSampler(gaussian).prior(0), "n"),
    ]
    for make, argument in cases:
        with pytest.raises(ValueError, match=argument):
            make()


@pytest.mark.parametrize("steps", [None, 20])
def test_v_prediction_with_an_exact_oracle_recovers_the_point(steps: int | None) -> None:
    point = clean_batch(n=1)
    deg = GaussianNoise(Schedule.cosine(200), image_shape=(1, 6, 6))

    class VOracle(EpsOracle):
        def forward(self, x_t: Tensor, t: Tensor) -> Tensor:
            eps = super().forward(x_t, t)
            steps_ = torch.round(t * self.degradation.num_timesteps).long()
            return self.degradation.velocity(self.point.expand_as(x_t), steps_, eps)

    den = Denoiser(VOracle(deg, point), deg, predict="v")
    g = torch.Generator().manual_seed(0)
    x_T = deg.prior(4, generator=g).double()
    for sampler in (DDPMSampler(den), ColdSampler(den, source="estimate")):
        result = sampler.sample(x_T, sample_steps=steps, generator=g)
        torch.testing.assert_close(result, point.expand_as(result), rtol=0, atol=1e-9)


def test_a_start_that_does_not_fit_is_a_clear_error_before_the_network_runs() -> None:
    """Wrong channels, size or dtype, an empty batch or a NaN start: a ValueError naming what
    is expected, not a raw error from inside the network or silently NaN samples."""
    torch.manual_seed(0)
    den = Denoiser(nets.CNN(channels=[4, 4]), GaussianNoise(Schedule.preset("short")), predict="eps")
    sampler = DDPMSampler(den)
    nan_start = torch.zeros(2, 1, 28, 28)
    nan_start[1, 0, 3, 3] = float("nan")
    cases = [
        (torch.zeros(2, 3, 28, 28), r"x_T must have shape \(B, 1, 28, 28\).*got \(2, 3, 28, 28\)"),
        (torch.zeros(2, 1, 32, 32), r"x_T must have shape \(B, 1, 28, 28\).*got \(2, 1, 32, 32\)"),
        (torch.zeros(0, 1, 28, 28), r"x_T is an empty batch; give at least one image of shape \(1, 28, 28\)"),
        (torch.zeros(2, 1, 28, 28, dtype=torch.float64), r"x_T has dtype torch.float64 .* torch.float32"),
        (torch.zeros(2, 1, 28, 28, dtype=torch.long), r"x_T must be a floating-point tensor"),
        (nan_start, r"x_T holds NaN or infinite values"),
    ]
    for x_T, message in cases:
        with pytest.raises(ValueError, match=message):
            sampler.sample(x_T, sample_steps=2)
    assert sampler.sample(torch.zeros(2, 1, 28, 28), sample_steps=2).shape == (2, 1, 28, 28)


def test_a_degradation_without_an_image_shape_takes_starts_of_any_size() -> None:
    for size in (6, 9):
        x0 = torch.rand(2, 3, size, size, dtype=torch.float64)
        blur = Blur(num_timesteps=4)
        assert blur.image_shape is None
        sampler = ColdSampler(Denoiser(X0Oracle(x0), blur, predict="x0"))
        torch.testing.assert_close(sampler.sample(blur.degrade(x0, 4)), x0, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match=r"x_T must have shape \(B, 3, 6, 6\)"):
        shaped = Blur(num_timesteps=4, image_shape=(3, 6, 6))
        ColdSampler(Denoiser(X0Oracle(x0), shaped, predict="x0")).sample(x0)


def _recorded(sampler: ColdSampler | DDPMSampler, x_T: Tensor, **options: object) -> dict[int, Tensor]:
    """``{t: x_t}`` of every step a run visits, and ``{0: result}``."""
    seen: dict[int, Tensor] = {}
    result = sampler.sample(x_T, callback=lambda i, t, x_t, x0_hat: seen.__setitem__(t, x_t.clone()),
                            **options)  # type: ignore[arg-type]
    return {**seen, 0: result}


@pytest.mark.parametrize("t_start", [1, 17, 50])
def test_starting_part_way_follows_the_tail_of_the_full_trajectory(t_start: int) -> None:
    """Deterministic samplers (DDIM, Algorithm 2 on blur) started at ``t_start`` from the state a
    full run had there visit the same states as the rest of that run, step by step."""
    torch.manual_seed(0)
    gaussian = GaussianNoise(Schedule.linear(1e-4, 0.2, 50), image_shape=SHAPE)
    blur = Blur(num_timesteps=50)
    for degradation in (gaussian, blur):
        sampler = ColdSampler(Denoiser(nets.CNN(channels=[4], image_size=(6, 6)).double(), degradation,
                                       predict="x0"), algorithm=2,
                              source="estimate" if degradation is gaussian else "fixed")
        full = _recorded(sampler, clean_batch(1).clone())
        part = _recorded(sampler, full[t_start], t_start=t_start)
        assert sorted(part) == list(range(t_start + 1))
        for t in part:
            torch.testing.assert_close(part[t], full[t], rtol=0, atol=0)


@pytest.mark.parametrize("t_start", [1, 5, 120, 200])
def test_a_perfect_denoiser_restores_from_any_step(t_start: int) -> None:
    x0 = clean_batch(2)
    blur = Blur(num_timesteps=200)
    x_t = blur.degrade(x0, t_start)
    restored = ColdSampler(Denoiser(X0Oracle(x0), blur, predict="x0")).sample(x_t, t_start=t_start)
    torch.testing.assert_close(restored, x0, rtol=0, atol=1e-12)
    deg = GaussianNoise(Schedule.preset("short"), image_shape=SHAPE)
    point = clean_batch(3, n=1)
    noisy = deg.degrade(point.expand(4, -1, -1, -1), t_start, torch.randn(4, *SHAPE, dtype=torch.float64))
    sampler = DDPMSampler(Denoiser(EpsOracle(deg, point), deg, predict="eps"))
    restored = sampler.sample(noisy, 10 if t_start >= 10 else None, t_start=t_start,
                              generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(restored, point.expand_as(restored), rtol=0, atol=1e-9)


def test_strided_steps_from_a_start_cover_it_evenly() -> None:
    sampler = ColdSampler(Denoiser(X0Oracle(clean_batch()), Blur(num_timesteps=1000), predict="x0"))
    assert sampler.timesteps(4, t_start=100) == [100, 75, 50, 25, 0]
    assert sampler.timesteps(t_start=3) == [3, 2, 1, 0]
    for bad in (0, 1001, 2.5, True):
        with pytest.raises(ValueError, match=r"t_start must be an integer in \[1, 1000\] \(T\) or None"):
            sampler.timesteps(t_start=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"sample_steps must be an integer in \[1, 100\]"):
        sampler.timesteps(101, t_start=100)


@pytest.mark.parametrize("t_start", [1, 23, 60])
def test_ancestral_sampling_part_way_follows_the_tail_of_the_full_trajectory(t_start: int) -> None:
    """With the noise of each step fixed by its time, DDPM started at ``t_start`` from a full
    run's state there visits the same states as the rest of that run."""
    torch.manual_seed(0)
    deg = GaussianNoise(Schedule.linear(1e-4, 0.2, 60), image_shape=SHAPE)
    sampler = DDPMSampler(Denoiser(nets.CNN(channels=[4], image_size=(6, 6)).double(), deg, predict="eps"))
    visited: list[int] = []

    def noise_of_the_step(like: Tensor, generator: torch.Generator | None) -> Tensor:
        step = visited[-1]  # the time of the step being taken, recorded by the callback
        return torch.randn(like.shape, generator=torch.Generator().manual_seed(step), dtype=like.dtype)

    sampler.noise = noise_of_the_step  # type: ignore[method-assign]

    def run(x_T: Tensor, **options: object) -> dict[int, Tensor]:
        seen: dict[int, Tensor] = {}

        def record(i: int, t: int, x_t: Tensor, x0_hat: Tensor) -> None:
            visited.append(t)
            seen[t] = x_t.clone()

        result = sampler.sample(x_T, callback=record, **options)  # type: ignore[arg-type]
        return {**seen, 0: result}

    full = run(torch.randn(2, *SHAPE, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    part = run(full[t_start], t_start=t_start)
    assert sorted(part) == list(range(t_start + 1))
    for t in part:
        torch.testing.assert_close(part[t], full[t], rtol=0, atol=0)


@pytest.mark.parametrize("sampler_class",
                         [DDPMSampler, DDIMSampler, ColdSampler, DPMSolverSampler, UniPCSampler])
def test_every_sampler_has_the_documented_defaults(sampler_class: type[Sampler]) -> None:
    denoiser = Denoiser(X0Oracle(clean_batch()), GaussianNoise(SCHEDULE), predict="x0")
    sampler = sampler_class(denoiser)
    assert (sampler.grid.spacing, sampler.grid.rho, sampler.final_denoise, sampler.clip_x0,
            sampler.data_range) == ("trailing", 7.0, False, True, (0.0, 1.0))
    if isinstance(sampler, MultistepSampler):
        assert sampler.order == 2


class OneJump(Sampler):
    """A plugin sampler that keeps the base class's options: one jump to the prediction."""

    def step(self, i: int, t: int, s: int, x_t: Tensor, x0_hat: Tensor, t_batch: Tensor,
             s_batch: Tensor, generator: torch.Generator | None) -> Tensor:
        return x0_hat


def test_a_plugin_sampler_gets_the_base_class_s_documented_defaults() -> None:
    sampler = OneJump(Denoiser(X0Oracle(clean_batch()), GaussianNoise(SCHEDULE), predict="x0"))
    assert (sampler.grid.spacing, sampler.grid.rho, sampler.final_denoise, sampler.clip_x0,
            sampler.data_range) == ("trailing", 7.0, False, True, (0.0, 1.0))
    assert StepGrid("karras", sampler.degradation).rho == 7.0


def test_dpm_solvers_step_orders_rise_and_drop_at_the_end() -> None:
    """Order ``min(order, i + 1)``, first order at a last step to 0, and for fewer than
    ``FEW_STEPS`` = 15 steps first order at the last step and at most second at the one before."""
    sampler = DPMSolverSampler(Denoiser(X0Oracle(clean_batch()), GaussianNoise(SCHEDULE), predict="x0"),
                               order=3)

    def orders(steps: int, to_zero: bool) -> list[int]:
        return [sampler.step_order(i, steps, to_zero) for i in range(steps)]

    assert orders(2, True) == orders(2, False) == [1, 1]
    assert orders(3, False) == [1, 2, 1]
    assert orders(14, False) == [1, 2, *[3] * 10, 2, 1]
    assert orders(15, False) == [1, 2, *[3] * 13]
    assert orders(15, True) == [1, 2, *[3] * 12, 1]
