"""Named presets as plain data: the reference study's schedules and training configurations.

Kept apart from :mod:`colddiff.schedules` and :mod:`colddiff.config` (and free of PyTorch) so
that the command line can list them without importing anything heavy.
"""

from __future__ import annotations

from typing import Any

__all__ = ["GENERATION", "GENERATION_COMMON", "RESTORATION", "SCHEDULES", "STUDIES", "TRAINING"]

#: The linear schedules of the reference study: ``(beta_start, beta_end, num_timesteps)``.
SCHEDULES: dict[str, tuple[float, float, int]] = {
    "default": (1e-4, 0.02, 1000),
    "long": (1e-4, 0.004, 5000),
    "short": (1e-4, 0.1, 200),
}


def _linear(name: str) -> dict[str, Any]:
    """The spec of a linear preset, as :meth:`colddiff.Schedule.spec` writes it."""
    beta_start, beta_end, num_timesteps = SCHEDULES[name]
    return {"kind": "linear", "beta_start": beta_start, "beta_end": beta_end,
            "num_timesteps": num_timesteps}


def _ddpm(schedule: str) -> dict[str, Any]:
    return {"schedule": _linear(schedule), "degradation": "gaussian", "predict": "eps", "sampler": "ddpm"}


def _restoration(degradation: str, num_timesteps: int) -> dict[str, Any]:
    """A restoration model of Bansal et al.'s MNIST study: colddiff's small U-Net predicting the
    clean image, sampled with Algorithm 2."""
    return {"degradation": degradation, "degradation_kwargs": {"num_timesteps": num_timesteps},
            "net": "unet", "net_kwargs": {"channels": 32, "blocks": 2, "attention": True},
            "predict": "x0", "lr": 5e-4, "warmup": 500, "ema": 0.999, "ema_start": 500,
            "sampler": "cold", "sampler_kwargs": {"algorithm": 2}}


#: The restoration models of Bansal et al.'s MNIST study (``colddiff reproduce --study
#: bansal-mnist``), by preset name: ``(degradation, T)``. Blur: 20 steps (Bansal's MNIST
#: setting); inpainting: 50 (his); super-resolution: 2 halvings (28x28 down to 7x7).
RESTORATION: dict[str, tuple[str, int]] = {
    "mnist-deblur": ("blur", 20),
    "mnist-inpaint": ("inpaint", 50),
    "mnist-superres": ("superres", 2),
}


#: Training presets by name: the reference study's four models (report sections 2 and 3) and
#: colddiff's own recipe, ``mnist-unet`` (a small U-Net, cosine schedule, v-prediction, EMA
#: weights, warm-up, 50-step DDIM sampling), and the restoration models of :data:`RESTORATION`.
TRAINING: dict[str, dict[str, Any]] = {
    **{f"ddpm-{name}": _ddpm(name) for name in SCHEDULES},
    "fashion-cold": {"schedule": _linear("default"), "degradation": "fashion_mnist",
                     "predict": "x0", "sampler": "cold",
                     "sampler_kwargs": {"algorithm": 2, "source": "fixed"}},
    "mnist-unet": {
        "schedule": {"kind": "cosine", "num_timesteps": 1000, "offset": 0.008, "max_beta": 0.999},
        "degradation": "gaussian", "net": "unet",
        "net_kwargs": {"channels": 32, "blocks": 2, "attention": True}, "predict": "v",
        "lr": 5e-4, "warmup": 500, "ema": 0.9995, "ema_start": 2000, "sampler": "ddim",
        "sample_steps": 50,
    },
    **{name: _restoration(*spec) for name, spec in RESTORATION.items()},
}

#: What every recipe of the cold-generation study shares (equal compute: the same network,
#: optimiser, batch and schedule; the study sets the epochs): the shipped models' recipe.
GENERATION_COMMON: dict[str, Any] = {
    "schedule": {"kind": "cosine", "num_timesteps": 1000, "offset": 0.008, "max_beta": 0.999},
    "net": "unet", "net_kwargs": {"channels": 32, "blocks": 2, "attention": True}, "batch_size": 128,
    "lr": 5e-4, "warmup": 500, "ema": 0.9995, "ema_start": 2000, "sample_steps": 50,
}
_MIXING_NOISE = {"degradation": "fashion_mnist", "degradation_kwargs": {"noise": 0.05}, "predict": "x0"}
_BLUR = {"num_timesteps": 50, "sigma_max": 6.0}  # Bansal's deblurring, 50 steps (benchmarks.hot_blur)

#: The generation recipes of ``colddiff reproduce --study cold-generation`` (issue 24), by name:
#: what each changes over :data:`GENERATION_COMMON`.
GENERATION: dict[str, dict[str, Any]] = {
    "gaussian": {"degradation": "gaussian", "predict": "v", "sampler": "ddpm",
                 "sampler_kwargs": {"variance": "posterior"}},
    "mixing-cold": {"degradation": "fashion_mnist", "predict": "x0", "sampler": "cold",
                    "sampler_kwargs": {"algorithm": 2, "source": "estimate"}},
    "mixing-noise": {**_MIXING_NOISE, "sampler": "cold",
                     "sampler_kwargs": {"algorithm": 2, "source": "fixed"}},
    "blur-cold": {"degradation": "blur", "degradation_kwargs": _BLUR, "predict": "x0", "sampler": "cold",
                  "sampler_kwargs": {"algorithm": 2}},
    "blur-hot": {"degradation": "blur", "degradation_kwargs": {**_BLUR, "noise": 0.05}, "predict": "x0",
                 "sampler": "cold", "sampler_kwargs": {"algorithm": 2, "source": "estimate"}},
    "heat": {"degradation": "heat", "predict": "x0", "sampler": "cold", "sample_steps": 100,
             "sampler_kwargs": {"source": "estimate", "fresh_noise": 1.25}},
    # x0, not the paper's eps: a clean image from a noise prediction divides by alpha_t, down to
    # a_t * 0.001 where the blur has taken a frequency, and trained at 15 epochs the eps recipe
    # sampled 99.7% eights (FMD ratio 148; docs/concepts/blurring.md)
    "blurring": {"degradation": "blurring", "predict": "x0", "sampler": "ddpm",
                 "sampler_kwargs": {"variance": "posterior"}},
    # Soft Diffusion's noise grows with t (Daras et al. 2023): with a constant level the soft
    # sampler's noise steps, sqrt(s_t^2 - s_s^2) z, would add nothing
    "mixing-soft": {**_MIXING_NOISE, "degradation_kwargs": {"noise": {"level": 0.5, "shape": "schedule"}},
                    "loss": "soft", "sampler": "soft"},
}

#: The studies ``colddiff reproduce --study`` runs, with the presets of their models: the
#: reference study's four models (report sections 2 and 3), Bansal et al.'s MNIST restoration
#: and the cold-generation recipes.
STUDIES: dict[str, tuple[str, ...]] = {
    "report": ("ddpm-default", "ddpm-long", "ddpm-short", "fashion-cold"),
    "bansal-mnist": tuple(RESTORATION),
    "cold-generation": tuple(GENERATION),
}
