"""Every intermediate state of every sampler against an independent reference, in float64.

The last step of a sampler returns its clean-image prediction whatever came before, so end
points hide wrong steps. Here a non-trivial oracle network (its output depends on ``x_t`` and
``t``) drives our samplers and a reference, with the injected noise fixed, and the whole
trajectory must agree to 1e-10:

* ``ddpm``, ``ddim``, ``dpmsolver++`` (2M, 3M) and ``unipc`` against diffusers' ``DDPMScheduler``,
  ``DDIMScheduler``, ``DPMSolverMultistepScheduler`` and ``UniPCMultistepScheduler``. Their
  timestep ``k`` is our ``t = k + 1`` (our index 0 is the clean image); their tables are set to
  our float64 ``alpha_bar`` so that only the step arithmetic is compared. Correspondences: our
  grids (any ``K``, any spacing) are DDPM's and DPM-Solver's custom ``timesteps`` and UniPC's
  timesteps and sigmas set by hand, and DDIM's ``timestep_spacing="trailing"`` when ``K``
  divides ``T``; a grid ending above 0 is their ``final_sigmas_type="sigma_min"`` with that
  last sigma; our ``clip_x0`` with ``data_range=(-1, 1)`` is their ``clip_sample``
  with range 1 (for DDIM with ``use_clipped_model_output=True``). diffusers' DDPM adds noise
  even at a strided last step (its timestep is above 0); Ho et al. add none at the last step, as
  we do, so the reference gets zero noise there.
* ``cold`` against a loop written here from Bansal et al.'s Algorithms 1 and 2, with the
  degradations re-implemented here from their definitions.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator

import diffusers  # the dev extra installs it: a missing reference must fail, not skip
import pytest
import torch
from torch import Tensor, nn

from colddiff import Denoiser, Schedule, samplers
from colddiff.degradations import Blur, GaussianNoise, ImageMixing
from colddiff.samplers import Sampler, Spacing

T = 1000
SCHEDULE = Schedule.preset("default")
ALPHA_BAR = SCHEDULE.alpha_bar  # float64, index 0..T
SHAPE = (2, 1, 5, 5)
ATOL = 1e-10


def oracle_output(x_t: Tensor, fraction: Tensor) -> Tensor:
    """A smooth function of ``x_t`` and ``t / T`` standing in for a trained network."""
    f = fraction.view(-1, 1, 1, 1).to(x_t.dtype)
    return torch.tanh(1.3 * x_t + 0.7 * f) - 0.4 * f * x_t.flip(-1) + 0.2 * torch.cos(3 * f)


class Oracle(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, x_t: Tensor, fraction: Tensor) -> Tensor:
        return oracle_output(x_t, fraction)


def start(seed: int = 0) -> Tensor:
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def fixed_noise(count: int, seed: int = 1) -> list[Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(SHAPE, generator=g, dtype=torch.float64) for _ in range(count)]


def our_trajectory(sampler: Sampler, x_T: Tensor, steps: int | None, noise: list[Tensor]) -> list[Tensor]:
    """``[x_T, x_{t_{K-1}}, ..., x_0]`` from our sampler, with ``noise`` injected in order."""
    supply: Iterator[Tensor] = iter(noise)
    sampler.noise = lambda like, generator: next(supply)  # type: ignore[method-assign]
    states: list[Tensor] = []
    final = sampler.sample(x_T, steps, callback=lambda i, t, x_t, x0_hat: states.append(x_t.clone()))
    return [*states, final]


def timesteps(steps: int | None, spacing: Spacing = "trailing") -> list[int]:
    return samplers.create("ddim", gaussian_denoiser(), spacing=spacing).timesteps(steps)


def sigmas(times: list[int]) -> Tensor:
    """diffusers' ``sigma = sqrt((1 - alpha_bar) / alpha_bar)`` at each of ``times`` (0 at t = 0)."""
    alpha_bar = ALPHA_BAR[torch.tensor(times)]
    return ((1 - alpha_bar) / alpha_bar).sqrt()


def eps_output(x: Tensor, t: int) -> Tensor:
    """The oracle's output at ``x`` and step ``t`` (a noise prediction for the Gaussian samplers)."""
    return oracle_output(x, torch.full((x.shape[0],), t / T, dtype=torch.float64))


