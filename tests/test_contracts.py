"""The exact contract of the core's constructors and random draws: every bad argument's whole
message, the boundaries of every accepted range, and reproducibility from a generator.

Mutation testing (docs/contributing.md) showed that tests matching part of a message, or only
values far from a boundary, let wrong messages and off-by-one ranges through."""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import pytest
import torch
from conftest import X0Oracle
from torch import nn

from colddiff import Denoiser, Schedule, data, degradations, nets, samplers
from colddiff.degradations import Blur, Degradation, GaussianNoise, ImageMixing, PriorUnavailableError
from colddiff.samplers import ColdSampler, DDIMSampler, DDPMSampler, DPMSolverSampler

SHORT = Schedule.preset("short")


def gaussian_denoiser(predict: str = "eps") -> Denoiser:
    return Denoiser(nets.CNN(channels=[4, 4]), GaussianNoise(SHORT), predict=predict)  # type: ignore[arg-type]


def blur_denoiser() -> Denoiser:
    return Denoiser(nets.CNN(channels=[4, 4]), Blur(num_timesteps=5), predict="x0")


BAD: list[tuple[Callable[[], object], str]] = [
    (lambda: Schedule.from_betas([0.1, float("nan")]), "betas must be finite; got NaN or infinity"),
    (lambda: Schedule.from_betas([0.1, 1.0]), "betas must lie in the open interval (0, 1); got 1.0"),
    (lambda: Schedule.from_betas([0.0, 0.5]), "betas must lie in the open interval (0, 1); got 0.0"),
    (lambda: Schedule.from_betas([0.999] * 120),
     "betas destroy the signal completely: alpha_bar_T = exp(-829) underflows, and the clean image "
     "could not be recovered from x_T; use smaller betas or fewer steps"),
    (lambda: Schedule.linear(0.0, 0.02, 10), "beta_start must be a finite number in (0, 1), got 0.0"),
    (lambda: Schedule.linear(1e-4, 1.0, 10), "beta_end must be a finite number in (0, 1), got 1.0"),
    (lambda: Schedule.cosine(10, offset=0.0), "offset must be a finite number > 0, got 0.0"),
    (lambda: Schedule.cosine(10, max_beta=0.0), "max_beta must be a finite number in (0, 1), got 0.0"),
    (lambda: Denoiser(lambda x, t: x, GaussianNoise()),  # type: ignore[arg-type]
     "net must be an nn.Module with parameters (a trainable network), got function"),
    (lambda: Denoiser(nn.ReLU(), GaussianNoise()),
     "net must be an nn.Module with parameters (a trainable network), got an nn.Module without parameters"),
    (lambda: Denoiser(nets.CNN(), "gaussian"),  # type: ignore[arg-type]
     "degradation must be a colddiff.Degradation, got str"),
    (lambda: Denoiser(nets.CNN(), Blur(), predict="eps"),
     "predict='eps' needs a degradation with a source that the clean image can be recovered from; "
     "Blur has none, use predict='x0'"),
    (lambda: DDPMSampler(nets.CNN()), "denoiser must be a colddiff.Denoiser, got CNN"),  # type: ignore[arg-type]
    (lambda: DDPMSampler(gaussian_denoiser(), data_range=(1.0, 1.0)),
     "data_range must be finite (low, high) with low < high, got (1.0, 1.0)"),
    (lambda: DDPMSampler(blur_denoiser()),
     "DDPMSampler needs a denoiser for GaussianNoise; for Blur use ColdSampler (sampler 'cold')"),
    (lambda: DDIMSampler(blur_denoiser()),
     "DDIMSampler needs a denoiser for GaussianNoise; for Blur use ColdSampler (sampler 'cold')"),
    (lambda: DPMSolverSampler(blur_denoiser()),
     "DPMSolverSampler needs a denoiser for GaussianNoise; for Blur use ColdSampler (sampler 'cold')"),
    (lambda: DDIMSampler(gaussian_denoiser(), eta=1.01), "eta must be a number in [0, 1], got 1.01"),
    (lambda: DDIMSampler(gaussian_denoiser(), eta=-0.01), "eta must be a number in [0, 1], got -0.01"),
    (lambda: DDIMSampler(gaussian_denoiser(), eta="0"),  # type: ignore[arg-type]
     "eta must be a number in [0, 1], got '0'"),
    (lambda: DPMSolverSampler(gaussian_denoiser(), order=4), "order must be 1, 2 or 3, got 4"),  # type: ignore[arg-type]
    (lambda: DPMSolverSampler(gaussian_denoiser(), order=True), "order must be 1, 2 or 3, got True"),  # type: ignore[arg-type]
    (lambda: ColdSampler(Denoiser(X0Oracle(torch.zeros(1, 1, 4, 4)), _Uninvertible(SHORT), predict="x0"),
                         source="estimate"),
     "source='estimate' needs a degradation that can recover its source; _Uninvertible cannot, use "
     "source='fixed'"),
    (lambda: samplers.create("ddim", gaussian_denoiser()).prior(0), "n must be a positive integer, got 0"),
    (lambda: samplers.create("ddim", gaussian_denoiser()).prior(True),  # type: ignore[arg-type]
     "n must be a positive integer, got True"),
    (lambda: samplers.create("ddim", gaussian_denoiser()).timesteps(201),
     "sample_steps must be an integer in [1, 200] or None, got 201"),
    (lambda: samplers.create("ddim", gaussian_denoiser()).timesteps(True),  # type: ignore[arg-type]
     "sample_steps must be an integer in [1, 200] or None, got True"),
    (lambda: samplers.create("ddim", gaussian_denoiser()).sample(torch.full((1, 1, 28, 28), torch.inf)),
     "x_T holds NaN or infinite values"),
    (lambda: Blur(sigma_max=0.0), "sigma_max must be a finite number > 0, got 0.0"),
    (lambda: Blur(num_timesteps=0), "num_timesteps must be an integer >= 1, got 0"),
    (lambda: GaussianNoise(image_shape=(1, 28)),  # type: ignore[arg-type]
     "image_shape must be three positive ints (C, H, W), got (1, 28)"),
]


