"""The degradation registry, including real entry-point discovery from ``*.dist-info`` folders."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from colddiff import Schedule, degradations
from colddiff.degradations import DegradationPluginError, GaussianNoise, registry

PLUGIN_MODULE = '''
import torch
from colddiff.degradations import Degradation, check_timesteps

class Pixelate(Degradation):
    """Average-pool to 2**t-pixel blocks and upsample back."""

    def __init__(self, schedule=None, steps=2):
        self.steps = schedule.steps if schedule is not None else steps

    def degrade(self, x0, t, source=None):
        t = check_timesteps(t, x0, self.steps)
        out = x0.clone()
        for i, step in enumerate(t.tolist()):
            if step:
                size = 2 ** step
                pooled = torch.nn.functional.avg_pool2d(x0[i:i + 1], size, ceil_mode=True)
                up = torch.nn.functional.interpolate(pooled, scale_factor=size)
                out[i] = up[0, :, :x0.shape[2], :x0.shape[3]]
        return out

class NotADegradation:
    pass
'''


def make_distribution(site: Path, name: str, entry_points: dict[str, str]) -> None:
    """Write an installed distribution's metadata, as pip would, into ``site``."""
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = "\n".join(f"{key} = {value}" for key, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[colddiff.degradations]\n{lines}\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh folder on ``sys.path`` holding plugin modules and their metadata."""
    (tmp_path / "goodplug.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    (tmp_path / "brokenplug.py").write_text("raise ImportError('missing dependency: frobnicate')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    degradations.refresh()
    yield tmp_path
    for module in ("goodplug", "brokenplug"):
        sys.modules.pop(module, None)
    degradations.refresh()


def test_builtins_are_available() -> None:
    available = degradations.available()
    for name in ("gaussian", "fashion_mnist", "blur"):
        assert available[name] == "built-in"
    assert isinstance(degradations.create("gaussian"), GaussianNoise)


def test_plugins_are_discovered_from_entry_points_and_a_broken_one_fails_alone(site: Path) -> None:
    make_distribution(site, "good_plugin", {"pixelate": "goodplug:Pixelate",
                                            "notadeg": "goodplug:NotADegradation"})
    make_distribution(site, "broken_plugin", {"broken": "brokenplug:Thing"})
    available = degradations.available()
    assert "good_plugin 1.0" in available["pixelate"]
    assert "broken_plugin 1.0" in available["broken"]
    assert "brokenplug" not in sys.modules, "listing must not import plugins"

    deg = degradations.create("pixelate", schedule=Schedule.linear(1e-4, 0.02, 3))
    assert deg.steps == 3
    x0 = torch.arange(16.0).view(1, 1, 4, 4)
    torch.testing.assert_close(deg.degrade(x0, 0), x0)
    torch.testing.assert_close(deg.degrade(x0, 2), torch.full_like(x0, 7.5))

    with pytest.raises(DegradationPluginError, match=r"'broken'.*broken_plugin 1\.0.*frobnicate"):
        degradations.create("broken")
    with pytest.raises(DegradationPluginError, match=r"'notadeg'.*good_plugin.*not a colddiff"):
        degradations.create("notadeg")
    # Everything else keeps working.
    assert isinstance(degradations.create("gaussian"), GaussianNoise)
    assert degradations.create("pixelate").steps == 2


def test_a_plugin_reusing_a_taken_name_is_an_error_not_a_shadow(site: Path) -> None:
    make_distribution(site, "shadow_plugin", {"gaussian": "goodplug:Pixelate"})
    make_distribution(site, "twin_a", {"twin": "goodplug:Pixelate"})
    make_distribution(site, "twin_b", {"twin": "goodplug:Pixelate"})
    assert degradations.available()["gaussian"].startswith("CONFLICT")
    with pytest.raises(DegradationPluginError, match=r"'gaussian'.*built-in.*shadow_plugin"):
        degradations.create("gaussian")
    with pytest.raises(DegradationPluginError, match=r"twin_a.*twin_b"):
        degradations.create("twin")
    assert degradations.create("blur").steps == 20


def test_unknown_name_lists_the_available_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown degradation 'pixelate'.*blur, fashion_mnist, gaussian"):
        degradations.create("pixelate")


def test_register_decorator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_registered", dict(registry._registered))

    @degradations.register("noise_copy")
    class NoiseCopy(GaussianNoise):
        pass

    assert degradations.available()["noise_copy"] == f"registered in {__name__}"
    assert isinstance(degradations.create("noise_copy"), NoiseCopy)
    with pytest.raises(ValueError, match="already registered"):
        degradations.register("noise_copy")(NoiseCopy)
    with pytest.raises(ValueError, match="already registered by built-in"):
        degradations.register("gaussian")(NoiseCopy)
    with pytest.raises(TypeError, match="Degradation subclass"):
        degradations.register("thing")(int)  # type: ignore[type-var]
    with pytest.raises(ValueError, match="identifier"):
        degradations.register("two words")
