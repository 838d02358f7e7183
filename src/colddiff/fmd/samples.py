"""Generated digits to score, read from disk: a tensor file or a folder of PNGs."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

from colddiff import checkpoints

__all__ = ["load_samples"]


def load_samples(path: str | os.PathLike[str]) -> Tensor:
    """Images to score from a tensor file (``torch.save`` of ``(N, 1, 28, 28)``, loaded with
    ``weights_only=True``) or a folder of PNG files (one 28x28 digit each, sorted by name).

    Raises:
        ValueError: If the path holds neither.
        colddiff.checkpoints.CheckpointError: If the tensor file is unsafe (it holds pickled
            objects other than tensors: refused, nothing in it run), a bare pickle, or corrupt.
    """
    path = Path(path)
    if path.is_dir():
        import numpy as np
        from PIL import Image

        files = sorted(path.glob("*.png"))
        if not files:
            raise ValueError(f"samples folder {path} holds no .png files")
        pixels = [np.asarray(Image.open(f).convert("L")) for f in files]
        sizes = sorted({p.shape for p in pixels})
        if sizes != [(28, 28)]:
            raise ValueError(f"samples PNGs must each be one 28x28 image, found sizes {sizes}")
        return torch.from_numpy(np.stack(pixels)).float().unsqueeze(1) / 255
    if not path.exists():
        raise ValueError(f"samples {path}: no such file or folder (give a tensor file of (N, 1, 28, 28) "
                         "images saved with torch.save, or a folder of 28x28 PNGs)")
    if not path.is_file():
        raise ValueError(f"samples {path} is neither a tensor file nor a folder of PNGs")
    loaded = checkpoints.safe_load(path, "cpu", what="samples file")
    if not isinstance(loaded, Tensor):
        raise ValueError(f"samples {path} must hold one tensor, got {type(loaded).__name__}")
    return loaded
