"""Restoring degraded images with a trained model, as ``colddiff restore`` does.

Where the degraded images come from (:func:`read_degraded`: a tensor file or a folder of
images degraded elsewhere; :func:`degrade_test_images`: the model's test images degraded here,
with their clean originals), and how restorations score against the clean images
(:func:`scores`). :meth:`colddiff.pretrained.Pretrained.restore` restores them.

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
from colddiff.degradations.base import check_images
from colddiff.pretrained import Pretrained

__all__ = ["DegradedImages", "degrade_test_images", "read_degraded", "scores"]


@dataclass
class DegradedImages:
    """Images degraded to step ``t``, ready for :meth:`~colddiff.pretrained.Pretrained.restore`.

    Attributes:
        degraded: ``(N, C, H, W)`` float images on the ``[0, 1]`` scale (noise may leave it).
        t: The step they are degraded to.
        source: The degradation's source of each image where the restorer is given it
            (:attr:`~colddiff.Degradation.source_is_given`), else ``None``.
        clean: The clean originals, when known.
    """

    degraded: Tensor
    t: int
    source: Tensor | None = None
    clean: Tensor | None = None


def read_degraded(model: Pretrained, input: str | os.PathLike[str], t: int | None, *,
                  on_error: Literal["raise", "skip"] = "raise") -> DegradedImages:
    """Images degraded to step ``t`` elsewhere, for ``model`` to restore.

    Args:
        model: The model that will restore them.
        input: A tensor file (``torch.save`` of one ``(N, C, H, W)`` tensor on the ``[0, 1]``
            scale) or a folder of images (resized and converted to the model's shape).
        t: The step they are degraded to (required: a file does not say it).
        on_error: For a folder: ``"raise"`` stops at a file that is not an image, ``"skip"``
            leaves it out with a warning.

    Raises:
        ValueError: If ``t`` is missing, the model's degradation needs each image's source
            (which a file cannot give), or the file does not hold images of the model's shape.
        colddiff.checkpoints.CheckpointError: If the tensor file cannot be read.
    """
    if t is None:
        raise ValueError("t must be given with input images: the step they are degraded to")
    degradation = model.denoiser.degradation
    if degradation.source_is_given and model.config.sampler_kwargs.get("source") != "estimate":
        raise ValueError(f"{degradation!r} needs each degraded image's source (such as its mask "
                         "centre), which input images cannot give; degrade test images "
                         "(from_test_set), or pass source= to Pretrained.restore")
    path = Path(input)
    shape = degradation.image_shape or model.config.image_shape
    if path.is_dir():
        images = data.load(path, image_size=shape[-1] if shape else None,
                           channels=shape[0] if shape else None, on_error=on_error).images
    elif path.is_file():
        images = checkpoints.safe_load(path, "cpu", what="input")
        if not isinstance(images, Tensor):
            raise ValueError(f"input {path} must hold one tensor (N, C, H, W), got {type(images).__name__}")
    else:
        raise ValueError(f"input {path}: no such file or folder")
    _check_degraded(images, shape)
    return DegradedImages(images.float(), t)


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
