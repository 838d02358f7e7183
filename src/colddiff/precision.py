"""Reduced-precision arithmetic: what ``precision="fp32" | "bf16" | "fp16"`` means.

Under ``"bf16"`` and ``"fp16"`` the network's forward pass runs in :func:`torch.autocast`
(matrix products and convolutions in the reduced type, reductions and the loss in float32);
the weights, the optimiser state and the EMA stay float32 (Micikevicius et al. 2018, "Mixed
Precision Training"). ``"fp16"`` also needs a gradient scaler (:func:`grad_scaler`), since its
small exponent range flushes small gradients to zero; ``"bf16"`` has float32's range and needs
none. Both run on CUDA and on the CPU. ``"auto"`` is ``"bf16"`` on a device that computes in
bfloat16 natively (a GPU that supports it, a CPU with AVX-512 BF16 or AMX) and ``"fp32"``
elsewhere, resolved where the forward pass runs. The accepted names and their check are
:data:`colddiff.runtime.PRECISIONS` and :func:`colddiff.runtime.check_precision`.
"""

from __future__ import annotations

import contextlib

import torch

from colddiff.runtime import Precision, resolve_precision

__all__ = ["autocast", "grad_scaler"]


def autocast(device: torch.device | str, precision: Precision
             ) -> contextlib.AbstractContextManager[object]:
    """The context that runs a forward pass on ``device`` in ``precision``: ``torch.autocast``
    with bfloat16 or float16, and nothing at all for ``"fp32"``.

    Args:
        device: Where the forward pass runs.
        precision: One of :data:`colddiff.runtime.PRECISIONS`.

    Raises:
        ValueError: If ``precision`` is not one of them.
    """
    arithmetic = resolve_precision(precision, device)
    if arithmetic == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if arithmetic == "bf16" else torch.float16
    return torch.autocast(torch.device(device).type, dtype=dtype)


def grad_scaler(device: torch.device | str, precision: Precision) -> torch.amp.GradScaler:
    """A gradient scaler for ``precision`` on ``device``: active for ``"fp16"`` only (for the
    others its ``scale``, ``step`` and ``update`` pass straight through).

    Args:
        device: Where training runs.
        precision: One of :data:`colddiff.runtime.PRECISIONS`.

    Raises:
        ValueError: If ``precision`` is not one of them.
    """
    fp16 = resolve_precision(precision, device) == "fp16"
    return torch.amp.GradScaler(torch.device(device).type, enabled=fp16)
