from collections.abc import Callable

import pytest
import torch
from conftest import EpsOracle, X0Oracle
from torch import Tensor, nn

from colddiff import Denoiser, Schedule, nets
from colddiff.degradations import Blur, GaussianNoise

SCHEDULE = Schedule.preset("default")


class Recorder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.times: list[Tensor] = []
        self.weight = nn.Parameter(torch.ones(()))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        self.times.append(t)
        return x * self.weight


def test_loss_draws_t_in_1_to_T_and_calls_the_net_with_t_over_T() -> None:
    recorder = Recorder()
    den = Denoiser(recorder, GaussianNoise(Schedule.linear(1e-4, 0.1, 5)), predict="eps")
    loss = den.loss(torch.rand(4000, 1, 2, 2), generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss) and recorder.weight.grad is not None
    fractions = recorder.times[0]
    assert fractions.is_floating_point()
    assert sorted(set(torch.round(fractions * 5).long().tolist())) == [1, 2, 3, 4, 5]


def test_a_perfect_eps_oracle_has_zero_loss_and_consistent_predictions() -> None:
    point = torch.rand(1, 1, 5, 5, dtype=torch.float64)
    deg = GaussianNoise(SCHEDULE, image_shape=(1, 5, 5))
    den = Denoiser(EpsOracle(deg, point), deg, predict="eps")
    x0 = point.expand(16, -1, -1, -1)
    assert den.loss(x0).item() < 1e-20
    t = torch.randint(1, 1001, (16,))
    noise = torch.randn_like(x0)
    x_t = deg.degrade(x0, t, noise)
    torch.testing.assert_close(den.predict_source(x_t, t), noise)
    torch.testing.assert_close(den.predict_x0(x_t, t), x0)


def test_x0_prediction_converts_to_the_source() -> None:
    x0 = torch.rand(3, 1, 4, 4, dtype=torch.float64)
    deg = GaussianNoise(SCHEDULE)
    den = Denoiser(X0Oracle(x0), deg, predict="x0")
    assert den.loss(x0).item() == 0
    noise = torch.randn_like(x0)
    t = torch.tensor([1, 500, 1000])
    torch.testing.assert_close(den.predict_source(deg.degrade(x0, t, noise), t), noise)


def test_a_real_network_learns() -> None:
    torch.manual_seed(0)
    deg = GaussianNoise(Schedule.preset("short"), image_shape=(1, 8, 8))
    den = Denoiser(nets.CNN(image_size=(8, 8), channels=(8, 8)), deg)
    data = torch.zeros(64, 1, 8, 8)
    data[:, :, 2:6, 2:6] = 1
    optimizer = torch.optim.Adam(den.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(150):
        loss = den.loss(data, generator=g)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-20:]) / 20 < 0.6 * sum(losses[:20]) / 20


def test_bad_denoiser_arguments_raise_naming_the_argument() -> None:
    with pytest.raises(ValueError, match="predict must be one of"):
        Denoiser(Recorder(), GaussianNoise(SCHEDULE), predict="noise")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"predict='eps'.*Blur.*predict='x0'"):
        Denoiser(Recorder(), Blur(), predict="eps")
    with pytest.raises(ValueError, match="degradation must be"):
        Denoiser(Recorder(), "gaussian")  # type: ignore[arg-type]
    den = Denoiser(Recorder(), GaussianNoise(SCHEDULE))
    with pytest.raises(ValueError, match="x0 must be"):
        den.loss(torch.zeros(3, 4, 4))
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1000\]"):
        den.loss(torch.zeros(2, 1, 4, 4), t=torch.tensor([0, 1001]))


def test_v_prediction_targets_and_conversions() -> None:
    x0 = torch.rand(3, 1, 4, 4, dtype=torch.float64)
    deg = GaussianNoise(SCHEDULE)
    noise = torch.randn_like(x0)
    t = torch.tensor([1, 400, 1000])
    x_t = deg.degrade(x0, t, noise)
    v = deg.velocity(x0, t, noise)
    alpha_bar = SCHEDULE.alpha_bar[t].view(-1, 1, 1, 1)
    torch.testing.assert_close(v, alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * x0)
    torch.testing.assert_close(deg.x0_from_velocity(x_t, t, v), x0)

    class VNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.anchor = nn.Parameter(torch.zeros(()))

        def forward(self, x: Tensor, frac: Tensor) -> Tensor:
            return v

    den = Denoiser(VNet(), deg, predict="v")
    torch.testing.assert_close(den.predict_x0(x_t, t), x0)
    torch.testing.assert_close(den.predict_source(x_t, t), noise)
    with pytest.raises(ValueError, match="predict='v' needs a mixing degradation"):
        Denoiser(VNet(), Blur(), predict="v")


