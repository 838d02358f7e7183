"""The ``noise`` option of every built-in deterministic degradation: ``x_t = D(x_0, t) +
noise_t z``, drawn with the source, re-estimated by the cold sampler (Bansal et al.'s hot sampler)
or replaced by fresh noise, and refused when it is not a level or ``T + 1`` levels."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from colddiff import Denoiser, Schedule, degradations
from colddiff.config import TrainConfig, build_degradation, build_denoiser, build_sampler
from colddiff.degradations import Blur, Degradation, Heat, ImageMixing, Inpaint, SuperResolution
from colddiff.samplers import ColdSampler
from tests.conftest import X0Oracle

T = 6
SHAPE = (3, 1, 8, 8)


def _images(seed: int, n: int = SHAPE[0]) -> Tensor:
    return torch.rand(n, *SHAPE[1:], dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


MIXED_IN = _images(99, 10)

#: Every built-in that takes ``noise``, small: ``make(noise)``.
BUILT_INS: dict[str, Callable[[object], Degradation]] = {
    "blur": lambda noise: Blur(num_timesteps=T, sigma_max=2.0, noise=noise),
    "blur_official": lambda noise: Blur(official=True, num_timesteps=T, noise=noise),
    "superres": lambda noise: SuperResolution(num_timesteps=2, noise=noise),
    "inpaint": lambda noise: Inpaint(num_timesteps=T, noise=noise),
    "inpaint_middle": lambda noise: Inpaint(num_timesteps=T, center="middle", noise=noise),
    "mixing": lambda noise: ImageMixing(Schedule.linear(0.05, 0.5, T), MIXED_IN, noise=noise),
    "heat": lambda noise: Heat(num_timesteps=T, sigma_max=4.0, noise=noise),
}


def _levels(deg: Degradation) -> list[float]:
    return deg.noise_levels.tolist()  # type: ignore[no-any-return]


LEVEL = r"^noise must be a finite number >= 0, got "
EITHER = (r"^noise must be a finite number >= 0 \(the level at every step t >= 1\) or a sequence of "
          r"T \+ 1 = \d+ of them, one per step t = 0\.\.T; got ")
SCHEDULE = (r"^noise, as a schedule, must be T \+ 1 = \d+ finite numbers >= 0, one per step "
            r"t = 0\.\.T, the first 0 \(x_0 is the clean image\); got ")


@pytest.mark.parametrize("name", ["blur", "superres", "inpaint", "mixing", "fashion_mnist", "heat"])
@pytest.mark.parametrize(("bad", "message"), [
    (-0.1, LEVEL + r"-0\.1$"), (math.nan, LEVEL + "nan$"), (math.inf, LEVEL + "inf$"),
    (True, EITHER + "True$"), ("0.1", EITHER + "'0.1'$"), (None, EITHER + "None$"),
    ([0.0, 0.1], SCHEDULE + "2 values$"), ([0.1] * 1001, SCHEDULE), ([0.0, -0.1] + [0.0] * 999, SCHEDULE),
    ([0.0, math.nan] + [0.0] * 999, SCHEDULE),
    (10**400, LEVEL + "10000"), ([0.0, 10**400] + [0.0] * 999, SCHEDULE)])  # too large for a float
def test_a_bad_noise_is_refused_naming_noise_and_what_it_accepts(name: str, bad: object,
                                                                  message: str) -> None:
    """Every built-in with ``noise``, created by name as a config does (T = 1000 for blur and the
    mixings, 100 for heat; superres and inpaint, T = 3 and 50, refuse the 1001 values as the
    wrong length)."""
    with pytest.raises(ValueError, match=message):
        degradations.create(name, schedule=Schedule.preset("default"), noise=bad)


def test_a_list_of_booleans_is_refused_and_a_float32_tensor_read_in_float64() -> None:
    with pytest.raises(ValueError, match=r"^noise must be a finite number >= 0 \(the level at every step t "
                                         r">= 1\) or a sequence of T \+ 1 = 3 of them, one per step "
                                         r"t = 0\.\.T; got \[False, True, True\]$"):
        Blur(num_timesteps=2, noise=[False, True, True])
    levels = Blur(num_timesteps=2, noise=torch.tensor([0.0, 0.1, 0.3])).noise_levels
    assert levels.dtype == torch.float64
    assert levels.tolist() == [0.0, float(torch.tensor(0.1)), float(torch.tensor(0.3))]


def test_a_schedule_must_start_at_zero_and_may_be_a_tensor() -> None:
    with pytest.raises(ValueError, match=SCHEDULE + r"\[0\.5, 0\.5, 0\.5\]$"):
        Blur(num_timesteps=2, noise=[0.5, 0.5, 0.5])
    deg = Blur(num_timesteps=2, noise=torch.tensor([0.0, 0.1, 0.3], dtype=torch.float64))
    assert _levels(deg) == [0.0, 0.1, 0.3] and deg.noise == (0.0, 0.1, 0.3)
    assert repr(deg).endswith("noise=(0.0, 0.1, 0.3))")


@pytest.mark.parametrize("name", BUILT_INS)
@pytest.mark.parametrize("level", [0.3, 1.7])
def test_a_named_shape_gives_its_levels(name: str, level: float) -> None:
    """``{"level": L, "shape": ...}``: ``constant`` is the number ``L``, ``linear`` is ``L t / T``,
    ``schedule`` is ``L sqrt(1 - alpha_bar_t)``, for the mixing only (the others do not weigh their
    images by a schedule)."""
    make = BUILT_INS[name]
    steps = make(0.0).num_timesteps
    constant = make({"level": level, "shape": "constant"})
    assert _levels(constant) == _levels(make(level))
    assert constant.noise == {"level": level, "shape": "constant"}
    linear = make({"level": level, "shape": "linear"})
    assert _levels(linear) == pytest.approx([level * t / steps for t in range(steps + 1)], rel=1e-15, abs=0)
    assert linear.noise == {"level": level, "shape": "linear"}
    if name == "mixing":
        alpha_bar = Schedule.linear(0.05, 0.5, T).alpha_bar.tolist()
        shaped = make({"level": level, "shape": "schedule"})
        expected = [level * math.sqrt(1.0 - a) for a in alpha_bar]
        assert _levels(shaped) == pytest.approx(expected, rel=1e-15, abs=0) and expected[0] == 0.0
        assert shaped.noise == {"level": level, "shape": "schedule"}
    else:
        with pytest.raises(ValueError, match=r"^noise with shape 'schedule' needs a degradation that weighs "
                                             r"its images by a schedule of T = \d+ steps \(mixing, "
                                             r"fashion_mnist\); this one does not weigh its images by a "
                                             r"schedule: use"):
            make({"level": level, "shape": "schedule"})


NAMED = (r"^noise, as a named shape, must be \{'level': a finite number >= 0, 'shape': one of "
         r"'constant', 'linear', 'schedule'\}; got ")


@pytest.mark.parametrize("bad", [
    {"level": 0.1}, {"level": 0.1, "shape": "cosine"}, {"level": -0.1, "shape": "linear"},
    {"level": True, "shape": "linear"}, {"level": math.inf, "shape": "constant"},
    {"level": "0.1", "shape": "linear"}, {"level": 0.1, "shape": "linear", "t": 1},
    {"level": 10**400, "shape": "linear"}])
def test_a_bad_named_shape_is_refused_naming_noise(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=NAMED):
        degradations.create("fashion_mnist", schedule=Schedule.preset("default"), noise=bad)


def test_the_schedule_shape_is_refused_for_blur_even_given_a_schedule() -> None:
    """Blur takes a schedule for its length only: its alpha_bar would mean nothing for the noise."""
    shaped = {"level": 0.1, "shape": "schedule"}
    with pytest.raises(ValueError, match=r"T = 1000 steps \(mixing, fashion_mnist\); this one does not"):
        degradations.create("blur", schedule=Schedule.preset("default"), noise=shaped)


def test_a_config_with_a_named_shape_round_trips_and_its_soft_sampler_adds_noise(tmp_path: Path) -> None:
    """The shape stays a shape in ``config.toml`` (not 1,001 numbers), and its rising levels are
    what the ``soft`` sampler needs: its noise steps draw from the generator."""
    config = TrainConfig(degradation="fashion_mnist", predict="x0", sampler="soft",
                         degradation_kwargs={"noise": {"level": 0.5, "shape": "schedule"}})
    config.save(tmp_path / "config.toml")
    assert 'noise = {level = 0.5, shape = "schedule"}' in (tmp_path / "config.toml").read_text()
    loaded = TrainConfig.load(tmp_path / "config.toml")
    assert loaded.degradation_kwargs == config.degradation_kwargs
    deg = build_degradation(loaded)
    alpha_bar_T = deg.schedule.alpha_bar[-1].item()  # type: ignore[union-attr]
    assert _levels(deg)[-1] == pytest.approx(0.5 * math.sqrt(1 - alpha_bar_T), rel=1e-15)
    sampler = build_sampler(loaded, build_denoiser(loaded, deg))
    assert type(sampler).__name__ == "SoftSampler"
    levels = _levels(deg)
    assert all(later > earlier for earlier, later in itertools.pairwise(levels))


@pytest.mark.parametrize("name", BUILT_INS)
def test_noise_zero_keeps_the_degradation_as_it_was(name: str) -> None:
    """Default behaviour is untouched: no noise, the same source (the same draws), the same x_t."""
    deg = BUILT_INS[name](0.0)
    own_source = name in ("inpaint", "mixing")
    assert not deg.noisy and deg.has_source == deg.own_source == own_source
    assert _levels(deg) == [0.0] * (deg.num_timesteps + 1)
    x0 = _images(0)
    source = deg.sample_source(x0, generator=torch.Generator().manual_seed(1))
    assert (source is None) == (not own_source)
    assert source is None or source.shape == ((3, 2) if name == "inpaint" else x0.shape)
    own, noise = deg.split_noise(source, x0)
    assert own is source and noise is None
    assert deg.add_noise(x0, 1, None) is x0
    assert "noise" not in repr(deg)


@pytest.mark.parametrize("name", BUILT_INS)
def test_a_noisy_degradation_is_the_plain_one_plus_its_noise_at_each_step(name: str) -> None:
    noisy, plain = BUILT_INS[name](0.05), BUILT_INS[name](0.0)
    assert noisy.noisy and noisy.has_source and _levels(noisy) == [0.0] + [0.05] * noisy.num_timesteps
    x0 = _images(0)
    source = noisy.sample_source(x0, generator=torch.Generator().manual_seed(1))
    own, z = noisy.split_noise(source, x0)
    assert z is not None and z.shape == x0.shape and (own is None) == (not noisy.own_source)
    assert noisy.join_noise(own, z).equal(source)  # type: ignore[arg-type]
    for t in range(noisy.num_timesteps + 1):
        expected = plain.degrade(x0, t, own) + (0.05 if t else 0.0) * z
        torch.testing.assert_close(noisy.degrade(x0, t, source), expected, rtol=0, atol=1e-15)
    assert torch.equal(noisy.degrade(x0, 0, source), x0)
    assert f"noise={0.05!r}" in repr(noisy)


@pytest.mark.parametrize("name", BUILT_INS)
def test_a_noise_schedule_gives_each_step_its_own_level(name: str) -> None:
    steps = BUILT_INS[name](0.0).num_timesteps
    levels = [0.01 * t * t for t in range(steps + 1)]
    noisy, plain = BUILT_INS[name](levels), BUILT_INS[name](0.0)
    x0 = _images(2)
    source = noisy.sample_source(x0, generator=torch.Generator().manual_seed(3))
    own, z = noisy.split_noise(source, x0)
    assert z is not None
    t = torch.tensor([0, 1, steps])
    expected = plain.degrade(x0, t, own) + torch.tensor(levels, dtype=x0.dtype)[t].view(-1, 1, 1, 1) * z
    torch.testing.assert_close(noisy.degrade(x0, t, source), expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("name", BUILT_INS)
def test_the_noise_is_recovered_from_the_clean_image(name: str) -> None:
    """``renoise`` gives back exactly the source a clean image was degraded with (the own part
    kept, the noise re-estimated); ``source_from_x0`` does where the degradation recovers its
    source: the noise alone, or, for mixing, a pair that degrades ``x0`` to ``x_t`` again."""
    deg = BUILT_INS[name](0.1)
    x0 = _images(4)
    source = deg.sample_source(x0, generator=torch.Generator().manual_seed(5))
    assert source is not None
    for t in range(1, deg.num_timesteps + 1):
        x_t = deg.degrade(x0, t, source)
        torch.testing.assert_close(deg.renoise(x_t, t, x0, source), source, rtol=0, atol=1e-12)
        if not deg.recovers_source:
            assert name == "inpaint" and deg.source_is_given  # its centres come with the image
            continue
        recovered = deg.source_from_x0(x_t, t, x0)
        torch.testing.assert_close(deg.degrade(x0, t, recovered), x_t, rtol=0, atol=1e-12)
        if not deg.own_source:
            torch.testing.assert_close(recovered, source, rtol=0, atol=1e-12)


def test_noisy_mixing_splits_the_residual_jointly_by_least_norm() -> None:
    deg = ImageMixing(Schedule.linear(0.05, 0.5, T), MIXED_IN, noise=0.2)
    # The mixed-in image alone no longer gives x0 (a bool, as documented), the pair does.
    assert deg.invertible is False and deg.recovers_source is True
    x0, x_t = _images(6), _images(7)
    signal, mix = deg.weights(3, x0)
    image, noise = deg.split_noise(deg.source_from_x0(x_t, 3, x0), x0)
    assert image is not None and noise is not None
    residual = x_t - signal * x0
    total = mix**2 + 0.04
    torch.testing.assert_close(image.view_as(x0), mix * residual / total, rtol=0, atol=1e-14)
    torch.testing.assert_close(noise, 0.2 * residual / total, rtol=0, atol=1e-14)
    assert deg.recovers_source and not deg.invertible and deg.start_is_source and not deg.source_is_given


@pytest.mark.parametrize(("name", "source"), [("blur", "estimate"), ("blur_official", "estimate"),
                                              ("superres", "estimate"), ("inpaint", "fixed"),
                                              ("inpaint_middle", "estimate"), ("mixing", "fixed"),
                                              ("mixing", "estimate"), ("heat", "estimate")])
@pytest.mark.parametrize("t_start", [None, 1, 2])
@pytest.mark.parametrize("algorithm", [1, 2])
def test_a_perfect_restorer_undoes_every_noisy_degradation(name: str, source: str, t_start: int | None,
                                                         algorithm: int) -> None:
    """With the noise re-estimated at each step the cold sampler ends exactly at the clean image,
    from the start or part-way, whatever the algorithm (for mixing with a fixed source too: the
    re-estimated noise absorbs what the start, standing in for the mixed-in image, gets wrong)."""
    deg = BUILT_INS[name](0.1)
    x0 = _images(8)
    drawn = deg.sample_source(x0, generator=torch.Generator().manual_seed(9))
    start = t_start or deg.num_timesteps
    x_t = deg.degrade(x0, start, drawn)
    sampler = ColdSampler(Denoiser(X0Oracle(x0), deg, predict="x0"), algorithm=algorithm,  # type: ignore[arg-type]
                          source=source, clip_x0=False)  # type: ignore[arg-type]
    given = drawn if deg.source_is_given else None
    restored = sampler.sample(x_t, t_start=t_start, source=given)
    torch.testing.assert_close(restored, x0, rtol=0, atol=1e-10)


def test_restoring_noisy_random_inpainting_needs_only_the_centres() -> None:
    deg = Inpaint(num_timesteps=T, noise=0.1)
    x0 = _images(10)
    drawn = deg.sample_source(x0, generator=torch.Generator().manual_seed(11))
    centres, _ = deg.split_noise(drawn, x0)
    assert centres is not None and centres.shape == (3, 2)
    denoiser = Denoiser(X0Oracle(x0), deg, predict="x0")
    restored = ColdSampler(denoiser, clip_x0=False).sample(deg.degrade(x0, T, drawn), source=centres)
    torch.testing.assert_close(restored, x0, rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="source='estimate' needs a degradation that can recover its source"):
        ColdSampler(denoiser, source="estimate")


def test_noisy_mixing_predicts_only_the_clean_image() -> None:
    deg = ImageMixing(Schedule.linear(0.05, 0.5, T), MIXED_IN, noise=0.1)
    net = X0Oracle(_images(0))
    for predict in ("eps", "v"):
        with pytest.raises(ValueError, match=f"predict='{predict}' needs"):
            Denoiser(net, deg, predict=predict)  # type: ignore[arg-type]
    assert Denoiser(net, deg, predict="x0").predict == "x0"


class _Recorder(nn.Module):
    """Returns zeros and keeps the last batch it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros((), dtype=torch.float64))
        self.seen: Tensor | None = None

    def forward(self, x_t: Tensor, t: Tensor) -> Tensor:
        self.seen = x_t.detach().clone()
        return torch.zeros_like(x_t) + self.anchor