def clipped_x0(x: Tensor, t: int) -> Tensor:
    """The clean image implied by the oracle's noise prediction, clipped to [-1, 1]."""
    return ((x - (1 - ALPHA_BAR[t]).sqrt() * eps_output(x, t)) / ALPHA_BAR[t].sqrt()).clamp(-1, 1)


def gaussian_denoiser(predict: str = "eps") -> Denoiser:
    return Denoiser(Oracle(), GaussianNoise(SCHEDULE, image_shape=SHAPE[1:]), predict=predict)  # type: ignore[arg-type]


def float64_tables(scheduler: object) -> None:
    """Give a diffusers scheduler our float64 schedule (theirs is float32 from the betas)."""
    alpha_bar = ALPHA_BAR[1:].clone()
    scheduler.betas = SCHEDULE.beta[1:].clone()  # type: ignore[attr-defined]
    scheduler.alphas = 1 - scheduler.betas  # type: ignore[attr-defined]
    scheduler.alphas_cumprod = alpha_bar  # type: ignore[attr-defined]
    scheduler.one = torch.tensor(1.0, dtype=torch.float64)  # type: ignore[attr-defined]
    scheduler.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)  # type: ignore[attr-defined]


def reference_loop(times: list[int], x_T: Tensor,
                   step: Callable[[int, int, Tensor, Tensor], Tensor]) -> list[Tensor]:
    """Drive a diffusers scheduler: ``step(i, their_timestep, model_output, x)`` per visited step."""
    states, x = [x_T], x_T
    for i, t in enumerate(times[:-1]):
        x = step(i, t - 1, oracle_output(x, torch.full((x.shape[0],), t / T, dtype=torch.float64)), x)
        states.append(x)
    return states


def assert_same_trajectory(ours: list[Tensor], reference: list[Tensor]) -> None:
    assert len(ours) == len(reference)
    for k, (a, b) in enumerate(zip(ours, reference, strict=True)):
        torch.testing.assert_close(a, b, rtol=0, atol=ATOL, msg=lambda m, k=k: f"state {k}: {m}")


# ---------------------------------------------------------------------------------- ddpm
@pytest.mark.parametrize("variance", ["beta", "posterior"])
@pytest.mark.parametrize("steps", [None, 50, 37])
@pytest.mark.parametrize("clip", [False, True])
def test_ddpm_takes_diffusers_steps(variance: str, steps: int | None, clip: bool,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    times = timesteps(steps)
    noise = fixed_noise(len(times))
    sampler = samplers.create("ddpm", gaussian_denoiser(), variance=variance, clip_x0=clip,
                              data_range=(-1.0, 1.0))
    ours = our_trajectory(sampler, start(), steps, noise)
    assert_same_trajectory(ours, _ddpm_reference(times, noise, monkeypatch, variance, clip))


def _ddpm_reference(times: list[int], noise: list[Tensor], monkeypatch: pytest.MonkeyPatch,
                    variance: str = "beta", clip: bool = False) -> list[Tensor]:
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=T, trained_betas=SCHEDULE.beta[1:].numpy(),
                                        variance_type="fixed_large" if variance == "beta" else "fixed_small",
                                        clip_sample=clip, clip_sample_range=1.0, prediction_type="epsilon")
    scheduler.set_timesteps(timesteps=[t - 1 for t in times[:-1]])
    float64_tables(scheduler)
    # Ho et al. add no noise at the last step; diffusers adds it at a strided last step: give it zero.
    supply = iter([*noise[: len(times) - 2], torch.zeros(SHAPE, dtype=torch.float64)])
    monkeypatch.setattr("diffusers.schedulers.scheduling_ddpm.randn_tensor", lambda *a, **k: next(supply))
    return reference_loop(times, start(), lambda i, t, out, x: scheduler.step(out, t, x).prev_sample)


