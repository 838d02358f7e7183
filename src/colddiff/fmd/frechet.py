"""The Fréchet distance between two Gaussians fitted to feature vectors, exactly and fast.

``d^2 = ||mu_1 - mu_2||^2 + tr(S_1) + tr(S_2) - 2 tr sqrt(S_1 S_2)`` (Dowson & Landau 1982;
Heusel et al. 2017 for FID). Everything is computed in float64.

The hard term is ``tr sqrt(S_1 S_2)``. pytorch-fid takes ``scipy.linalg.sqrtm`` of the
non-symmetric product, which is slow at ``d = 1024`` and can return complex or negative values.
Here, instead:

* **Full rank** (both sides have more than ``d`` samples): ``S_1 S_2`` is similar to the
  symmetric ``sqrt(S_1) S_2 sqrt(S_1)`` (and, with the Cholesky factor ``S_1 = L L^T``, to
  ``L^T S_2 L``), so ``tr sqrt(S_1 S_2)`` is the sum of the square roots of the eigenvalues of a
  symmetric matrix (``torch.linalg.eigvalsh``).
* **Low rank** (a side has ``n <= d`` samples, like the reference study's 32 samples in 1024
  dimensions, so that its covariance has rank ``n - 1 < d``): with ``S_1 = A^T A`` for the
  centred, ``1 / sqrt(n_1 - 1)``-scaled feature matrix ``A`` (``n_1 x d``), the non-zero
  eigenvalues of ``S_1 S_2`` are those of the small
  ``A S_2 A^T`` (``n_1 x n_1``); when both sides are small, ``tr sqrt(S_1 S_2)`` is the sum of the
  singular values of ``A B^T`` (``n_1 x n_2``). Both are exact, not approximations.

**eps handling.** No ``eps * I`` is added to the covariances (pytorch-fid adds one when the
product is near singular): nothing is inverted, so none is needed. Eigenvalues that rounding
makes slightly negative (they are zero in exact arithmetic, as every matrix here is positive
semi-definite) are clamped to 0 before square roots, and the final distance is clamped to
``>= 0``. The result is always a finite, real, non-negative float.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["FeatureStatistics", "frechet_distance", "frechet_distance_from_features"]


def _vector(name: str, x: Tensor) -> Tensor:
    x = torch.as_tensor(x, dtype=torch.float64)
    if x.ndim != 1 or not torch.isfinite(x).all():
        raise ValueError(f"{name} must be a finite 1-D vector, got shape {tuple(x.shape)}")
    return x


def _matrix(name: str, x: Tensor, dim: int) -> Tensor:
    x = torch.as_tensor(x, dtype=torch.float64)
    if x.shape != (dim, dim) or not torch.isfinite(x).all():
        raise ValueError(f"{name} must be a finite ({dim}, {dim}) matrix, got shape {tuple(x.shape)}")
    return (x + x.T) / 2


def _sqrt_eigenvalue_sum(symmetric: Tensor) -> Tensor:
    eigenvalues: Tensor = torch.linalg.eigvalsh(symmetric)
    return eigenvalues.clamp(min=0).sqrt().sum()


def _trace_sqrt_full(sigma1: Tensor, sigma2: Tensor) -> Tensor:
    """``tr sqrt(S_1 S_2)`` from the eigenvalues of a symmetric matrix similar to ``S_1 S_2``.

    When ``S_1`` is positive definite, ``S_1 = L L^T`` (Cholesky) and ``L^T S_2 L`` is similar to
    ``S_1 S_2``: one factorisation and one eigenvalue-only decomposition. Otherwise (a singular
    ``S_1``, e.g. a feature that never varies) ``sqrt(S_1) S_2 sqrt(S_1)`` is used, with
    ``sqrt(S_1)`` from a symmetric eigendecomposition.
    """
    factor, info = torch.linalg.cholesky_ex(sigma1)
    if int(info) == 0:
        product = factor.T @ sigma2 @ factor
        return _sqrt_eigenvalue_sum((product + product.T) / 2)
    eigenvalues, eigenvectors = torch.linalg.eigh(sigma1)
    root = (eigenvectors * eigenvalues.clamp(min=0).sqrt()) @ eigenvectors.T
    product = root @ sigma2 @ root
    return _sqrt_eigenvalue_sum((product + product.T) / 2)


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """The Fréchet distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``.

    Args:
        mu1: Mean ``(d,)`` of the first Gaussian.
        sigma1: Covariance ``(d, d)``, symmetric positive semi-definite.
        mu2: Mean of the second.
        sigma2: Covariance of the second.

    Returns:
        ``d^2`` (the squared distance, as FID reports it), a non-negative float.

    Raises:
        ValueError: If shapes disagree or values are not finite.
    """
    mu1, mu2 = _vector("mu1", mu1), _vector("mu2", mu2)
    if mu1.shape != mu2.shape:
        raise ValueError(f"mu1 and mu2 must have the same length, got {mu1.numel()} and {mu2.numel()}")
    dim = mu1.numel()
    sigma1, sigma2 = _matrix("sigma1", sigma1, dim), _matrix("sigma2", sigma2, dim)
    difference = mu1 - mu2
    value = difference @ difference + sigma1.trace() + sigma2.trace() - 2 * _trace_sqrt_full(sigma1, sigma2)
    return max(float(value), 0.0)


class FeatureStatistics:
    """Streaming statistics of feature vectors in flat memory.

    Keeps the count, the float64 sum and the float64 sum of outer products (``d x d``); while the
    count is at most ``d`` it also keeps the features themselves, which lets
    :func:`frechet_distance_from_features` use the exact low-rank form. Memory is therefore
    bounded by about ``2 d^2`` floats whatever the number of updates.

    Args:
        dim: The feature width ``d``.
    """

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.count = 0
        self.total = torch.zeros(dim, dtype=torch.float64)
        self.outer = torch.zeros(dim, dim, dtype=torch.float64)
        self._rows: list[Tensor] | None = []

    def update(self, features: Tensor) -> None:
        """Add a batch of features ``(n, d)``."""
        features = features.detach().to("cpu", torch.float64)
        if features.ndim != 2 or features.shape[1] != self.dim:
            raise ValueError(f"features must have shape (n, {self.dim}), got {tuple(features.shape)}")
        self.count += features.shape[0]
        self.total += features.sum(0)
        self.outer += features.T @ features
        if self._rows is not None:
            self._rows.append(features)
            if self.count > self.dim:
                self._rows = None

    @property
    def features(self) -> Tensor | None:
        """The features seen, ``(count, d)``, while ``count <= d``; else ``None``."""
        if self._rows is None or not self._rows:
            return None
        return torch.cat(self._rows)

    def mean(self) -> Tensor:
        """The mean feature ``(d,)``."""
        self._check_count()
        return self.total / self.count

    def covariance(self) -> Tensor:
        """The unbiased covariance ``(d, d)``."""
        self._check_count()
        mean = self.total / self.count
        covariance = (self.outer - self.count * torch.outer(mean, mean)) / (self.count - 1)
        return (covariance + covariance.T) / 2

    def state_dict(self) -> dict[str, Any]:
        """The statistics as plain tensors (for :func:`colddiff.checkpoints.save`)."""
        return {"count": self.count, "total": self.total, "outer": self.outer, "features": self.features}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> FeatureStatistics:
        """Statistics saved by :meth:`state_dict`.

        Raises:
            ValueError: If the tensors' shapes do not agree.
        """
        total, outer = state["total"].to(torch.float64), state["outer"].to(torch.float64)
        if total.ndim != 1 or outer.shape != (len(total), len(total)):
            raise ValueError(
                f"inconsistent statistics: total {tuple(total.shape)}, outer {tuple(outer.shape)}")
        stats = cls(len(total))
        stats.count, stats.total, stats.outer = int(state["count"]), total, outer
        features = state.get("features")
        stats._rows = [features] if features is not None and len(features) == stats.count else None
        return stats

    def reduce_across_processes(self) -> None:
        """Sum the statistics of all processes when ``torch.distributed`` is initialised."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        packed = torch.cat([torch.tensor([float(self.count)], dtype=torch.float64), self.total,
                            self.outer.flatten()])
        if dist.get_backend() == "nccl":
            packed = packed.cuda()
        dist.all_reduce(packed)
        packed = packed.cpu()
        self.count = round(packed[0].item())
        self.total = packed[1:1 + self.dim].clone()
        self.outer = packed[1 + self.dim:].view(self.dim, self.dim).clone()
        self._rows = None  # features stay per process; the full-rank form is used

    def _check_count(self) -> None:
        if self.count < 2:
            raise ValueError(f"at least 2 samples are needed for a covariance, got {self.count}")


