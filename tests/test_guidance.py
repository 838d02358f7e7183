"""Classifier-free guidance in every sampler, against exact oracles.

A fake conditional network whose conditional and unconditional outputs are known in closed form
drives each sampler with labels and a guidance scale ``w``; the same sampler driven by an
unconditional network that computes ``uncond + w (cond - uncond)`` by hand must take the very
same trajectory, step for step, bit for bit. ``w = 1`` must be the plain conditional sampler and
``w = 0`` the null-class one, and the guided batch must cost one network call of ``2B`` per step.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor, nn

from colddiff import Denoiser, Schedule, degradations, nets, samplers
from colddiff.conditioning import Conditioning
from colddiff.samplers import Sampler

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "custom_degradation" / "src"))
from colddiff_pixelate.sampler import Damped

K = 3  # classes; index 3 is the null class
SHAPE = (1, 6, 6)
B = 4


def offsets() -> Tensor:
    """One image per class and one for the null class."""
    return torch.rand(K + 1, *SHAPE, generator=torch.Generator().manual_seed(7))


def known_output(x_t: Tensor, time: Tensor, offset: Tensor) -> Tensor:
    """The fake network's output for images of the classes whose offsets are ``offset``."""
    return 0.5 * x_t + offset + 0.1 * time.view(-1, 1, 1, 1)


class KnownConditional(nn.Module):
    """A class-conditional network with known outputs; it records the batch size of each call."""

    conditioning = "class"

    def __init__(self, batched: bool = True) -> None:
        super().__init__()
        self.num_classes = K
        self.guidance_batching = batched
        self.register_buffer("offsets", offsets())
        self.anchor = nn.Parameter(torch.zeros(()))
        self.calls: list[int] = []

    def forward(self, x_t: Tensor, time: Tensor, labels: Tensor) -> Tensor:
        self.calls.append(len(x_t))
        return known_output(x_t, time, self.offsets[labels])


class GuidedByHand(nn.Module):
    """An unconditional network computing ``uncond + w (cond - uncond)`` of :class:`KnownConditional`
    for fixed labels itself (``cond`` itself at ``w = 1``: the formula's rounding is skipped there)."""

    def __init__(self, labels: Tensor, guidance: float) -> None:
        super().__init__()
        self.register_buffer("offsets", offsets())
        self.labels, self.guidance = labels, guidance
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, x_t: Tensor, time: Tensor) -> Tensor:
        cond = known_output(x_t, time, self.offsets[self.labels])
        if self.guidance == 1:
            return cond
        uncond = known_output(x_t, time, self.offsets[K].expand(len(x_t), *SHAPE))
        return uncond + self.guidance * (cond - uncond)


def degradation(kind: str) -> degradations.Degradation:
    if kind == "blur":
        return degradations.create("blur", num_timesteps=10, image_shape=SHAPE)
    return degradations.create("gaussian", schedule=Schedule.cosine(50), image_shape=SHAPE)


#: (sampler name, options, degradation, prediction target): every built-in sampler family, the
#: cold sampler over Gaussian noise and blur, and the example plugin sampler.
CASES = [
    ("ddpm", {"variance": "beta"}, "gaussian", "eps"),
    ("ddpm", {"variance": "posterior"}, "gaussian", "x0"),
    ("ddim", {"eta": 0.5}, "gaussian", "eps"),
    ("cold", {"source": "estimate"}, "gaussian", "x0"),
    ("cold", {"algorithm": 1}, "blur", "x0"),
    ("cold", {"algorithm": 2}, "blur", "x0"),
    ("dpmsolver++", {"order": 3}, "gaussian", "eps"),
    ("unipc", {"order": 2}, "gaussian", "x0"),
    ("damped", {"damping": 0.5}, "blur", "x0"),
]


def make_sampler(net: nn.Module, name: str, options: dict[str, object], kind: str, predict: str) -> Sampler:
    denoiser = Denoiser(net, degradation(kind), predict=predict)  # type: ignore[arg-type]
    if name == "damped":
        return Damped(denoiser, **options)  # type: ignore[arg-type]
    return samplers.create(name, denoiser, **options)


def trajectory(sampler: Sampler, x_T: Tensor, **options: object) -> list[Tensor]:
    """Every state and prediction the callback sees, then the result."""
    seen: list[Tensor] = []
    result = sampler.sample(x_T, 5, generator=torch.Generator().manual_seed(3),
                            callback=lambda i, t, x_t, x0_hat: seen.extend([x_t.clone(), x0_hat.clone()]),
                            **options)  # type: ignore[arg-type]
    return [*seen, result]


