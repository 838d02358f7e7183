"""Drawing helpers shared by the studies' figures (matplotlib, imported only when drawing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor
from torchvision.utils import make_grid

__all__ = ["pyplot", "save_figure", "show_images"]


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the file-only Agg backend.

    Raises:
        ImportError: If matplotlib is missing (``pip install colddiff[plots]``).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError("figures need matplotlib: pip install 'colddiff[plots]'") from error
    return plt


def show_images(axis: Any, images: Tensor, nrow: int, title: str = "") -> None:
    """Draw ``images`` ``(N, C, H, W)`` (clamped to ``[0, 1]``) as a grid of ``nrow`` per row on
    ``axis``, without ticks, under an optional ``title``."""
    grid = make_grid(images.clamp(0, 1), nrow=nrow, padding=2, pad_value=1.0)
    axis.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    axis.set_axis_off()
    if title:
        axis.set_title(title, fontsize=9)


def save_figure(figure: Any, path: Path) -> None:
    """Lay ``figure`` out tightly, write it to ``path`` (120 dpi) and close it."""
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    pyplot().close(figure)
