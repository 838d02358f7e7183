import itertools
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from colddiff import Schedule, data, degradations
from colddiff.degradations import (
    Blur,
    DataMixing,
    FashionMNISTMixing,
    GaussianNoise,
    ImageMixing,
    PriorUnavailableError,
    SeparableBlur,
)

SHORT = Schedule.linear(1e-4, 0.1, 50)


def all_degradations(shape: tuple[int, int, int]) -> list[degradations.Degradation]:
    pool = torch.rand(7, *shape, generator=torch.Generator().manual_seed(1))
    return [GaussianNoise(SHORT, image_shape=shape), ImageMixing(SHORT, pool), Blur(num_timesteps=50)]


@given(batch=st.integers(1, 4), channels=st.integers(1, 3), height=st.integers(1, 12),
       width=st.integers(1, 12), seed=st.integers(0, 2**16))
def test_degrade_at_t0_is_the_identity(batch: int, channels: int, height: int, width: int,
                                       seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(batch, channels, height, width, generator=g)
    for deg in all_degradations((channels, height, width)):
        source = deg.sample_source(x0, generator=g)
        assert torch.equal(deg.degrade(x0, torch.zeros(batch, dtype=torch.long), source), x0)
        assert torch.equal(deg.degrade(x0, 0, source), x0)


def test_gaussian_degrade_has_the_right_mean_and_variance() -> None:
    schedule = Schedule.preset("default")
    deg = GaussianNoise(schedule)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(1, 1, 28, 28, generator=g).expand(4000, -1, -1, -1)
    for t in (1, 100, 500, 1000):
        x_t = deg.degrade(x0, t, deg.sample_source(x0, generator=g))
        alpha_bar = schedule.alpha_bar[t].item()
        mean, var = x_t.mean(0), x_t.var(0)
        # 4000 draws: the sample mean's std is sqrt(var / 4000) and the variance's about
        # var * sqrt(2 / 4000); 5 standard errors over 784 pixels is a safe bound.
        mean_error = 5 * math.sqrt((1 - alpha_bar) / 4000)
        assert (mean - math.sqrt(alpha_bar) * x0[0]).abs().max() < mean_error
        assert (var - (1 - alpha_bar)).abs().max() < 5 * (1 - alpha_bar) * math.sqrt(2 / 4000)


@given(seed=st.integers(0, 2**16), t=st.integers(1, 50))
def test_mixing_source_and_clean_image_determine_each_other(seed: int, t: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(3, 1, 5, 5, generator=g, dtype=torch.float64)
    for deg in all_degradations((1, 5, 5))[:2]:
        source = deg.sample_source(x0, generator=g)
        assert source is not None
        x_t = deg.degrade(x0, t, source)
        torch.testing.assert_close(deg.source_from_x0(x_t, t, x0), source)
        torch.testing.assert_close(deg.x0_from_source(x_t, t, source), x0)


def test_image_mixing_draws_sources_from_its_images() -> None:
    pool = torch.rand(5, 1, 4, 4)
    deg = ImageMixing(SHORT, pool, prior_images=pool[:2])
    x0 = torch.zeros(64, 1, 4, 4)
    sources = deg.sample_source(x0, generator=torch.Generator().manual_seed(0))
    matches = (sources[:, None] == pool[None]).flatten(2).all(-1)
    assert matches.any(1).all() and matches.any(0).all(), "every source is a pool image, all used"
    prior = deg.prior(32, generator=torch.Generator().manual_seed(0))
    assert (prior[:, None] == pool[None, :2]).flatten(2).all(-1).any(1).all()
    # A dataset of (image, label) pairs works as well as a tensor.
    dataset = data.ImageDataset(pool, torch.zeros(5, dtype=torch.long))
    assert ImageMixing(SHORT, dataset).sample_source(x0[:2]).shape == (2, 1, 4, 4)
    with pytest.raises(ValueError, match="mixing images"):
        deg.sample_source(torch.zeros(2, 1, 5, 5))


def test_fashion_mnist_mixing_uses_the_train_split_and_starts_from_the_test_split(
        data_dir: Path) -> None:
    deg = degradations.create("fashion_mnist", schedule=SHORT)
    assert isinstance(deg, FashionMNISTMixing) and deg.num_timesteps == 50
    train = data.fashion_mnist(train=True).images
    test = data.fashion_mnist(train=False).images
    g = torch.Generator().manual_seed(0)
    sources = deg.sample_source(torch.zeros(8, 1, 28, 28), generator=g)
    prior = deg.prior(8, generator=g)
    for images, split in ((sources, train), (prior, test)):
        flat = split.flatten(1)
        for image in images.flatten(1):
            assert (flat == image).all(1).any()


def test_fashion_prior_without_data_says_what_it_needs(tmp_path: Path) -> None:
    deg = FashionMNISTMixing(SHORT, root=tmp_path, download=False)
    with pytest.raises(PriorUnavailableError, match=r"FashionMNIST/raw"):
        deg.prior(2)


def test_blur_smooths_more_with_t_and_keeps_constants() -> None:
    deg = Blur(num_timesteps=10, sigma_max=4.0)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(2, 3, 16, 12, generator=g)
    variation = [deg.degrade(x0, t).diff(dim=-1).abs().mean().item() for t in range(11)]
    assert all(a > b for a, b in itertools.pairwise(variation))
    constant = torch.full((1, 1, 9, 9), 0.3)
    torch.testing.assert_close(deg.degrade(constant, 10), constant)
    # Per-sample steps: each image is blurred to its own t.
    t = torch.tensor([3, 7])
    torch.testing.assert_close(deg.degrade(x0, t)[1], deg.degrade(x0[1:], 7)[0])


def test_blur_prior_needs_fitting_then_matches_blurred_statistics() -> None:
    deg = Blur(num_timesteps=20, sigma_max=6.0)
    with pytest.raises(PriorUnavailableError, match="fit_prior"):
        deg.prior(4)
    g = torch.Generator().manual_seed(0)
    images = torch.rand(500, 1, 10, 10, generator=g)
    deg.fit_prior(images)
    samples = deg.prior(2000, generator=g)
    blurred = deg.degrade(images, 20)
    assert samples.shape == (2000, 1, 10, 10)
    torch.testing.assert_close(samples.mean(0), blurred.mean(0), atol=0.01, rtol=0)


def test_degradations_without_a_prior_or_source_say_so() -> None:
    x = torch.zeros(1, 1, 4, 4)
    assert Blur().sample_source(x) is None
    with pytest.raises(NotImplementedError, match=r"^Blur cannot recover the clean image from its source; "
                       r"use predict='x0'$"):
        Blur().x0_from_source(x, 1, x)
    with pytest.raises(NotImplementedError, match=r"^Blur cannot recover its source from the clean image$"):
        Blur().source_from_x0(x, 1, x)
    with pytest.raises(PriorUnavailableError, match=r"^Blur\.prior needs a fitted prior"):
        Blur().prior(2)

    class Shift(degradations.Degradation):  # the base class's own prior
        def degrade(self, x0: torch.Tensor, t: torch.Tensor | int, source: torch.Tensor | None = None
                    ) -> torch.Tensor:
            return x0 + degradations.check_timesteps(t, x0, self.num_timesteps).view(-1, 1, 1, 1)

    shift = Shift(num_timesteps=3)
    assert (shift.num_timesteps, shift.image_shape, shift.schedule) == (3, None, None)
    assert shift.prior_fitted
    assert shift.fit_prior(x) is shift and repr(shift) == "Shift(num_timesteps=3)"
    with pytest.raises(PriorUnavailableError, match=r"^Shift has no prior for unconditional sampling; start "
                       r"the sampler from degraded data instead \(degrade\(x0, num_timesteps, source\)\)$"):
        shift.prior(2)
    assert Shift().num_timesteps == 1000 and Shift(Schedule.preset("short")).num_timesteps == 200
    assert repr(degradations.GaussianNoise(Schedule.preset("short"))) == (
        "GaussianNoise(schedule=Schedule.linear(beta_start=0.0001, beta_end=0.1, num_timesteps=200))")
    assert repr(Blur(num_timesteps=4, sigma_max=2.0)) == "Blur(num_timesteps=4, sigma_max=2.0)"


@pytest.mark.parametrize(
    ("t", "message"),
    [
        (torch.tensor([0.5, 1.0]), "integer tensor"),
        (torch.tensor([1, 2, 3]), r"shape \(2,\)"),
        (torch.tensor([0, 51]), r"\[0, 50\]"),
        (torch.tensor([-1, 3]), r"\[0, 50\]"),
        (51, r"\[0, 50\]"),
        ("3", "integer tensor"),
    ],
)
def test_bad_timesteps_raise(t: object, message: str) -> None:
    x0 = torch.zeros(2, 1, 4, 4)
    for deg in all_degradations((1, 4, 4)):
        with pytest.raises(ValueError, match=message):
            deg.degrade(x0, t, deg.sample_source(x0))  # type: ignore[arg-type]


def test_bad_degradation_arguments_raise_naming_the_argument() -> None:
    x0 = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match="source is required"):
        GaussianNoise(SHORT).degrade(x0, 1)
    with pytest.raises(ValueError, match="source must have the shape"):
        GaussianNoise(SHORT).degrade(x0, 1, torch.zeros(2, 1, 4, 5))
    with pytest.raises(ValueError, match="x0 must be"):
        GaussianNoise(SHORT).degrade(torch.zeros(4, 4), 1, torch.zeros(4, 4))
    with pytest.raises(ValueError, match="schedule"):
        GaussianNoise("default")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="image_shape"):
        GaussianNoise(SHORT, image_shape=(28, 28))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sigma_max"):
        Blur(sigma_max=0)
    with pytest.raises(ValueError, match="num_timesteps"):
        Blur(num_timesteps=0)
    with pytest.raises(ValueError, match="images"):
        ImageMixing(SHORT, torch.zeros(0, 1, 4, 4)).sample_source(x0)