def start(seed: int = 0) -> Tensor:
    return torch.rand(B, *SHAPE, generator=torch.Generator().manual_seed(seed))


def assert_same(ours: list[Tensor], reference: list[Tensor]) -> None:
    assert len(ours) == len(reference) == 11
    for step, (a, b) in enumerate(zip(ours, reference, strict=True)):
        assert torch.equal(a, b), f"entry {step} of the trajectory differs"


@pytest.mark.parametrize(("name", "options", "kind", "predict"), CASES)
@pytest.mark.parametrize("guidance", [0.0, 0.5, 1.0, 3.0])
def test_guided_sampling_is_the_by_hand_guided_prediction_at_every_step(
        name: str, options: dict[str, object], kind: str, predict: str, guidance: float) -> None:
    labels = torch.tensor([0, 2, 1, 2])
    ours = trajectory(make_sampler(KnownConditional(), name, options, kind, predict), start(),
                      labels=labels, guidance=guidance)
    by_hand = trajectory(make_sampler(GuidedByHand(labels, guidance), name, options, kind, predict), start())
    assert_same(ours, by_hand)


@given(guidance=st.floats(0, 8), labels=st.lists(st.integers(0, K), min_size=B, max_size=B),
       case=st.sampled_from(CASES), batched=st.booleans())
def test_any_guidance_and_labels_follow_the_by_hand_trajectory(
        guidance: float, labels: list[int], case: tuple[str, dict[str, object], str, str],
        batched: bool) -> None:
    name, options, kind, predict = case
    chosen = torch.tensor(labels)
    ours = trajectory(make_sampler(KnownConditional(batched), name, options, kind, predict), start(1),
                      labels=chosen, guidance=guidance)
    by_hand = trajectory(make_sampler(GuidedByHand(chosen, guidance), name, options, kind, predict), start(1))
    assert_same(ours, by_hand)


def conditional_unet(seed: int = 0) -> Denoiser:
    """A small conditional U-Net whose class embedding is not zero (as after training)."""
    torch.manual_seed(seed)
    net = nets.UNet(channels=8, blocks=1, image_size=6, num_classes=K)
    assert net.class_embedding is not None
    with torch.no_grad():
        net.class_embedding.weight.normal_()
        net.head[-1].weight.normal_(std=0.1)  # the zero-initialised head would hide the labels
    return Denoiser(net, degradation("gaussian"))


@pytest.mark.parametrize("name", ["ddpm", "ddim", "dpmsolver++", "unipc", "cold"])
def test_guidance_one_is_the_plain_conditional_sampler_and_zero_the_null_class(name: str) -> None:
    options = {"source": "estimate"} if name == "cold" else {}
    sampler = samplers.create(name, conditional_unet(), **options)
    labels = torch.tensor([0, 1, 2, 0])
    plain = trajectory(sampler, start(), labels=labels)
    assert_same(trajectory(sampler, start(), labels=labels, guidance=1.0), plain)
    assert_same(trajectory(sampler, start(), labels=labels, guidance=0.0),
                trajectory(sampler, start(), labels=torch.full((B,), K)))
    assert_same(trajectory(sampler, start()), trajectory(sampler, start(), labels=torch.full((B,), K)))
    strong = trajectory(sampler, start(), labels=labels, guidance=3.0)
    assert not torch.equal(strong[-1], plain[-1])  # the labels matter to this network


@pytest.mark.parametrize(("guidance", "batched", "calls"), [
    (3.0, True, [2 * B] * 5), (3.0, False, [B] * 10), (1.0, True, [B] * 5), (0.0, True, [B] * 5),
    (None, True, [B] * 5)])
def test_guidance_costs_one_call_of_2b_per_step_where_the_net_allows(
        guidance: float | None, batched: bool, calls: list[int]) -> None:
    net = KnownConditional(batched)
    sampler = samplers.create("ddim", Denoiser(net, degradation("gaussian")))
    sampler.sample(start(), 5, labels=torch.tensor([0, 1, 2, 0]), guidance=guidance)
    assert net.calls == calls


def test_guidance_without_labels_is_one_call_of_the_null_class() -> None:
    net = KnownConditional(True)
    denoiser = Denoiser(net, degradation("gaussian"))
    for scale in (3.0, 0.0):
        denoiser.guided(start(), torch.full((B,), 500), None, scale)
    assert net.calls == [B, B]


