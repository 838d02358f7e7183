"""One way to generate images from a model: :func:`generate`.

The Trainer (``Trainer.sample``, the per-epoch sample grid, the FMD hook), the shipped models
(``Pretrained.sample``) and the command line (``colddiff sample``) all sample through it:

1. a degradation whose prior is learned (blur) and not yet fitted gets it fitted
   (:func:`ensure_prior`) on the training images;
2. the start ``x_T`` is drawn from the degradation's prior, or, where it has none that can be
   drawn without data (:class:`~colddiff.degradations.PriorUnavailableError`: super-resolution,
   inpainting), real training images are degraded to ``T`` when they are given;
3. the sampler runs from ``x_T`` (a conditional model: for the labels asked, by default an
   equal share of each class in order, with the guidance asked, by default the config's) and
   the samples are mapped back to ``[0, 1]``.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import Tensor

from colddiff.conditioning import class_labels
from colddiff.config import TrainConfig, from_unit_range, to_unit_range
from colddiff.degradations import Degradation, PriorUnavailableError
from colddiff.progress import sampling_progress
from colddiff.samplers import Sampler

__all__ = ["TrainingImages", "ensure_prior", "generate", "sample_labels"]


class TrainingImages(Protocol):
    """Training images that :func:`generate` may draw on (a Trainer's
    :class:`~colddiff.training.batches.Batches`), on the model's device and in the config's value
    range."""

    def prior_images(self) -> Tensor:
        """Images to fit a learned prior on."""

    def first(self, n: int) -> Tensor:
        """The first ``n`` images."""


def ensure_prior(degradation: Degradation, config: TrainConfig, images: Tensor | None = None) -> None:
    """Fit the prior of a degradation that learns one (such as blur) on the training images.

    A degradation whose :attr:`~colddiff.Degradation.prior_fitted` is ``False`` gets
    :meth:`~colddiff.Degradation.fit_prior` with ``images`` (default: the config's training
    set, read from its ``dataset``); others are left alone.

    Args:
        degradation: The model's degradation.
        config: The model's config (its ``dataset``, size and value range).
        images: Training images in the config's value range, or ``None``.

    Raises:
        ValueError: If the images must be read and the model was trained on images given from
            Python (``dataset = "memory"``).
    """
    if degradation.prior_fitted:
        return
    if images is None:
        from colddiff.training.batches import training_set  # the training package imports this module

        images = from_unit_range(training_set(config).images, config)
    degradation.fit_prior(images)


def sample_labels(n: int, config: TrainConfig, labels: Tensor | None = None) -> Tensor | None:
    """The labels :func:`generate` samples ``n`` images of: ``labels``, else for a conditional
    config an equal share of each class, in order (:func:`~colddiff.conditioning.class_labels`);
    ``None`` for an unconditional config given none."""
    if labels is not None or not config.conditional or config.classes is None:
        return labels
    return class_labels(n, len(config.classes))


def generate(sampler: Sampler, n: int, *, sample_steps: int | None = None,
             generator: torch.Generator | None = None, config: TrainConfig,
             images: TrainingImages | None = None, progress: bool = False,
             labels: Tensor | None = None, guidance: float | None = None) -> Tensor:
    """``n`` samples from ``sampler``, in ``[0, 1]`` whatever the config's ``value_range``.

    Args:
        sampler: The sampler (over the model's denoiser).
        n: How many.
        sample_steps: Sampling steps (``None``: all ``T``).
        generator: The random generator of the start and of a stochastic sampler; the samples
            come on its device (default: the denoiser's).
        config: The model's config.
        images: Training images to fit a learned prior on, and to degrade to ``T`` for a start
            where the prior cannot be drawn from; ``None``: the config's training set fits a
            prior, and a missing prior is an error.
        progress: Show a bar over the sampling steps on a terminal (:mod:`colddiff.progress`).
        labels: For a conditional model: the class of each sample ``(n,)`` (default:
            :func:`sample_labels`; the null class, ``K``, samples unconditionally).
        guidance: For a conditional model: the classifier-free guidance scale (default: the
            config's ``guidance``, else 1).

    Raises:
        colddiff.degradations.PriorUnavailableError: If the degradation has no prior to draw
            from and no ``images`` are given, or its prior needs data that is missing.
        ValueError: If labels or guidance are given to an unconditional model, or are invalid.
    """
    labels = sample_labels(n, config, labels)
    guidance = config.guidance if guidance is None and labels is not None else guidance
    conditions: dict[str, Any] = {} if labels is None and guidance is None else {
        "labels": labels, "guidance": guidance}
    degradation = sampler.degradation
    if not degradation.prior_fitted:  # checked first: a folder's images are decoded for it
        ensure_prior(degradation, config, images.prior_images() if images is not None else None)
    source = None
    try:
        x_T = sampler.prior(n, generator=generator)
    except PriorUnavailableError:  # e.g. super-resolution: start from degraded real images
        if images is None:
            raise
        x0 = images.first(n)
        source = degradation.sample_source(x0, generator=generator)
        x_T = degradation.degrade(x0, degradation.num_timesteps, source)
    with sampling_progress(progress, sampler, sample_steps, f"sampling {n}") as callback:
        if source is None:  # not passed at all: plugin samplers written before it may not take it
            samples = sampler.sample(x_T, sample_steps, generator=generator, callback=callback, **conditions)
        else:
            samples = sampler.sample(x_T, sample_steps, generator=generator, callback=callback, source=source,
                                     **conditions)
    return to_unit_range(samples, config)