# ---------------------------------------------------------------------------------- ddim
@pytest.mark.parametrize("eta", [0.0, 1.0, 0.3])
@pytest.mark.parametrize("steps", [None, 50, 10])
@pytest.mark.parametrize("clip", [False, True])
def test_ddim_takes_diffusers_steps(eta: float, steps: int | None, clip: bool) -> None:
    times = timesteps(steps)
    noise = fixed_noise(len(times))
    sampler = samplers.create("ddim", gaussian_denoiser(), eta=eta, clip_x0=clip, data_range=(-1.0, 1.0))
    ours = our_trajectory(sampler, start(), steps, noise)

    scheduler = diffusers.DDIMScheduler(num_train_timesteps=T, trained_betas=SCHEDULE.beta[1:].numpy(),
                                        clip_sample=clip, clip_sample_range=1.0, set_alpha_to_one=True,
                                        timestep_spacing="trailing", prediction_type="epsilon")
    scheduler.set_timesteps(len(times) - 1)
    assert scheduler.timesteps.tolist() == [t - 1 for t in times[:-1]]
    float64_tables(scheduler)
    reference = reference_loop(times, start(), lambda i, t, out, x: scheduler.step(
        out, t, x, eta=eta, use_clipped_model_output=True, variance_noise=noise[i]).prev_sample)
    assert_same_trajectory(ours, reference)


def test_ddim_with_eta_one_is_ancestral_sampling_with_the_posterior_variance() -> None:
    noise = fixed_noise(T)
    ddim = our_trajectory(samplers.create("ddim", gaussian_denoiser(), eta=1.0), start(), 20, noise)
    posterior = samplers.create("ddpm", gaussian_denoiser(), variance="posterior")
    ddpm = our_trajectory(posterior, start(), 20, noise)
    assert_same_trajectory(ddim, ddpm)


# ---------------------------------------------------------------------------------- dpmsolver++
class _Float64Torch:
    """``torch`` as diffusers' DPM-Solver module sees it here: its step upcasts the sample to
    float32 "to avoid precision issues", which in this float64 comparison is a downcast, so its
    ``torch.float32`` is float64; everything else is torch itself."""

    float32 = torch.float64

    def __getattr__(self, name: str) -> object:
        return getattr(torch, name)


@pytest.fixture
def float64_dpm_solver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(diffusers.schedulers.scheduling_dpmsolver_multistep, "torch", _Float64Torch())


def _with_full_d2(scheduler: diffusers.DPMSolverMultistepScheduler) -> None:
    """Make diffusers' third-order update add the half of its ``D2`` term it leaves out (our
    ``variant="taylor"``): ``- alpha_t phi_3 D2`` once more, from its own predictions and sigmas."""
    update = scheduler.multistep_dpm_solver_third_order_update

    def full(model_outputs: list[Tensor], *, sample: Tensor, noise: Tensor | None = None) -> Tensor:
        i = scheduler.step_index
        alpha_t = 1 / (scheduler.sigmas[i + 1] ** 2 + 1).sqrt()
        lam = [-scheduler.sigmas[i + 1 - k].log() for k in range(4)]  # lambda_t, lambda_s0, s1, s2
        h, h_0, h_1 = lam[0] - lam[1], lam[1] - lam[2], lam[2] - lam[3]
        m0, m1, m2 = model_outputs[-1], model_outputs[-2], model_outputs[-3]
        d2 = ((m0 - m1) / (h_0 / h) - (m1 - m2) / (h_1 / h)) / ((h_0 + h_1) / h)
        phi_3 = (torch.exp(-h) - 1.0 + h) / h**2 - 0.5
        return update(model_outputs, sample=sample, noise=noise) - alpha_t * phi_3 * d2

    scheduler.multistep_dpm_solver_third_order_update = full  # type: ignore[method-assign]


def _dpm_reference(times: list[int], order: int, model_output: Callable[[Tensor, int], Tensor],
                   prediction_type: str, full_d2: bool = False,
                   noise: list[Tensor] | None = None) -> list[Tensor]:
    """diffusers' trajectory; with ``noise`` (one per step), its SDE solver fed that noise."""
    scheduler = diffusers.DPMSolverMultistepScheduler(
        num_train_timesteps=T, trained_betas=SCHEDULE.beta[1:].numpy(),
        algorithm_type="dpmsolver++" if noise is None else "sde-dpmsolver++",
        solver_order=order, solver_type="midpoint", prediction_type=prediction_type,
        final_sigmas_type="zero" if times[-1] == 0 else "sigma_min", lower_order_final=True,
        thresholding=False)
    float64_tables(scheduler)
    scheduler.set_timesteps(timesteps=[t - 1 for t in times[:-1]])
    scheduler.sigmas = sigmas(times)
    if full_d2:
        _with_full_d2(scheduler)
    states, x = [start()], start()
    for i, t in enumerate(times[:-1]):
        x = scheduler.step(model_output(x, t), t - 1, x,
                           variance_noise=None if noise is None else noise[i]).prev_sample
        states.append(x)
    return states


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize(("steps", "spacing"), [(None, "trailing"), (20, "trailing"), (10, "trailing"),
                                                 (7, "trailing"), (12, "logsnr"), (10, "karras")])
