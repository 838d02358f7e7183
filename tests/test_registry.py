"""The degradation registry, including real entry-point discovery from ``*.dist-info`` folders."""

from __future__ import annotations

import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from colddiff import Denoiser, Schedule, degradations, nets, pretrained, samplers
from colddiff.cli import main
from colddiff.config import TrainConfig
from colddiff.degradations import DegradationPluginError, GaussianNoise, registry
from colddiff.registry import PluginNameWarning

PLUGIN_MODULE = '''
import torch
from colddiff.degradations import Degradation, check_timesteps

class Pixelate(Degradation):
    """Average-pool to 2**t-pixel blocks and upsample back."""

    def __init__(self, schedule=None, steps=2):
        self.num_timesteps = schedule.num_timesteps if schedule is not None else steps

    def degrade(self, x0, t, source=None):
        t = check_timesteps(t, x0, self.num_timesteps)
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


PARTS_MODULE = '''
import torch
from torch import nn
from colddiff import Sampler

class TinyNet(nn.Module):
    """A one-layer network called as net(x_t, t)."""

    def __init__(self, width=3):
        super().__init__()
        self.conv = nn.Conv2d(1, width, 3, padding=1)
        self.out = nn.Conv2d(width, 1, 3, padding=1)

    def forward(self, x, t):
        return self.out(torch.relu(self.conv(x) + t.view(-1, 1, 1, 1)))

class Direct(Sampler):
    """One jump to the predicted clean image, scaled: x_s = scale * x0_hat."""

    def __init__(self, denoiser, *, scale=1.0, clip_x0=True, data_range=(0.0, 1.0)):
        super().__init__(denoiser, clip_x0=clip_x0, data_range=data_range)
        self.scale = scale

    def step(self, i, t, s, x_t, x0_hat, t_batch, s_batch, generator):
        return self.scale * x0_hat
