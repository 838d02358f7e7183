"""The Fréchet distance against independent references, and its invariants."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from pytorch_fid.fid_score import calculate_frechet_distance
from scipy import linalg

from colddiff.fmd.frechet import FeatureStatistics, frechet_distance, frechet_distance_from_features


def features(n: int, d: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mixing = torch.randn(d, d, generator=g, dtype=torch.float64) / d**0.5
    return torch.randn(n, d, generator=g, dtype=torch.float64) @ mixing * scale + shift


def scipy_reference(f1: torch.Tensor, f2: torch.Tensor) -> float:
    """The textbook formula with scipy's sqrtm, on well-conditioned inputs only."""
    m1, m2 = f1.mean(0).numpy(), f2.mean(0).numpy()
    s1, s2 = np.cov(f1.numpy(), rowvar=False), np.cov(f2.numpy(), rowvar=False)
    root = linalg.sqrtm(s1 @ s2).real
    return float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(root))


@pytest.mark.parametrize(("n1", "n2", "d"), [(400, 300, 32), (200, 250, 64), (2000, 1500, 128)])
def test_agrees_with_scipy_sqrtm_and_pytorch_fid(n1: int, n2: int, d: int) -> None:
    f1, f2 = features(n1, d, 0, shift=0.5), features(n2, d, 1, scale=1.3)
    ours = frechet_distance_from_features(f1, f2)
    from_stats = frechet_distance(f1.mean(0), torch.cov(f1.T), f2.mean(0), torch.cov(f2.T))
    peer = calculate_frechet_distance(f1.mean(0).numpy(), np.cov(f1.numpy(), rowvar=False),
                                      f2.mean(0).numpy(), np.cov(f2.numpy(), rowvar=False))
    assert ours == pytest.approx(scipy_reference(f1, f2), rel=1e-6)
    assert ours == pytest.approx(peer, rel=1e-6)
    assert from_stats == pytest.approx(peer, rel=1e-6)


@pytest.mark.parametrize(("n1", "n2"), [(32, 512), (32, 2000), (10, 15), (2, 300)])
def test_the_low_rank_form_is_exact(n1: int, n2: int) -> None:
    d = 256
    f1, f2 = features(n1, d, 2, shift=0.2), features(n2, d, 3)
    # pytorch-fid on the same (singular) statistics; it adds eps * I only when it must.
    peer = calculate_frechet_distance(f1.mean(0).numpy(), np.cov(f1.numpy(), rowvar=False),
                                      f2.mean(0).numpy(), np.cov(f2.numpy(), rowvar=False))
    full = frechet_distance(f1.mean(0), torch.cov(f1.T), f2.mean(0), torch.cov(f2.T))
    low_rank = frechet_distance_from_features(f1, f2)
    assert low_rank == pytest.approx(peer, rel=1e-6)
    assert low_rank == pytest.approx(full, rel=1e-6)
    assert frechet_distance_from_features(f2, f1) == pytest.approx(low_rank, rel=1e-9)


@given(seed=st.integers(0, 10_000), n1=st.integers(2, 60), n2=st.integers(2, 60),
       d=st.integers(1, 40), shift=st.floats(-3, 3), scale=st.floats(0.01, 10))
def test_symmetric_finite_and_at_least_the_mean_term(seed: int, n1: int, n2: int, d: int, shift: float,
                                                     scale: float) -> None:
    f1, f2 = features(n1, d, seed, shift=shift, scale=scale), features(n2, d, seed + 1)
    forward, backward = frechet_distance_from_features(f1, f2), frechet_distance_from_features(f2, f1)
    # The covariance term is the squared 2-Wasserstein distance of two centred Gaussians, so the
    # distance is at least |m1 - m2|^2 (a bound the code does not enforce: it only clamps at 0).
    mean_term = float(((f1.mean(0) - f2.mean(0)) ** 2).sum())
    assert np.isfinite(forward) and forward >= mean_term * (1 - 1e-9) - 1e-9
    assert forward == pytest.approx(backward, rel=1e-7, abs=1e-9)
    m1, m2, s1, s2 = f1.mean(0), f2.mean(0), torch.cov(f1.T).reshape(d, d), torch.cov(f2.T).reshape(d, d)
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(frechet_distance(m2, s2, m1, s1),
                                                             rel=1e-7, abs=1e-9)


@given(seed=st.integers(0, 10_000), n=st.integers(2, 80), d=st.integers(1, 50))
def test_zero_for_identical_statistics(seed: int, n: int, d: int) -> None:
    f = features(n, d, seed, shift=1.0)
    scale = float((f**2).sum())
    assert frechet_distance_from_features(f, f.clone()) <= 1e-9 * scale
    assert frechet_distance(f.mean(0), torch.cov(f.T).reshape(d, d), f.mean(0),
                            torch.cov(f.T).reshape(d, d)) <= 1e-9 * scale


@given(seed=st.integers(0, 10_000), n=st.integers(2, 80), d=st.integers(1, 50),
       offset=st.lists(st.floats(-5, 5), min_size=50, max_size=50))
def test_a_pure_mean_shift_costs_its_squared_length(seed: int, n: int, d: int,
                                                    offset: list[float]) -> None:
    f = features(n, d, seed)
    delta = torch.tensor(offset[:d], dtype=torch.float64)
    expected = float(delta @ delta)
    scale = float((f**2).sum()) + expected
    assert frechet_distance_from_features(f, f + delta) == pytest.approx(expected, abs=1e-9 * scale)


def test_streaming_statistics_match_the_batch_ones_and_stay_flat() -> None:
    f = features(3000, 16, 4, shift=2.0)
    stats = FeatureStatistics(16)
    for chunk in f.split(7):
        stats.update(chunk)
    assert stats.count == 3000 and stats.features is None, "features are dropped beyond n = d"
    torch.testing.assert_close(stats.mean(), f.mean(0))
    torch.testing.assert_close(stats.covariance(), torch.cov(f.T))
    small = FeatureStatistics(16)
    small.update(f[:10])
    assert small.features is not None and small.features.shape == (10, 16)


def test_bad_inputs_raise_naming_the_argument() -> None:
    good = torch.eye(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="mu1"):
        frechet_distance(torch.zeros(3, 1), good, torch.zeros(3), good)
    with pytest.raises(ValueError, match="sigma2"):
        frechet_distance(torch.zeros(3), good, torch.zeros(3), torch.eye(4))
    with pytest.raises(ValueError, match="sigma1"):
        frechet_distance(torch.zeros(3), good * float("nan"), torch.zeros(3), good)
    with pytest.raises(ValueError, match="same length"):
        frechet_distance(torch.zeros(3), good, torch.zeros(2), torch.eye(2))
    with pytest.raises(ValueError, match="features1"):
        frechet_distance_from_features(torch.zeros(1, 3), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="same width"):
        frechet_distance_from_features(torch.randn(5, 3), torch.randn(5, 4))