@given(guidance=st.floats(0, 10), labels=st.lists(st.integers(0, K), min_size=B, max_size=B))
def test_the_guided_unet_output_is_affine_in_the_scale(guidance: float, labels: list[int]) -> None:
    """One real network: the guided output moves along the line through the unconditional
    (``w = 0``) and conditional (``w = 1``) outputs."""
    denoiser = conditional_unet().eval()
    x_t, t, chosen = start(2), torch.tensor([1, 20, 35, 50]), torch.tensor(labels)
    with torch.no_grad():
        uncond = denoiser.guided(x_t, t, chosen, 0.0)
        cond = denoiser.guided(x_t, t, chosen, 1.0)
        guided = denoiser.guided(x_t, t, chosen, guidance)
        torch.testing.assert_close(uncond, denoiser(x_t, t), rtol=0, atol=0)
    torch.testing.assert_close(guided, uncond + guidance * (cond - uncond), rtol=1e-5, atol=1e-5)


class EmbeddingConditional(nn.Module):
    """A network conditioned on a 2-d embedding: its output is shifted by the embedding's sum."""

    conditioning = "embedding"
    cond_dim = 2

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, x_t: Tensor, time: Tensor, cond: Tensor) -> Tensor:
        return 0.5 * x_t + cond.sum(1).view(-1, 1, 1, 1) + 0.1 * time.view(-1, 1, 1, 1)


def test_a_net_declaring_an_embedding_takes_a_conditioning_tensor_with_zeros_as_null() -> None:
    denoiser = Denoiser(EmbeddingConditional(), degradation("gaussian"), predict="x0")
    assert denoiser.conditioning == Conditioning("embedding", 2)
    x_t, t = start(), torch.full((B,), 10)
    cond = torch.tensor([[1.0, 0.0], [0.5, 0.5], [-1.0, 0.25], [0.0, 0.0]])
    expected = 0.5 * x_t + 0.1 * 10 / 50
    torch.testing.assert_close(denoiser(x_t, t), expected)  # no conditioning: zeros
    torch.testing.assert_close(denoiser.guided(x_t, t, cond, 2.0),
                               expected + 2.0 * cond.sum(1).view(-1, 1, 1, 1))
    dropped = Denoiser(EmbeddingConditional(), degradation("gaussian"), predict="x0",
                       cond_drop=0.5).drop_labels(cond, torch.Generator().manual_seed(0))
    mask = torch.rand(B, generator=torch.Generator().manual_seed(0)) < 0.5
    assert torch.equal(dropped, torch.where(mask[:, None], torch.zeros_like(cond), cond))
    sampler = samplers.create("ddim", denoiser)
    assert sampler.sample(start(), 3, labels=cond, guidance=1.5).shape == (B, *SHAPE)
    with pytest.raises(ValueError, match=r"labels must be a \(4, 2\) float tensor"):
        sampler.sample(start(), 3, labels=torch.tensor([0, 1, 2, 0]))
    with pytest.raises(ValueError, match=r"got shape \(4, 3\)"):
        sampler.sample(start(), 3, labels=torch.zeros(B, 3))


def unconditional_sampler() -> Sampler:
    torch.manual_seed(0)
    return samplers.create("ddim", Denoiser(nets.UNet(channels=8, blocks=1, image_size=6),
                                            degradation("gaussian")))