@pytest.mark.parametrize("name", BUILT_INS)
def test_training_sees_the_noisy_images(name: str) -> None:
    deg, plain = BUILT_INS[name](0.1), BUILT_INS[name](0.0)
    net = _Recorder()
    x0 = _images(12)
    Denoiser(net, deg, predict="x0").loss(x0, generator=torch.Generator().manual_seed(13))
    generator = torch.Generator().manual_seed(13)  # the loss's draws again: t, then the source
    t = torch.randint(1, deg.num_timesteps + 1, (x0.shape[0],), generator=generator)
    own, z = deg.split_noise(deg.sample_source(x0, generator=generator), x0)
    assert net.seen is not None and z is not None
    torch.testing.assert_close(net.seen, plain.degrade(x0, t, own) + 0.1 * z, rtol=0, atol=1e-15)


def test_the_mixing_prior_carries_the_noise_of_step_t() -> None:
    noisy = ImageMixing(Schedule.linear(0.05, 0.5, T), MIXED_IN, noise=0.3)
    plain = ImageMixing(Schedule.linear(0.05, 0.5, T), MIXED_IN)
    generator = torch.Generator().manual_seed(14)
    images = plain.prior(4, generator=generator)
    expected = images + 0.3 * torch.randn(images.shape, generator=generator, dtype=images.dtype)
    torch.testing.assert_close(noisy.prior(4, generator=torch.Generator().manual_seed(14)), expected,
                               rtol=0, atol=0)