@given(channels=st.sampled_from([1, 3]), height=st.integers(2, 20), width=st.integers(2, 20),
       t=st.integers(0, 10), seed=st.integers(0, 100))
def test_every_built_in_degradation_works_at_any_image_shape(channels: int, height: int, width: int,
                                                             t: int, seed: int) -> None:
    """``degrade(x0, 0) == x0``; the output keeps the input's shape and dtype and stays finite."""
    generator = torch.Generator().manual_seed(seed)
    x0 = torch.rand(2, channels, height, width, generator=generator, dtype=torch.float64)
    shape = (channels, height, width)
    schedule = Schedule.linear(1e-4, 0.2, 10)
    pool = torch.rand(5, *shape, generator=generator, dtype=torch.float64)
    for deg in (GaussianNoise(schedule, image_shape=shape), Blur(schedule, image_shape=shape),
                ImageMixing(schedule, pool, image_shape=shape)):
        source = deg.sample_source(x0, generator=generator)
        assert torch.equal(deg.degrade(x0, 0, source), x0)
        out = deg.degrade(x0, t, source)
        assert out.shape == x0.shape and out.dtype == x0.dtype and bool(torch.isfinite(out).all())


def test_data_mixing_defaults_and_its_images_in_the_value_range(data_dir: Path) -> None:
    default = DataMixing(SHORT)
    assert (default.source, default.noisy) == ("fashion_mnist", False)
    assert default.noise_levels.abs().max().item() == 0.0
    signed = FashionMNISTMixing(SHORT, value_range=(-1.0, 1.0))
    test = data.fashion_mnist(train=False).images * 2 - 1  # [0, 1] mapped onto [-1, 1]
    prior = signed.prior(4, generator=torch.Generator().manual_seed(0))
    assert prior.min() >= -1 and prior.min() < -0.99
    flat = test.flatten(1)
    for image in prior.flatten(1):
        assert (flat == image).all(1).any()


