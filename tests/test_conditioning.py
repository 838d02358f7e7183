"""Conditional networks and denoisers: the class embedding, the null class, label dropout in the
loss, and the helpers that name, spread and lay out classes."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor, nn

from colddiff import Denoiser, Schedule, degradations, nets
from colddiff.conditioning import (
    DEFAULT_COND_DROP,
    Conditioning,
    check_classes,
    class_labels,
    class_rows,
    labels_for,
)

K = 4


def build(name: str, num_classes: int | None, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    if name == "unet":
        return nets.UNet(channels=8, blocks=1, image_size=8, num_classes=num_classes)
    return nets.CNN(image_size=(8, 8), channels=(4, 8, 4), num_classes=num_classes)


def inputs(seed: int = 0, n: int = 5) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 8, 8, generator=generator), torch.rand(n, generator=generator)


@pytest.mark.parametrize("name", ["cnn", "unet"])
def test_a_conditional_net_starts_as_the_unconditional_net_of_the_same_seed(name: str) -> None:
    plain, conditional = build(name, None), build(name, K)
    extra = set(conditional.state_dict()) - set(plain.state_dict())
    assert extra == {"class_embedding.weight"}
    assert all(torch.equal(value, conditional.state_dict()[key]) for key, value in plain.state_dict().items())
    assert conditional.state_dict()["class_embedding.weight"].shape[0] == K + 1  # and the null class
    x, t = inputs()
    if name == "unet":  # its zero-initialised head would make every output zero
        for net in (plain, conditional):
            nn.init.normal_(net.head[-1].weight, std=0.1, generator=torch.Generator().manual_seed(0))  # type: ignore[index]
    with torch.no_grad():
        expected = plain(x, t)
        for labels in (None, torch.tensor([0, 1, 2, 3, 4])):
            assert torch.equal(conditional(x, t, labels), expected)


@pytest.mark.parametrize("name", ["cnn", "unet"])
def test_the_class_embedding_is_added_to_the_time_embedding(name: str) -> None:
    net = build(name, K)
    assert (net.conditioning, net.num_classes) == ("class", K)  # type: ignore[union-attr]
    assert Conditioning.of(net) == Conditioning("class", K)
    with torch.no_grad():
        net.class_embedding.weight.normal_()  # type: ignore[union-attr]
        if name == "unet":
            nn.init.normal_(net.head[-1].weight, std=0.1)  # type: ignore[index]
    x, t = inputs()
    labels = torch.tensor([0, 1, 2, 3, 4])
    with torch.no_grad():
        ours = net(x, t, labels)
        assert torch.equal(net(x, t), net(x, t, torch.full((5,), K)))  # None: the null class
        assert not torch.allclose(net(x, t, (labels + 1) % K), ours)  # the labels matter
        # By hand: the time embedding shifted by the embedding rows, through the same layers.
        table = net.class_embedding.weight  # type: ignore[union-attr]
        net.class_embedding = None  # type: ignore[assignment]
        net.time_mlp = Shifted(net.time_mlp, table[labels])  # type: ignore[assignment, index]
        by_hand = net(x, t)
    torch.testing.assert_close(ours, by_hand, rtol=0, atol=1e-6)


class Shifted(nn.Module):
    """A module's output plus a fixed shift."""

    def __init__(self, module: nn.Module, shift: Tensor) -> None:
        super().__init__()
        self.module, self.shift = module, shift

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.module(x) + self.shift
        return out


@pytest.mark.parametrize("name", ["cnn", "unet"])
def test_labels_given_to_an_unconditional_net_are_refused(name: str) -> None:
    x, t = inputs()
    with pytest.raises(ValueError, match=r"labels given to an unconditional network \(built without "
                                         "num_classes\\)"):
        build(name, None)(x, t, torch.zeros(5, dtype=torch.long))


@pytest.mark.parametrize("value", [1, 0, -2, 2.5, True, "10"])
@pytest.mark.parametrize("name", ["cnn", "unet"])
def test_num_classes_must_be_an_integer_of_at_least_two(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"num_classes must be None \\(unconditional\\) or an integer "
                                         f">= 2, got {value!r}"):
        build(name, value)  # type: ignore[arg-type]


def gaussian() -> degradations.Degradation:
    return degradations.create("gaussian", schedule=Schedule.cosine(20), image_shape=(1, 8, 8))


class Recorder(nn.Module):
    """A class-conditional network that records the labels it is given."""

    conditioning = "class"
    num_classes = K

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(()))
        self.seen: list[Tensor] = []

    def forward(self, x_t: Tensor, time: Tensor, labels: Tensor) -> Tensor:
        self.seen.append(labels.clone())
        return self.weight * x_t


@given(seed=st.integers(0, 2**31), cond_drop=st.sampled_from([0.0, 0.1, 0.5, 0.9]),
       labels=st.lists(st.integers(0, K - 1), min_size=1, max_size=40))
def test_the_loss_drops_each_label_to_the_null_class_with_the_last_draw(
        seed: int, cond_drop: float, labels: list[int]) -> None:
    net = Recorder()
    denoiser = Denoiser(net, gaussian(), cond_drop=cond_drop)
    x0 = torch.rand(len(labels), 1, 8, 8, generator=torch.Generator().manual_seed(1))
    given_labels = torch.tensor(labels)
    generator = torch.Generator().manual_seed(seed)
    loss = denoiser.loss(x0, generator=generator, labels=given_labels)
    # The same draws by hand: t, the noise, then (when cond_drop > 0) one uniform per label.
    replay = torch.Generator().manual_seed(seed)
    t = torch.randint(1, 21, (len(labels),), generator=replay)
    noise = torch.randn(x0.shape, generator=replay)
    dropped = (torch.rand(len(labels), generator=replay) < cond_drop if cond_drop
               else torch.zeros(len(labels), dtype=torch.bool))
    seen, = net.seen
    assert torch.equal(seen, torch.where(dropped, K, given_labels))
    assert torch.equal(generator.get_state(), replay.get_state())  # no draw more or less
    x_t = gaussian().degrade(x0, t, noise)
    torch.testing.assert_close(loss, ((x_t - noise) ** 2).mean())


