"""Every public class, function and method has a docstring (they are the API reference)."""

from __future__ import annotations

import importlib
import inspect

import pytest

MODULES = ["colddiff", "colddiff.schedules", "colddiff.degradations", "colddiff.degradations.registry",
           "colddiff.denoisers", "colddiff.nets", "colddiff.samplers", "colddiff.config",
           "colddiff.training", "colddiff.checkpoints", "colddiff.data", "colddiff.fmd",
           "colddiff.study.reference", "colddiff.study.figures", "colddiff.study.bansal",
           "colddiff.study.plotting", "colddiff.study.runner", "colddiff.study.strips", "colddiff.metrics",
           "colddiff.pretrained", "colddiff.restoration", "colddiff.cli", "colddiff.cli.errors",
           "colddiff.cli.train"]


def public_objects() -> list[tuple[str, object]]:
    found = []
    for name in MODULES:
        module = importlib.import_module(name)
        assert module.__doc__, f"module {name} has no docstring"
        for attribute in getattr(module, "__all__", []):
            obj = getattr(module, attribute)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                found.append((f"{name}.{attribute}", obj))
                if inspect.isclass(obj):
                    for method_name, method in vars(obj).items():
                        if method_name.startswith("_") or not (inspect.isfunction(method) or
                                                                isinstance(method, (classmethod, property))):
                            continue
                        found.append((f"{name}.{attribute}.{method_name}", method))
    return found


@pytest.mark.parametrize(("name", "obj"), public_objects(),
                         ids=lambda value: value if isinstance(value, str) else "")
def test_public_api_is_documented(name: str, obj: object) -> None:
    target = obj.__func__ if isinstance(obj, classmethod) else obj.fget if isinstance(obj, property) else obj
    assert inspect.getdoc(target), f"{name} has no docstring"