def _scaled_centred(features: Tensor) -> Tensor:
    scaled: Tensor = (features - features.mean(0)) / (features.shape[0] - 1) ** 0.5
    return scaled


def _as_statistics(name: str, features: Tensor | FeatureStatistics) -> FeatureStatistics:
    if isinstance(features, FeatureStatistics):
        return features
    features = torch.as_tensor(features)
    if features.ndim != 2 or features.shape[0] < 2 or not torch.isfinite(features).all():
        raise ValueError(f"{name} must be finite features of shape (n >= 2, d), got {tuple(features.shape)}")
    statistics = FeatureStatistics(features.shape[1])
    statistics.update(features)
    return statistics


def frechet_distance_from_features(features1: Tensor | FeatureStatistics,
                                   features2: Tensor | FeatureStatistics) -> float:
    """The Fréchet distance between Gaussians fitted to two feature sets.

    Takes ``(n, d)`` tensors or :class:`FeatureStatistics`; uses the exact low-rank form when a
    side has ``n <= d`` samples (a singular covariance) and its features are at hand.

    Raises:
        ValueError: If a side has fewer than 2 samples, the widths differ, or values are not finite.
    """
    a, b = _as_statistics("features1", features1), _as_statistics("features2", features2)
    if a.dim != b.dim:
        raise ValueError(f"features1 and features2 must have the same width, got {a.dim} and {b.dim}")
    mean_a, mean_b = a.mean(), b.mean()
    difference = mean_a - mean_b
    rows_a = a.features if a.count <= a.dim else None
    rows_b = b.features if b.count <= b.dim else None
    if rows_a is not None and rows_b is not None:
        scaled_a, scaled_b = _scaled_centred(rows_a), _scaled_centred(rows_b)
        trace_a, trace_b = (scaled_a**2).sum(), (scaled_b**2).sum()
        trace_sqrt = torch.linalg.svdvals(scaled_a @ scaled_b.T).sum()
    elif rows_a is not None or rows_b is not None:
        small, large = (rows_a, b) if rows_a is not None else (rows_b, a)
        assert small is not None
        scaled = _scaled_centred(small)
        covariance = large.covariance()
        trace_a, trace_b = (scaled**2).sum(), covariance.trace()
        trace_sqrt = _sqrt_eigenvalue_sum(scaled @ covariance @ scaled.T)
    else:
        sigma_a, sigma_b = a.covariance(), b.covariance()
        trace_a, trace_b = sigma_a.trace(), sigma_b.trace()
        trace_sqrt = _trace_sqrt_full(sigma_a, sigma_b)
    value = difference @ difference + trace_a + trace_b - 2 * trace_sqrt
    return max(float(value), 0.0)
