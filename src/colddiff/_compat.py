"""Old spellings kept working: renamed keyword arguments and attributes.

colddiff names each thing once (the table "One name per thing" in ``docs/index.md``): ``T`` is
``num_timesteps``, the ``K`` steps a sampler takes are ``sample_steps``. The names used before
keep working for code that has them, with a ``DeprecationWarning`` that gives the new name. A
renamed argument stays in the signature as a keyword-only parameter defaulting to ``None``, so
that signatures (and the registry's check of a config's options) still show it.
"""

from __future__ import annotations

import warnings
from typing import Any, TypeVar

__all__ = ["renamed", "renamed_alias", "renamed_key"]

T = TypeVar("T")


def renamed(function: str, old: str, old_value: T | None, new: str, new_value: T | None) -> T | None:
    """The value of an argument renamed from ``old`` to ``new``: ``new_value``, or ``old_value``
    (with a ``DeprecationWarning``) when only the old name was given.

    Raises:
        TypeError: If both names were given, as Python does for one argument passed twice.
    """
    if old_value is None:
        return new_value
    if new_value is not None:
        raise TypeError(f"{function}() got both {old}= and {new}=; {old} is the old name of {new}, "
                        f"pass only {new}")
    warnings.warn(f"{function}({old}=...) is deprecated: use {new}=", DeprecationWarning, stacklevel=3)
    return old_value


def renamed_key(values: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """A copy of ``values`` with the key ``old`` called ``new`` (kept in place), unless ``new``
    is there already. For stored data (a config or a spec written by an earlier version): no
    warning, as the user has no code to change."""
    if old not in values or new in values:
        return dict(values)
    return {(new if key == old else key): value for key, value in values.items()}


def renamed_alias(new: str, old: str) -> property:
    """A property ``old`` that reads (and writes) the attribute ``new``, with a warning."""

    def warn(owner: object) -> None:
        warnings.warn(f"{type(owner).__name__}.{old} is deprecated: use .{new}",
                      DeprecationWarning, stacklevel=3)

    def get(self: object) -> Any:
        warn(self)
        return getattr(self, new)

    get.__doc__ = f"Deprecated: the old name of :attr:`{new}`."

    def set_(self: object, value: Any) -> None:
        warn(self)
        setattr(self, new, value)

    return property(get, set_)
