"""FMD: the shipped classifier, the protocols' oracles, streaming, files, the CLI and the hook."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from colddiff import data, fmd
from colddiff.cli import main
from colddiff.config import TrainConfig
from colddiff.training import Trainer


def test_shipped_weights_load_offline_and_reach_99_3_percent(data_dir: Path) -> None:
    classifier = fmd.load_classifier("mnist-v1")
    assert not classifier.training
    test = data.mnist(train=False)
    assert fmd.evaluate(classifier, test.images, test.labels) >= 0.993
    card = json.loads((Path(fmd.__file__).parent / "weights" / "mnist-v1.json").read_text())
    assert card["test_accuracy"] >= 0.993 and card["command"].startswith("colddiff fmd train-classifier")
    assert (Path(fmd.__file__).parent / "weights" / "mnist-v1.pt").stat().st_size < 600_000
    x = test.images[:5]
    assert classifier.features(x).shape == (5, 1024) and classifier(x).shape == (5, 10)


def test_altered_or_unknown_weights_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(Path(fmd.__file__).parent / "weights", tmp_path / "weights")
    weights = tmp_path / "weights" / "mnist-v1.pt"
    altered = bytearray(weights.read_bytes())
    altered[len(altered) // 2] ^= 0xFF
    weights.write_bytes(bytes(altered))
    monkeypatch.setattr("colddiff.fmd.classifier._weights_dir", lambda: tmp_path / "weights")
    with pytest.raises(fmd.WeightsError, match="SHA-256"):
        fmd.load_classifier()
    with pytest.raises(fmd.WeightsError, match="version must be one of"):
        fmd.load_classifier("mnist-v0")


def test_the_report_architecture() -> None:
    net = fmd.MNISTClassifier("report")
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in net.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert [c.out_channels for c in convs] == [32, 64, 128, 64]
    assert all(c.kernel_size == (5, 5) for c in convs)
    assert [n.normalized_shape for n in norms] == [(c, 28, 28) for c in (32, 64, 128, 64)]
    assert net.features(torch.rand(2, 1, 28, 28)).shape == (2, 1024)
    with pytest.raises(ValueError, match="arch must be one of"):
        fmd.MNISTClassifier("resnet")  # type: ignore[arg-type]


def test_report_protocol_oracles(data_dir: Path) -> None:
    black = fmd.score(torch.zeros(32, 1, 28, 28), protocol="report")
    assert black.normalized_fmd == pytest.approx(1.0, abs=1e-12), "black samples are the black baseline"
    real = fmd.score(data.mnist(train=True).images[:256], protocol="report")
    assert real.n_samples == 256 and real.fmd_std > 0
    assert abs(real.normalized_fmd) < 0.05, "real digits score like the test-set baseline"
    assert real.baseline_std > 0 and real.black_fmd > 3 * real.baseline_mean
    assert real.confidence > 0.98 and sum(real.class_histogram) == 256
    assert real.train_baseline is None and json.dumps(real.to_dict())


def test_the_report_protocol_is_its_definition_computed_by_hand(data_dir: Path) -> None:
    """Report section 4, step by step, from the classifier's features and the Fréchet distance of
    two feature tensors (no streaming statistics, no cache): batches of 32 against the first 512
    test images, the baseline over 15 seeded batches of other test images, 32 black images."""
    import statistics

    from colddiff.fmd.classifier import load_classifier

    classifier = load_classifier()

    @torch.no_grad()
    def features(images: torch.Tensor) -> torch.Tensor:
        return classifier.features(images)

    samples = data.mnist(train=True).images[:64]
    test = data.mnist(train=False).images
    reference = features(test[:512])
    distance = fmd.frechet_distance_from_features
    scored = [distance(reference, features(batch)) for batch in samples.split(32)]
    generator, pool = torch.Generator().manual_seed(5), test[512:]
    baseline = [distance(reference, features(pool[torch.randperm(len(pool), generator=generator)[:32]]))
                for _ in range(15)]
    black = distance(reference, features(torch.zeros(32, 1, 28, 28)))

    result = fmd.score(samples, protocol="report", seed=5)
    assert result.fmd == pytest.approx(statistics.fmean(scored), rel=1e-9)
    assert result.fmd_std == pytest.approx(statistics.stdev(scored), rel=1e-9)
    assert result.baseline_mean == pytest.approx(statistics.fmean(baseline), rel=1e-9)
    assert result.baseline_std == pytest.approx(statistics.stdev(baseline), rel=1e-9)
    assert result.black_fmd == pytest.approx(black, rel=1e-9)
    mean_scored, mean_baseline = statistics.fmean(scored), statistics.fmean(baseline)
    assert result.normalized_fmd == pytest.approx((mean_scored - mean_baseline) / (black - mean_baseline),
                                                  rel=1e-9)


def test_score_never_waits_for_other_processes(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Trainer's FMD hook scores on one process; summing across processes there would hang."""
    def refuse(stats: object) -> object:
        raise AssertionError("score() must not reduce across processes")

    monkeypatch.setattr("colddiff.fmd.metric._reduced", refuse)
    reference = fmd.FeatureStatistics(fmd.FEATURE_DIM)
    reference.update(torch.rand(3, fmd.FEATURE_DIM, dtype=torch.float64))
    metric = fmd.FMD(across_processes=False)
    metric.reset(real=reference)
    metric.update(torch.rand(2, 1, 28, 28), real=True)
    assert (reference.count, metric.real.count) == (3, 5), "reset(real=) copies the reference"
    assert fmd.score(torch.zeros(32, 1, 28, 28), protocol="report").normalized_fmd == pytest.approx(1.0)
    with pytest.raises(AssertionError, match="must not reduce"):
        metric = fmd.FMD()
        metric.update(torch.rand(4, 1, 28, 28), real=True)
        metric.update(torch.rand(4, 1, 28, 28), real=False)
        metric.compute()