@pytest.mark.usefixtures("float64_dpm_solver")
def test_sde_dpmsolver_takes_diffusers_steps_with_the_same_noise(order: int, steps: int | None,
                                                                 spacing: str) -> None:
    times = timesteps(steps, spacing)
    noise = fixed_noise(len(times))
    sampler = samplers.create("dpmsolver++", gaussian_denoiser(), order=order, sde=True, clip_x0=False,
                              spacing=spacing)
    ours = our_trajectory(sampler, start(), steps, noise)
    assert_same_trajectory(ours, _dpm_reference(times, order, eps_output, "epsilon", noise=noise))
    ode = our_trajectory(samplers.create("dpmsolver++", gaussian_denoiser(), order=order, clip_x0=False,
                                         spacing=spacing), start(), steps, [])
    assert not torch.allclose(ours[1], ode[1]), "the SDE solver adds noise from the first step"


def test_sde_dpmsolver_refuses_order_three_and_a_non_bool() -> None:
    with pytest.raises(ValueError, match=r"sde=True takes order 1 or 2 .*got order=3"):
        samplers.create("dpmsolver++", gaussian_denoiser(), order=3, sde=True)
    with pytest.raises(ValueError, match="sde must be True or False, got 'yes'"):
        samplers.create("dpmsolver++", gaussian_denoiser(), sde="yes")


def _kdiffusion_2m_sde(times: list[int], order: int, eta: float, noise: list[Tensor]) -> list[Tensor]:
    """k-diffusion's ``sample_dpmpp_2m_sde`` (midpoint; first order when ``order`` is 1), written
    here in its own variables: the variance-exploding state ``x / alpha``, ``sigma / alpha`` and
    the time ``-log(sigma / alpha)``; the states are scaled back by ``alpha`` to compare."""
    alpha = ALPHA_BAR[torch.tensor(times)].sqrt()
    ve_sigma = sigmas(times)
    x, old_denoised, h_last, states = start(), None, 0.0, [start()]
    for i, t in enumerate(times[:-1]):
        eps = eps_output(x, t)
        denoised = (x - (1 - ALPHA_BAR[t]).sqrt() * eps) / alpha[i]
        x_ve = x / alpha[i]
        if ve_sigma[i + 1] == 0:
            x_ve = denoised
        else:
            h = float(-ve_sigma[i + 1].log() + ve_sigma[i].log())
            eta_h = eta * h
            x_ve = (ve_sigma[i + 1] / ve_sigma[i] * math.exp(-eta_h) * x_ve
                    - math.expm1(-h - eta_h) * denoised)
            if order == 2 and old_denoised is not None:
                r = h_last / h
                x_ve = x_ve - 0.5 * math.expm1(-h - eta_h) * (1 / r) * (denoised - old_denoised)
            x_ve = x_ve + noise[i] * ve_sigma[i + 1] * math.sqrt(-math.expm1(-2 * eta_h))
            h_last = h
        old_denoised = denoised
        x = x_ve * alpha[i + 1]
        states.append(x)
    return states


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("eta", [0.0, 0.35, 0.7, 1.0])
@pytest.mark.parametrize(("steps", "spacing"), [(10, "trailing"), (23, "trailing"), (12, "logsnr")])
def test_sde_dpmsolver_with_eta_takes_kdiffusion_steps_with_the_same_noise(order: int, eta: float,
                                                                           steps: int, spacing: str) -> None:
    times = timesteps(steps, spacing)
    noise = fixed_noise(len(times))
    sampler = samplers.create("dpmsolver++", gaussian_denoiser(), order=order, sde=True, eta=eta,
                              clip_x0=False, spacing=spacing)
    assert_same_trajectory(our_trajectory(sampler, start(), steps, noise),
                           _kdiffusion_2m_sde(times, order, eta, noise))


