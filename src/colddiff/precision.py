"""Reduced-precision arithmetic: what ``precision="fp32" | "bf16" | "fp16"`` means.

Under ``"bf16"`` and ``"fp16"`` the network's forward pass runs in :func:`torch.autocast`
(matrix products and convolutions in the reduced type, reductions and the loss in float32);
the weights, the optimiser state and the EMA stay float32 (Micikevicius et al. 2018, "Mixed
Precision Training"). ``"fp16"`` also needs a gradient scaler (:func:`grad_scaler`), since its
small exponent range flushes small gradients to zero; ``"bf16"`` has float32's range and needs
none. Both run on CUDA and on the CPU.

Importing this module does not import PyTorch (the command line lists :data:`PRECISIONS`).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Literal, cast, get_args

if TYPE_CHECKING:
    import torch

__all__ = ["PRECISIONS", "Precision", "autocast", "check_precision", "grad_scaler"]

Precision = Literal["fp32", "bf16", "fp16"]

#: The accepted ``precision`` names.
PRECISIONS: tuple[str, ...] = get_args(Precision)


def check_precision(precision: object, name: str = "precision") -> Precision:
    """``precision`` if it is one of :data:`PRECISIONS`.

    Raises:
        ValueError: Naming ``name`` and the accepted values.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"{name} must be one of {list(PRECISIONS)}, got {precision!r}")
    return cast(Precision, precision)


def autocast(device: torch.device | str, precision: Precision
             ) -> contextlib.AbstractContextManager[object]:
    """The context that runs a forward pass on ``device`` in ``precision``: ``torch.autocast``
    with bfloat16 or float16, and nothing at all for ``"fp32"``."""
    import torch

    if check_precision(precision) == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(torch.device(device).type, dtype=dtype)


def grad_scaler(device: torch.device | str, precision: Precision) -> torch.amp.GradScaler:
    """A gradient scaler for ``precision`` on ``device``: active for ``"fp16"`` only (for the
    others its ``scale``, ``step`` and ``update`` pass straight through)."""
    import torch

    return torch.amp.GradScaler(torch.device(device).type, enabled=check_precision(precision) == "fp16")
