"""One name per thing: ``num_timesteps`` is ``T``, ``sample_steps`` is ``K``.

The names colddiff 0.1 used (``steps`` for both) keep working with a ``DeprecationWarning``
that names the new spelling, and give the same results; files written by 0.1 load unchanged.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path

import pytest
import torch

from colddiff import Denoiser, Schedule, degradations, nets, pretrained, samplers
from colddiff.config import TrainConfig, build_degradation, model_differences
from colddiff.degradations import Blur, Degradation, GaussianNoise
from colddiff.fmd import FMDHook
from colddiff.samplers import Sampler


def renamed(function: str, old: str = "steps", new: str = "num_timesteps") -> str:
    """The whole warning for a renamed argument, as a regular expression."""
    return "^" + re.escape(f"{function}({old}=...) is deprecated: use {new}=") + "$"


def alias(owner: str, old: str = "steps", new: str = "num_timesteps") -> str:
    """The whole warning for a renamed attribute, as a regular expression."""
    return "^" + re.escape(f"{owner}.{old} is deprecated: use .{new}") + "$"


def test_schedule_old_spelling_warns_and_builds_the_same_schedule() -> None:
    with pytest.warns(DeprecationWarning, match=renamed("Schedule.linear")):
        old = Schedule.linear(1e-4, 0.02, steps=50)
    assert old == Schedule.linear(1e-4, 0.02, num_timesteps=50)
    with pytest.warns(DeprecationWarning, match=renamed("Schedule.cosine")):
        assert Schedule.cosine(steps=40) == Schedule.cosine(40)
    with pytest.warns(DeprecationWarning, match=alias("Schedule")):
        assert old.steps == 50 == old.num_timesteps
    both = "Schedule.cosine() got both steps= and num_timesteps=; steps is the old name of num_timesteps, "
    with pytest.raises(TypeError, match="^" + re.escape(both + "pass only num_timesteps") + "$"):
        Schedule.cosine(steps=40, num_timesteps=40)  # type: ignore[call-arg]


def test_specs_written_by_colddiff_0_1_load_and_compare_equal() -> None:
    old = {"kind": "cosine", "steps": 100, "offset": 0.008, "max_beta": 0.999}
    assert Schedule.from_spec(old) == Schedule.cosine(100)
    assert Schedule.upgrade_spec(old) == Schedule.cosine(100).spec()
    linear = {"kind": "linear", "beta_start": 0.1, "beta_end": 0.2, "steps": 3}
    assert Schedule.upgrade_spec(linear) == Schedule.linear(0.1, 0.2, 3).spec()
    custom = {"kind": "custom", "betas": [0.1, 0.2]}
    assert Schedule.upgrade_spec(custom) == custom, "only linear and cosine specs had steps"
    config = TrainConfig.from_dict({"schedule": old})
    assert config.schedule == Schedule.cosine(100).spec()
    assert model_differences({**config.to_dict(), "schedule": old}, config) == [], \
        "a checkpoint written by 0.1 resumes under the same config"

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # stored data is upgraded silently: no code to change
        blur = TrainConfig.from_dict({"degradation": "blur", "degradation_kwargs": {"steps": 5},
                                      "predict": "x0", "sampler": "cold"})
    assert blur.degradation_kwargs == {"num_timesteps": 5}
    assert build_degradation(blur).num_timesteps == 5
    assert model_differences({**blur.to_dict(), "degradation_kwargs": {"steps": 5}}, blur) == []
    with pytest.warns(DeprecationWarning, match=renamed("Blur")):
        assert degradations.create("blur", steps=4).num_timesteps == 4  # a script's keyword


def test_degradation_old_spellings_warn_and_work() -> None:
    with pytest.warns(DeprecationWarning, match=renamed("Blur")):
        blur = Blur(steps=7)
    assert blur.num_timesteps == 7
    with pytest.warns(DeprecationWarning, match=alias("Blur")):
        assert blur.steps == 7
    with pytest.warns(DeprecationWarning, match=alias("Blur")):
        blur.steps = 9  # a plugin that set the attribute itself
    assert blur.num_timesteps == 9

    old_default = "Old.default_steps is deprecated: name it default_num_"
    with pytest.warns(DeprecationWarning, match=old_default) as caught:
        class Old(Degradation):  # a plugin written for colddiff 0.1
            default_steps = 12

            def degrade(self, x0: torch.Tensor, t: torch.Tensor | int, source: torch.Tensor | None = None
                        ) -> torch.Tensor:
                return x0

            def __init__(self, schedule: Schedule | None = None, *, steps: int | None = None) -> None:
                super().__init__(schedule, steps=steps)

    if "MUTANT_UNDER_TEST" not in os.environ:  # mutmut's trampoline adds a frame
        assert caught[0].filename == __file__, "the warning points at the plugin's class statement"
    with pytest.warns(DeprecationWarning, match=renamed("Old")):
        assert Old().num_timesteps == 12
        assert Old(steps=3).num_timesteps == 3


def test_sampling_old_spellings_warn_and_give_the_same_samples() -> None:
    torch.manual_seed(0)
    denoiser = Denoiser(nets.CNN(channels=[4, 4]), GaussianNoise(Schedule.linear(1e-4, 0.1, 20)))
    with pytest.warns(DeprecationWarning, match=alias("Denoiser")):
        assert denoiser.steps == 20
    sampler = samplers.create("ddpm", denoiser)
    x_T = sampler.prior(2, generator=torch.Generator().manual_seed(1))
    new = sampler.sample(x_T, sample_steps=5, generator=torch.Generator().manual_seed(2))
    with pytest.warns(DeprecationWarning, match=renamed("Sampler.sample", new="sample_steps")):
        old = sampler.sample(x_T, steps=5, generator=torch.Generator().manual_seed(2))
    assert torch.equal(new, old)
    with pytest.warns(DeprecationWarning, match=renamed("Sampler.timesteps", new="sample_steps")):
        assert sampler.timesteps(steps=4) == sampler.timesteps(4) == [20, 15, 10, 5, 0]
    with pytest.warns(DeprecationWarning, match=renamed("FMDHook", new="sample_steps")):
        hook = FMDHook(steps=9)
    with pytest.warns(DeprecationWarning, match=alias("FMDHook", new="sample_steps")):
        assert hook.sample_steps == 9 == hook.steps


def test_a_minimal_sampler_subclass_clips_by_default() -> None:
    class Minimal(Sampler):  # a third-party sampler that leaves the base class its options
        def step(self, i: int, t: int, s: int, x_t: torch.Tensor, x0_hat: torch.Tensor,
                 t_batch: torch.Tensor, s_batch: torch.Tensor, generator: torch.Generator | None
                 ) -> torch.Tensor:
            return x0_hat

    denoiser = Denoiser(nets.CNN(channels=[4, 4]), GaussianNoise(Schedule.linear(1e-4, 0.1, 20)))
    minimal = Minimal(denoiser)
    assert minimal.clip_x0 is True and minimal.data_range == (0.0, 1.0)


def test_helpers_and_missing_arguments() -> None:
    from colddiff.degradations import check_timesteps

    x = torch.zeros(2, 1, 4, 4)
    with pytest.warns(DeprecationWarning, match=renamed("check_timesteps")):
        assert check_timesteps(3, x, steps=5).tolist() == [3, 3]
    with pytest.raises(TypeError, match=r"^check_timesteps\(\) missing required argument: 'num_timesteps'$"):
        check_timesteps(3, x)
    with pytest.raises(TypeError, match=r"^Schedule.linear\(\) missing required argument: 'num_timesteps'$"):
        Schedule.linear(1e-4, 0.02)
    with pytest.raises(TypeError, match=r"^Schedule.cosine\(\) missing required argument: 'num_timesteps'$"):
        Schedule.cosine()
    with pytest.warns(DeprecationWarning, match=alias("Blur", "default_steps", "default_num_timesteps")):
        assert Blur().default_steps == 20


def test_cards_and_exports_name_optimiser_steps_and_sample_steps() -> None:
    for name in pretrained.available():
        card = json.loads((Path(pretrained.__file__).parent / "weights" / f"{name}.json").read_text())
        assert "optimiser_steps" in card and "steps" not in card
        assert "num_timesteps" in card["config"]["schedule"]
        assert all("steps" not in row for row in card.get("scores", {}).values())


def test_the_cli_keeps_the_old_steps_flag(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from colddiff.cli import main

    out = tmp_path / "grid.png"
    assert main(["sample", "--pretrained", "mnist-ddpm", "-n", "1", "--steps", "2", "--out", str(out)]) == 0
    assert "--steps is deprecated, use --sample-steps" in capsys.readouterr().err and out.exists()
    with pytest.raises(SystemExit) as error:
        main(["sample", "--pretrained", "mnist-ddpm", "--steps", "2", "--sample-steps", "2",
              "--out", str(out)])
    assert error.value.code == 2
    assert "give --sample-steps only" in capsys.readouterr().err
