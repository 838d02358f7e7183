"""The Fréchet distance at d = 1024 against pytorch-fid and torchmetrics, on the same statistics.

Features are real: the shipped classifier's features of MNIST images (test images as the
reference, training images as the "generated" side). ``frechet_n10000`` compares 10,000 against
10,000 images from their means and covariances; ``frechet_n32`` compares 32 images against the
10,000 reference images, where colddiff uses its exact low-rank form from the streamed
statistics and the peers get the (singular) 32-sample covariance.
"""

from __future__ import annotations

import torch

from benchmarks.common import Result, interleaved_medians
from colddiff import data
from colddiff.fmd import FeatureStatistics, frechet_distance, frechet_distance_from_features, load_classifier


def _features(images: torch.Tensor) -> torch.Tensor:
    classifier = load_classifier()
    with torch.no_grad():
        return torch.cat([classifier.features(chunk) for chunk in images.split(1000)]).double()


def _compare(case: str, fake: torch.Tensor, reference: torch.Tensor, repeats: int) -> list[Result]:
    from pytorch_fid.fid_score import calculate_frechet_distance
    from torchmetrics.image.fid import _compute_fid

    ref_stats, fake_stats = FeatureStatistics(1024), FeatureStatistics(1024)
    ref_stats.update(reference)
    fake_stats.update(fake)
    mu1, sigma1 = fake.mean(0), torch.cov(fake.T)
    mu2, sigma2 = reference.mean(0), torch.cov(reference.T)
    numpy_stats = [v.numpy() for v in (mu1, sigma1, mu2, sigma2)]
    values: dict[str, float] = {}

    def ours() -> None:
        if len(fake) < 1024:  # the exact low-rank form from the streamed statistics
            values["ours"] = frechet_distance_from_features(fake_stats, ref_stats)
        else:
            values["ours"] = frechet_distance(mu1, sigma1, mu2, sigma2)

    def pytorch_fid() -> None:
        values["pytorch-fid"] = float(calculate_frechet_distance(*numpy_stats))

    def torchmetrics() -> None:
        values["torchmetrics"] = float(_compute_fid(mu1, sigma1, mu2, sigma2))

    times = interleaved_medians({"ours": ours, "pytorch-fid": pytorch_fid,
                                 "torchmetrics": torchmetrics}, repeats, warmup=1)
    results = []
    for peer, suffix in (("pytorch-fid", ""), ("torchmetrics", "_torchmetrics")):
        difference = abs(values["ours"] - values[peer])
        results.append(Result(
            case + suffix, ours=times["ours"], peer=times[peer], peer_name=f"{peer} Frechet distance",
            unit="s", note=f"d=1024, n={len(fake)} vs {len(reference)}; FMD {values['ours']:.6g} vs "
                           f"{values[peer]:.6g} (|diff| {difference:.2g}, "
                           f"rel {difference / values['ours']:.1e})"))
    return results


def frechet_cases(quick: bool) -> list[Result]:
    """``frechet_n10000`` and ``frechet_n32`` (quick: 2,000 reference images, one repetition)."""
    repeats = 1 if quick else 5
    n_large = 2000 if quick else 10_000
    reference = _features(data.mnist(train=False).images[:n_large])
    generated = _features(data.mnist(train=True).images[:n_large])
    return [*_compare("frechet_n10000", generated, reference, repeats),
            *_compare("frechet_n32", generated[:32], reference, repeats)]