@pytest.mark.parametrize("fresh", [-0.5, math.nan, math.inf, True, "1"])
def test_fresh_noise_must_be_a_factor_for_a_noisy_degradation(fresh: object) -> None:
    noisy = Denoiser(X0Oracle(_images(0)), Blur(num_timesteps=T, noise=0.1), predict="x0")
    with pytest.raises(ValueError, match="fresh_noise must be None or a finite number >= 0 for a "
                                         "degradation with noise, got"):
        ColdSampler(noisy, source="estimate", fresh_noise=fresh)  # type: ignore[arg-type]
    plain = Denoiser(X0Oracle(_images(0)), Blur(num_timesteps=T), predict="x0")
    with pytest.raises(ValueError, match=r"got 1\.25 for Blur\(num_timesteps=6, sigma_max=6\.0\)"):
        ColdSampler(plain, fresh_noise=1.25)


@pytest.mark.parametrize("name", ["blur", "superres", "mixing", "heat"])
def test_fresh_noise_is_the_next_level_plus_fresh_noise_at_its_level(name: str) -> None:
    """``x_s = D(x0_hat, s) + fresh_noise * noise_s * eps``, the noise drawn by the sampler, none
    after the last step."""
    deg = BUILT_INS[name](0.1)
    x0 = _images(15)
    source = "fixed" if name == "mixing" else "estimate"
    sampler = ColdSampler(Denoiser(X0Oracle(x0), deg, predict="x0"), source=source,  # type: ignore[arg-type]
                          fresh_noise=1.5, clip_x0=False)
    draws = [_images(100 + k) - 0.5 for k in range(9)]
    supply = iter(draws)
    sampler.noise = lambda like, generator: next(supply)  # type: ignore[method-assign]
    states: list[Tensor] = []
    drawn = deg.sample_source(x0, generator=torch.Generator().manual_seed(16))
    start = deg.degrade(x0, deg.num_timesteps, drawn)
    final = sampler.sample(start, callback=lambda i, t, x_t, x0_hat: states.append(x_t))
    own = start if name == "mixing" else None  # the fixed source: the start
    for i, (state, t) in enumerate(zip(states[1:], range(deg.num_timesteps - 1, 0, -1), strict=True)):
        noise = 1.5 * draws[i]
        expected = deg.degrade(x0, t, noise if own is None else deg.join_noise(own, noise))
        torch.testing.assert_close(state, expected, rtol=0, atol=1e-12)
    assert torch.equal(final, x0)


