"""Labels and label sets from every data source, and the conditioning fields of a config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from colddiff import data
from colddiff.config import TrainConfig, build_denoiser
from colddiff.data import datasets
from colddiff.training.labels import checked_labels, data_classes, with_classes


def write_classes(folder: Path, counts: dict[str, int], top: int = 0) -> None:
    """``counts[name]`` 8x8 grey PNGs under ``folder/name/`` (some one level deeper), and ``top``
    at the top."""
    generator = torch.Generator().manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    for name, count in counts.items():
        for i in range(count):
            where = folder / name / ("deeper" if i % 2 else "")
            where.mkdir(parents=True, exist_ok=True)
            pixels = torch.randint(0, 256, (8, 8), generator=generator, dtype=torch.uint8).numpy()
            Image.fromarray(pixels, mode="L").save(where / f"{i}.png")
    for i in range(top):
        Image.fromarray(torch.zeros(8, 8, dtype=torch.uint8).numpy(), mode="L").save(folder / f"top{i}.png")


def test_a_folder_s_subfolders_are_its_classes(tmp_path: Path) -> None:
    write_classes(tmp_path, {"dog": 3, "cat": 2, "emu": 1})
    folder = data.ImageFolder(tmp_path, channels=1)
    assert folder.classes == ("cat", "dog", "emu")
    expected = {"cat": 0, "dog": 1, "emu": 2}
    by_hand = [expected[file.relative_to(tmp_path).parts[0]] for file in folder.files]
    assert folder.labels().tolist() == by_hand
    loaded = data.load(tmp_path, channels=1, limit=4)
    assert loaded.classes == ("cat", "dog", "emu") and loaded.labels.tolist() == folder.labels()[:4].tolist()
    folder.files = folder.files[3:]  # what a limit or a broken file leaves out
    assert folder.classes == ("cat", "dog", "emu")  # fixed: the labels keep their meaning
    assert folder.labels().tolist() == [1, 1, 2]


def conditional(dataset: str, **changes: object) -> TrainConfig:
    return TrainConfig(dataset=dataset, image_size=8, conditional=True, **changes)  # type: ignore[arg-type]


def test_a_conditional_run_takes_the_folder_s_classes_and_refuses_one_class(tmp_path: Path) -> None:
    write_classes(tmp_path / "two", {"cat": 2, "dog": 2})
    assert with_classes(conditional(str(tmp_path / "two"))).classes == ["cat", "dog"]
    write_classes(tmp_path / "one", {"cat": 2})
    with pytest.raises(ValueError, match="holds a single class subfolder, 'cat'; conditional = true needs "
                                         "one subfolder per class, at least 2"):
        with_classes(conditional(str(tmp_path / "one")))
    write_classes(tmp_path / "flat", {}, top=3)
    with pytest.raises(ValueError, match="holds no class subfolder; conditional = true"):
        data_classes(conditional(str(tmp_path / "flat")))
    with pytest.raises(ValueError, match=r"classes \['dog', 'cat'\] \(the config's\) do not match the data's "
                                         r"\['cat', 'dog'\]; leave classes out"):
        with_classes(conditional(str(tmp_path / "two"), classes=["dog", "cat"]))


def test_images_outside_the_class_subfolders_have_no_label_and_stop_a_conditional_run(tmp_path: Path) -> None:
    write_classes(tmp_path, {"cat": 2, "dog": 2}, top=1)
    loaded = data.load(tmp_path, channels=1)
    assert sorted(loaded.labels.tolist()) == [-1, 0, 0, 1, 1]
    config = with_classes(conditional(str(tmp_path)))
    with pytest.raises(ValueError, match="needs a label for every training image; 1 of 5 have none"):
        checked_labels(config, loaded.labels)
    assert checked_labels(config.replace(conditional=False, classes=None), loaded.labels) is None


def test_a_tensor_takes_a_label_tensor_of_its_length() -> None:
    images, labels = torch.rand(5, 1, 8, 8), torch.tensor([2, 0, 1, 2, 0])
    loaded = data.load(images, labels=labels, limit=4)
    assert loaded.labels.tolist() == [2, 0, 1, 2] and loaded.classes is None
    config = with_classes(TrainConfig(dataset="memory", conditional=True), loaded)
    assert config.classes == ["0", "1", "2"]
    for bad, message in ((torch.tensor([0, 1, 2]), r"shape \(5,\), got shape \(3,\)"),
                         (torch.rand(5), "dtype torch.float32"),
                         ([0, 1, 2, 0, 1], "got list"),
                         (torch.tensor([0, 1, -1, 0, 1]), "labels must be class indices >= 0, got -1")):
        with pytest.raises(ValueError, match=message):
            data.load(images, labels=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="labels is for images given as a tensor; a str source carries"):
        data.load("mnist", labels=labels)
    with pytest.raises(ValueError, match="the images given from Python carry none: pass labels="):
        with_classes(TrainConfig(dataset="memory", conditional=True), data.load(images))


class Pairs(Dataset[tuple[Tensor, int]]):
    """A dataset of ``(image, label)`` pairs with torchvision-style class names."""

    classes = ("zero", "one", "two")

    def __len__(self) -> int:
        return 6

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return torch.full((1, 4, 4), index / 10), index % 3


def test_a_dataset_of_image_label_pairs_gives_its_labels_and_class_names() -> None:
    loaded = data.load(Pairs())
    assert loaded.labels.tolist() == [0, 1, 2, 0, 1, 2] and loaded.classes == ("zero", "one", "two")
    config = with_classes(TrainConfig(dataset="memory", conditional=True), loaded)
    assert config.classes == ["zero", "one", "two"]


def test_the_named_datasets_name_their_classes(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mnist = data.load("mnist", limit=50)
    assert mnist.classes == tuple("0123456789")
    assert torch.equal(mnist.labels, datasets._read("MNIST", True, str(data_dir), True)[1][:50])
    fashion = data.fashion_mnist(train=False, limit=3)
    assert fashion.classes is not None and fashion.classes[7] == "Sneaker"
    pixels = torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8)
    monkeypatch.setattr(datasets, "_read_cifar10", lambda *args: (pixels, torch.tensor([3, 9, 0, 3])))
    cifar = data.load("cifar10")
    assert cifar.labels.tolist() == [3, 9, 0, 3] and cifar.classes is not None and cifar.classes[3] == "cat"
    for name in ("mnist", "fashion_mnist", "cifar10"):
        assert with_classes(TrainConfig(dataset=name, conditional=True)).classes == list(data.CLASSES[name])


@pytest.mark.parametrize(("changes", "message"), [
    ({"conditional": "yes"}, "conditional must be true or false, got 'yes'"),
    ({"cond_drop": 0.2},
     r"cond_drop is for a conditional model; set conditional = true \(or leave cond_drop out\)"),
    ({"guidance": 2.0}, "guidance is for a conditional model"),
    ({"classes": ["a", "b"]}, "classes is for a conditional model"),
    ({"conditional": True, "cond_drop": 1.0}, r"cond_drop must be a probability in \[0, 1\) .* got 1.0"),
    ({"conditional": True, "cond_drop": -0.5}, "cond_drop must be a probability"),
    ({"conditional": True, "guidance": -1.0}, "guidance must be a finite number >= 0"),
    ({"conditional": True, "guidance": float("nan")}, "guidance must be a finite number >= 0"),
    ({"conditional": True, "classes": ["a"]}, "classes must hold at least 2 classes"),
    ({"init_from": ""}, "init_from must be a shipped model's name or a checkpoint file, got ''"),
])
def test_bad_conditioning_fields_are_refused_naming_them(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)  # type: ignore[arg-type]


def test_the_network_is_built_for_the_config_s_classes() -> None:
    config = TrainConfig(conditional=True, classes=["a", "b", "c"], cond_drop=0.25, net="unet",
                         net_kwargs={"channels": 8})
    denoiser = build_denoiser(config)
    assert (denoiser.net.num_classes, denoiser.cond_drop) == (3, 0.25)
    with pytest.raises(ValueError, match="conditional = true needs the label set, classes"):
        build_denoiser(TrainConfig(conditional=True))
    with pytest.raises(ValueError, match=r"net 'cnn' is built conditional \(net_kwargs .*num_classes.*\) but "
                                         "the config is not: set conditional = true"):
        build_denoiser(TrainConfig(net_kwargs={"channels": [4], "num_classes": 3}))
