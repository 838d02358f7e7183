"""Degradations by name: built-ins, in-process registrations, and third-party plugins.

A plugin package declares its degradation classes in the entry-point group
``colddiff.degradations``::

    [project.entry-points."colddiff.degradations"]
    pixelate = "mypkg.degradations:Pixelate"

This is one instance of :class:`colddiff.registry.Registry` (see there for how plugins are
found, imported and isolated); the functions below are its methods.
"""

from __future__ import annotations

from colddiff.degradations.base import Degradation
from colddiff.registry import PluginError, Registry

__all__ = [
    "ENTRY_POINT_GROUP",
    "REGISTRY",
    "DegradationPluginError",
    "available",
    "create",
    "get",
    "refresh",
    "register",
]

#: The entry-point group third-party packages register degradations under.
ENTRY_POINT_GROUP = "colddiff.degradations"


class DegradationPluginError(PluginError):
    """A plugin degradation cannot be used: it fails to import, is not a
    :class:`~colddiff.Degradation`, or its name is claimed by several plugins."""


#: The degradation registry.
REGISTRY: Registry[Degradation] = Registry("degradation", ENTRY_POINT_GROUP, Degradation,
                                           DegradationPluginError)

register = REGISTRY.register
refresh = REGISTRY.refresh
available = REGISTRY.available
get = REGISTRY.get


def create(name: str, **kwargs: object) -> Degradation:
    """Instantiate the degradation registered under ``name`` with ``kwargs``.

    Example:
        >>> from colddiff import Schedule, degradations
        >>> deg = degradations.create("gaussian", schedule=Schedule.preset("short"))
        >>> deg.num_timesteps
        200

    Raises:
        ValueError: If no degradation has that name (the message lists the available ones).
        DegradationPluginError: If its plugin cannot be used (see :meth:`Registry.get`).
    """
    return REGISTRY.create(name, **kwargs)
