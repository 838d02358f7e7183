"""Training data from any source: a folder of real PNG and JPEG files, CIFAR-10 by name, a
tensor, a Dataset; resizing, channel conversion and broken files (issue 14)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from colddiff import data


def write_folder(folder: Path) -> dict[str, torch.Tensor]:
    """Real image files: RGB PNG 40x30, greyscale PNG 32x32 in a subfolder, RGB JPEG 36x36, RGBA
    PNG 32x32, a text file that is not an image, and a truncated PNG."""
    generator = torch.Generator().manual_seed(0)
    written = {}
    (folder / "sub").mkdir(parents=True)
    for name, mode, size in (("a.png", "RGB", (40, 30)), ("sub/b.png", "L", (32, 32)),
                             ("c.JPG", "RGB", (36, 36)), ("d.png", "RGBA", (32, 32))):
        channels = len(mode)
        pixels = torch.randint(0, 256, (size[1], size[0], channels), generator=generator, dtype=torch.uint8)
        array = pixels.squeeze(-1).numpy()
        Image.fromarray(array, mode=mode).save(folder / name)
        written[name] = pixels
    (folder / "notes.txt").write_text("not an image")
    good = (folder / "a.png").read_bytes()
    (folder / "e-truncated.png").write_bytes(good[: len(good) // 2])
    return written


def test_a_folder_of_mixed_files_loads_resized_with_the_broken_one_named(tmp_path: Path) -> None:
    written = write_folder(tmp_path)
    broken = r"e-truncated\.png cannot be decoded.*on_error='skip'"
    with pytest.raises(data.DatasetCorruptError, match=broken):
        data.load(tmp_path, image_size=16)
    with pytest.warns(UserWarning, match=r"skipped image file .*e-truncated\.png"):
        loaded = data.load(tmp_path, image_size=16, on_error="skip")
    assert loaded.images.shape == (4, 3, 16, 16), "a.png, c.JPG, d.png, sub/b.png; notes.txt ignored"
    assert loaded.images.dtype == torch.float32
    assert float(loaded.images.min()) >= 0 and float(loaded.images.max()) <= 1
    # The subfolders are the classes: sub/b.png is of class "sub", the others (at the top) of none.
    assert (loaded.labels.tolist(), loaded.classes) == ([-1, -1, -1, 0], ("sub",))
    grey = data.load(tmp_path, image_size=16, channels=1, on_error="skip", limit=2)
    assert grey.images.shape == (2, 1, 16, 16)

    # sub/b.png is greyscale 32x32: as RGB its three channels are equal and, at its own size,
    # exactly its pixels / 255.
    exact = data.ImageFolder(tmp_path, channels=3)
    index = [file.name for file in exact.files].index("b.png")
    b = exact[index]
    assert torch.equal(b, written["sub/b.png"].permute(2, 0, 1).expand(3, -1, -1).float() / 255)

    sizes = r"have different sizes \(a\.png 40x30; c\.JPG 36x36\).*image_size"
    with pytest.raises(ValueError, match=sizes), pytest.warns(UserWarning, match="skipped"):
        data.load(tmp_path, on_error="skip")


def test_folder_and_option_errors_name_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^data must be one of mnist, fashion_mnist, cifar10 or a folder of "
                       r"images; 'no-such-thing' is neither$"):
        data.load("no-such-thing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.DatasetNotFoundError, match=r"holds no images \(\.png, \.jpg, \.jpeg"):
        data.load(tmp_path / "empty")
    for kwargs, message in (({"image_size": 0}, "image_size must be a positive integer or None, got 0"),
                            ({"channels": 2}, "channels must be 1 or 3, got 2"),
                            ({"on_error": "ignore"}, "on_error must be 'raise' or 'skip', got 'ignore'")):
        with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)") + "$"):
            data.load(torch.rand(2, 1, 4, 4), **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"must hold values in \[0, 1\], got values from 0 to 255"):
        data.load(torch.tensor([[[[0.0, 255.0]]]]))


def test_cifar10_offline_says_where_to_put_the_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    with pytest.raises(data.DatasetNotFoundError, match=r"CIFAR-10 is not in .*cifar-10-batches-py.*"
                       r"cifar-10-python\.tar\.gz.*COLDDIFF_DATA_DIR"):
        data.load("cifar10", download=False)


def test_named_tensor_and_dataset_sources_agree(data_dir: Path) -> None:
    mnist = data.load("mnist", limit=50)
    assert torch.equal(mnist.images, data.mnist(limit=50).images)
    assert torch.equal(mnist.labels, data.mnist(limit=50).labels)
    from_tensor = data.load(mnist.images)
    from_dataset = data.load(data.mnist(limit=50))  # (image, label tensor) pairs
    assert torch.equal(from_tensor.images, mnist.images) and torch.equal(from_dataset.images, mnist.images)
    assert torch.equal(from_dataset.labels, mnist.labels)

    coloured = data.load(mnist.images, channels=3, image_size=32)
    assert coloured.images.shape == (50, 3, 32, 32)
    assert torch.equal(coloured.images[:, 0], coloured.images[:, 1])

    from torchvision.datasets import FakeData

    pil = FakeData(size=5, image_size=(3, 20, 24), num_classes=4, random_offset=1)
    loaded = data.load(pil, image_size=16)
    assert loaded.images.shape == (5, 3, 16, 16) and loaded.labels.shape == (5,)


@given(height=st.integers(1, 40), width=st.integers(1, 40), size=st.integers(1, 24))
def test_resize_gives_the_square_and_keeps_the_range(height: int, width: int, size: int) -> None:
    images = torch.rand(2, 3, height, width, generator=torch.Generator().manual_seed(height * 41 + width))
    out = data.resize(images, size)
    assert out.shape == (2, 3, size, size)
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    constant = torch.full((1, 1, height, width), 0.25)
    assert torch.allclose(data.resize(constant, size), torch.tensor(0.25), atol=1e-6)


def test_rgb_to_grey_uses_pillows_weights(tmp_path: Path) -> None:
    pixels = torch.randint(0, 256, (6, 5, 3), generator=torch.Generator().manual_seed(3), dtype=torch.uint8)
    Image.fromarray(pixels.numpy(), mode="RGB").save(tmp_path / "x.png")
    ours = data.load(torch.from_numpy(pixels.numpy()).permute(2, 0, 1)[None].float() / 255, channels=1).images
    pillow = data.load(tmp_path, channels=1).images
    assert math.isclose(float((ours - pillow).abs().max()), 0.0, abs_tol=1 / 255 + 1e-6), \
        "Pillow rounds to uint8; we keep the exact weighted sum"


def write_colour_folder(folder: Path, n: int) -> None:
    """``n`` real PNG files of varied sizes: coloured squares on noise."""
    generator = torch.Generator().manual_seed(1)
    folder.mkdir(parents=True)
    for i in range(n):
        height, width = 18 + i % 5, 16 + i % 7
        pixels = torch.randint(0, 256, (height, width, 3), generator=generator, dtype=torch.uint8)
        pixels[4:12, 4:12, i % 3] = 255
        Image.fromarray(pixels.numpy(), mode="RGB").save(folder / f"img-{i:03d}.png")


TINY = {"net_kwargs": {"channels": [4, 4]}, "batch_size": 16, "sample_every": 1, "sample_n": 4,
        "sample_steps": 3, "epochs": 1, "schedule": {"kind": "linear", "beta_start": 1e-4, "beta_end": 0.1,
                                                     "num_timesteps": 20}}


def test_train_resume_and_sample_on_a_folder_of_rgb_images(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from colddiff.cli import main
    from colddiff.config import TrainConfig

    folder = tmp_path / "pictures"
    write_colour_folder(folder, 40)
    out = tmp_path / "run"
    base = ["train", "--config", str(tmp_path / "tiny.toml"), "--data", str(folder), "--image-size", "16",
            "--out", str(out), "--quiet", "--device", "cpu"]
    TrainConfig.from_dict(TINY).save(tmp_path / "tiny.toml")
    assert main(base) == 0
    config = TrainConfig.load(out / "config.toml")
    assert (config.dataset, config.image_size, config.image_shape) == (str(folder), 16, (3, 16, 16))
    grid = Image.open(out / "samples" / "epoch-001.png")
    assert grid.mode == "RGB", "colour samples are saved in colour"
    assert main([*base, "--epochs", "2", "--resume"]) == 0
    last = [line for line in (out / "metrics.jsonl").read_text().splitlines() if line][-1]
    assert last.startswith('{"epoch": 2')

    samples = tmp_path / "s.pt"
    assert main(["sample", "--checkpoint", str(out / "checkpoints" / "last.pt"), "-n", "3",
                 "--sample-steps", "2", "--out", str(tmp_path / "s.png"), "--save-tensor", str(samples)]) == 0
    drawn = torch.load(samples, weights_only=True)
    assert drawn.shape == (3, 3, 16, 16) and bool(torch.isfinite(drawn).all())
    capsys.readouterr()

    for bad, message in ((["--data", str(folder)], "a folder of images it needs --image-size, the size"),
                         (["--data", str(tmp_path / "nowhere"), "--image-size", "8"], "no folder")):
        with pytest.raises(SystemExit):
            main(["train", "--preset", "ddpm-short", *bad, "--out", str(tmp_path / "x"), "--quiet"])
        assert message in capsys.readouterr().err


def test_forward_strip_of_colour_images_mixes_in_fashion_mnist(tmp_path: Path, data_dir: Path) -> None:
    from colddiff.cli import main

    folder = tmp_path / "pictures"
    write_colour_folder(folder, 4)
    strip = tmp_path / "forward.png"
    assert main(["degrade", "--degradation", "fashion_mnist", "--data", str(folder), "--image-size", "16",
                 "-n", "2", "--frames", "3", "--out", str(strip)]) == 0
    assert Image.open(strip).mode == "RGB" and Image.open(strip).size == (3 * 16 + 4 * 2, 2 * 16 + 3 * 2)


@pytest.mark.parametrize(("degradation", "value_range"), [("gaussian", [0, 1]), ("blur", [0, 1]),
                                                         ("fashion_mnist", [0, 1]), ("gaussian", [-1, 1]),
                                                         ("fashion_mnist", [-1, 1])])
def test_every_built_in_degradation_trains_on_coloured_32px_digits_from_python(
        degradation: str, value_range: list[int], tmp_path: Path, data_dir: Path) -> None:
    from colddiff.config import TrainConfig
    from colddiff.training import Trainer

    digits = data.load("mnist", limit=64, image_size=32, channels=3).images
    coloured = digits * torch.tensor([1.0, 0.5, 0.2]).view(1, 3, 1, 1)  # orange digits
    predict = "eps" if degradation == "gaussian" else "x0"
    sampler = "ddpm" if degradation == "gaussian" else "cold"
    config = TrainConfig.from_dict({**TINY, "degradation": degradation, "predict": predict,
                                    "sampler": sampler, "sample_every": 0, "value_range": value_range})
    trainer = Trainer(config, tmp_path / "run", quiet=True, images=coloured)
    trainer.fit()
    assert trainer.config.dataset == "memory" and trainer.degradation.image_shape == (3, 32, 32)
    assert TrainConfig.load(tmp_path / "run" / "config.toml").dataset == "memory"
    samples = trainer.sample(2, 3)
    assert samples.shape == (2, 3, 32, 32) and bool(torch.isfinite(samples).all())
    assert float(samples.min()) >= 0 and float(samples.max()) <= 1, "samples come back in [0, 1]"
    seen = trainer.batches.images
    assert isinstance(seen, torch.Tensor)
    torch.testing.assert_close(seen.cpu(), coloured * (value_range[1] - value_range[0]) + value_range[0])
    if degradation == "fashion_mnist":
        source = trainer.degradation.sample_source(seen[:8].cpu())
        assert source is not None and float(source.min()) >= value_range[0] and float(source.max()) <= 1
        assert (float(source.min()) < 0) == (value_range[0] < 0), "the clothes are in the data's range"
    with pytest.raises(ValueError, match=r"pass them again: Trainer\(config, out, images=\.\.\.\)"):
        Trainer(trainer.config, tmp_path / "run", quiet=True)


def test_a_folder_too_large_for_memory_is_read_lazily_with_the_same_result(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Read by DataLoader workers, a folder trains the bit-identical model that the in-memory
    path trains (same order, same images), resumes mid-run, and its broken files are found
    before training."""
    from colddiff.config import TrainConfig
    from colddiff.training import Trainer

    folder = tmp_path / "pictures"
    write_colour_folder(folder, 40)
    config = TrainConfig.from_dict({**TINY, "dataset": str(folder), "image_size": 16, "sample_every": 0,
                                    "degradation": "blur", "predict": "x0", "sampler": "cold",
                                    "data_workers": 1})
    in_memory = Trainer(config, tmp_path / "memory", quiet=True)
    in_memory.fit()
    monkeypatch.setattr(data, "IN_MEMORY_BYTES", 1)  # every folder is "too large" now
    lazy = Trainer(config, tmp_path / "lazy", quiet=True)
    assert isinstance(lazy.batches.images, data.ImageFolder)
    lazy.fit()
    for name, value in in_memory.net.state_dict().items():
        assert torch.equal(value, lazy.net.state_dict()[name]), name
    samples = lazy.sample(2, 3)
    assert samples.shape == (2, 3, 16, 16) and lazy.degradation.prior_fitted

    resumed = Trainer(config.replace(epochs=2), tmp_path / "lazy", quiet=True)
    resumed.fit(resume=True)
    assert resumed.epoch == 2

    (folder / "zz-broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(data.DatasetCorruptError, match=r"zz-broken\.png cannot be decoded"):
        Trainer(config, tmp_path / "broken", quiet=True).fit()
    with pytest.warns(UserWarning, match=r"skipped image file .*zz-broken\.png"):
        Trainer(config.replace(on_error="skip"), tmp_path / "skipped", quiet=True).fit()


def test_value_range_is_checked_and_part_of_the_model() -> None:
    from colddiff.config import TrainConfig, model_differences

    with pytest.raises(ValueError, match=r"^value_range must be \[0, 1\] or \[-1, 1\], got \[0, 255\]$"):
        TrainConfig(value_range=[0, 255])
    centred = TrainConfig(value_range=[-1, 1])
    assert centred.value_range == [-1.0, 1.0] and TrainConfig.from_dict(centred.to_dict()) == centred
    saved = TrainConfig().to_dict()
    assert model_differences(saved, centred) == [
        "value_range: checkpoint has [0.0, 1.0], config has [-1.0, 1.0]"]
    del saved["value_range"]  # a checkpoint written before the option: [0, 1]
    assert model_differences(saved, TrainConfig()) == []


def test_animorphosis_mixes_the_training_images_with_any_source(tmp_path: Path, data_dir: Path) -> None:
    """Bansal's animorphosis with a folder as the source: coloured digits mixed with pictures."""
    from colddiff import degradations
    from colddiff.config import TrainConfig
    from colddiff.training import Trainer

    folder = tmp_path / "pictures"
    write_colour_folder(folder, 12)
    mixing = degradations.create("mixing", source=str(folder), image_shape=(3, 16, 16))
    pictures = data.load(folder, image_size=16).images
    source = mixing.sample_source(torch.zeros(5, 3, 16, 16), generator=torch.Generator().manual_seed(0))
    assert source is not None and all(any(torch.equal(s, p) for p in pictures) for s in source)
    assert all(any(torch.equal(s, p) for p in pictures) for s in mixing.prior(3)), "a folder: its own prior"

    digits = data.load("mnist", limit=64, image_size=16, channels=3).images
    config = TrainConfig.from_dict({**TINY, "degradation": "mixing", "predict": "x0", "sampler": "cold",
                                    "degradation_kwargs": {"source": str(folder)}, "sample_every": 0})
    trainer = Trainer(config, tmp_path / "run", quiet=True, images=digits)
    trainer.fit()
    assert trainer.sample(2, 3).shape == (2, 3, 16, 16)


def test_a_dataset_object_trains_resumes_and_round_trips_its_config(tmp_path: Path, data_dir: Path) -> None:
    from colddiff.config import TrainConfig
    from colddiff.training import Trainer

    digits = data.mnist(limit=64)  # a map-style Dataset of (image, label) pairs
    config = TrainConfig.from_dict({**TINY, "sample_every": 0, "channels": 3, "image_size": 20})
    Trainer(config, tmp_path / "run", quiet=True, images=digits).fit()
    saved = TrainConfig.load(tmp_path / "run" / "config.toml")
    assert (saved.dataset, saved.channels, saved.image_size) == ("memory", 3, 20)
    assert saved.image_shape == (3, 20, 20)
    resumed = Trainer(saved.replace(epochs=2), tmp_path / "run", quiet=True, images=digits)
    resumed.fit(resume=True)
    assert resumed.epoch == 2 and resumed.sample(2, 3).shape == (2, 3, 20, 20)


def test_what_a_newcomer_runs_into(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    """Findings of a newcomer's run through the guide: a Python-trained run samples from the
    command line, a changed image shape is named, mistakes are named, paths are absolute."""
    from colddiff import pretrained
    from colddiff.cli import main
    from colddiff.config import TrainConfig
    from colddiff.training import ConfigMismatchError, Trainer

    coloured = data.load("mnist", limit=48, image_size=16, channels=3).images
    trainer = Trainer(TrainConfig.from_dict({**TINY, "sample_every": 0}), tmp_path / "py", quiet=True,
                      images=coloured)
    trainer.fit()
    assert (trainer.config.channels, trainer.config.image_size) == (3, 16), "recorded in the config"
    model = pretrained.from_checkpoint(tmp_path / "py" / "checkpoints" / "last.pt")
    assert model.sample(2, 3).shape == (2, 3, 16, 16)

    with pytest.raises(ConfigMismatchError, match=r"image shape: checkpoint has \(3, 16, 16\), config has "
                       r"\(3, 8, 8\)"):
        Trainer(trainer.config.replace(image_size=8, epochs=2), tmp_path / "py", quiet=True,
                images=coloured).fit(resume=True)

    with pytest.raises(ValueError, match=r"^dataset 'fashion-mnist' is not a dataset name \(mnist, "
                       r"fashion_mnist, cifar10\); as a folder of images it needs image_size"):
        TrainConfig(dataset="fashion-mnist")
    with pytest.raises(ValueError, match=r"looks channels-last, \(N, H, W, C\) = \(2, 8, 8, 3\)"):
        data.load(torch.rand(2, 8, 8, 3))

    folder = tmp_path / "pictures"
    write_colour_folder(folder, 20)
    (folder / "zz-broken.png").write_bytes(b"not a png")
    monkeypatch.chdir(tmp_path)
    assert main(["degrade", "--degradation", "blur", "--data", "pictures", "--image-size", "8",
                 "-n", "2", "--on-error", "skip", "--out", str(tmp_path / "f.png")]) == 0
    capsys.readouterr()
    assert main(["train", "--preset", "ddpm-short", "--data", "pictures", "--image-size", "8",
                 "--on-error", "skip", "--epochs", "1", "--batch-size", "8", "--sample-every", "0",
                 "--net", "cnn", "--out", str(tmp_path / "cli"), "--quiet"]) == 0
    assert TrainConfig.load(tmp_path / "cli" / "config.toml").dataset == str(folder.resolve())
    warned = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    broken = folder.resolve() / "zz-broken.png"
    assert warned == [f"colddiff train: warning: skipped image file {broken} cannot be decoded: cannot "
                      f"identify image file '{broken}'"]
