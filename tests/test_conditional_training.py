"""Conditional training end to end on real MNIST: the labels of the data reach the network (with
label dropout), the label set is saved and checked, the trained model samples chosen classes with
guidance, and a conditional model can start from an unconditional one's weights."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from torch import Tensor, nn

from colddiff import checkpoints, data, pretrained
from colddiff.config import MODEL_FIELDS, TrainConfig, build_denoiser, model_differences
from colddiff.training import ConfigMismatchError, Trainer
from colddiff.training.init_from import CONDITIONING_FIELDS, initialise
from colddiff.training.labels import with_classes
from colddiff.training.optimizer import build_optimizer

DIGITS = [str(digit) for digit in range(10)]


def tiny(**changes: Any) -> TrainConfig:
    """A conditional model that trains on 256 MNIST digits (at 14x14) in a second or two."""
    return TrainConfig(**{
        "dataset": "mnist", "limit_train": 256, "image_size": 14, "conditional": True, "net": "cnn",
        "net_kwargs": {"channels": [4, 8, 4]}, "predict": "x0",
        "schedule": {"kind": "cosine", "num_timesteps": 10, "offset": 0.008, "max_beta": 0.999},
        "epochs": 1, "batch_size": 64, "sample_every": 1, "sample_n": 20, "sampler": "ddim",
        "sample_steps": 3, **changes})


def test_the_data_s_labels_reach_the_network_with_dropout_and_the_label_set_is_saved(
        tmp_path: Path, data_dir: Path) -> None:
    trainer = Trainer(tiny(cond_drop=0.25), tmp_path, quiet=True)
    assert trainer.config.classes == DIGITS
    batches: list[tuple[Tensor, Tensor]] = []
    seen: list[Tensor] = []
    loss = trainer._train_denoiser.loss

    def recording_loss(x0: Tensor, **options: Any) -> Tensor:
        batches.append((x0.clone(), options["labels"].clone()))
        return loss(x0, **options)

    trainer._train_denoiser.loss = recording_loss  # type: ignore[method-assign]
    trainer.net.register_forward_pre_hook(
        lambda net, args: seen.append(args[2].clone()) if net.training else None)
    trainer.fit()

    mnist = data.load("mnist", image_size=14, limit=256)
    assert len(batches) == len(seen) == 4
    for (x0, labels), given in zip(batches, seen, strict=True):
        rows = [int(torch.nonzero((mnist.images == image).all(dim=(1, 2, 3)))[0]) for image in x0]
        assert torch.equal(labels, mnist.labels[rows])  # each image with its own label
        kept = given != 10  # the rest dropped to the null class
        assert torch.equal(given[kept], labels[kept])
    dropped = sum(int((given == 10).sum()) for given in seen)
    assert 29 < dropped < 99  # 256 * 0.25 = 64 expected, within 5 standard deviations

    state = checkpoints.load(trainer.checkpoint_path)
    assert (state["config"]["conditional"], state["config"]["classes"]) == (True, DIGITS)
    assert 'classes = ["0", "1", "2"' in (tmp_path / "config.toml").read_text()
    grid = Image.open(tmp_path / "samples" / "epoch-001.png")
    assert grid.size == (2 + 2 * 16, 2 + 10 * 16)  # one row of 2 per class

    model = pretrained.from_checkpoint(trainer.checkpoint_path)
    assert model.classes == tuple(DIGITS)
    samples = model.sample(4, labels=["7", "7", 3, "1"], guidance=2.0)
    assert samples.shape == (4, 1, 14, 14) and float(samples.min()) >= 0 and float(samples.max()) <= 1
    torch.testing.assert_close(samples, model.sample(4, labels=torch.tensor([7, 7, 3, 1]), guidance=2.0),
                               rtol=0, atol=0)
    assert not torch.equal(samples, model.sample(4, labels=["7", "7", 3, "1"], guidance=0.0))
    with pytest.raises(ValueError, match=r"class '12' is not in the model's label set; accepted: a name "
                                         r"among \['0', .*'9'\] or an index in \[0, 9\]"):
        model.sample(2, labels=["12", "1"])
    with pytest.raises(ValueError, match=r"labels must have one entry per image: a \(3,\) integer tensor"):
        model.sample(3, labels=[1, 2])


def test_resuming_with_another_label_set_or_without_conditioning_is_refused(
        tmp_path: Path, data_dir: Path) -> None:
    Trainer(tiny(sample_every=0), tmp_path, quiet=True).fit()
    with pytest.raises(ConfigMismatchError, match="conditional: checkpoint has True, config has False"):
        Trainer(tiny(conditional=False, sample_every=0, epochs=2), tmp_path, quiet=True).fit(resume=True)
    images, labels = data.load("mnist", image_size=14, limit=256).images, data.load("mnist", limit=256).labels
    other = tiny(dataset="memory", sample_every=0, epochs=2, classes=[f"digit {d}" for d in range(10)])
    with pytest.raises(ConfigMismatchError, match=r"classes: checkpoint has \['0', .*config has \['digit 0'"):
        Trainer(other, tmp_path, quiet=True, images=images, labels=labels).fit(resume=True)


def test_a_conditional_model_trains_on_a_folder_of_class_subfolders(tmp_path: Path, data_dir: Path) -> None:
    mnist = data.mnist(limit=64)
    for index, (image, label) in enumerate(zip(mnist.images, mnist.labels, strict=True)):
        name = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"][int(label)]
        (tmp_path / "digits" / name).mkdir(parents=True, exist_ok=True)
        picture = Image.fromarray((image[0] * 255).byte().numpy(), mode="L")
        picture.save(tmp_path / "digits" / name / f"{index}.png")
    config = tiny(dataset=str(tmp_path / "digits"), channels=1, limit_train=None, batch_size=32)
    trainer = Trainer(config, tmp_path / "run", quiet=True)
    assert trainer.config.classes == sorted(["zero", "one", "two", "three", "four", "five", "six", "seven",
                                             "eight", "nine"])
    trainer.fit()
    names = trainer.config.classes
    images, labels = trainer.batches.images, trainer.batches.labels
    assert isinstance(images, Tensor) and labels is not None
    for image, label in zip(images, labels, strict=True):  # each image under its class's subfolder
        position = int(torch.nonzero((data.resize(mnist.images, 14) == image).all(dim=(1, 2, 3)))[0])
        assert names[int(label)] == ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                                     "nine"][int(mnist.labels[position])]


def test_a_tensor_with_labels_trains_a_conditional_model_and_a_wrong_length_is_refused(
        tmp_path: Path) -> None:
    images = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(64) % 3
    config = tiny(dataset="memory", image_size=None, sample_every=0, batch_size=32)
    trainer = Trainer(config, tmp_path, quiet=True, images=images, labels=labels)
    assert trainer.config.classes == ["0", "1", "2"]
    trainer.fit()
    assert trainer.sample(3, 2, labels=torch.tensor([0, 1, 2]), guidance=4.0).shape == (3, 1, 8, 8)
    with pytest.raises(ValueError, match=r"labels must be an integer tensor with one class index per image, "
                                         r"shape \(64,\), got shape \(63,\)"):
        Trainer(config, tmp_path / "other", quiet=True, images=images, labels=labels[:63])
    with pytest.raises(ValueError, match="the images given from Python carry none: pass labels="):
        Trainer(config, tmp_path / "other", quiet=True, images=images)


def unconditional_twin(**changes: Any) -> TrainConfig:
    return tiny(conditional=False, sample_every=0, **changes)


def test_init_from_the_shipped_model_starts_as_it_for_every_label(tmp_path: Path) -> None:
    shipped = pretrained.load("mnist-ddpm")
    config = shipped.config.replace(conditional=True, classes=DIGITS, init_from="mnist-ddpm", sample_every=0,
                                    fmd_every=0)
    trainer = Trainer(config, tmp_path, quiet=True)
    assert initialise(trainer.net, trainer.config) == ["class_embedding.weight"]
    x_t = torch.randn(11, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([1, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000])
    denoiser = trainer.denoiser.eval()
    with torch.no_grad():
        expected = shipped.denoiser(x_t, t)
        for labels in (torch.arange(11), None):  # the ten digits and the null class
            assert torch.equal(denoiser(x_t, t, labels), expected)


def test_init_from_a_checkpoint_is_what_fit_starts_from(tmp_path: Path, data_dir: Path) -> None:
    source = Trainer(unconditional_twin(ema=0.9), tmp_path / "source", quiet=True)
    source.fit()
    # A learning rate so small that one epoch leaves the weights where they started.
    config = tiny(sample_every=0, lr=1e-12, init_from=str(source.checkpoint_path))
    trainer = Trainer(config, tmp_path / "conditional", quiet=True)
    trainer.fit()
    started = pretrained.model_weights(source.checkpoint_path)[1]  # the EMA weights
    assert set(trainer.net.state_dict()) - set(started) == {"class_embedding.weight"}
    for key, value in trainer.net.state_dict().items():
        torch.testing.assert_close(value, started.get(key, torch.zeros_like(value)), rtol=0, atol=1e-9)
    # A resumed run continues from its checkpoint, not from init_from (gone by now).
    source.checkpoint_path.unlink()
    Trainer(config.replace(epochs=2), tmp_path / "conditional", quiet=True).fit(resume=True)


def test_init_from_another_model_is_refused_naming_what_differs(tmp_path: Path, data_dir: Path) -> None:
    Trainer(unconditional_twin(), tmp_path / "source", quiet=True).fit()
    checkpoint = str(tmp_path / "source" / "checkpoints" / "last.pt")
    wider = tiny(net_kwargs={"channels": [8, 8, 4]}, init_from=checkpoint)
    with pytest.raises(ValueError, match=r"is another model than this config's: net_kwargs: checkpoint "
                                         r"has \{'channels': \[4, 8, 4\]\}, config has "
                                         r"\{'channels': \[8, 8, 4\]\}"):
        initialise(Trainer(wider, tmp_path / "a", quiet=True).net, wider)
    Trainer(tiny(sample_every=0), tmp_path / "conditional", quiet=True).fit()
    back = unconditional_twin(init_from=str(tmp_path / "conditional" / "checkpoints" / "last.pt"))
    with pytest.raises(ValueError, match=r"has weights this network lacks: class_embedding\.weight"):
        initialise(Trainer(back, tmp_path / "b", quiet=True).net, back)
    mismatched = tiny(init_from=checkpoint)
    trainer = Trainer(mismatched, tmp_path / "c", quiet=True)
    nn.init.ones_(trainer.net.class_embedding.weight)  # type: ignore[union-attr, arg-type]
    with pytest.raises(ValueError, match=r"lacks weights that do not start at zero here: class_embedding\."):
        initialise(trainer.net, mismatched)
    with pytest.raises(checkpoints.CheckpointError, match="does not exist"):
        initialise(trainer.net, tiny(init_from=str(tmp_path / "missing.pt")))


@pytest.mark.parametrize("name", ["mnist-ddpm", "mnist-fashion-cold"])
def test_the_conditional_recipes_are_the_shipped_ones_made_conditional(name: str) -> None:
    configs = Path(pretrained.__file__).parent / "configs"
    plain = TrainConfig.load(configs / f"{name}.toml")
    conditional = TrainConfig.load(configs / f"{name}-cond.toml")
    assert (conditional.conditional, conditional.cond_drop) == (True, 0.1)
    assert conditional.replace(conditional=False, cond_drop=None) == plain  # nothing else differs
    resolved = with_classes(conditional)
    assert resolved.classes == DIGITS
    saved, weights = pretrained.model_weights(name)  # what --init-from NAME starts from
    shape_and_model = tuple(field for field in MODEL_FIELDS if field not in CONDITIONING_FIELDS)
    assert model_differences(saved, resolved, shape_and_model) == []
    net = build_denoiser(resolved).net
    assert set(net.state_dict()) - set(weights) == {"class_embedding.weight"}
    assert set(weights) <= set(net.state_dict())


@pytest.mark.parametrize(("recipe", "source"), [("mnist-ddpm-cond-finetune", "mnist-ddpm"),
                                              ("mnist-fashion-cold-cond-finetune", "mnist-fashion-cold"),
                                              ("mnist-fashion-hot-cond-finetune", "mnist-fashion-hot")])
def test_each_conditional_fine_tune_recipe_starts_from_its_shipped_model(recipe: str, source: str) -> None:
    configs = Path(pretrained.__file__).parent / "configs"
    resolved = with_classes(TrainConfig.load(configs / f"{recipe}.toml").replace(init_from=source))
    assert (resolved.conditional, resolved.classes) == (True, DIGITS)
    saved, weights = pretrained.model_weights(source)
    shipped = TrainConfig.from_dict(saved)
    # The same model, degradation (noise included) and sampler; only the conditioning is new.
    shape_and_model = tuple(field for field in MODEL_FIELDS if field not in CONDITIONING_FIELDS)
    assert model_differences(saved, resolved, shape_and_model) == []
    assert resolved.degradation_kwargs == shipped.degradation_kwargs
    assert (resolved.sampler, resolved.sampler_kwargs) == (shipped.sampler, shipped.sampler_kwargs)
    net = build_denoiser(resolved).net
    assert set(net.state_dict()) - set(weights) == {"class_embedding.weight"}


def test_embedding_lr_gives_the_class_embedding_its_own_adam_step(tmp_path: Path, data_dir: Path) -> None:
    # One optimiser step (64 images, batch 64): Adam's first step moves every entry whose gradient
    # is not zero by lr * g / (|g| + eps), +-lr to within 1% here, so the embedding moves by embedding_lr
    # while the rest, at lr = 1e-12, stays where it was.
    config = tiny(sample_every=0, limit_train=64, lr=1e-12, embedding_lr=0.01, cond_drop=0.0)
    trainer = Trainer(config, tmp_path, quiet=True)
    embedding = trainer.net.class_embedding.weight  # type: ignore[union-attr]
    groups = trainer.optimizer.param_groups
    assert [group["params"] for group in groups[1:]] == [[embedding]]
    assert all(parameter is not embedding for parameter in groups[0]["params"])
    assert [group["lr"] for group in groups] == [1e-12, 0.01]
    before = {key: value.clone() for key, value in trainer.net.state_dict().items()}
    trainer.fit()
    labels = data.load("mnist", image_size=14, limit=64).labels
    moved = embedding.detach()[labels.unique()]
    assert bool((moved.abs() <= 0.01 * (1 + 1e-6)).all()) and bool((moved.abs() > 0.0099).all())
    assert not embedding.detach()[10].any()  # no label dropped: the null class has no gradient
    for key, value in trainer.net.state_dict().items():
        if key != "class_embedding.weight":
            torch.testing.assert_close(value, before[key], rtol=0, atol=1e-11)


def test_the_warm_up_scales_each_group_from_its_own_rate(tmp_path: Path, data_dir: Path) -> None:
    trainer = Trainer(tiny(sample_every=0, lr=1e-3, embedding_lr=0.01, warmup=8), tmp_path, quiet=True)
    trainer.fit()  # 4 steps of 8: the last at (3 + 1) / 8 of each rate
    assert [group["lr"] for group in trainer.optimizer.param_groups] == [1e-3 / 2, 0.01 / 2]
    plain = Trainer(tiny(sample_every=0, lr=1e-3, warmup=8), tmp_path / "plain", quiet=True)
    plain.fit()
    assert [group["lr"] for group in plain.optimizer.param_groups] == [1e-3 / 2]


def test_resuming_with_or_without_embedding_lr_as_saved_is_checked(tmp_path: Path, data_dir: Path) -> None:
    cases = ((0.01, None, "0.01 there and None here"), (None, 0.01, "None there and 0.01 here"))
    for saved, asked, shown in cases:
        out = tmp_path / f"saved-{saved}"
        Trainer(tiny(sample_every=0, embedding_lr=saved), out, quiet=True).fit()
        message = (f"cannot resume {out / 'checkpoints' / 'last.pt'}: embedding_lr is {shown} (set it, or "
                   "not, as there: it gives the class embedding an optimiser group of its own)")
        with pytest.raises(ConfigMismatchError, match=f"^{re.escape(message)}$"):
            Trainer(tiny(sample_every=0, epochs=2, embedding_lr=asked), out, quiet=True).fit(resume=True)


def test_a_resumed_run_trains_at_the_config_s_rates(tmp_path: Path, data_dir: Path) -> None:
    Trainer(tiny(sample_every=0, lr=1e-3, embedding_lr=0.01), tmp_path, quiet=True).fit()
    resumed = Trainer(tiny(sample_every=0, epochs=2, lr=2e-3, embedding_lr=0.05), tmp_path, quiet=True)
    resumed.fit(resume=True)
    assert resumed.step == 8
    assert [group["lr"] for group in resumed.optimizer.param_groups] == [2e-3, 0.05]


@pytest.mark.parametrize(("changes", "message"), [
    ({"conditional": False, "embedding_lr": 0.01},
     "embedding_lr is for a conditional model; set conditional = true (or leave embedding_lr out)"),
    ({"embedding_lr": 0.0}, "embedding_lr must be a finite number > 0, got 0.0"),
    ({"embedding_lr": float("inf")}, "embedding_lr must be a finite number > 0, got inf"),
    ({"embedding_lr": True}, "embedding_lr must be a finite number > 0, got True"),
    ({"embedding_lr": "0.01"}, "embedding_lr must be a finite number > 0, got '0.01'"),
])
def test_a_bad_embedding_lr_is_refused_naming_it(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        tiny(**changes)


def test_embedding_lr_needs_a_network_with_a_class_embedding() -> None:
    with pytest.raises(ValueError, match=r"^embedding_lr needs a network with a class embedding \(a "
                                         r"class_embedding module, as the conditional cnn and unet have\); "
                                         r"Linear has none$"):
        build_optimizer(nn.Linear(2, 2), tiny(embedding_lr=0.01), torch.device("cpu"))
    optimizer = build_optimizer(nn.Linear(2, 2), tiny(), torch.device("cpu"))
    assert len(optimizer.param_groups) == 1 and optimizer.param_groups[0]["lr"] == tiny().lr


@pytest.mark.parametrize("name", ["mnist-ddpm-cond", "mnist-fashion-cold-cond"])
def test_the_fine_tune_recipes_are_the_conditional_ones_with_a_fine_tuning_schedule(name: str) -> None:
    """Only the optimisation (and the shipped guidance) differs: the same model, trained from the
    unconditional one's weights for at most as long."""
    configs = Path(pretrained.__file__).parent / "configs"
    full = TrainConfig.load(configs / f"{name}.toml")
    short = TrainConfig.load(configs / f"{name}-finetune.toml")
    assert short.embedding_lr == 0.01 and short.epochs <= full.epochs and short.lr < full.lr
    schedule = ("epochs", "lr", "warmup", "ema", "ema_start", "sample_every", "fmd_every", "embedding_lr",
                "guidance")
    assert short.replace(**{field: getattr(full, field) for field in schedule}) == full