def test_label_dropout_drops_about_its_share() -> None:
    denoiser = Denoiser(Recorder(), gaussian(), cond_drop=0.3)
    labels = torch.zeros(20_000, dtype=torch.long)
    dropped = denoiser.drop_labels(labels, torch.Generator().manual_seed(0))
    assert set(dropped.tolist()) == {0, K}
    assert abs(float((dropped == K).float().mean()) - 0.3) < 0.01  # 5 standard deviations


def test_a_conditional_denoiser_drops_a_tenth_by_default_and_checks_cond_drop() -> None:
    assert Denoiser(Recorder(), gaussian()).cond_drop == DEFAULT_COND_DROP == 0.1
    assert Denoiser(nets.CNN(image_size=(8, 8)), gaussian()).cond_drop is None
    for bad in (1.0, -0.1, 1.5, float("nan"), True):
        with pytest.raises(ValueError, match=rf"cond_drop must be a probability in \[0, 1\) .* got {bad!r}"):
            Denoiser(Recorder(), gaussian(), cond_drop=bad)
    with pytest.raises(ValueError, match="cond_drop is for a conditional model, and this CNN takes no"):
        Denoiser(nets.CNN(image_size=(8, 8)), gaussian(), cond_drop=0.1)
    with pytest.raises(ValueError, match="labels given to an unconditional model"):
        Denoiser(nets.CNN(image_size=(8, 8)), gaussian()).loss(torch.rand(2, 1, 8, 8),
                                                               labels=torch.zeros(2, dtype=torch.long))


@pytest.mark.parametrize(("attributes", "message"), [
    ({"conditioning": "text"}, "net.conditioning must be None, 'class' or 'embedding', got 'text'"),
    ({"conditioning": "class"}, "a net with conditioning = 'class' must have num_classes set to a positive "
                                "integer, got None"),
    ({"conditioning": "embedding", "cond_dim": 0}, "must have cond_dim set to a positive integer, got 0"),
    ({"conditioning": "class", "num_classes": 3, "guidance_batching": "yes"},
     "net.guidance_batching must be True or False, got 'yes'"),
])
def test_a_malformed_declaration_is_refused_naming_the_attribute(attributes: dict[str, object],
                                                                  message: str) -> None:
    net = nets.CNN(image_size=(8, 8))
    for key, value in attributes.items():
        setattr(net, key, value)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Denoiser(net, gaussian())


@given(n=st.integers(1, 200), num_classes=st.integers(2, 12))
def test_class_labels_are_spread_evenly_in_order(n: int, num_classes: int) -> None:
    labels = class_labels(n, num_classes)
    counts = torch.bincount(labels, minlength=num_classes)
    assert len(labels) == n and int(counts.max() - counts.min()) <= 1
    assert torch.equal(labels, labels.sort().values)
    assert counts.tolist() == sorted(counts.tolist(), reverse=True)  # the first classes get the extra


def test_chosen_classes_share_the_samples() -> None:
    assert class_labels(7, 10, [7, 2]).tolist() == [7, 7, 7, 7, 2, 2, 2]
    assert class_labels(3, 10, [5]).tolist() == [5, 5, 5]
    with pytest.raises(ValueError, match="n must be a positive integer, got 0"):
        class_labels(0, 10)


@given(labels=st.lists(st.integers(0, 5), min_size=1, max_size=30))
def test_class_rows_put_each_class_in_its_own_row(labels: list[int]) -> None:
    chosen = torch.tensor(labels)
    samples = torch.arange(len(labels), dtype=torch.float32).view(-1, 1, 1, 1) + 1  # never blank
    grid, width = class_rows(samples, chosen)
    classes = sorted(set(labels))
    assert width == max(labels.count(c) for c in classes) and len(grid) == width * len(classes)
    for row, c in enumerate(classes):
        cells = grid[row * width:(row + 1) * width].flatten()
        members = samples[chosen == c].flatten()
        assert torch.equal(cells[:len(members)], members)  # in their order
        assert not cells[len(members):].any()  # blanks after


def test_classes_are_named_by_name_or_index() -> None:
    fashion = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot")
    assert labels_for(["Sneaker", "0", 9, " Bag "], fashion) == [7, 0, 9, 8]
    assert labels_for(["1", "3"], ("3", "1", "2")) == [1, 0]  # a name before an index
    with pytest.raises(ValueError, match=r"class '12' is not in the model's label set; accepted: a name "
                                         r"among \['T-shirt/top', .*'Ankle boot'\] or an index in \[0, 9\]"):
        labels_for([12], fashion)
    with pytest.raises(ValueError, match="class 'Hat' is not in"):
        labels_for(["Hat"], fashion)


@pytest.mark.parametrize(("classes", "message"), [
    (["cat"], r"classes must hold at least 2 classes to condition on, got \['cat'\]"),
    (["cat", "cat", "dog"], r"classes must name each class once; repeated: \['cat'\]"),
    (["cat", ""], "classes must be a list of class names"),
    ("cats", "classes must be a list of class names"),
])
def test_a_label_set_needs_two_distinct_names(classes: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_classes(classes)
