"""Denoising networks. Each is called as ``net(x_t, t)`` with ``t`` the time as a fraction
``t / T`` in ``[0, 1]`` (shape ``(B,)``), and returns a tensor shaped like ``x_t``."""

from __future__ import annotations

from typing import Any

from torch import nn

from colddiff.nets.cnn import CNN
from colddiff.nets.unet import UNet

__all__ = ["CNN", "NETS", "UNet", "create"]

#: Networks by the name configs and the command line use.
NETS: dict[str, type[nn.Module]] = {"cnn": CNN, "unet": UNet}


def create(name: str, **kwargs: Any) -> nn.Module:
    """Instantiate the network called ``name`` with ``kwargs``.

    Raises:
        ValueError: If ``name`` is unknown (the message lists the known ones).
    """
    if name not in NETS:
        raise ValueError(f"net must be one of {sorted(NETS)}, got {name!r}")
    return NETS[name](**kwargs)