class _Uninvertible(GaussianNoise):
    invertible = False


@pytest.mark.parametrize(("make", "message"), BAD, ids=range(len(BAD)))
def test_each_bad_argument_gets_its_whole_message(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        make()


def test_the_boundaries_of_every_range_are_accepted() -> None:
    assert Schedule.cosine(10, max_beta=0.5).beta.max() <= 0.5
    assert DDIMSampler(gaussian_denoiser(), eta=1).eta == 1.0
    assert DDIMSampler(gaussian_denoiser(), eta=0).eta == 0.0
    sampler = DDPMSampler(gaussian_denoiser(), data_range=(-1, 1))
    assert sampler.data_range == (-1.0, 1.0)
    assert sampler.prior(1).shape == (1, 1, 28, 28)
    assert sampler.timesteps(1) == [200, 0] and sampler.timesteps(200) == list(range(200, -1, -1))
    assert Denoiser(nets.CNN(), GaussianNoise()).predict == "eps"


def test_random_draws_follow_the_generator() -> None:
    den = gaussian_denoiser()
    x0 = torch.rand(4, 1, 28, 28)

    def draws(seed: int) -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        sampler = DDPMSampler(den)
        return [den.loss(x0, generator=g).detach(), den.degradation.sample_source(x0, generator=g),
                den.degradation.prior(2, generator=g), sampler.noise(x0, g), sampler.prior(2, generator=g)]

    first, again, other = draws(0), draws(0), draws(1)
    for a, b, c in zip(first, again, other, strict=True):
        assert torch.equal(a, b) and not torch.equal(a, c)
    mixing = ImageMixing(SHORT, torch.rand(50, 1, 28, 28))
    for deg in (mixing,):
        a = deg.sample_source(x0, generator=torch.Generator().manual_seed(3))
        b = deg.sample_source(x0, generator=torch.Generator().manual_seed(3))
        c = deg.sample_source(x0, generator=torch.Generator().manual_seed(4))
        assert torch.equal(a, b) and not torch.equal(a, c)
        assert torch.equal(deg.prior(3, generator=torch.Generator().manual_seed(5)),
                           deg.prior(3, generator=torch.Generator().manual_seed(5)))
    noise = DDPMSampler(den).noise(x0.double(), None)
    assert noise.dtype == torch.float64 and noise.shape == x0.shape and noise.device == x0.device


def test_samplers_pass_each_step_its_times_and_predictions() -> None:
    """The step and callback see t, s, x_t and x0_hat of the step (checked with a recording sampler)."""
    seen: list[tuple[int, int, int, bool]] = []

    class Recording(DDIMSampler):
        def step(self, i: int, t: int, s: int, x_t: torch.Tensor, x0_hat: torch.Tensor, t_batch: torch.Tensor,
                 s_batch: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
            seen.append((i, t, s, bool(torch.all(t_batch == t) and torch.all(s_batch == s))))
            return super().step(i, t, s, x_t, x0_hat, t_batch, s_batch, generator)

    calls: list[tuple[int, int, bool]] = []
    sampler = Recording(gaussian_denoiser())
    x_T = sampler.prior(2, generator=torch.Generator().manual_seed(0))
    sampler.sample(x_T, 4, callback=lambda i, t, x_t, x0_hat: calls.append((i, t, x0_hat is not None)))
    assert seen == [(0, 200, 150, True), (1, 150, 100, True), (2, 100, 50, True), (3, 50, 0, True)]
    assert calls == [(0, 200, True), (1, 150, True), (2, 100, True), (3, 50, True)]


def test_the_blur_prior_is_its_mean_plus_its_factor_times_the_generators_noise() -> None:
    images = torch.rand(40, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    blur = Blur(num_timesteps=4, sigma_max=1.5).fit_prior(images)
    samples = blur.prior(3, generator=torch.Generator().manual_seed(9))
    z = torch.randn((3, 36), generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    blurred = blur.degrade(images, 4).flatten(1)
    centred = blurred - blurred.mean(0)
    covariance = centred.T @ centred / 39 + 1e-5 * torch.eye(36, dtype=torch.float64)
    expected = blurred.mean(0) + z @ torch.linalg.cholesky(covariance).T
    torch.testing.assert_close(samples, expected.view(3, 1, 6, 6).float())
    assert samples.device.type == "cpu" and samples.dtype == torch.float32
    with pytest.raises(ValueError, match=r"^images must hold at least one float image of shape "
                       r"\(C, H, W\); got a tensor of shape \(0, 1, 6, 6\) and dtype torch.float64$"):
        Blur().fit_prior(images[:0])


def test_images_are_stacked_from_datasets_of_images_or_pairs() -> None:
    from colddiff.degradations.images import as_image_tensor

    images = torch.rand(3, 5, 5)
    assert as_image_tensor("x", images).shape == (3, 1, 5, 5)
    assert torch.equal(as_image_tensor("x", [images[0], images[1]]), images[:2].unsqueeze(1))
    assert torch.equal(as_image_tensor("x", [(images[2], 7)]), images[2:].unsqueeze(1))


@pytest.mark.parametrize(("shape", "ok"), [((1, 2, 3), True), ([3, 4, 4], True), ((1, 0, 3), False),
                                          ((1, True, 3), False), ((1, 2.0, 3), False), ((1, 2), False)])
def test_image_shapes_are_three_positive_ints(shape: object, ok: bool) -> None:
    from colddiff.degradations import check_image_shape

    if ok:
        assert check_image_shape(shape) == tuple(shape)  # type: ignore[arg-type]
    else:
        with pytest.raises(ValueError, match=r"^image_shape must be three positive ints"):
            check_image_shape(shape)  # type: ignore[arg-type]


def test_a_batch_that_is_not_images_is_named_with_its_type_and_shape() -> None:
    from colddiff.degradations import check_images

    with pytest.raises(ValueError, match=r"^x must be a floating-point tensor of shape \(B, C, H, W\), got "
                       r"Tensor\(2, 3\)$"):
        check_images("x", torch.zeros(2, 3))
    with pytest.raises(ValueError,
                       match=r"^x must be a floating-point tensor of shape \(B, C, H, W\), got list$"):
        check_images("x", [1, 2])  # type: ignore[arg-type]


# ---------------------------------------------------------------- what the second mutation run asked for


class _SourceNotInvertible(GaussianNoise):
    invertible = False


def _shift_net() -> nn.Module:
    """A network whose output depends on its input, for the message tests below."""
    return nets.CNN(channels=[4, 4])


class _TupleNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor]:
        return (x,)


MORE_BAD: list[tuple[Callable[[], object], str]] = [
    (lambda: Denoiser(_shift_net(), _SourceNotInvertible(SHORT), predict="eps"),
     "predict='eps' needs a degradation with a source that the clean image can be recovered from; "
     "_SourceNotInvertible has none, use predict='x0'"),
    (lambda: Denoiser(_shift_net(), Blur(), predict="v"),
     "predict='v' needs a mixing degradation (x_t = sqrt(alpha_bar) x0 + sqrt(1 - alpha_bar) source); "
     "Blur is not one, use predict='x0'"),
    (lambda: Denoiser(_TupleNet(), GaussianNoise(SHORT))(torch.zeros(1, 1, 28, 28), torch.ones(1).long()),
     "the network must return a tensor shaped like its input x_t (1, 1, 28, 28), got tuple; check its "
     "output channels"),
    (lambda: GaussianNoise(SHORT, image_shape=None).degrade(torch.zeros(1, 1, 4, 4), 1),
     "source is required by GaussianNoise.degrade; draw one with sample_source(x0)"),
    (lambda: GaussianNoise("short"),  # type: ignore[arg-type]
     "schedule must be a colddiff.Schedule or None, got str"),
    (lambda: Blur(num_timesteps=2.5),  # type: ignore[arg-type]
     "num_timesteps must be an integer >= 1, got 2.5"),
    (lambda: ImageMixing(SHORT, torch.rand(3, 1, 4, 4)).sample_source(torch.zeros(2, 1, 5, 5)),
     "x0 has images of shape (1, 5, 5) but the mixing images are (1, 4, 4)"),
    (lambda: ImageMixing(SHORT, torch.zeros(0, 1, 4, 4)).sample_source(torch.zeros(2, 1, 4, 4)),
     "images must hold at least one float image of shape (C, H, W); got a tensor of shape (0, 1, 4, 4) "
     "and dtype torch.float32"),
    (lambda: ImageMixing(SHORT, torch.rand(3, 1, 4, 4), torch.zeros(0, 1, 4, 4)).prior(2),
     "prior_images must hold at least one float image of shape (C, H, W); got a tensor of shape "
     "(0, 1, 4, 4) and dtype torch.float32"),
    (lambda: Blur().prior(2),
     "Blur.prior needs a fitted prior over blurred images: call blur.fit_prior(training_images) first, "
     "or start from blur.degrade(x0, blur.num_timesteps)"),
    (lambda: samplers.create("ddim", Denoiser(_shift_net(), Blur(), predict="x0")),
     "DDIMSampler needs a denoiser for GaussianNoise; for Blur use ColdSampler (sampler 'cold')"),
    (lambda: samplers.create("cold", Denoiser(_shift_net(), GaussianNoise(SHORT, image_shape=None)))
     .sample(torch.zeros(0, 1, 4, 4)),
     "x_T is an empty batch; give at least one image of shape (C, H, W)"),
    (lambda: samplers.create("cold", gaussian_denoiser()).sample(torch.zeros(0, 1, 28, 28)),
     "x_T is an empty batch; give at least one image of shape (1, 28, 28)"),
]


@pytest.mark.parametrize(("make", "message"), MORE_BAD, ids=range(len(MORE_BAD)))
def test_more_bad_arguments_get_their_whole_message(make: Callable[[], object], message: str) -> None:
    with pytest.raises((ValueError, PriorUnavailableError), match="^" + re.escape(message) + "$"):
        make()


@pytest.mark.parametrize("make", [lambda: GaussianNoise(SHORT), lambda: Blur(num_timesteps=3),
                                  lambda: ImageMixing(SHORT, torch.rand(3, 1, 4, 4))])
def test_every_degradation_names_x0_when_it_is_not_a_batch(make: Callable[[], Degradation]) -> None:
    deg = make()
    message = r"^x0 must be a floating-point tensor of shape \(B, C, H, W\), got Tensor\(4, 4\)$"
    with pytest.raises(ValueError, match=message):
        deg.degrade(torch.zeros(4, 4), 1, torch.zeros(4, 4))
    if deg.has_source:
        with pytest.raises(ValueError, match=message):
            deg.sample_source(torch.zeros(4, 4))


def test_constructor_defaults_are_the_documented_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    den = gaussian_denoiser()
    assert samplers.create("ddpm", den).clip_x0 is True
    assert samplers.create("dpmsolver++", den).order == 2
    assert ColdSampler(den, data_range=(-1, 1)).data_range == (-1.0, 1.0)
    assert ImageMixing(SHORT, torch.rand(3, 1, 4, 4), image_shape=(1, 4, 4)).image_shape == (1, 4, 4)
    blur = Blur()
    assert (blur.sigma_max, blur.num_timesteps, blur.prior_fitted) == (6.0, 20, False)
    assert blur.sigma.shape == (21,) and blur.sigma[-1] == 6.0
    assert Blur(SHORT).num_timesteps == 200, "the schedule's T"
    assert Blur(sigma_max=0.5).sigma_max == 0.5
    one = GaussianNoise(Schedule.linear(0.1, 0.1, 1))
    assert one.num_timesteps == 1, "T = 1 is a valid process"

    calls: list[tuple[object, ...]] = []

    def fake(train: bool, root: object = None, *, download: bool = False, limit: int | None = None) -> object:
        calls.append((train, root, download))
        return data.ImageDataset(torch.rand(2, 1, 28, 28), torch.zeros(2, dtype=torch.long))

    monkeypatch.setattr("colddiff.data.datasets.fashion_mnist", fake)
    fashion = degradations.create("fashion_mnist")
    assert fashion.image_shape == (1, 28, 28)
    fashion.sample_source(torch.zeros(1, 1, 28, 28))
    fashion.prior(1)
    assert calls == [(True, None, True), (False, None, True)], "train split for sources, test for the prior"


def test_priors_without_a_generator_or_device_draw_on_the_cpu() -> None:
    images = torch.rand(10, 1, 4, 4, dtype=torch.float64)
    blur = Blur(num_timesteps=3, sigma_max=1.0, image_shape=(1, 4, 4)).fit_prior(images)
    for deg in (GaussianNoise(SHORT, image_shape=(1, 4, 4)), blur, ImageMixing(SHORT, images.float())):
        torch.manual_seed(0)
        drawn = deg.prior(2)
        assert drawn.shape == (2, 1, 4, 4) and drawn.device.type == "cpu"
        assert deg.prior(2, device="cpu").device.type == "cpu"


def test_the_blur_prior_divides_by_n_minus_1_even_for_two_images() -> None:
    images = torch.tensor([[[[0.0, 1.0]]], [[[1.0, 0.0]]]], dtype=torch.float64)  # (2, 1, 1, 2)
    blur = Blur(num_timesteps=1, sigma_max=1e-3).fit_prior(images, jitter=1e-9)
    blurred = blur.degrade(images, 1).flatten(1)
    covariance = (blurred - blurred.mean(0)).T @ (blurred - blurred.mean(0)) / 1 + 1e-9 * torch.eye(2)
    z = torch.randn((1, 2), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    # The unbiased estimate over two images: a factor 2 away from dividing by n.
    expected = blurred.mean(0) + z @ torch.linalg.cholesky(covariance).T
    torch.testing.assert_close(blur.prior(1, generator=torch.Generator().manual_seed(0)),
                               expected.view(1, 1, 1, 2).float())


def test_blur_matches_a_float64_reference_to_1e_12() -> None:
    x0 = torch.rand(2, 1, 5, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    blur = Blur(num_timesteps=4, sigma_max=2.0)
    for t in range(5):
        sigma = 2.0 * math.sqrt(t / 4)

        def kernel(size: int, sigma: float = sigma) -> torch.Tensor:
            if sigma == 0:
                return torch.eye(size, dtype=torch.float64)
            position = torch.arange(size, dtype=torch.float64)
            weights = torch.exp(-0.5 * (position[:, None] - position[None, :]) ** 2 / sigma**2)
            return weights / weights.sum(1, keepdim=True)

        expected = kernel(5) @ x0 @ kernel(7).T
        torch.testing.assert_close(blur.degrade(x0, t), expected, rtol=0, atol=1e-12)


def test_timesteps_are_returned_as_int64_whatever_integer_type_they_came_in() -> None:
    from colddiff.degradations import check_image_shape, check_timesteps

    x = torch.zeros(2, 1, 4, 4)
    for t in (torch.tensor([1, 2], dtype=torch.int32), torch.tensor([1, 2], dtype=torch.uint8), 1):
        assert check_timesteps(t, x, 5).dtype == torch.long
    with pytest.raises(ValueError, match=r"^image_shape must be three positive ints \(C, H, W\), got 3$"):
        check_image_shape(3)  # type: ignore[arg-type]


def test_mixing_weights_are_cached_per_dtype() -> None:
    deg = ImageMixing(SHORT, torch.rand(3, 1, 4, 4))
    x0 = torch.rand(2, 1, 4, 4, dtype=torch.float64)
    source = torch.rand(2, 1, 4, 4, dtype=torch.float64)
    deg.degrade(x0.float(), 7, source.float())  # fills the cache in float32 first
    alpha_bar = SHORT.alpha_bar[7].item()
    expected = math.sqrt(alpha_bar) * x0 + math.sqrt(1 - alpha_bar) * source
    torch.testing.assert_close(deg.degrade(x0, 7, source), expected, rtol=0, atol=1e-15)
    assert torch.equal(deg.source_from_x0(x0, 0, x0), torch.zeros_like(x0)), "no source at t = 0"


def test_ddim_noise_follows_the_generator_alone() -> None:
    den = gaussian_denoiser()
    sampler = DDIMSampler(den, eta=1.0)
    x_T = sampler.prior(2, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(1)
    first = sampler.sample(x_T, 5, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(2)  # the global generator must not matter
    again = sampler.sample(x_T, 5, generator=torch.Generator().manual_seed(3))
    other = sampler.sample(x_T, 5, generator=torch.Generator().manual_seed(4))
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_the_underflow_check_refuses_just_below_minus_700() -> None:
    per_step = 1 - math.exp(-700.5 / 100)  # log alpha_bar_T = -700.5
    with pytest.raises(ValueError, match=r"^betas destroy the signal completely: alpha_bar_T = exp\(-700\)"):
        Schedule.from_betas([per_step] * 100)
    assert Schedule.from_betas([1 - math.exp(-699.5 / 100)] * 100).num_timesteps == 100


def test_the_low_rank_blur_prior_keeps_the_covariance_when_the_rank_suffices(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the exact size the prior is V V^T + diag(r). With fewer images than PRIOR_RANK
    (and fewer values than that), V V^T is the whole sample covariance and r is only the
    jitter; draws are mean + V z + r z'."""
    monkeypatch.setattr(Blur, "EXACT_PRIOR_SIZE", 10)  # 1x6x6 = 36 values: the low-rank branch
    images = torch.rand(50, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    blur = Blur(num_timesteps=4, sigma_max=1.0).fit_prior(images, jitter=1e-9)
    blurred = blur.degrade(images, 4).flatten(1)
    centred = blurred - blurred.mean(0)
    covariance = centred.T @ centred / 49
    factor, residual = blur._prior_scale, blur._prior_residual
    assert factor is not None and residual is not None and factor.shape == (36, 36)
    torch.testing.assert_close(factor @ factor.T, covariance, rtol=0, atol=1e-12)
    jitter_only = torch.full((36,), 1e-9, dtype=torch.float64).sqrt()
    torch.testing.assert_close(residual, jitter_only, rtol=0, atol=1e-7)

    generator = torch.Generator().manual_seed(3)
    z = torch.randn((2, 36), generator=generator, dtype=torch.float64)
    z_residual = torch.randn((2, 36), generator=generator, dtype=torch.float64)
    expected = blurred.mean(0) + z @ factor.T + z_residual * residual
    torch.testing.assert_close(blur.prior(2, generator=torch.Generator().manual_seed(3)),
                               expected.view(2, 1, 6, 6).float())


def _blurred(blur: Blur, images: torch.Tensor) -> torch.Tensor:
    return blur.degrade(images.double(), blur.num_timesteps).flatten(1)


@pytest.mark.parametrize("contrast", [1.0, 0.01])  # 0.01: principal variances below 1
def test_the_low_rank_blur_prior_is_its_definition_computed_by_hand(contrast: float,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """3x6x6 images (108 values) above a 40-value exact limit: the top 5 directions of 30 evenly
    spaced images (around the mean of all 1,100), and each value's variance over all images
    (two chunks of the running sums) minus what the directions explain."""
    monkeypatch.setattr(Blur, "EXACT_PRIOR_SIZE", 40)
    monkeypatch.setattr(Blur, "PRIOR_RANK", 5)
    monkeypatch.setattr(Blur, "PRIOR_FIT_IMAGES", 30)
    images = contrast * torch.rand(1100, 3, 6, 6, generator=torch.Generator().manual_seed(0))  # float32 in
    blur = Blur(num_timesteps=3, sigma_max=0.8).fit_prior(images, jitter=1e-6)

    everything = _blurred(blur, images)
    mean = everything.mean(0)
    variance = everything.var(0)
    picks = torch.linspace(0, 1099, 30).round().long()
    centred = _blurred(blur, images[picks]) - mean
    eigenvalues, eigenvectors = torch.linalg.eigh(centred.T @ centred / 29)
    top_values, top_vectors = eigenvalues.flip(0)[:5], eigenvectors.flip(1)[:, :5]
    explained = top_vectors @ torch.diag(top_values) @ top_vectors.T
    factor, residual = blur._prior_scale, blur._prior_residual
    assert factor is not None and residual is not None and factor.shape == (108, 5)
    torch.testing.assert_close(blur._prior_mean, mean.view(3, 6, 6), rtol=0, atol=1e-12)
    torch.testing.assert_close(factor @ factor.T, explained, rtol=0, atol=1e-12)
    torch.testing.assert_close(residual**2, (variance - explained.diagonal()).clamp(min=0) + 1e-6,
                               rtol=0, atol=1e-12 * contrast)


@pytest.mark.parametrize(("n", "rank"), [(2, 1), (10, 9)])
def test_few_images_bound_the_rank_of_the_low_rank_prior(n: int, rank: int,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Blur, "EXACT_PRIOR_SIZE", 10)
    images = torch.rand(n, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
    blur = Blur(num_timesteps=2, sigma_max=0.8).fit_prior(images, jitter=1e-9)
    centred = _blurred(blur, images) - _blurred(blur, images).mean(0)
    factor = blur._prior_scale
    assert factor is not None and factor.shape == (36, rank), "n - 1 directions at most"
    torch.testing.assert_close(factor @ factor.T, centred.T @ centred / (n - 1), rtol=0, atol=1e-12)


def test_the_exact_prior_covers_exactly_its_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Blur, "EXACT_PRIOR_SIZE", 36)
    exact = Blur(num_timesteps=2).fit_prior(torch.rand(20, 1, 6, 6))
    assert exact._prior_residual is None and exact._prior_scale is not None
    assert exact._prior_scale.shape == (36, 36)


def test_fashion_mixing_asks_for_its_images_at_the_datas_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, object]] = []

    def fake_load(source: str, **options: object) -> data.ImageDataset:
        calls.append({"source": source, **options})
        return data.ImageDataset(torch.rand(3, 3, 16, 16), torch.zeros(3, dtype=torch.long))

    monkeypatch.setattr("colddiff.data.load", fake_load)
    from colddiff.degradations import FashionMNISTMixing

    mixing = FashionMNISTMixing(root="somewhere", download=False, image_shape=(3, 16, 16))
    assert mixing.sample_source(torch.zeros(2, 3, 16, 16)).shape == (2, 3, 16, 16)
    mixing.prior(1)
    assert calls == [{"source": "fashion_mnist", "train": train, "root": "somewhere", "download": False,
                      "channels": 3, "image_size": 16} for train in (True, False)]
    with pytest.raises(ValueError, match=r"^image_shape must be square for FashionMNISTMixing, got "
                       r"\(1, 16, 20\)$"):
        FashionMNISTMixing(image_shape=(1, 16, 20))


def test_missing_prior_images_name_the_degradation() -> None:
    def missing() -> torch.Tensor:
        raise data.DatasetNotFoundError("no files here")

    class Clothes(ImageMixing):
        pass

    message = r"^Clothes\.prior needs its prior images: no files here$"
    with pytest.raises(PriorUnavailableError, match=message):
        Clothes(SHORT, torch.rand(3, 1, 4, 4), missing).prior(2)