class _Fade(Degradation):
    """A plugin-style deterministic degradation that opts in to the noise: it hands ``noise`` to
    the base class and ends ``degrade`` with ``add_noise``."""

    def degrade(self, x0: Tensor, t: Tensor | int, source: Tensor | None = None) -> Tensor:
        steps = degradations.check_timesteps(t, x0, self.num_timesteps).to(x0.dtype).view(-1, 1, 1, 1)
        faded = x0 * (1 - 0.5 * steps / self.num_timesteps)
        return self.add_noise(faded, t, self.split_noise(source, x0)[1])


def test_a_plugin_gets_the_noise_from_the_base_class() -> None:
    plain, noisy = _Fade(num_timesteps=T), _Fade(num_timesteps=T, noise=0.1)
    assert not plain.has_source and plain.sample_source(_images(0)) is None
    assert noisy.has_source and not noisy.own_source and noisy.recovers_source
    assert repr(noisy) == "_Fade(num_timesteps=6, noise=0.1)"
    x0 = _images(17)
    z = noisy.sample_source(x0, generator=torch.Generator().manual_seed(18))
    assert z is not None
    torch.testing.assert_close(noisy.degrade(x0, T, z), plain.degrade(x0, T) + 0.1 * z, rtol=0, atol=1e-15)
    torch.testing.assert_close(noisy.source_from_x0(noisy.degrade(x0, 3, z), 3, x0), z, rtol=0, atol=1e-12)
    sampler = ColdSampler(Denoiser(X0Oracle(x0), noisy, predict="x0"), source="estimate", clip_x0=False)
    torch.testing.assert_close(sampler.sample(noisy.degrade(x0, T, z)), x0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("fresh", [0.0, 0.5])
def test_fresh_noise_is_drawn_from_the_samplers_generator(fresh: float) -> None:
    deg = Blur(num_timesteps=T, noise=0.1)
    x0 = _images(15)
    sampler = ColdSampler(Denoiser(X0Oracle(x0), deg, predict="x0"), source="estimate", fresh_noise=fresh,
                          clip_x0=False)
    start = deg.degrade(x0, T, deg.sample_source(x0, generator=torch.Generator().manual_seed(16)))

    def states(seed: int) -> list[Tensor]:
        seen: list[Tensor] = []
        sampler.sample(start, generator=torch.Generator().manual_seed(seed),
                       callback=lambda i, t, x_t, x0_hat: seen.append(x_t))
        return seen

    torch.manual_seed(0)  # the global generator is not used: another global seed changes nothing
    first = states(5)
    torch.manual_seed(1)
    assert all(torch.equal(a, b) for a, b in zip(first, states(5), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(first, states(6), strict=True)) == (fresh == 0)


def test_the_noise_at_a_noiseless_step_is_zero_and_levels_follow_the_images_type() -> None:
    deg = Blur(num_timesteps=T, noise=0.1)
    x0 = _images(0)
    x_t = x0 + 0.25  # not D(x0, 0) = x0: the noise would be the residual over a zero level
    assert torch.equal(deg.renoise(x_t, 0, x0, None), torch.zeros_like(x0))
    assert deg.noise_at(1, x0.float()).dtype == torch.float32
    assert deg.noise_at(1, x0.double()).dtype == torch.float64


def test_the_blur_prior_carries_the_noise_of_step_T_of_a_schedule() -> None:
    train = _images(1, n=64)
    levels = [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.4]  # T = 6: the last level, 0.4, is the prior's
    plain = Blur(num_timesteps=T).fit_prior(train)
    noisy = Blur(num_timesteps=T, noise=levels).fit_prior(train)
    a = plain.prior(4000, generator=torch.Generator().manual_seed(0))
    b = noisy.prior(4000, generator=torch.Generator().manual_seed(0))  # the same blur draws first
    assert float((b - a).std()) == pytest.approx(0.4, rel=0.01)
    assert float((b - a).mean()) == pytest.approx(0.0, abs=0.002)
