"""Degradations by name: built-ins, in-process registrations, and third-party plugins.

A plugin package declares its degradation classes in the entry-point group
``colddiff.degradations``::

    [project.entry-points."colddiff.degradations"]
    pixelate = "mypkg.degradations:Pixelate"

Entry points are listed on first use and imported only when their name is created, so a broken
plugin costs nothing until someone asks for it, and then fails alone with
:class:`DegradationPluginError`. Names are unique: a plugin that reuses a taken name is an error
for that name, never a silent replacement.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import metadata
from typing import Any, TypeVar

from colddiff.degradations.base import Degradation

__all__ = [
    "ENTRY_POINT_GROUP",
    "DegradationPluginError",
    "available",
    "create",
    "get",
    "refresh",
    "register",
]

#: The entry-point group third-party packages register degradations under.
ENTRY_POINT_GROUP = "colddiff.degradations"

D = TypeVar("D", bound=type[Degradation])

_registered: dict[str, tuple[type[Degradation], str]] = {}
_entry_points: dict[str, list[metadata.EntryPoint]] | None = None


class DegradationPluginError(RuntimeError):
    """A plugin degradation cannot be used: it fails to import, is not a
    :class:`~colddiff.Degradation`, or its name is already taken."""


def register(name: str) -> Callable[[D], D]:
    """Class decorator registering a :class:`~colddiff.Degradation` subclass under ``name``.

    Use it for degradations defined in your own code; to publish one from a package, declare an
    entry point instead (see the module docs).

    Raises:
        ValueError: If ``name`` is empty or already registered.
        TypeError: If the decorated object is not a ``Degradation`` subclass.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be a non-empty identifier, got {name!r}")

    def decorator(cls: D) -> D:
        if not (isinstance(cls, type) and issubclass(cls, Degradation)):
            raise TypeError(f"@register({name!r}) needs a Degradation subclass, got {cls!r}")
        if name in _registered:
            raise ValueError(
                f"degradation name {name!r} is already registered by "
                f"{_registered[name][1]}; choose another name"
            )
        module = cls.__module__
        origin = "built-in" if module.startswith("colddiff.") else f"registered in {module}"
        _registered[name] = (cls, origin)
        return cls

    return decorator


def refresh() -> None:
    """Forget the cached entry points, so that newly installed plugins are found."""
    global _entry_points
    _entry_points = None


def _plugins() -> dict[str, list[metadata.EntryPoint]]:
    global _entry_points
    if _entry_points is None:
        found: dict[str, list[metadata.EntryPoint]] = {}
        for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
            same = found.setdefault(entry_point.name, [])
            # A distribution seen twice on sys.path lists its entry points twice: keep one.
            if all(e.value != entry_point.value or _dist(e) != _dist(entry_point) for e in same):
                same.append(entry_point)
        _entry_points = found
    return _entry_points


def _dist(entry_point: metadata.EntryPoint) -> str:
    dist = entry_point.dist
    return f"{dist.name} {dist.version}" if dist is not None else "an unknown distribution"


def _describe(entry_point: metadata.EntryPoint) -> str:
    return f"entry point '{entry_point.name} = {entry_point.value}' of {_dist(entry_point)}"


def available() -> dict[str, str]:
    """Every degradation name, sorted, with where it comes from.

    Plugins are listed from their metadata without importing them; a name claimed twice is
    listed with the conflict.
    """
    names: dict[str, str] = {name: origin for name, (_, origin) in _registered.items()}
    for name, entry_points in _plugins().items():
        claims = ([names[name]] if name in names else []) + [_describe(e) for e in entry_points]
        names[name] = claims[0] if len(claims) == 1 else "CONFLICT: " + "; ".join(claims)
    return dict(sorted(names.items()))


def get(name: str) -> type[Degradation]:
    """The degradation class registered under ``name``, importing its plugin if needed.

    Raises:
        ValueError: If no degradation has that name; the message lists the available ones.
        DegradationPluginError: If the name is claimed twice, or its plugin fails to import or is
            not a ``Degradation`` subclass; the message names the entry point and distribution.
    """
    entry_points = _plugins().get(name, [])
    if name in _registered and entry_points:
        raise DegradationPluginError(
            f"degradation name {name!r} is claimed by {_registered[name][1]} and by "
            f"{', '.join(_describe(e) for e in entry_points)}; uninstall or rename one"
        )
    if name in _registered:
        return _registered[name][0]
    if len(entry_points) > 1:
        raise DegradationPluginError(
            f"degradation name {name!r} is claimed by several plugins: "
            f"{'; '.join(_describe(e) for e in entry_points)}; uninstall or rename one"
        )
    if not entry_points:
        raise ValueError(
            f"unknown degradation {name!r}; available: {', '.join(available()) or 'none'}"
        )
    entry_point = entry_points[0]
    try:
        cls = entry_point.load()
    except Exception as error:
        raise DegradationPluginError(
            f"degradation plugin {name!r} ({_describe(entry_point)}) failed to import: "
            f"{type(error).__name__}: {error}"
        ) from error
    if not (isinstance(cls, type) and issubclass(cls, Degradation)):
        raise DegradationPluginError(
            f"degradation plugin {name!r} ({_describe(entry_point)}) is {cls!r}, "
            "not a colddiff.Degradation subclass"
        )
    return cls


def create(name: str, **kwargs: Any) -> Degradation:
    """Instantiate the degradation registered under ``name`` with ``kwargs``.

    Example:
        >>> from colddiff import Schedule, degradations
        >>> deg = degradations.create("gaussian", schedule=Schedule.preset("short"))
        >>> deg.steps
        200

    Raises:
        ValueError: If no degradation has that name (the message lists the available ones).
        DegradationPluginError: As for :func:`get`.
    """
    return get(name)(**kwargs)
