"""Denoising networks, by name. Each is called as ``net(x_t, t)`` with ``t`` the time as a
fraction ``t / T`` in ``[0, 1]`` (shape ``(B,)``), and returns a tensor shaped like ``x_t``.

Built-in names: ``cnn`` (:class:`CNN`, the reference study's) and ``unet`` (:class:`UNet`).
A network that takes class labels (or another conditioning tensor) declares it and is called
as ``net(x_t, t, labels)``: see :mod:`colddiff.conditioning` (both built-in ones do when built
with ``num_classes``).
Third-party packages add their own through the ``colddiff.nets`` entry-point group: any
``torch.nn.Module`` subclass called as ``net(x_t, t)``, e.g.::

    [project.entry-points."colddiff.nets"]
    resnet = "mypkg.nets:ResNet"
"""

from __future__ import annotations

from typing import Any

from torch import nn

from colddiff.nets.cnn import CNN
from colddiff.nets.unet import UNet
from colddiff.registry import PluginError, Registry

__all__ = ["CNN", "ENTRY_POINT_GROUP", "NETS", "REGISTRY", "UNet", "available", "create", "get",
           "refresh", "register"]

#: The entry-point group third-party packages register networks under.
ENTRY_POINT_GROUP = "colddiff.nets"

#: The network registry.
REGISTRY: Registry[nn.Module] = Registry("net", ENTRY_POINT_GROUP, nn.Module, PluginError)
REGISTRY.register("cnn")(CNN)
REGISTRY.register("unet")(UNet)

#: The built-in networks by name (:func:`available` also lists plugins).
NETS: dict[str, type[nn.Module]] = {"cnn": CNN, "unet": UNet}

register = REGISTRY.register
refresh = REGISTRY.refresh
available = REGISTRY.available
get = REGISTRY.get


def create(name: str, **kwargs: Any) -> nn.Module:
    """Instantiate the network called ``name`` with ``kwargs``.

    Example:
        >>> from colddiff import nets
        >>> net = nets.create("unet", channels=16)

    Raises:
        ValueError: If ``name`` is unknown (the message lists the available ones).
        colddiff.registry.PluginError: If its plugin cannot be used.
    """
    return REGISTRY.create(name, **kwargs)
