"""Step grids (``spacing``): the named spacings against diffusers' definitions, restoration from
``t_start``, explicit grids, ``final_denoise`` and the checks of every option."""

from __future__ import annotations

import math
import warnings

import diffusers
import numpy as np
import pytest
import torch
from conftest import SmoothNet, X0Oracle
from torch import Tensor

from colddiff import Denoiser, Schedule, samplers
from colddiff.degradations import Blur, GaussianNoise, ImageMixing
from colddiff.samplers import SPACINGS, Sampler

T = 1000
LINEAR = Schedule.preset("default")
COSINE = Schedule.cosine(T)
SHAPE = (1, 6, 6)


def clean(n: int = 3) -> Tensor:
    return torch.rand(n, *SHAPE, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def gaussian(schedule: Schedule = LINEAR, x0: Tensor | None = None) -> Denoiser:
    return Denoiser(X0Oracle(clean() if x0 is None else x0), GaussianNoise(schedule, image_shape=SHAPE),
                    predict="x0")


def grid(spacing: object, steps: int | None, schedule: Schedule = LINEAR,
         t_start: int | None = None) -> list[int]:
    """Our grid, without warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sampler = samplers.create("ddim", gaussian(schedule), spacing=spacing)
        return sampler.timesteps(steps, t_start=t_start)


def diffusers_grid(steps: int, schedule: Schedule = LINEAR, **config: object) -> list[int]:
    """diffusers' ``DPMSolverMultistepScheduler`` timesteps ``k`` as our ``t = k + 1``, repeats
    dropped, on our float64 schedule."""
    scheduler = diffusers.DPMSolverMultistepScheduler(num_train_timesteps=T,
                                                      trained_betas=schedule.beta[1:].numpy(), **config)
    scheduler.alphas_cumprod = schedule.alpha_bar[1:].clone()
    scheduler.set_timesteps(steps)
    steps_ = [int(k) + 1 for k in scheduler.timesteps]
    return [t for i, t in enumerate(steps_) if i == 0 or t != steps_[i - 1]]


@pytest.mark.parametrize("spacing", ["trailing", "leading", "linspace"])
@pytest.mark.parametrize("steps", [1, 5, 7, 10, 20, 37, 50, 333])
def test_trailing_leading_and_linspace_are_diffusers_grids(spacing: str, steps: int) -> None:
    """diffusers' ``timestep_spacing`` (DPMSolverMultistepScheduler), then the step to 0."""
    assert grid(spacing, steps) == [*diffusers_grid(steps, timestep_spacing=spacing), 0]


def test_trailing_is_the_grid_of_colddiff_0_1_and_rounds_halves_up() -> None:
    """Bit-identical to the grid before spacings existed; diffusers rounds exact halves to even."""
    for steps in (1, 4, 16, 50, 333, 1000):
        assert grid("trailing", steps) == [math.floor(T * k / steps + 0.5) for k in range(steps, -1, -1)]
    ours, theirs = grid("trailing", 16)[:-1], diffusers_grid(16, timestep_spacing="trailing")
    assert [(a, b) for a, b in zip(ours, theirs, strict=True) if a != b] == [(813, 812), (563, 562),
                                                                            (313, 312), (63, 62)]


@pytest.mark.parametrize("schedule", [LINEAR, COSINE], ids=["linear", "cosine"])
@pytest.mark.parametrize("steps", [1, 5, 10, 20, 50])
def test_logsnr_and_karras_are_diffusers_lu_lambdas_and_karras_sigmas(schedule: Schedule, steps: int) -> None:
    assert grid("logsnr", steps, schedule) == [*diffusers_grid(steps, schedule, use_lu_lambdas=True), 0]
    assert grid("karras", steps, schedule) == [*diffusers_grid(steps, schedule, use_karras_sigmas=True), 0]


def test_logsnr_is_uniform_in_log_snr_up_to_rounding() -> None:
    times = grid("logsnr", 10)[:-1]
    log_snr = [math.log(LINEAR.alpha_bar[t] / (1 - LINEAR.alpha_bar[t])) for t in times]
    gaps = np.diff(log_snr)
    assert times[0] == T and times[-1] == 1
    assert np.allclose(gaps, (log_snr[-1] - log_snr[0]) / 9, rtol=0.05)


def test_karras_follows_eq_5_with_rho() -> None:
    sigma = ((1 - LINEAR.alpha_bar) / LINEAR.alpha_bar).sqrt()
    for rho in (1.0, 3.0, 7.0):
        sampler = samplers.create("ddim", gaussian(), spacing="karras", rho=rho)
        times = sampler.timesteps(8)[:-1]
        high, low = sigma[T].item() ** (1 / rho), sigma[1].item() ** (1 / rho)
        wanted = [(high + i / 7 * (low - high)) ** rho for i in range(8)]
        nearest = [int(torch.argmin((sigma[1:].log() - math.log(s)).abs())) + 1 for s in wanted]
        assert all(abs(t - n) <= 1 for t, n in zip(times, nearest, strict=True)), (rho, times, nearest)


def test_quadratic_is_dense_near_the_data() -> None:
    assert grid("quadratic", 10) == [1000, 810, 640, 490, 360, 250, 160, 90, 40, 10, 0]
    assert grid("quadratic", 50)[-3:] == [2, 1, 0]  # round(1000 / 2500) = 0, raised to 1


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("t_start", [1, 7, 37, 500])
def test_every_spacing_works_from_t_start(spacing: str, t_start: int) -> None:
    for steps in sorted({1, min(5, t_start), t_start // 2 or 1}):
        times = grid(spacing, steps, t_start=t_start)
        assert times[-1] == 0 and times == sorted(set(times), reverse=True)
        assert times[0] <= t_start and len(times) <= steps + 1
        if spacing != "leading":  # leading starts below the start (diffusers' definition)
            assert times[0] == t_start


@pytest.mark.parametrize("spacing", SPACINGS)
def test_sample_steps_none_visits_every_step_whatever_the_spacing(spacing: str) -> None:
    assert grid(spacing, None) == list(range(T, -1, -1))
    assert grid(spacing, None, t_start=9) == list(range(9, -1, -1))


def test_repeated_steps_are_dropped_and_a_warning_says_so() -> None:
    sampler = samplers.create("ddim", gaussian(COSINE), spacing="karras")
    with pytest.warns(UserWarning, match=r"spacing='karras' rounds to 7 distinct steps for sample_steps=10"):
        assert sampler.timesteps(10) == [1000, 999, 996, 984, 896, 260, 1, 0]
    with pytest.warns(UserWarning, match=r"rounds to 1 distinct steps for sample_steps=10 from step 10"):
        assert samplers.create("ddim", gaussian(), spacing="leading").timesteps(10, t_start=10) == [1, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for spacing in SPACINGS:
            assert len(samplers.create("ddim", gaussian(), spacing=spacing).timesteps(20)) == 21


def test_the_rounding_warning_points_at_the_callers_line() -> None:
    sampler = samplers.create("ddim", gaussian(COSINE), spacing="karras")
    with pytest.warns(UserWarning, match="rounds to 7 distinct steps") as record:
        sampler.sample(torch.zeros(3, *SHAPE, dtype=torch.float64), 10)
    assert [warning.filename for warning in record] == [__file__]


def test_an_explicit_grid_is_visited_as_given_and_cut_at_t_start() -> None:
    sampler = samplers.create("ddim", gaussian(), spacing=(1000, 700, np.int64(300), 50, 0))
    assert sampler.grid.spacing == (1000, 700, 300, 50, 0)
    assert sampler.timesteps() == sampler.timesteps(4) == [1000, 700, 300, 50, 0]
    assert sampler.timesteps(t_start=500) == [500, 300, 50, 0]
    assert sampler.timesteps(t_start=300) == [300, 50, 0]
    with pytest.raises(ValueError, match=r"sample_steps must be None or 4 \(the number of steps of spacing"):
        sampler.timesteps(10)
    assert samplers.create("ddim", gaussian(), spacing=[1000, 20]).timesteps() == [1000, 20]


@pytest.mark.parametrize(("spacing", "message"), [
    ("uniform", r"spacing must be one of 'trailing', 'leading', 'linspace', 'quadratic', 'logsnr', 'karras' "
                r"or a list of integer steps, got 'uniform'"),
    (10, r"spacing must be one of .* got 10"),
    ([1000, 500.0, 0], r"from T = 1000 down to 0 .*; got \[1000, 500.0, 0\], which holds a non-integer"),
    ([1000, True], r"which holds a non-integer"),
    ([999, 500, 0], r"strictly decreasing integers from T = 1000 down to 0 or a step above it, e.g. "
                    r"\[1000, 500, 0\]; got \[999, 500, 0\]"),
    ([1000, 500, 500, 0], r"got \[1000, 500, 500, 0\], where 500 is followed by 500"),
    ([1000, -1], r"got \[1000, -1\]"),
    ([1000, 500, -1], r"e.g. \[1000, 500, 0\]; got \[1000, 500, -1\]$"),
    ([1000], r"at least 2"),
])
def test_a_bad_spacing_is_a_clear_error(spacing: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        samplers.create("ddpm", gaussian(), spacing=spacing)


def test_logsnr_and_karras_need_the_noise_levels_of_a_mixing_degradation() -> None:
    blur = Denoiser(X0Oracle(clean()), Blur(num_timesteps=20), predict="x0")
    for spacing in ("logsnr", "karras"):
        with pytest.raises(ValueError, match=rf"spacing='{spacing}' needs the noise levels of a mixing "
                                             r"degradation .*; Blur has none: use one of 'trailing', "
                                             r"'leading', 'linspace', 'quadratic' or a list of steps"):
            samplers.create("cold", blur, spacing=spacing)
    mixing = Denoiser(X0Oracle(clean()), ImageMixing(LINEAR, clean(5), image_shape=SHAPE), predict="x0")
    assert samplers.create("cold", mixing, spacing="logsnr").timesteps(10) == grid("logsnr", 10)


@pytest.mark.parametrize(("options", "message"), [
    ({"rho": 0}, r"rho must be a positive number, got 0"),
    ({"rho": math.inf}, r"rho must be a positive number"),
    ({"rho": "7"}, r"rho must be a positive number"),
    ({"final_denoise": 1}, r"final_denoise must be True or False, got 1"),
])
def test_bad_grid_options_are_clear_errors_for_every_sampler(options: dict[str, object],
                                                            message: str) -> None:
    for name in ("ddpm", "ddim", "dpmsolver++", "unipc", "cold"):
        kwargs = {"source": "estimate"} if name == "cold" else {}
        with pytest.raises(ValueError, match=message):
            samplers.create(name, gaussian(), **kwargs, **options)


def test_solver_options_are_checked() -> None:
    for name, options, message in [
        ("dpmsolver++", {"order": 4}, r"order must be 1, 2 or 3, got 4"),
        ("dpmsolver++", {"variant": "k-diffusion"}, r"variant must be 'taylor' or 'diffusers'"),
        ("unipc", {"order": 0}, r"order must be 1, 2 or 3, got 0"),
        ("unipc", {"solver_type": "bh1"}, r"does not take solver_type; it takes order, spacing, rho, "
                                          r"final_denoise, clip_x0, data_range"),
    ]:
        with pytest.raises(ValueError, match=message):
            samplers.create(name, gaussian(), **options)
    blur = Denoiser(X0Oracle(clean()), Blur(), predict="x0")
    with pytest.raises(ValueError, match="UniPCSampler needs a denoiser for GaussianNoise"):
        samplers.create("unipc", blur)


def _run(sampler: Sampler, x_T: Tensor, **options: object) -> tuple[Tensor, list[int]]:
    calls: list[int] = []
    result = sampler.sample(x_T, callback=lambda i, t, x_t, x0_hat: calls.append(t), **options)  # type: ignore[arg-type]
    return result, calls


@pytest.mark.parametrize("name", ["ddpm", "ddim", "dpmsolver++", "unipc", "cold"])
def test_final_denoise_returns_the_prediction_where_a_grid_ends_above_zero(name: str) -> None:
    """A grid ending at t = 50 returns the (noisy) state there, or with ``final_denoise`` the
    clean-image prediction from it: one more network call, which the callback sees."""
    x0 = clean()
    options = {"source": "estimate"} if name == "cold" else {}
    x_T = torch.randn(3, *SHAPE, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for final_denoise in (False, True):
        sampler = samplers.create(name, gaussian(x0=x0), spacing=[1000, 600, 200, 50], clip_x0=False,
                                  final_denoise=final_denoise, **options)
        result, calls = _run(sampler, x_T, generator=torch.Generator().manual_seed(2))
        assert calls == [1000, 600, 200, 50, 50][: 3 + final_denoise]
        if final_denoise:
            torch.testing.assert_close(result, x0, rtol=0, atol=1e-12)
        else:
            assert (result - x0).abs().max() > 0.05
    ended = samplers.create(name, gaussian(x0=x0), spacing=[1000, 600, 0], final_denoise=True, **options)
    assert _run(ended, x_T, generator=torch.Generator().manual_seed(2))[1] == [1000, 600]


def test_final_denoise_for_blur_ends_on_the_clean_image() -> None:
    x0 = clean()
    blur = Blur(num_timesteps=20, image_shape=SHAPE)
    for final_denoise, expected in ((False, blur.degrade(x0, 5)), (True, x0)):
        sampler = samplers.create("cold", Denoiser(X0Oracle(x0), blur, predict="x0"), spacing=[20, 12, 5],
                                  final_denoise=final_denoise)
        torch.testing.assert_close(sampler.sample(blur.degrade(x0, 20)), expected, rtol=0, atol=1e-12)


def test_the_cold_sampler_keeps_the_start_as_source_on_a_grid_starting_below_t() -> None:
    """Generating with ``spacing="leading"`` (first step 901) still takes the start as the fixed
    source (it is a run from the prior): Algorithm 2 telescopes to ``x_T - D(x0, 901, x_T) + x0``."""
    x0 = clean()
    deg = ImageMixing(LINEAR, clean(5), image_shape=SHAPE)
    x_T = deg.degrade(x0, T, deg.sample_source(x0, generator=torch.Generator().manual_seed(3)))
    sampler = samplers.create("cold", Denoiser(X0Oracle(x0), deg, predict="x0"), spacing="leading")
    expected = x_T - deg.degrade(x0, 901, x_T) + x0
    torch.testing.assert_close(sampler.sample(x_T, 10), expected.clamp(0, 1), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["ddim", "dpmsolver++", "unipc"])
def test_final_denoise_from_step_one_is_the_last_callback(name: str) -> None:
    """A grid ending at ``t = 1`` still ends above 0: ``final_denoise`` predicts from it, the
    callback seeing it as the step after the grid's last (index ``len(grid) - 1``)."""
    x0 = clean()
    x_T = torch.randn(3, *SHAPE, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    sampler = samplers.create(name, gaussian(x0=x0), spacing=[1000, 600, 1], clip_x0=False,
                              final_denoise=True)
    seen: list[tuple[int, int]] = []
    result = sampler.sample(x_T, callback=lambda i, t, x_t, x0_hat: seen.append((i, t)))
    assert seen == [(0, 1000), (1, 600), (2, 1)]
    torch.testing.assert_close(result, x0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["ddpm", "ddim", "cold"])
def test_final_denoise_predicts_at_the_grids_last_step(name: str) -> None:
    """With a network that depends on ``t``, the final prediction is the one at the grid's last
    step (50), from the state there."""
    denoiser = Denoiser(SmoothNet(), GaussianNoise(LINEAR, image_shape=SHAPE), predict="x0")
    options = {"source": "estimate"} if name == "cold" else {}
    x_T = torch.randn(3, *SHAPE, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    results = [samplers.create(name, denoiser, spacing=[1000, 600, 200, 50], clip_x0=False,
                               final_denoise=final, **options).sample(
                   x_T, generator=torch.Generator().manual_seed(4))
               for final in (False, True)]
    with torch.no_grad():
        expected = denoiser.predict_x0(results[0], torch.full((3,), 50))
    torch.testing.assert_close(results[1], expected, rtol=0, atol=0)


def test_every_sampler_has_the_documented_defaults() -> None:
    for name in ("ddpm", "ddim", "dpmsolver++", "unipc", "cold"):
        sampler = samplers.create(name, gaussian())
        assert (sampler.grid.spacing, sampler.grid.rho, sampler.final_denoise, sampler.clip_x0,
                sampler.data_range) == ("trailing", 7.0, False, True, (0.0, 1.0)), name