def test_full_protocol_real_training_images_score_like_the_training_baseline(data_dir: Path) -> None:
    # A random subset: contiguous slices of MNIST are not random samples of it.
    train = data.mnist(train=True).images
    images = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(123))[:600]]
    real = fmd.score(images, protocol="full")
    assert real.fmd_ratio is not None and real.train_baseline is not None
    assert 0.8 < real.fmd_ratio < 1.25
    noisy = fmd.score((images + 0.3 * torch.rand(600, 1, 28, 28)).clamp(0, 1), protocol="full")
    assert noisy.fmd_ratio is not None and noisy.fmd_ratio > 3
    assert len(list(fmd.cache_dir().glob("mnist-v1-test-*.pt"))) >= 1, "reference statistics are cached"


def test_streaming_metric_equals_one_shot_and_resets(data_dir: Path) -> None:
    images = data.mnist(train=False).images[:1500]
    metric = fmd.FMD()
    for chunk in images[:1200].split(250):
        metric.update(chunk, real=True)
    metric.update(images[1200:], real=False)
    streamed = metric.compute()
    features = metric.features(images)
    one_shot = fmd.frechet_distance_from_features(features[:1200], features[1200:])
    assert streamed == pytest.approx(one_shot, rel=1e-6)
    metric.reset()
    with pytest.raises(ValueError, match="at least 2 samples"):
        metric.compute()


