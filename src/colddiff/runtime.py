"""Where and how a network runs: the device, the precision and the compile choices.

* :func:`resolve_device`: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` as a
  :class:`torch.device`.
* :data:`PRECISIONS` and :func:`check_precision`: the arithmetic of the forward pass
  (``"fp32"``, ``"bf16"``, ``"fp16"``, or ``"auto"``; what each means is
  :mod:`colddiff.precision`); :func:`resolve_precision` turns ``"auto"`` into ``"bf16"`` where
  the device computes in bfloat16 natively (:func:`native_bf16`), else ``"fp32"``.
* :data:`COMPILE_MODES`: ``"off"`` or a :func:`torch.compile` mode.

Importing this module does not import PyTorch (the command line lists :data:`PRECISIONS` and
:data:`COMPILE_MODES` for ``--help``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, cast, get_args

if TYPE_CHECKING:
    import torch

__all__ = ["COMPILE_MODES", "PRECISIONS", "Arithmetic", "Precision", "check_precision", "native_bf16",
           "resolve_device", "resolve_precision"]

Precision = Literal["fp32", "bf16", "fp16", "auto"]
#: A precision once ``"auto"`` is resolved for a device.
Arithmetic = Literal["fp32", "bf16", "fp16"]

#: The accepted ``precision`` names.
PRECISIONS: tuple[str, ...] = get_args(Precision)

#: ``TrainConfig.compile`` values: ``"off"``, or a :func:`torch.compile` mode.
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")


def check_precision(precision: object, name: str = "precision") -> Precision:
    """``precision`` if it is one of :data:`PRECISIONS`.

    Args:
        precision: The value to check.
        name: The argument's name, for the message.

    Raises:
        ValueError: Naming ``name`` and the accepted values.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"{name} must be one of {list(PRECISIONS)}, got {precision!r}")
    return cast(Precision, precision)


def native_bf16(device: str | torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 natively: a CUDA GPU that supports it, or a CPU
    with AVX-512 BF16 or AMX instructions (without them PyTorch emulates bfloat16 on the CPU,
    slower than float32)."""
    import torch

    kind = torch.device(device).type
    if kind == "cuda":  # not counting the emulation of older GPUs (V100, T4)
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if kind == "cpu":  # PyTorch's own probes (private, hence looked up with a fallback)
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(bool(getattr(torch.cpu, probe, lambda: False)()) for probe in probes)
    return False


def resolve_precision(precision: object, device: str | torch.device, name: str = "precision") -> Arithmetic:
    """``precision`` checked (:func:`check_precision`), with ``"auto"`` resolved for ``device``:
    ``"bf16"`` where it computes in bfloat16 natively (:func:`native_bf16`), else ``"fp32"``."""
    checked = check_precision(precision, name)
    if checked != "auto":
        return checked
    return "bf16" if native_bf16(device) else "fp32"


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Args:
        device: The device asked for.

    Raises:
        ValueError: If the device is unknown or CUDA is asked for but not available.
    """
    import torch

    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from error
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but CUDA is not available; use 'cpu'")
    return resolved