def test_init_from_a_cold_model_into_its_noisy_twin_copies_every_weight(tmp_path: Path,
                                                                        data_dir: Path) -> None:
    cold = unconditional_twin(degradation="fashion_mnist", sampler="cold", ema=0.9)
    source = Trainer(cold, tmp_path / "cold", quiet=True)
    source.fit()
    hot = cold.replace(degradation_kwargs={"noise": 0.05}, init_from=str(source.checkpoint_path))
    trainer = Trainer(hot, tmp_path / "hot", quiet=True)
    assert initialise(trainer.net, trainer.config) == []  # nothing new: every weight copied
    started = pretrained.model_weights(source.checkpoint_path)[1]
    for key, value in trainer.net.state_dict().items():
        assert torch.equal(value, started[key]), key
    # The noise is left out of the comparison, nothing else: another schedule is another model.
    longer = hot.replace(schedule={"kind": "cosine", "num_timesteps": 20, "offset": 0.008, "max_beta": 0.999})
    with pytest.raises(ValueError, match=r"is another model than this config's: schedule: [^;]*$"):
        initialise(Trainer(longer, tmp_path / "longer", quiet=True).net, longer)
    # And back: a noisy model fine-tunes into its cold twin.
    Trainer(hot.replace(init_from=None), tmp_path / "hot-source", quiet=True).fit()
    back = cold.replace(init_from=str(tmp_path / "hot-source" / "checkpoints" / "last.pt"))
    assert initialise(Trainer(back, tmp_path / "back", quiet=True).net, back) == []
