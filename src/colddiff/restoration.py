"""Restoring degraded images with a trained model, as ``colddiff restore`` does.

Where the degraded images come from (:func:`read_degraded`: an image file, a tensor file or a
folder of images degraded elsewhere; :func:`degrade_test_images`: the model's test images
degraded here, with their clean originals), the step they are degraded to when it is not known
(:func:`estimate_t`), and how restorations score against the clean images (:func:`scores`).
:meth:`colddiff.pretrained.Pretrained.restore` restores them.

Example:
    >>> model = pretrained.load("mnist-deblur")  # doctest: +SKIP
    >>> batch = degrade_test_images(model, 16)  # doctest: +SKIP
    >>> direct, sampled = model.restore(batch.degraded, batch.t, source=batch.source)  # doctest: +SKIP
    >>> scores(sampled, batch.clean)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from colddiff import checkpoints, data, metrics
from colddiff.config import from_unit_range
from colddiff.degradations.base import check_images
from colddiff.pretrained import Pretrained
from colddiff.progress import progress_bar

__all__ = ["DegradedImages", "StepEstimate", "degrade_test_images", "estimate_t", "read_degraded", "scores"]


@dataclass
class StepEstimate:
    """The step that degraded images look degraded to, by :func:`estimate_t`.

    Attributes:
        t: The step of the whole batch: the one whose mismatch, summed over the images, is least.
        per_image: Each image's own best step.
        mismatch: ``(T,)``: the mean squared mismatch of the batch at each step ``1..T``.
    """

    t: int
    per_image: list[int]
    mismatch: Tensor


@dataclass
class DegradedImages:
    """Images degraded to step ``t``, ready for :meth:`~colddiff.pretrained.Pretrained.restore`.

    Attributes:
        degraded: ``(N, C, H, W)`` float images on the ``[0, 1]`` scale (noise may leave it).
        t: The step they are degraded to.
        source: The degradation's source of each image where the restorer is given it
            (:attr:`~colddiff.Degradation.source_is_given`), else ``None``.
        clean: The clean originals, when known.
        estimate: How ``t`` was estimated, when it was (:func:`estimate_t`).
    """

    degraded: Tensor
    t: int
    source: Tensor | None = None
    clean: Tensor | None = None
    estimate: StepEstimate | None = None


def read_degraded(model: Pretrained, input: str | os.PathLike[str], t: int | Literal["auto"] | None, *,
                  on_error: Literal["raise", "skip"] = "raise", progress: bool = False) -> DegradedImages:
    """Images degraded to step ``t`` elsewhere, for ``model`` to restore.

    Args:
        model: The model that will restore them.
        input: An image file (PNG or JPEG), a folder of them (read as a training folder is:
            searched recursively, :func:`colddiff.data.load`), both resized and converted to
            the model's images, or a tensor file (any other name: ``torch.save`` of one
            ``(N, C, H, W)`` tensor on the ``[0, 1]`` scale).
        t: The step they are degraded to (required: a file does not say it), or ``"auto"`` to
            estimate it (:func:`estimate_t`).
        on_error: For a folder: ``"raise"`` stops at a file that is not an image, ``"skip"``
            leaves it out with a warning.
        progress: Show a bar while ``t`` is estimated, on a terminal.

    Raises:
        ValueError: If ``t`` is missing, the model's degradation needs each image's source
            (which a file cannot give), or the file does not hold images of the model's shape.
        colddiff.checkpoints.CheckpointError: If the tensor file cannot be read.
        colddiff.data.DatasetCorruptError: If an image file cannot be decoded.
    """
    if t is None:
        raise ValueError("t must be given with input images: the step they are degraded to, or 'auto' "
                         "to estimate it")
    degradation = model.denoiser.degradation
    if degradation.source_is_given and model.config.sampler_kwargs.get("source") != "estimate":
        raise ValueError(f"{degradation!r} needs each degraded image's source (such as its mask "
                         "centre), which input images cannot give; degrade test images "
                         "(from_test_set), or pass source= to Pretrained.restore")
    images = _read_images(Path(input), degradation.image_shape or model.config.image_shape, on_error)
    if t != "auto":
        return DegradedImages(images, t)
    estimate = estimate_t(model, images, progress=progress)
    return DegradedImages(images, estimate.t, estimate=estimate)


def _read_images(path: Path, shape: tuple[int, ...] | None, on_error: Literal["raise", "skip"]) -> Tensor:
    """The images of :func:`read_degraded`'s ``input``, checked to be of the model's ``shape``."""
    size, channels = (shape[-1], shape[0]) if shape else (None, None)
    if path.is_dir():
        images = data.load(path, image_size=size, channels=channels, on_error=on_error).images
    elif path.is_file() and path.suffix.lower() in data.IMAGE_SUFFIXES:
        images = data.read_image(path, image_size=size, channels=1 if channels == 1 else 3)[None]
    elif path.is_file():
        try:
            images = checkpoints.safe_load(path, "cpu", what="input")
        except checkpoints.CheckpointError as error:  # perhaps an image of another format
            formats = ", ".join(data.IMAGE_SUFFIXES)
            raise checkpoints.CheckpointError(f"{error} (images are read from {formats} files)") from error
        if not isinstance(images, Tensor):
            raise ValueError(f"input {path} must hold one tensor (N, C, H, W), got {type(images).__name__}")
    else:
        raise ValueError(f"input {path}: no such file or folder")
    _check_degraded(images, shape)
    return images.float()


def estimate_t(model: Pretrained, degraded: Tensor, *, progress: bool = False) -> StepEstimate:
    """The step ``degraded`` images look degraded to: the ``t`` whose degradation of the one-step
    restoration best matches them.

    For each ``t`` in ``1..T`` the model restores the images ``y`` in one step (the "direct"
    restoration of :meth:`~colddiff.pretrained.Pretrained.restore`), ``x0 = R(y, t)``, degrades
    that again, ``D(x0, t)``, and measures the mean squared difference to ``y``. From the true
    step the restoration is the clean image and degrading it gives ``y`` back; from a larger
    one it is degraded further than ``y`` was, and from a smaller one it stays degraded and is
    degraded again. The batch's ``t`` has the least mismatch summed over its images.

    Cost: ``T`` network evaluations of the batch (mnist-deblur: 20). Limits: only degradations
    without a random source (blur, super-resolution; not noise, mixing or random masks, whose
    source a restoration does not bring back); the images must be degraded as the model's
    training images were (the same kind of degradation, at the model's image size); the larger
    ``t``, the less two neighbouring steps differ and the flatter the mismatch, so an image's own
    estimate can be off by a few steps near ``T`` while a batch degraded alike is usually within one.

    Raises:
        ValueError: If the model's degradation has a random source, or the images do not fit it.
    """
    degradation, config = model.denoiser.degradation, model.config
    if degradation.has_source:
        raise ValueError(f"t must be given for {type(degradation).__name__}: it can be estimated only for a "
                         "degradation without a random source (such as blur or superres)")
    _check_degraded(degraded, degradation.image_shape or config.image_shape)
    device = next(model.denoiser.parameters()).device
    y = from_unit_range(degraded.float().to(device), config)
    mismatch = []
    model.denoiser.eval()
    with torch.inference_mode(), progress_bar(progress, degradation.num_timesteps, "estimating t") as bar:
        for t in range(1, degradation.num_timesteps + 1):
            x0 = model.denoiser.predict_x0(y, torch.full((len(y),), t, device=device))
            x0 = x0.clamp(*config.value_range)  # as the direct restoration is
            mismatch.append((degradation.degrade(x0, t) - y).pow(2).flatten(1).mean(1).cpu())
            bar.update(1)
    per_image = torch.stack(mismatch, dim=1)  # (N, T)
    return StepEstimate(int(per_image.sum(0).argmin()) + 1, (per_image.argmin(1) + 1).tolist(),
                        per_image.mean(0))


def _check_degraded(images: Tensor, shape: tuple[int, ...] | None) -> None:
    """Refuse anything but a non-empty batch of finite floats of the model's ``shape``."""
    check_images("input", images)
    if shape is not None and tuple(images.shape[1:]) != tuple(shape):
        raise ValueError(f"input holds images of shape {tuple(images.shape)}; this model restores "
                         f"(N, {', '.join(map(str, shape))})")
    if len(images) == 0 or not bool(torch.isfinite(images).all()):
        raise ValueError(f"input must hold at least one image of finite values on the [0, 1] scale, "
                         f"got {len(images)}" + (" with NaN or infinite values" if len(images) else ""))


def degrade_test_images(model: Pretrained, n: int, t: int | None = None, *, seed: int = 0
                        ) -> DegradedImages:
    """The first ``n`` test images of the model's dataset, degraded to step ``t`` (default
    ``T``) as in training, with their clean originals.

    Raises:
        ValueError: If the model did not train on a named dataset (it has no test images).
    """
    name = model.config.dataset
    if name not in data.DATASETS:
        raise ValueError(f"test images need a model trained on a named dataset ({', '.join(data.DATASETS)});"
                         f" this one trained on {name!r}: give degraded images (input)")
    clean = data.load(name, train=False, image_size=model.config.image_size,
                      channels=model.config.channels, limit=n).images
    t = model.denoiser.num_timesteps if t is None else t
    degraded, source = model.degrade(clean, t, seed=seed)
    return DegradedImages(degraded, t, source, clean)


def scores(images: Tensor, clean: Tensor) -> dict[str, float]:
    """``{"ssim", "psnr", "rmse"}`` of ``images`` against ``clean`` (means over the images;
    :mod:`colddiff.metrics`)."""
    return {"ssim": float(metrics.ssim(images, clean).mean()),
            "psnr": float(metrics.psnr(images, clean).mean()),
            "rmse": float(metrics.rmse(images, clean).mean())}
