"""(Dis)similarity metrics between descriptor matrices, by name; smaller is more similar."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from search_lab.core import ConfigError, Registry

EPS = 1e-12

DISTANCES: Registry[np.ndarray] = Registry("metric")
"""Every metric by name; each carries its ``label`` and one-line ``description``."""


def _norms(x: np.ndarray) -> np.ndarray:
    return np.sqrt(np.einsum("ij,ij->i", x, x))


@DISTANCES.register(
    "euclidean",
    label="Euclidean (L2) distance",
    description="L2 distance, through one matrix product",
)
def euclidean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """L2 distance, through ||a||^2 + ||b||^2 - 2 a.b (one matrix product)."""
    sq = (
        np.einsum("ij,ij->i", a, a)[:, None]
        + np.einsum("ij,ij->i", b, b)[None, :]
        - 2.0 * (a @ b.T)
    )
    return np.sqrt(np.maximum(sq, 0.0))


@DISTANCES.register(
    "cosine",
    label="cosine distance",
    description="1 - cosine similarity, in [0, 2]",
)
def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 - cosine similarity, in [0, 2]."""
    sim = (a @ b.T) / np.maximum(_norms(a)[:, None] * _norms(b)[None, :], EPS)
    return np.maximum(1.0 - sim, 0.0)


@DISTANCES.register(
    "manhattan",
    label="Manhattan (L1) distance",
    description="L1 (city-block) distance",
)
def manhattan(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """L1 (city-block) distance."""
    from scipy.spatial.distance import cdist  # scipy.spatial: ~0.4 s, only when used

    return cdist(a, b, metric="cityblock")


@DISTANCES.register(
    "chi2",
    label="chi-squared distance",
    description="0.5 * sum (a - b)^2 / (a + b), for non-negative histograms",
)
def chi2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Chi-squared distance 0.5 * sum (a - b)^2 / (a + b), for non-negative histograms."""
    if (a < 0).any() or (b < 0).any():
        raise ConfigError(
            "metric chi2 needs non-negative vectors (histograms); these have negatives"
        )
    out = np.empty((a.shape[0], b.shape[0]))
    for i, row in enumerate(a):  # one row at a time bounds memory to (n_items, dim)
        num = (row[None, :] - b) ** 2
        out[i] = 0.5 * np.sum(num / np.maximum(row[None, :] + b, EPS), axis=1)
    return out


@DISTANCES.register(
    "dot",
    label="dot-product distance",
    description="negative inner product: the more aligned and longer, the closer",
)
def dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Negative inner product: the more aligned and longer, the closer."""
    return -(a @ b.T)


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    name: DISTANCES.get(name) for name in DISTANCES.available()
}


def check_metric(name: str) -> str:
    """Return ``name`` if it is a known metric, else raise ConfigError listing them."""
    if name not in METRICS:
        raise ConfigError(f"unknown metric {name!r}; choose one of: {', '.join(sorted(METRICS))}")
    return name


def pairwise(metric: str, queries: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Distances between every row of ``queries`` (Q, D) and of ``items`` (N, D): (Q, N) float64."""
    fn = METRICS[check_metric(metric)]
    return fn(np.asarray(queries, np.float64), np.asarray(items, np.float64))
