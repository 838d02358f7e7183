
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from colddiff import Schedule
from colddiff.schedules import PRESETS


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_have_the_report_endpoints(name: str) -> None:
    start, end, steps = PRESETS[name]
    schedule = Schedule.preset(name)
    assert schedule.num_timesteps == steps == len(schedule)
    assert schedule.beta[0] == 0 and schedule.alpha[0] == 1 and schedule.alpha_bar[0] == 1
    assert schedule.beta[1].item() == pytest.approx(start, rel=1e-12)
    assert schedule.beta[steps].item() == pytest.approx(end, rel=1e-12)
    # The report chose the step counts so that all three end with alpha_bar_T ~ 1e-5.
    assert 1e-6 < schedule.alpha_bar[-1].item() < 1e-4


@pytest.mark.parametrize(("name", "bound"), [("default", 0.007), ("long", 0.0014), ("short", 0.035)])
def test_preset_values_match_the_report_notebook_up_to_its_indexing(name: str, bound: float) -> None:
    # The report's code: T + 1 betas starting at beta_start, alpha_bar = cumprod(1 - beta).
    start, end, steps = PRESETS[name]
    report_beta = (end - start) * torch.arange(0, steps + 1, dtype=torch.float64) / steps + start
    report_alpha_bar = torch.cumprod(1 - report_beta, 0)
    ours = Schedule.linear(start, end, steps).alpha_bar
    # Our index t + 1 corresponds to the report's t; the bounds are the ones the docs state.
    rel = (ours[1:] - report_alpha_bar[:-1]).abs() / report_alpha_bar[:-1]
    assert rel[report_alpha_bar[:-1] > 1e-3].max() < bound


@given(start=st.floats(1e-6, 0.05), span=st.floats(0, 0.5), steps=st.integers(1, 3000))
def test_linear_schedule_invariants(start: float, span: float, steps: int) -> None:
    end = min(start + span, 0.9)
    if -torch.log1p(-torch.linspace(start, end, steps, dtype=torch.float64)).sum() > 700:
        with pytest.raises(ValueError, match="underflows"):
            Schedule.linear(start, end, steps)
        return
    schedule = Schedule.linear(start, end, steps)
    beta, alpha, alpha_bar = schedule.beta, schedule.alpha, schedule.alpha_bar
    assert beta.shape == alpha.shape == alpha_bar.shape == (steps + 1,)
    assert torch.all(alpha_bar[1:] < alpha_bar[:-1]), "alpha_bar must strictly decrease"
    assert torch.all((alpha_bar > 0) & (alpha_bar <= 1))
    torch.testing.assert_close(alpha, 1 - beta)
    torch.testing.assert_close(alpha_bar, torch.cumprod(alpha, 0), rtol=1e-9, atol=1e-300)
    assert torch.all(beta[1:].diff() >= -1e-15)  # linear, non-decreasing for end >= start


@pytest.mark.parametrize("steps", [1000, 200, 37])
def test_cosine_matches_diffusers_squaredcos_cap_v2(steps: int) -> None:
    """Nichol & Dhariwal's cosine schedule against an independent implementation: diffusers'
    ``squaredcos_cap_v2`` betas (float32; its beta index k is our t = k + 1)."""
    import diffusers
    reference = diffusers.DDPMScheduler(num_train_timesteps=steps, beta_schedule="squaredcos_cap_v2").betas
    schedule = Schedule.cosine(steps)
    torch.testing.assert_close(schedule.beta[1:].float(), reference, rtol=2e-6, atol=1e-7)
    assert schedule.beta[-1].item() == pytest.approx(0.999), "only beta_T reaches the clip"
    assert torch.all(schedule.alpha_bar.diff() < 0)


def test_from_betas_and_spec_round_trip() -> None:
    betas = [0.1, 0.2, 0.3]
    custom = Schedule.from_betas(betas)
    torch.testing.assert_close(custom.beta, torch.tensor([0.0, *betas], dtype=torch.float64))
    torch.testing.assert_close(custom.alpha_bar[-1], torch.tensor(0.9 * 0.8 * 0.7, dtype=torch.float64))
    for schedule in (custom, Schedule.preset("short"), Schedule.cosine(50)):
        assert Schedule.from_spec(schedule.spec()) == schedule


def test_schedule_is_immutable() -> None:
    schedule = Schedule.preset("default")
    with pytest.raises(AttributeError, match="immutable"):
        schedule.kind = "other"  # type: ignore[misc]
    schedule.beta[5] = 0.5
    schedule.alpha_bar[5] = 0.5
    assert schedule.beta[5].item() < 0.001 and schedule.alpha_bar[5].item() > 0.99


@pytest.mark.parametrize(
    ("make", "argument"),
    [
        (lambda: Schedule.from_betas([0.1, 0.0]), "betas"),
        (lambda: Schedule.from_betas([0.1, 1.0]), "betas"),
        (lambda: Schedule.from_betas([0.1, -0.1]), "betas"),
        (lambda: Schedule.from_betas([0.1, float("nan")]), "betas"),
        (lambda: Schedule.from_betas([0.1, float("inf")]), "betas"),
        (lambda: Schedule.from_betas([]), "betas"),
        (lambda: Schedule.linear(0.0, 0.02, 10), "beta_start"),
        (lambda: Schedule.linear(1e-4, 1.5, 10), "beta_end"),
        (lambda: Schedule.linear(1e-4, float("nan"), 10), "beta_end"),
        (lambda: Schedule.linear(1e-4, 0.02, 0), "num_timesteps"),
        (lambda: Schedule.linear(1e-4, 0.02, 2.5), "num_timesteps"),  # type: ignore[arg-type]
        (lambda: Schedule.cosine(0), "num_timesteps"),
        (lambda: Schedule.cosine(10, max_beta=1.0), "max_beta"),
        (lambda: Schedule.preset("medium"), "name"),
        (lambda: Schedule.from_spec({"kind": "quadratic"}), "kind"),
    ],
)
def test_bad_schedule_arguments_raise_naming_the_argument(make, argument: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=argument):
        make()


def test_equality_hash_and_repr() -> None:
    default, same = Schedule.preset("default"), Schedule.linear(1e-4, 0.02, 1000)
    assert default == same and hash(default) == hash(same) and len({default, same}) == 1
    assert default != Schedule.preset("short") and default != "default"
    assert {default: "d"}[same] == "d"
    assert repr(default) == "Schedule.linear(beta_start=0.0001, beta_end=0.02, num_timesteps=1000)"
    assert repr(Schedule.cosine(10)) == "Schedule.cosine(num_timesteps=10, offset=0.008, max_beta=0.999)"
    assert repr(Schedule.from_betas([0.1, 0.2])) == "Schedule.from_betas(<2 betas>)"
