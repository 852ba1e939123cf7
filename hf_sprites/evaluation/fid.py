"""Fréchet distance (FID) and kernel distance (KID) between two sets of feature vectors.

The numerics are independent of the feature extractor: pass features from `DomainFeatures`
(offline, a classifier trained on the reference labels) or `InceptionFeatures` (the usual
Inception-v3 pool features, when its weights are on disk).

- FID = |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a^1/2 S_b S_a^1/2)^1/2), computed in float64 with
  symmetric eigen-decompositions (no complex parts to discard). Each set needs more samples than
  feature dimensions, otherwise its covariance is singular and the number means little.
- KID = unbiased MMD^2 with the polynomial kernel k(x, y) = (x.y / D + 1)^3, averaged over random
  subsets (mean and standard deviation are returned).

Example:
    >>> import torch
    >>> from hf_sprites.evaluation.fid import frechet_distance, kernel_distance
    >>> a, b = torch.randn(500, 8), torch.randn(500, 8) + 3
    >>> frechet_distance(a, a) < 1e-6, frechet_distance(a, b) > 50
    (True, True)
    >>> kid_mean, kid_std = kernel_distance(a, b, num_subsets=10, subset_size=100)
"""

from __future__ import annotations

import numpy as np
import torch


def _as_features(features, name: str) -> np.ndarray:
    array = features.detach().cpu().double().numpy() if torch.is_tensor(features) else np.asarray(features, np.float64)
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"{name} must be a 2-D (N, D) array of feature vectors, got shape {array.shape}.")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or inf; check the generated images (a diverged model gives NaN).")
    return array


def check_feature_sets(features_a, features_b, min_samples: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Validate two (N, D) feature sets (same D, at least `min_samples` rows each); return float64 arrays."""
    a, b = _as_features(features_a, "features_a"), _as_features(features_b, "features_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"Feature sets have different dimensions ({a.shape[1]} vs {b.shape[1]}); "
            "extract both with the same feature extractor."
        )
    for name, array in (("features_a", a), ("features_b", b)):
        if array.shape[0] < min_samples:
            raise ValueError(
                f"{name} has {array.shape[0]} samples but this metric needs at least {min_samples} "
                f"for feature dimension {array.shape[1]}: use more samples (e.g. --num_samples {min_samples}) "
                "or a feature extractor with fewer dimensions."
            )
    return a, b


def fid_min_samples(feature_dim: int) -> int:
    """Smallest sample count per set for which FID is defined here: feature_dim + 1."""
    return int(feature_dim) + 1


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) in float64."""
    array = _as_features(features, "features")
    return array.mean(axis=0), np.cov(array, rowvar=False).reshape(array.shape[1], array.shape[1])


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance_from_statistics(mu_a, sigma_a, mu_b, sigma_b) -> float:
    """FID from two (mean, covariance) pairs."""
    root_a = _psd_sqrt(sigma_a)
    middle = root_a @ sigma_b @ root_a
    trace_cross = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    diff = mu_a - mu_b
    value = diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2.0 * trace_cross
    return float(max(value, 0.0))


def frechet_distance(features_a, features_b) -> float:
    """FID between two (N, D) feature sets; each needs N > D (see `fid_min_samples`)."""
    dim = _as_features(features_a, "features_a").shape[1]
    a, b = check_feature_sets(features_a, features_b, fid_min_samples(dim))
    return frechet_distance_from_statistics(*feature_statistics(a), *feature_statistics(b))


def _unbiased_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    dim = x.shape[1]
    k_xx = (x @ x.T / dim + 1.0) ** 3
    k_yy = (y @ y.T / dim + 1.0) ** 3
    k_xy = (x @ y.T / dim + 1.0) ** 3
    m, n = x.shape[0], y.shape[0]
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(within_x + within_y - 2.0 * k_xy.mean())


def kernel_distance(
    features_a, features_b, num_subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """KID: mean and standard deviation of the unbiased polynomial-kernel MMD^2 over random subsets.

    `subset_size` is capped at the smaller set size; subsets are drawn without replacement with a
    NumPy generator seeded by `seed`, so the result is deterministic.
    """
    if num_subsets < 1:
        raise ValueError(f"num_subsets must be >= 1, got {num_subsets}.")
    a, b = check_feature_sets(features_a, features_b, min_samples=2)
    size = min(int(subset_size), a.shape[0], b.shape[0])
    if size < 2:
        raise ValueError(f"subset_size must be >= 2, got {subset_size}.")
    rng = np.random.default_rng(seed)
    values = [
        _unbiased_mmd2(a[rng.choice(a.shape[0], size, replace=False)], b[rng.choice(b.shape[0], size, replace=False)])
        for _ in range(num_subsets)
    ]
    return float(np.mean(values)), float(np.std(values))