def test_an_eps_denoiser_returns_its_source_prediction_as_is() -> None:
    deg = GaussianNoise(SCHEDULE)
    den = Denoiser(nets.CNN(channels=[4, 4]), deg, predict="eps")
    x_t, t = torch.randn(2, 1, 28, 28), torch.tensor([3, 700])
    with torch.no_grad():
        assert torch.equal(den.predict_source(x_t, t), den(x_t, t)), "no round trip through x0"


def test_the_v_prediction_loss_regresses_the_velocity() -> None:
    deg = GaussianNoise(SCHEDULE)
    net = nets.CNN(channels=[4, 4])
    den = Denoiser(net, deg, predict="v")
    x0 = torch.rand(3, 1, 28, 28)
    t = torch.tensor([1, 500, 1000])
    source = deg.sample_source(x0, generator=torch.Generator().manual_seed(7))
    expected = nn.functional.mse_loss(den(deg.degrade(x0, t, source), t), deg.velocity(x0, t, source))
    loss = den.loss(x0, t=t, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(loss, expected, rtol=0, atol=0)
    assert not torch.equal(expected, nn.functional.mse_loss(den(deg.degrade(x0, t, source), t), source))


def test_the_repr_names_the_prediction_the_degradation_and_only_non_default_options() -> None:
    plain = Denoiser(X0Oracle(torch.zeros(1, 1, 4, 4)), GaussianNoise(Schedule.linear(1e-4, 0.02, 10)),
                     predict="eps")
    assert plain.extra_repr() == ("predict='eps', degradation=GaussianNoise(schedule=Schedule.linear("
                                  "beta_start=0.0001, beta_end=0.02, num_timesteps=10))")
    options = Denoiser(X0Oracle(torch.zeros(1, 1, 4, 4)), Blur(num_timesteps=5), predict="x0", loss="soft",
                       precision="bf16")
    assert options.extra_repr() == ("predict='x0', degradation=Blur(num_timesteps=5, sigma_max=6.0), "
                                    "precision='bf16', loss='soft'")


class Elementwise(nn.Module):
    """A network applying ``function`` to its input: the input itself (as a network whose output
    buffer is reused could return), or the input computed in another dtype."""

    def __init__(self, function: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.function = function
        self.weight = nn.Parameter(torch.ones(()))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return self.function(x)


def test_the_output_is_a_copy_in_the_inputs_dtype() -> None:
    deg = GaussianNoise(SCHEDULE, image_shape=(1, 4, 4))
    x_t, t = torch.rand(3, 1, 4, 4), torch.full((3,), 5)
    out = Denoiser(Elementwise(lambda x: x), deg)(x_t, t)
    assert torch.equal(out, x_t) and out.data_ptr() != x_t.data_ptr()
    half = Denoiser(Elementwise(Tensor.half), deg)(x_t, t)
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, x_t.half().float(), rtol=0, atol=0)


class NullRecorder(nn.Module):
    """A conditional network (class or embedding) recording what it is given."""

    def __init__(self, conditioning: str) -> None:
        super().__init__()
        self.conditioning = conditioning
        self.num_classes = self.cond_dim = 3
        self.weight = nn.Parameter(torch.ones((), dtype=torch.float64))
        self.seen: list[Tensor] = []

    def forward(self, x: Tensor, t: Tensor, labels: Tensor) -> Tensor:
        self.seen.append(labels)
        return x * self.weight


def test_no_labels_is_the_null_condition_for_every_image() -> None:
    x_t, t = torch.rand(4, 1, 4, 4, dtype=torch.float64), torch.full((4,), 5)
    deg = GaussianNoise(SCHEDULE, image_shape=(1, 4, 4))
    classes, embedding = NullRecorder("class"), NullRecorder("embedding")
    Denoiser(classes, deg)(x_t, t)
    Denoiser(embedding, deg)(x_t, t)
    assert torch.equal(classes.seen[0], torch.full((4,), 3))
    assert embedding.seen[0].dtype == torch.float64 and torch.equal(embedding.seen[0], torch.zeros(4, 3,
                                                                                                  dtype=torch.float64))