@pytest.mark.parametrize(
    ("images", "message"),
    [(torch.rand(4, 28, 28), r"shape \(N, 1, 28, 28\)"), (torch.rand(4, 3, 28, 28), "shape"),
     (torch.rand(1, 1, 28, 28), "at least 2"), (torch.rand(4, 1, 28, 28) - 0.5, r"\[0, 1\]"),
     (torch.full((4, 1, 28, 28), float("nan")), "finite")],
)
def test_bad_samples_get_a_clear_error(images: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fmd.check_images(images, "samples")


def test_samples_from_tensor_files_and_png_folders(tmp_path: Path, data_dir: Path) -> None:
    images = data.mnist(train=False).images[:6]
    torch.save(images, tmp_path / "samples.pt")
    folder = tmp_path / "pngs"
    (folder / "later").mkdir(parents=True)
    for i, image in enumerate(images):  # read as a training folder: subfolders too, in sorted order
        name = f"{i:03d}.png" if i < 3 else f"later/{i:03d}.png"
        Image.fromarray((image[0] * 255).round().byte().numpy()).save(folder / name)
    torch.testing.assert_close(fmd.load_samples(tmp_path / "samples.pt"), images)
    torch.testing.assert_close(fmd.load_samples(folder), images, atol=0.5 / 255, rtol=0)
    Image.new("RGB", (28, 28), (255, 255, 255)).save(folder / "later" / "white.jpg")  # JPEGs, made grey
    assert fmd.load_samples(folder).shape == (7, 1, 28, 28) and float(fmd.load_samples(folder)[-1].min()) == 1
    for i in range(60):
        Image.new("L", (32, 32)).save(folder / f"big{i:02d}.png")
    with pytest.raises(ValueError, match=r"must each be one 28x28 digit; 60 of 67 are not: big00.png "
                                         r"\(32x32\), big01.png \(32x32\), big02.png \(32x32\), \.\.\.$"):
        fmd.load_samples(folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.DatasetNotFoundError, match="holds no images"):
        fmd.load_samples(tmp_path / "empty")
    with pytest.raises(ValueError, match="no such file or folder"):
        fmd.load_samples(tmp_path / "nothing")


def test_cli_scores_a_tensor_file(tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    torch.save(data.mnist(train=True).images[:64], tmp_path / "samples.pt")
    assert main(["fmd", "score", str(tmp_path / "samples.pt"), "--protocol", "report", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_samples"] == 64 and result["protocol"] == "report"
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # a terminal: a bar over the 19 passes
    assert main(["fmd", "score", str(tmp_path / "samples.pt"), "--protocol", "report"]) == 0
    out, err = capsys.readouterr()
    assert "normalised FMD" in out and "FMD (report protocol): " in err and "/19 " in err
    monkeypatch.undo()
    with pytest.raises(SystemExit, match="2"):  # a usage error: the file given does not exist
        main(["fmd", "score", str(tmp_path / "missing.pt")])


def test_the_trainer_logs_fmd_through_its_hook(tmp_path: Path, data_dir: Path) -> None:
    config = TrainConfig.preset("ddpm-short", net_kwargs={"channels": [4, 4]}, limit_train=128,
                                batch_size=64, epochs=1, sample_every=0)
    Trainer(config, tmp_path, quiet=True, hooks=[fmd.FMDHook(n=8, sample_steps=5)]).fit()
    line = json.loads((tmp_path / "metrics.jsonl").read_text())
    assert line["fmd"] > 0 and line["normalized_fmd"] > 0.5, "an untrained model scores badly"


def test_the_hook_scores_in_float32_whatever_the_training_precision(
        tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import colddiff.fmd.hook as hook_module

    asked: list[object] = []
    real_score = hook_module.score

    def score(*args: Any, **kwargs: Any) -> Any:
        asked.append(kwargs["precision"])
        return real_score(*args, **kwargs)

    monkeypatch.setattr(hook_module, "score", score)
    config = TrainConfig.preset("ddpm-short", net_kwargs={"channels": [4, 4]}, limit_train=64,
                                batch_size=64, epochs=1, sample_every=0, precision="bf16")
    Trainer(config, tmp_path, quiet=True, hooks=[fmd.FMDHook(n=8, sample_steps=2)]).fit()
    assert asked == ["fp32"]


class _Projection(torch.nn.Module):
    """A fixed random projection of the flattened image: a feature extractor for any shape."""

    def __init__(self, size: int, width: int = 16) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(width, size, generator=torch.Generator().manual_seed(0)))

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:  # pytorch-fid style: a list of maps
        return [(images.flatten(1) @ self.weight.T)[:, :, None, None]]


def test_any_feature_extractor_scores_any_images_with_the_shared_frechet_maths() -> None:
    generator = torch.Generator().manual_seed(1)
    samples = torch.rand(40, 3, 8, 8, generator=generator)
    reference = torch.rand(50, 3, 8, 8, generator=generator) ** 2
    extractor = _Projection(3 * 8 * 8)
    with torch.no_grad():
        expected = fmd.frechet_distance_from_features(extractor(reference)[0].flatten(1).double(),
                                                      extractor(samples)[0].flatten(1).double())
    assert fmd.distance(samples, reference, features=extractor) == pytest.approx(expected, rel=1e-12)
    assert fmd.distance(reference, reference, features=extractor) == pytest.approx(0.0, abs=1e-9)

    not_digits = r"^samples must have shape \(N, 1, 28, 28\) for the MNIST classifier, got \(40, 3, 8, 8\); "
    with pytest.raises(ValueError, match=not_digits + r"to compare other images use fmd\.distance\(samples, "
                       r"reference, features=\.\.\.\)"):
        fmd.check_images(samples, "samples")
    with pytest.raises(ValueError, match="for the MNIST classifier"):
        fmd.distance(samples, reference)
    with pytest.raises(ValueError, match="not both"):
        fmd.FMD(classifier=torch.nn.Identity(), features=extractor)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 2 samples on each side"):
        fmd.FMD(features=extractor).compute()
