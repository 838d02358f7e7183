"""The exact contract of the core's constructors and random draws: every bad argument's whole
message, the boundaries of every accepted range, and reproducibility from a generator.

Mutation testing (docs/contributing.md) showed that tests matching part of a message, or only
values far from a boundary, let wrong messages and off-by-one ranges through."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
import torch
from conftest import X0Oracle
from torch import nn

from colddiff import Denoiser, Schedule, nets, samplers
from colddiff.degradations import Blur, GaussianNoise, ImageMixing
from colddiff.samplers import ColdSampler, DDIMSampler, DDPMSampler, DPMSolverSampler

SHORT = Schedule.preset("short")


def gaussian_denoiser(predict: str = "eps") -> Denoiser:
    return Denoiser(nets.CNN(channels=[4, 4]), GaussianNoise(SHORT), predict=predict)  # type: ignore[arg-type]


def blur_denoiser() -> Denoiser:
    return Denoiser(nets.CNN(channels=[4, 4]), Blur(steps=5), predict="x0")


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
    (lambda: DPMSolverSampler(gaussian_denoiser(), order=3), "order must be 1 or 2, got 3"),  # type: ignore[arg-type]
    (lambda: DPMSolverSampler(gaussian_denoiser(), order=True), "order must be 1 or 2, got True"),  # type: ignore[arg-type]
    (lambda: ColdSampler(Denoiser(X0Oracle(torch.zeros(1, 1, 4, 4)), _Uninvertible(SHORT), predict="x0"),
                         source="estimate"),
     "source='estimate' needs a degradation that can recover its source; _Uninvertible cannot, use "
     "source='fixed'"),
    (lambda: samplers.create("ddim", gaussian_denoiser()).prior(0), "n must be a positive integer, got 0"),
    (lambda: samplers.create("ddim", gaussian_denoiser()).prior(True),  # type: ignore[arg-type]
     "n must be a positive integer, got True"),
    (lambda: samplers.create("ddim", gaussian_denoiser()).timesteps(201),
     "steps must be an integer in [1, 200] or None, got 201"),
    (lambda: samplers.create("ddim", gaussian_denoiser()).timesteps(True),  # type: ignore[arg-type]
     "steps must be an integer in [1, 200] or None, got True"),
    (lambda: samplers.create("ddim", gaussian_denoiser()).sample(torch.full((1, 1, 28, 28), torch.inf)),
     "x_T holds NaN or infinite values"),
    (lambda: Blur(sigma_max=0.0), "sigma_max must be a finite number > 0, got 0.0"),
    (lambda: Blur(steps=0), "steps must be an integer >= 1, got 0"),
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
    sampler.sample(x_T, steps=4, callback=lambda i, t, x_t, x0_hat: calls.append((i, t, x0_hat is not None)))
    assert seen == [(0, 200, 150, True), (1, 150, 100, True), (2, 100, 50, True), (3, 50, 0, True)]
    assert calls == [(0, 200, True), (1, 150, True), (2, 100, True), (3, 50, True)]


def test_the_blur_prior_is_its_mean_plus_its_factor_times_the_generators_noise() -> None:
    images = torch.rand(40, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    blur = Blur(steps=4, sigma_max=1.5).fit_prior(images)
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
    from colddiff.degradations.base import as_image_tensor

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