class _Unblurred(SeparableBlur):
    """A plugin-style separable blur that leaves images as they are."""

    def operators(self, size: int) -> torch.Tensor:
        return torch.eye(size, dtype=torch.float64).expand(self.num_timesteps + 1, size, size)


def test_a_separable_blur_plugin_adds_no_noise_by_default() -> None:
    plugin = _Unblurred(num_timesteps=3)
    x0 = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert not plugin.noisy and plugin.sample_source(x0) is None
    assert torch.equal(plugin.degrade(x0, 3), x0)


def test_prior_device_is_the_device_else_the_generator_s_else_the_cpu() -> None:
    generator = torch.Generator()
    assert degradations.prior_device("meta", generator) == torch.device("meta")
    assert degradations.prior_device(torch.device("meta"), None) == torch.device("meta")
    assert degradations.prior_device(None, generator) == torch.device("cpu")
    assert degradations.prior_device(None, None) == torch.device("cpu")


PRIOR_SCHEDULE = Schedule.linear(1e-4, 0.02, 10)


@pytest.mark.parametrize("make", [
    lambda: degradations.GaussianNoise(PRIOR_SCHEDULE, image_shape=(1, 4, 4)),
    lambda: degradations.Blurring(PRIOR_SCHEDULE, image_shape=(1, 4, 4)),
    lambda: degradations.Blur(num_timesteps=3, image_shape=(1, 4, 4), noise=0.1).fit_prior(
        torch.rand(20, 1, 4, 4, generator=torch.Generator().manual_seed(0))),
    lambda: degradations.ImageMixing(PRIOR_SCHEDULE, torch.rand(5, 1, 4, 4), noise=0.1),
], ids=["gaussian", "blurring", "blur", "mixing"])
def test_every_built_in_prior_draws_where_prior_device_says(
        make: Callable[[], degradations.Degradation]) -> None:
    """On a CPU-only machine the ``meta`` device tells "the device asked for" from "the CPU"."""
    deg = make()
    assert deg.prior(2, device="meta").device == torch.device("meta")
    assert deg.prior(2, generator=torch.Generator()).device == torch.device("cpu")
    assert deg.prior(2).device == torch.device("cpu")