@pytest.mark.parametrize(("options", "message"), [
    ({"labels": torch.tensor([0, 1, 2, 0])},
     r"^labels given to an unconditional model: its network takes no labels; train one with conditional = "
     r"true to generate chosen classes$"),
    ({"guidance": 2.0}, r"^guidance given to an unconditional model \(2.0\): guidance needs a model trained "
                        r"with conditional = true$"),
])
def test_an_unconditional_model_refuses_labels_and_guidance(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        unconditional_sampler().sample(start(), 2, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(("labels", "guidance", "message"), [
    (torch.tensor([0, 1, 2]), None, r"labels must have one entry per image: a \(4,\) integer tensor .* "
                                    r"got shape \(3,\)"),
    (torch.tensor([0, 1, 2, 4]), None, r"labels must be class indices in \[0, 2\] \(or 3, the null class\), "
                                       "got values from 0 to 4"),
    (torch.tensor([0, -1, 2, 1]), None, "got values from -1 to 2"),
    (torch.tensor([0.0, 1.0, 2.0, 1.0]), None,
     r"labels must be a \(4,\) integer tensor .* got a torch.float32"),
    ([0, 1, 2, 1], None, "got list"),
    (torch.tensor([0, 1, 2, 1]), -1.0, r"guidance must be a finite number >= 0 .* got -1.0"),
    (torch.tensor([0, 1, 2, 1]), float("nan"), "guidance must be a finite number >= 0"),
    (torch.tensor([0, 1, 2, 1]), float("inf"), "guidance must be a finite number >= 0"),
    (torch.tensor([0, 1, 2, 1]), True, "guidance must be a finite number >= 0"),
    (None, 2.0, "^guidance needs labels: the classes to guide towards$"),
])
def test_bad_labels_and_guidance_are_refused_naming_them(labels: object, guidance: object,
                                                          message: str) -> None:
    net = KnownConditional()
    sampler = samplers.create("ddim", Denoiser(net, degradation("gaussian")))
    with pytest.raises(ValueError, match=message):
        sampler.sample(start(), 2, labels=labels, guidance=guidance)  # type: ignore[arg-type]
    assert net.calls == []  # refused before the network ran


@pytest.mark.parametrize("predict", ["eps", "x0", "v"])
@pytest.mark.parametrize("guidance", [None, 0.0, 2.5])
def test_the_predicted_source_is_that_of_the_guided_prediction(predict: str, guidance: float | None) -> None:
    """``predict_source`` with labels and guidance: the guided network output itself for an
    ``eps`` model, the source the guided clean image leaves for the others (by hand)."""
    deg = degradation("gaussian")
    denoiser = Denoiser(KnownConditional(), deg, predict=predict)  # type: ignore[arg-type]
    x_t, t, labels = start(), torch.tensor([3, 10, 25, 50]), torch.tensor([0, 2, 1, 2])
    by_hand = GuidedByHand(labels, 1.0 if guidance is None else guidance)(x_t, t / 50)
    if predict == "x0":
        by_hand = deg.source_from_x0(x_t, t, by_hand)
    elif predict == "v":
        by_hand = deg.source_from_x0(x_t, t, deg.x0_from_velocity(x_t, t, by_hand))  # type: ignore[attr-defined]
    torch.testing.assert_close(denoiser.predict_source(x_t, t, labels, guidance), by_hand,
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64])
def test_dropped_embeddings_keep_their_dtype(dtype: torch.dtype) -> None:
    cond = torch.tensor([[1.0, 0.0], [0.5, 0.5], [-1.0, 0.25], [2.0, 3.0]], dtype=dtype)
    dropped = Denoiser(EmbeddingConditional(), degradation("gaussian"), predict="x0",
                       cond_drop=0.5).drop_labels(cond, torch.Generator().manual_seed(0))
    mask = torch.rand(B, generator=torch.Generator().manual_seed(0)) < 0.5
    assert dropped.dtype == dtype
    assert torch.equal(dropped, torch.where(mask[:, None], torch.zeros_like(cond), cond))


def test_a_conditional_denoiser_shows_its_conditioning() -> None:
    denoiser = Denoiser(KnownConditional(), degradation("gaussian"), predict="x0", cond_drop=0.25)
    assert denoiser.extra_repr().endswith(", conditioning='class' (3), cond_drop=0.25")
    assert "conditioning" not in Denoiser(GuidedByHand(torch.zeros(B, dtype=torch.long), 1.0),
                                          degradation("gaussian")).extra_repr()


class DtypeRecorder(nn.Module):
    """An embedding-conditional network that records the dtype of each conditioning it gets."""

    conditioning, cond_dim, guidance_batching = "embedding", 2, False

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros((), dtype=torch.float64))
        self.seen: list[torch.dtype] = []

    def forward(self, x_t: Tensor, time: Tensor, cond: Tensor) -> Tensor:
        self.seen.append(cond.dtype)
        return x_t + cond.sum(1).view(-1, 1, 1, 1)


def test_the_null_embedding_has_the_images_dtype() -> None:
    net = DtypeRecorder()
    denoiser = Denoiser(net, degradation("gaussian"), predict="x0")
    x_t = start().double()
    cond = torch.tensor([[1.0, 0.0], [0.5, 0.5], [-1.0, 0.25], [2.0, 3.0]], dtype=torch.float64)
    guided = denoiser.guided(x_t, torch.full((B,), 10), cond, 2.0)
    assert net.seen == [torch.float64, torch.float64]
    torch.testing.assert_close(guided, x_t + 2.0 * cond.sum(1).view(-1, 1, 1, 1))


def test_a_sampler_that_cannot_run_blurring_says_why() -> None:
    blurring = degradations.create("blurring", schedule=Schedule.cosine(50), image_shape=SHAPE)
    with pytest.raises(ValueError) as error:
        samplers.create("dpmsolver++", Denoiser(KnownConditional(), blurring))
    assert str(error.value) == ("DPMSolverSampler needs a denoiser for GaussianNoise; for Blurring use "
                                "DDPMSampler or DDIMSampler (sampler 'ddpm' or 'ddim'): its signal scale is "
                                "one per frequency")
