"""Every intermediate state of every sampler against an independent reference, in float64.

The last step of a sampler returns its clean-image prediction whatever came before, so end
points hide wrong steps. Here a non-trivial oracle network (its output depends on ``x_t`` and
``t``) drives our samplers and a reference, with the injected noise fixed, and the whole
trajectory must agree to 1e-10:

* ``ddpm``, ``ddim`` and ``dpmsolver++`` against diffusers' ``DDPMScheduler``, ``DDIMScheduler``
  and ``DPMSolverMultistepScheduler``. Their timestep ``k`` is our ``t = k + 1`` (our index 0 is
  the clean image); their tables are set to our float64 ``alpha_bar`` so that only the step
  arithmetic is compared. Correspondences: our strided steps are DDPM's custom ``timesteps``
  and DPM-Solver's custom ``timesteps`` (any ``K``), and DDIM's ``timestep_spacing="trailing"``
  when ``K`` divides ``T``; our ``clip_x0`` with ``data_range=(-1, 1)`` is their ``clip_sample``
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
from colddiff.samplers import Sampler

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


def timesteps(steps: int | None) -> list[int]:
    return samplers.create("ddim", gaussian_denoiser()).timesteps(steps)


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

    scheduler = diffusers.DDPMScheduler(num_train_timesteps=T, trained_betas=SCHEDULE.beta[1:].numpy(),
                                        variance_type="fixed_large" if variance == "beta" else "fixed_small",
                                        clip_sample=clip, clip_sample_range=1.0, prediction_type="epsilon")
    scheduler.set_timesteps(timesteps=[t - 1 for t in times[:-1]])
    float64_tables(scheduler)
    # Ho et al. add no noise at the last step; diffusers adds it at a strided last step: give it zero.
    supply = iter([*noise[: len(times) - 2], torch.zeros(SHAPE, dtype=torch.float64)])
    monkeypatch.setattr("diffusers.schedulers.scheduling_ddpm.randn_tensor", lambda *a, **k: next(supply))
    reference = reference_loop(times, start(), lambda i, t, out, x: scheduler.step(out, t, x).prev_sample)
    assert_same_trajectory(ours, reference)


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


def _dpm_reference(times: list[int], order: int, model_output: Callable[[Tensor, int], Tensor],
                   prediction_type: str) -> list[Tensor]:
    scheduler = diffusers.DPMSolverMultistepScheduler(
        num_train_timesteps=T, trained_betas=SCHEDULE.beta[1:].numpy(), algorithm_type="dpmsolver++",
        solver_order=order, solver_type="midpoint", prediction_type=prediction_type,
        final_sigmas_type="zero", lower_order_final=True, thresholding=False)
    float64_tables(scheduler)
    scheduler.set_timesteps(timesteps=[t - 1 for t in times[:-1]])
    alpha_bar = ALPHA_BAR[torch.tensor(times[:-1])]
    scheduler.sigmas = torch.cat([((1 - alpha_bar) / alpha_bar).sqrt(), torch.zeros(1, dtype=torch.float64)])
    states, x = [start()], start()
    for t in times[:-1]:
        x = scheduler.step(model_output(x, t), t - 1, x).prev_sample
        states.append(x)
    return states


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("steps", [None, 20, 10, 7])
@pytest.mark.usefixtures("float64_dpm_solver")
def test_dpmsolver_takes_diffusers_steps(order: int, steps: int | None) -> None:
    times = timesteps(steps)
    ours = our_trajectory(samplers.create("dpmsolver++", gaussian_denoiser(), order=order, clip_x0=False),
                          start(), steps, [])
    reference = _dpm_reference(
        times, order, lambda x, t: oracle_output(x, torch.full((x.shape[0],), t / T, dtype=torch.float64)),
        "epsilon")
    assert_same_trajectory(ours, reference)


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.usefixtures("float64_dpm_solver")
def test_dpmsolver_with_clipping_is_diffusers_fed_the_clipped_clean_image(order: int) -> None:
    times = timesteps(10)

    def clipped_x0(x: Tensor, t: int) -> Tensor:  # computed here from the model's noise output
        eps = oracle_output(x, torch.full((x.shape[0],), t / T, dtype=torch.float64))
        return ((x - (1 - ALPHA_BAR[t]).sqrt() * eps) / ALPHA_BAR[t].sqrt()).clamp(-1, 1)

    ours = our_trajectory(samplers.create("dpmsolver++", gaussian_denoiser(), order=order, clip_x0=True,
                                          data_range=(-1.0, 1.0)), start(), 10, [])
    assert_same_trajectory(ours, _dpm_reference(times, order, clipped_x0, "sample"))


def test_dpmsolver_order_one_is_ddim() -> None:
    dpm = our_trajectory(samplers.create("dpmsolver++", gaussian_denoiser(), order=1), start(), 25, [])
    ddim = our_trajectory(samplers.create("ddim", gaussian_denoiser()), start(), 25, [])
    for a, b in zip(dpm, ddim, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


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
