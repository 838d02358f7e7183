"""Writing TOML: the few value kinds a :class:`~colddiff.config.TrainConfig` holds, as the text of
a ``config.toml`` (reading is :mod:`tomllib`'s)."""

from __future__ import annotations

from typing import Any

__all__ = ["to_toml", "toml_value"]


def toml_value(value: Any) -> str:
    """One value as TOML: a boolean, number, string, list or inline table.

    Raises:
        ValueError: For any other value.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise ValueError(f"cannot write {value!r} to TOML")


def to_toml(values: dict[str, Any]) -> str:
    """Plain values first, then one ``[table]`` per dict (enough for a config)."""
    lines = [f"{k} = {toml_value(v)}" for k, v in values.items() if not isinstance(v, dict)]
    for key, table in values.items():
        if isinstance(table, dict):
            lines += ["", f"[{key}]"] + [f"{k} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"
