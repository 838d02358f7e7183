"""Pluggable parts by name: one :class:`Registry` per kind (degradations, networks, samplers).

Built-ins register themselves with :meth:`Registry.register`; third-party packages declare
entry points in the kind's group, e.g. for a degradation::

    [project.entry-points."colddiff.degradations"]
    pixelate = "mypkg.degradations:Pixelate"

Entry points are listed on first use and imported only when their name is asked for, so a
broken plugin costs nothing until someone uses it, and then fails alone with a
:class:`PluginError` naming the entry point and its distribution. A name is one thing: a plugin
that claims a name already registered in this process (a built-in's) is ignored with a warning
naming it, so that one bad package cannot break the built-ins or the shipped models; two plugins
claiming one free name are an error for that name.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from importlib import metadata
from typing import Any, Generic, TypeVar, cast

__all__ = ["PluginError", "PluginNameWarning", "Registry"]

T = TypeVar("T")
C = TypeVar("C")


class PluginError(RuntimeError):
    """A plugin cannot be used: it fails to import, is not the right kind of object, or its name
    is claimed by several plugins."""


class PluginNameWarning(UserWarning):
    """A plugin claims a name that is already taken in this process; the plugin is ignored."""


class Registry(Generic[T]):
    """Components of one kind by name: in-process registrations and entry-point plugins.

    Args:
        kind: What the components are, for messages (``"degradation"``).
        group: The entry-point group plugins declare them in (``"colddiff.degradations"``).
        base: The class every component must subclass.
        error: The :class:`PluginError` subclass raised for a plugin that cannot be used.
    """

    def __init__(self, kind: str, group: str, base: type,
                 error: type[PluginError] = PluginError) -> None:
        self.kind = kind
        self.group = group
        self.base = base
        self.error = error
        self._registered: dict[str, tuple[type[T], str]] = {}
        self._entry_points: dict[str, list[metadata.EntryPoint]] | None = None

    def register(self, name: str) -> Callable[[C], C]:
        """Class decorator registering a subclass of :attr:`base` under ``name``.

        Use it in your own code; to publish a component from a package, declare an entry point.

        Raises:
            ValueError: If ``name`` is not an identifier-like name or is already registered.
            TypeError: If the decorated object is not a subclass of :attr:`base`.
        """
        if not isinstance(name, str) or not name.replace("+", "").isidentifier():
            raise ValueError(f"name must be a non-empty identifier, got {name!r}")

        def decorator(component: C) -> C:
            cls: Any = component
            if not (isinstance(cls, type) and issubclass(cls, self.base)):
                raise TypeError(f"@register({name!r}) needs a {self.base.__name__} subclass, got {cls!r}")
            if name in self._registered:
                raise ValueError(f"{self.kind} name {name!r} is already registered by "
                                 f"{self._registered[name][1]}; choose another name")
            module = cls.__module__
            origin = "built-in" if module.startswith("colddiff.") else f"registered in {module}"
            self._registered[name] = (cast("type[T]", cls), origin)
            return component

        return decorator

    def refresh(self) -> None:
        """Forget the cached entry points, so that newly installed plugins are found."""
        self._entry_points = None

    def _plugins(self) -> dict[str, list[metadata.EntryPoint]]:
        if self._entry_points is None:
            found: dict[str, list[metadata.EntryPoint]] = {}
            for entry_point in metadata.entry_points(group=self.group):
                same = found.setdefault(entry_point.name, [])
                # A distribution seen twice on sys.path lists its entry points twice: keep one.
                if all(e.value != entry_point.value or _dist(e) != _dist(entry_point) for e in same):
                    same.append(entry_point)
            self._entry_points = found
        return self._entry_points

    def available(self) -> dict[str, str]:
        """Every name, sorted, with where it comes from.

        Plugins are listed from their metadata without importing them; an ignored plugin (its
        name is taken) and a name claimed by several plugins are said so.
        """
        names: dict[str, str] = {name: origin for name, (_, origin) in self._registered.items()}
        for name, entry_points in self._plugins().items():
            claims = "; ".join(_describe(e) for e in entry_points)
            if name in names:
                names[name] += f" (ignored plugin claiming this name: {claims})"
            elif len(entry_points) > 1:
                names[name] = "CONFLICT: " + claims
            else:
                names[name] = claims
        return dict(sorted(names.items()))

    def names(self) -> list[str]:
        """The available names, sorted (plugins listed, not imported)."""
        return list(self.available())

    def get(self, name: str) -> type[T]:
        """The class registered under ``name``, importing its plugin if needed.

        Raises:
            ValueError: If nothing has that name; the message lists the available ones.
            PluginError: (:attr:`error`) If the name is claimed by several plugins, or its plugin
                fails to import or is not a subclass of :attr:`base`; the message names the entry
                point and distribution.
        """
        entry_points = self._plugins().get(name, [])
        if name in self._registered:
            if entry_points:
                warnings.warn(
                    f"{self.kind} plugin {'; '.join(_describe(e) for e in entry_points)} claims the "
                    f"name {name!r}, which is {self._registered[name][1]}; the plugin is ignored "
                    "(rename its entry point)", PluginNameWarning, stacklevel=2)
            return self._registered[name][0]
        if len(entry_points) > 1:
            raise self.error(
                f"{self.kind} name {name!r} is claimed by several plugins: "
                f"{'; '.join(_describe(e) for e in entry_points)}; uninstall or rename one"
            )
        if not entry_points:
            known = ", ".join(self.available()) or "none"
            raise ValueError(f"unknown {self.kind} {name!r}; available: {known}")
        entry_point = entry_points[0]
        try:
            cls = entry_point.load()
        except Exception as error:
            raise self.error(
                f"{self.kind} plugin {name!r} ({_describe(entry_point)}) failed to import: "
                f"{type(error).__name__}: {error}"
            ) from error
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise self.error(
                f"{self.kind} plugin {name!r} ({_describe(entry_point)}) is {cls!r}, "
                f"not a subclass of {self.base.__module__}.{self.base.__qualname__}"
            )
        return cast("type[T]", cls)

    def create(self, name: str, *args: Any, **kwargs: Any) -> T:
        """Instantiate the class registered under ``name`` with ``args`` and ``kwargs``.

        Raises:
            ValueError: If nothing has that name (the message lists the available ones), or a
                keyword is not one its constructor takes (the message lists those it takes).
            PluginError: As for :meth:`get`.
        """
        cls = self.get(name)
        parameters = list(inspect.signature(cls).parameters.values())[len(args):]
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            accepted = [p.name for p in parameters if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
            unknown = sorted(set(kwargs) - set(accepted))
            if unknown:
                raise ValueError(f"{self.kind} {name!r} does not take {', '.join(unknown)}; "
                                 f"it takes {', '.join(accepted) or 'no options'}")
        return cls(*args, **kwargs)

    def check(self) -> dict[str, str | None]:
        """Import every available name; map each to ``None`` if it loads, else to the error."""
        results: dict[str, str | None] = {}
        for name in self.available():
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", PluginNameWarning)
                    self.get(name)
                results[name] = None
            except (ValueError, PluginError) as error:
                results[name] = " ".join(str(error).split())
        return results


def _dist(entry_point: metadata.EntryPoint) -> str:
    dist = entry_point.dist
    return f"{dist.name} {dist.version}" if dist is not None else "an unknown distribution"


def _describe(entry_point: metadata.EntryPoint) -> str:
    return f"entry point '{entry_point.name} = {entry_point.value}' of {_dist(entry_point)}"
