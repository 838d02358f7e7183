"""Sampler overhead and strided-sampling throughput.

``sampler_overhead_*``: the wall time of a full ``T``-step sampling run divided by ``T`` times
the time of one network forward on the same batch (the physical floor: 1.0 means the sampler
adds nothing). The peer is the same network driven by diffusers' ``DDPMScheduler`` (ancestral)
or ``DDIMScheduler`` (eta = 0) loop, with clipping on in both.

``sampling_throughput_strided``: seconds for 50-step strided sampling against all 1000 steps.
"""

from __future__ import annotations

import torch

from benchmarks.common import Result, interleaved_medians
from colddiff import ColdSampler, DDPMSampler, Denoiser, Schedule, nets
from colddiff.degradations import GaussianNoise


def _setup(steps: int, batch: int) -> tuple[Denoiser, torch.Tensor]:
    torch.manual_seed(0)
    degradation = GaussianNoise(Schedule.linear(1e-4, 0.02, steps))
    denoiser = Denoiser(nets.CNN(), degradation, predict="eps").eval()
    return denoiser, torch.randn(batch, 1, 28, 28, generator=torch.Generator().manual_seed(1))


def sampler_overhead(quick: bool) -> list[Result]:
    from diffusers import DDIMScheduler, DDPMScheduler

    steps, batch, repeats = (50, 16, 1) if quick else (200, 32, 3)
    denoiser, x_T = _setup(steps, batch)
    net = denoiser.net
    fraction = torch.full((batch,), 0.5)

    @torch.inference_mode()
    def floor() -> None:
        for _ in range(steps):
            net(x_T, fraction)

    def diffusers_loop(scheduler: DDPMScheduler | DDIMScheduler) -> None:
        scheduler.set_timesteps(steps)
        generator = torch.Generator().manual_seed(2)
        x = x_T.clone()
        with torch.inference_mode():
            for t in scheduler.timesteps:
                eps = net(x, (t.float() / steps).expand(batch))
                x = scheduler.step(eps, t, x, generator=generator).prev_sample

    ddpm_peer = DDPMScheduler(num_train_timesteps=steps, beta_start=1e-4, beta_end=0.02,
                              beta_schedule="linear", clip_sample=True)
    ddim_peer = DDIMScheduler(num_train_timesteps=steps, beta_start=1e-4, beta_end=0.02,
                              beta_schedule="linear", clip_sample=True)
    ddpm, cold = DDPMSampler(denoiser), ColdSampler(denoiser, algorithm=2, source="estimate")
    times = interleaved_medians({
        "floor": floor,
        "ddpm": lambda: ddpm.sample(x_T, generator=torch.Generator().manual_seed(2)),
        "cold": lambda: cold.sample(x_T),
        "diffusers_ddpm": lambda: diffusers_loop(ddpm_peer),
        "diffusers_ddim": lambda: diffusers_loop(ddim_peer),
    }, repeats)
    note = (f"report CNN, batch {batch}, T={steps}; one forward "
            f"{times['floor'] / steps * 1000:.2f} ms")
    return [
        Result("sampler_overhead_ddpm", times["ddpm"] / times["floor"],
               times["diffusers_ddpm"] / times["floor"], "diffusers DDPMScheduler loop",
               "time / (T x forward time)", note),
        Result("sampler_overhead_cold", times["cold"] / times["floor"],
               times["diffusers_ddim"] / times["floor"], "diffusers DDIMScheduler loop (eta=0)",
               "time / (T x forward time)", note + "; ColdSampler Algorithm 2, re-estimated source"),
    ]


def sampling_throughput(quick: bool) -> list[Result]:
    full, strided, batch, repeats = (100, 10, 16, 1) if quick else (1000, 50, 16, 2)
    denoiser, x_T = _setup(full, batch)
    sampler = ColdSampler(denoiser, algorithm=2, source="estimate")
    times = interleaved_medians({"strided": lambda: sampler.sample(x_T, strided),
                                 "full": lambda: sampler.sample(x_T)}, repeats)
    return [Result("sampling_throughput_strided", times["strided"], times["full"],
                   f"the same sampler with all {full} steps", "s",
                   f"report CNN, batch {batch}: {batch / times['strided']:.1f} images/s with "
                   f"{strided} steps vs {batch / times['full']:.2f} images/s with {full}")]