'''


def make_distribution(site: Path, name: str, entry_points: dict[str, str],
                      group: str = "colddiff.degradations",
                      more: dict[str, dict[str, str]] | None = None) -> None:
    """Write an installed distribution's metadata, as pip would, into ``site``: ``entry_points``
    in ``group``, and ``more`` as further groups."""
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    sections = []
    for section, points in {group: entry_points, **(more or {})}.items():
        lines = "\n".join(f"{key} = {value}" for key, value in points.items())
        sections.append(f"[{section}]\n{lines}\n")
    (info / "entry_points.txt").write_text("\n".join(sections))


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh folder on ``sys.path`` holding plugin modules and their metadata."""
    (tmp_path / "goodplug.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    (tmp_path / "brokenplug.py").write_text("raise ImportError('missing dependency: frobnicate')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "partsplug.py").write_text(textwrap.dedent(PARTS_MODULE))
    for registry_ in (degradations.REGISTRY, nets.REGISTRY, samplers.REGISTRY):
        registry_.refresh()
    yield tmp_path
    for module in ("goodplug", "brokenplug", "partsplug"):
        sys.modules.pop(module, None)
    for registry_ in (degradations.REGISTRY, nets.REGISTRY, samplers.REGISTRY):
        registry_.refresh()


def test_builtins_are_available() -> None:
    available = degradations.available()
    for name in ("gaussian", "fashion_mnist", "blur"):
        assert available[name].startswith("built-in")  # a plugin may claim the name: it is ignored
    assert isinstance(degradations.create("gaussian"), GaussianNoise)


def test_plugins_are_discovered_from_entry_points_and_a_broken_one_fails_alone(site: Path) -> None:
    make_distribution(site, "good_plugin", {"test_pixelate": "goodplug:Pixelate",
                                            "notadeg": "goodplug:NotADegradation"})
    make_distribution(site, "broken_plugin", {"broken": "brokenplug:Thing"})
    available = degradations.available()
    assert "good_plugin 1.0" in available["test_pixelate"]
    assert "broken_plugin 1.0" in available["broken"]
    assert "brokenplug" not in sys.modules, "listing must not import plugins"

    deg = degradations.create("test_pixelate", schedule=Schedule.linear(1e-4, 0.02, 3))
    assert deg.num_timesteps == 3
    x0 = torch.arange(16.0).view(1, 1, 4, 4)
    torch.testing.assert_close(deg.degrade(x0, 0), x0)
    torch.testing.assert_close(deg.degrade(x0, 2), torch.full_like(x0, 7.5))

    with pytest.raises(DegradationPluginError, match=r"'broken'.*broken_plugin 1\.0.*frobnicate"):
        degradations.create("broken")
    with pytest.raises(DegradationPluginError, match=r"'notadeg'.*good_plugin.*not a subclass of colddiff"):
        degradations.create("notadeg")
    # Everything else keeps working.
    assert isinstance(degradations.create("gaussian"), GaussianNoise)
    assert degradations.create("test_pixelate").num_timesteps == 2


def test_a_plugin_claiming_a_built_in_name_is_ignored_with_a_warning(site: Path) -> None:
    make_distribution(site, "shadow_plugin", {"gaussian": "goodplug:Pixelate"})
    make_distribution(site, "twin_a", {"twin": "goodplug:Pixelate"})
    make_distribution(site, "twin_b", {"twin": "goodplug:Pixelate"})
    available = degradations.available()
    assert available["gaussian"].startswith("built-in (ignored plugin")
    assert "shadow_plugin" in available["gaussian"]
    with pytest.warns(PluginNameWarning, match=r"shadow_plugin 1\.0.*'gaussian'.*built-in.*ignored"):
        assert degradations.get("gaussian") is GaussianNoise
    # ... so the shipped Gaussian model keeps loading.
    with pytest.warns(PluginNameWarning):
        assert pretrained.load("mnist-ddpm").denoiser.degradation.__class__ is GaussianNoise
    assert available["twin"].startswith("CONFLICT")
    with pytest.raises(DegradationPluginError, match=r"twin_a.*twin_b"):
        degradations.create("twin")
    assert degradations.create("blur").num_timesteps == 20


def test_unknown_name_lists_the_available_ones(site: Path) -> None:
    make_distribution(site, "good_plugin", {"test_pixelate": "goodplug:Pixelate"})
    names = list(degradations.available())
    assert {"blur", "fashion_mnist", "gaussian", "test_pixelate"} <= set(names)
    expected = r"unknown degradation 'pixelated'; available: " + re.escape(", ".join(names))
    with pytest.raises(ValueError, match=expected):
        degradations.create("pixelated")


def test_check_imports_every_plugin_and_marks_the_broken_ones(
        site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_distribution(site, "good_plugin", {"test_pixelate": "goodplug:Pixelate"})
    make_distribution(site, "broken_plugin", {"broken": "brokenplug:Thing"})
    assert main(["degradations"]) == 0
    listing = capsys.readouterr().out
    assert "broken" in listing and "BROKEN" not in listing, "without --check nothing is imported"
    assert main(["degradations", "--check"]) == 1
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert lines["test_pixelate"].endswith("[ok]") and lines["gaussian"].endswith("[ok]")
    assert "[BROKEN: degradation plugin 'broken'" in lines["broken"] and "frobnicate" in lines["broken"]


def test_register_decorator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry.REGISTRY, "_registered", dict(registry.REGISTRY._registered))

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


def test_a_plugin_net_and_sampler_work_by_name_from_python_a_config_and_the_command_line(
        site: Path, tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_distribution(site, "parts_plugin", {"tiny": "partsplug:TinyNet"}, group="colddiff.nets",
                      more={"colddiff.samplers": {"direct": "partsplug:Direct"}})
    assert "parts_plugin 1.0" in nets.available()["tiny"]
    assert "parts_plugin 1.0" in samplers.available()["direct"]
    # Python
    net = nets.create("tiny", width=2)
    assert net(torch.zeros(1, 1, 28, 28), torch.zeros(1)).shape == (1, 1, 28, 28)
    denoiser = Denoiser(net, degradations.create("gaussian"), predict="x0")
    sampler = samplers.create("direct", denoiser, scale=0.5, clip_x0=False)
    x_T = torch.randn(2, 1, 28, 28)
    expected = 0.5 * denoiser.predict_x0(x_T, torch.full((2,), 1000)).detach()
    torch.testing.assert_close(sampler.sample(x_T, sample_steps=1), expected)
    with pytest.raises(ValueError, match="sampler 'direct' does not take order; it takes scale, clip_x0"):
        samplers.create("direct", denoiser, order=2)
    # a config file
    config = tmp_path / "plugin.toml"
    config.write_text('net = "tiny"\npredict = "x0"\nsampler = "direct"\nepochs = 1\nlimit_train = 128\n'
                      'batch_size = 64\nsample_every = 1\nsample_n = 4\n[net_kwargs]\nwidth = 2\n'
                      '[sampler_kwargs]\nscale = 0.5\n')
    assert TrainConfig.load(config).sampler_kwargs == {"scale": 0.5}
    # the command line
    out = tmp_path / "run"
    status = main(["train", "--config", str(config), "--out", str(out), "--quiet", "--device", "cpu"])
    assert status == 0, capsys.readouterr().err
    assert (out / "samples" / "epoch-001.png").exists()
    status = main(["sample", "--checkpoint", str(out / "checkpoints" / "last.pt"), "-n", "2",
                   "--sample-steps", "3",
                   "--sampler-arg", "scale=0.25", "--out", str(tmp_path / "s.png"),
                   "--save-tensor", str(tmp_path / "s.pt")])
    assert status == 0, capsys.readouterr().err
    status = main(["train", "--preset", "ddpm-default", "--net", "tiny", "--epochs", "1",
                   "--limit-train", "64", "--batch-size", "64", "--sample-every", "0", "--quiet",
                   "--out", str(tmp_path / "cli")])
    assert status == 0 and TrainConfig.load(tmp_path / "cli" / "config.toml").net == "tiny"
    main(["list", "nets", "samplers", "--check"])  # exit 1 if the user has a broken plugin of their own
    listing = capsys.readouterr().out
    assert re.search(r"tiny +entry point 'tiny = partsplug:TinyNet' of parts_plugin 1.0  \[ok\]", listing)
    assert re.search(r"direct +entry point 'direct = partsplug:Direct' of parts_plugin 1.0  \[ok\]", listing)