@pytest.mark.parametrize("order", [1, 2])
def test_sde_dpmsolver_eta_zero_is_the_ode_and_eta_one_the_sde(order: int) -> None:
    def trajectory(**options: object) -> list[Tensor]:
        sampler = samplers.create("dpmsolver++", gaussian_denoiser(), order=order, **options)
        return our_trajectory(sampler, start(), 12, fixed_noise(13))

    for a, b in zip(trajectory(sde=True, eta=0.0), trajectory(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    for a, b in zip(trajectory(sde=True, eta=1.0), trajectory(sde=True), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("eta", [-0.1, 1.5, math.nan, "half", True])
def test_sde_dpmsolver_refuses_an_eta_outside_zero_to_one(eta: object) -> None:
    with pytest.raises(ValueError, match=r"eta must be a number in \[0, 1\], got"):
        samplers.create("dpmsolver++", gaussian_denoiser(), sde=True, eta=eta)


def test_dpmsolver_refuses_eta_without_sde() -> None:
    with pytest.raises(ValueError, match=r"eta sets the noise of the SDE solver: give it with sde=True, "
                                         r"got eta=0.5 and sde=False"):
        samplers.create("dpmsolver++", gaussian_denoiser(), eta=0.5)


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("steps", [None, 20, 10, 7])
@pytest.mark.usefixtures("float64_dpm_solver")
def test_dpmsolver_takes_diffusers_steps(order: int, steps: int | None) -> None:
    times = timesteps(steps)
    ours = our_trajectory(samplers.create("dpmsolver++", gaussian_denoiser(), order=order, clip_x0=False),
                          start(), steps, [])
    assert_same_trajectory(ours, _dpm_reference(times, order, eps_output, "epsilon"))


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.usefixtures("float64_dpm_solver")
def test_dpmsolver_with_clipping_is_diffusers_fed_the_clipped_clean_image(order: int) -> None:
    ours = our_trajectory(samplers.create("dpmsolver++", gaussian_denoiser(), order=order, clip_x0=True,
                                          data_range=(-1.0, 1.0)), start(), 10, [])
    assert_same_trajectory(ours, _dpm_reference(timesteps(10), order, clipped_x0, "sample"))


@pytest.mark.parametrize("variant", ["diffusers", "taylor"])
@pytest.mark.parametrize(("steps", "spacing"), [(None, "trailing"), (20, "trailing"), (7, "trailing"),
                                                 (20, "logsnr"), (12, "karras"), (16, "quadratic")])
@pytest.mark.usefixtures("float64_dpm_solver")
def test_dpmsolver_3m_takes_diffusers_steps(variant: str, steps: int | None, spacing: str) -> None:
    """3M: diffusers' ``solver_order=3`` as it is (``variant="diffusers"``) or with its ``D2``
    term doubled (``"taylor"``); fewer than 15 steps lower the order of the last two."""
    sampler = samplers.create("dpmsolver++", gaussian_denoiser(), order=3, variant=variant, spacing=spacing,
                              clip_x0=False)
    ours = our_trajectory(sampler, start(), steps, [])
    reference = _dpm_reference(sampler.timesteps(steps), 3, eps_output, "epsilon", variant == "taylor")
    assert_same_trajectory(ours, reference)


@pytest.mark.parametrize("variant", ["diffusers", "taylor"])
@pytest.mark.usefixtures("float64_dpm_solver")
def test_dpmsolver_3m_with_clipping_is_diffusers_fed_the_clipped_clean_image(variant: str) -> None:
    sampler = samplers.create("dpmsolver++", gaussian_denoiser(), order=3, variant=variant, clip_x0=True,
                              data_range=(-1.0, 1.0))
    reference = _dpm_reference(timesteps(20), 3, clipped_x0, "sample", variant == "taylor")
    assert_same_trajectory(our_trajectory(sampler, start(), 20, []), reference)


@pytest.mark.parametrize("order", [2, 3])
@pytest.mark.parametrize("steps", [8, 19])
@pytest.mark.usefixtures("float64_dpm_solver")
def test_dpmsolver_on_a_grid_ending_above_zero_is_diffusers_with_that_sigma(order: int, steps: int) -> None:
    """An explicit grid ending at t = 40 (no denoising to 0): diffusers with that last sigma."""
    grid = [*timesteps(steps - 1)[:-1], 40]
    sampler = samplers.create("dpmsolver++", gaussian_denoiser(), order=order, spacing=grid, clip_x0=False)
    ours = our_trajectory(sampler, start(), None, [])
    assert_same_trajectory(ours, _dpm_reference(grid, order, eps_output, "epsilon", order == 3))


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.usefixtures("float64_dpm_solver")
def test_sde_dpmsolver_on_a_grid_ending_above_zero_adds_noise_at_its_last_step_too(order: int) -> None:
    grid = [*timesteps(9)[:-1], 40]
    noise = fixed_noise(len(grid))
    sampler = samplers.create("dpmsolver++", gaussian_denoiser(), order=order, sde=True, spacing=grid,
                              clip_x0=False)
    ours = our_trajectory(sampler, start(), None, noise)
    assert_same_trajectory(ours, _dpm_reference(grid, order, eps_output, "epsilon", noise=noise))


def test_dpmsolver_order_one_is_ddim() -> None:
    dpm = our_trajectory(samplers.create("dpmsolver++", gaussian_denoiser(), order=1), start(), 25, [])
    ddim = our_trajectory(samplers.create("ddim", gaussian_denoiser()), start(), 25, [])
    for a, b in zip(dpm, ddim, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------- unipc
def _unipc_reference(times: list[int], order: int, model_output: Callable[[Tensor, int], Tensor],
                     prediction_type: str) -> list[Tensor]:
    """diffusers' UniPC (bh2) over ``times``: its timesteps and sigmas set by hand, since its
    ``set_timesteps`` takes no custom grid."""
    scheduler = diffusers.UniPCMultistepScheduler(
        num_train_timesteps=T, trained_betas=SCHEDULE.beta[1:].numpy(), solver_order=order,
        solver_type="bh2", predict_x0=True, prediction_type=prediction_type, lower_order_final=True,
        thresholding=False)
    float64_tables(scheduler)
    scheduler.set_timesteps(len(times) - 1)
    scheduler.timesteps = torch.tensor([t - 1 for t in times[:-1]])
    scheduler.sigmas = sigmas(times)
    states, x = [start()], start()
    for t in times[:-1]:
        x = scheduler.step(model_output(x, t), t - 1, x).prev_sample
        states.append(x)
    return states


UNIPC_CASES = [(3, None, "trailing"), *((order, steps, spacing) for order in (1, 2, 3) for steps, spacing in
                                        [(20, "trailing"), (10, "trailing"), (5, "trailing"), (20, "logsnr"),
                                         (10, "karras")])]


@pytest.mark.parametrize(("order", "steps", "spacing"), UNIPC_CASES)
def test_unipc_takes_diffusers_steps(order: int, steps: int | None, spacing: str) -> None:
    sampler = samplers.create("unipc", gaussian_denoiser(), order=order, spacing=spacing, clip_x0=False)
    ours = our_trajectory(sampler, start(), steps, [])
    assert_same_trajectory(ours, _unipc_reference(sampler.timesteps(steps), order, eps_output, "epsilon"))


@pytest.mark.parametrize("order", [2, 3])
def test_unipc_with_clipping_is_diffusers_fed_the_clipped_clean_image(order: int) -> None:
    sampler = samplers.create("unipc", gaussian_denoiser(), order=order, clip_x0=True, data_range=(-1.0, 1.0))
    reference = _unipc_reference(timesteps(12), order, clipped_x0, "sample")
    assert_same_trajectory(our_trajectory(sampler, start(), 12, []), reference)


@pytest.mark.parametrize("order", [2, 3])
def test_unipc_on_a_grid_ending_above_zero_is_diffusers_with_a_final_sigma(order: int) -> None:
    grid = [*timesteps(11)[:-1], 25]
    sampler = samplers.create("unipc", gaussian_denoiser(), order=order, spacing=grid, clip_x0=False)
    ours = our_trajectory(sampler, start(), None, [])
    assert_same_trajectory(ours, _unipc_reference(grid, order, eps_output, "epsilon"))


# ---------------------------------------------------------------------------------- other grids
@pytest.mark.parametrize("spacing", ["leading", "linspace", "quadratic", "logsnr", "karras"])
@pytest.mark.parametrize("sampler", ["ddpm", "dpmsolver++"])
@pytest.mark.usefixtures("float64_dpm_solver")
def test_samplers_on_every_spacing_take_diffusers_steps(spacing: str, sampler: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    times = timesteps(15, spacing)
    noise = fixed_noise(len(times))
    created = samplers.create(sampler, gaussian_denoiser(), spacing=spacing, clip_x0=False)
    ours = our_trajectory(created, start(), 15, noise)
    reference = (_dpm_reference(times, 2, eps_output, "epsilon") if sampler == "dpmsolver++"
                 else _ddpm_reference(times, noise, monkeypatch))
    assert_same_trajectory(ours, reference)


# ---------------------------------------------------------------------------------- cold
def mix(x0: Tensor, t: int, source: Tensor) -> Tensor:
    """Bansal's mixing degradation, from its definition."""
    return math.sqrt(ALPHA_BAR[t]) * x0 + math.sqrt(1 - ALPHA_BAR[t]) * source


def blur(x0: Tensor, t: int, steps: int, sigma_max: float) -> Tensor:
    """A Gaussian blur of width sigma_max sqrt(t / T) per axis, weights renormalised per pixel."""
    sigma = sigma_max * math.sqrt(t / steps)
    size = x0.shape[-1]
    weights = torch.zeros(size, size, dtype=torch.float64)
    for i in range(size):
        for j in range(size):
            weights[i, j] = (i == j) if sigma == 0 else math.exp(-((i - j) ** 2) / (2 * sigma**2))
        weights[i] /= weights[i].sum()
    return weights @ x0 @ weights.T


def bansal(x_T: Tensor, times: list[int], restore: Callable[[Tensor, int], Tensor],
           degrade: Callable[[Tensor, int, Tensor | None], Tensor], algorithm: int,
           source: str | None) -> list[Tensor]:
    """Bansal et al. (2022), Algorithms 1 and 2, visiting ``times``; the source is x_T (fixed),
    re-estimated from x_s and x0_hat (estimate), or absent (None)."""
    states, x_s = [x_T], x_T
    for s, s_next in itertools.pairwise(times):
        x0_hat = restore(x_s, s).clamp(0, 1)
        mixed_in = x_T if source == "fixed" else None
        if source == "estimate":
            mixed_in = (x_s - math.sqrt(ALPHA_BAR[s]) * x0_hat) / math.sqrt(1 - ALPHA_BAR[s])
        if algorithm == 1:
            x_s = degrade(x0_hat, s_next, mixed_in)
        else:
            x_s = x_s - degrade(x0_hat, s, mixed_in) + degrade(x0_hat, s_next, mixed_in)
        states.append(x_s)
    states[-1] = states[-1].clamp(0, 1)
    return states


@pytest.mark.parametrize("algorithm", [1, 2])
@pytest.mark.parametrize("source", ["fixed", "estimate"])
@pytest.mark.parametrize("steps", [None, 30])
@pytest.mark.parametrize("kind", ["gaussian", "fashion_mnist"])
def test_cold_follows_bansal_for_mixing_degradations(algorithm: int, source: str, steps: int | None,
                                                     kind: str) -> None:
    images = torch.rand(7, *SHAPE[1:], generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    degradation = (GaussianNoise(SCHEDULE, image_shape=SHAPE[1:]) if kind == "gaussian"
                   else ImageMixing(SCHEDULE, images, image_shape=SHAPE[1:]))
    x_T = start().abs() if kind == "gaussian" else images[:2]
    sampler = samplers.create("cold", Denoiser(Oracle(), degradation, predict="x0"), algorithm=algorithm,
                              source=source)
    ours = our_trajectory(sampler, x_T, steps, [])
    reference = bansal(x_T, timesteps(steps),
                       lambda x, t: oracle_output(x, torch.full((x.shape[0],), t / T, dtype=torch.float64)),
                       lambda x0, t, src: mix(x0, t, src), algorithm, source)  # type: ignore[arg-type]
    assert_same_trajectory(ours, reference)


@pytest.mark.parametrize("algorithm", [1, 2])
@pytest.mark.parametrize("steps", [None, 4])
def test_cold_follows_bansal_for_blur(algorithm: int, steps: int | None) -> None:
    degradation = Blur(num_timesteps=12, sigma_max=2.5, image_shape=SHAPE[1:])
    x_T = start().sigmoid()
    sampler = samplers.create("cold", Denoiser(Oracle(), degradation, predict="x0"), algorithm=algorithm)
    ours = our_trajectory(sampler, x_T, steps, [])
    times = sampler.timesteps(steps)
    reference = bansal(x_T, times,
                       lambda x, t: oracle_output(x, torch.full((x.shape[0],), t / 12, dtype=torch.float64)),
                       lambda x0, t, src: blur(x0, t, 12, 2.5), algorithm, None)
    assert_same_trajectory(ours, reference)
