"""One post-processing chain for every feature: power mapping, L2, PCA (optionally whitened), L2.

PCA is fitted on the indexed collection alone (no labels), or on another collection
(``post.fit_on``), and its state is saved with the index so queries are mapped exactly as the
collection was. Whitening is regularised (eigenvalue shrinkage) and the component count is
bounded by the collection's rank, so it stays sound on a collection of a hundred photos.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from search_lab.core import (
    ConfigError,
    require_bool,
    require_int,
    require_number,
    require_positive_int,
)

log = logging.getLogger(__name__)

EPS = 1e-12
EXPAND_BASE = "expand_base"  # state key: the collection vectors that expansion draws on
RANK_TOL = 1e-10  # eigenvalues below this share of the largest are numerically zero


def l2n(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` scaled to unit L2 norm (zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, EPS)


def signed_power(x: np.ndarray, alpha: float) -> np.ndarray:
    """sign(x) * |x|**alpha: alpha = 0.5 is the square-root (Hellinger) mapping."""
    return np.sign(x) * np.abs(x) ** alpha


@dataclass
class PostProcessor:
    """power -> L2 -> PCA / whitening -> L2, each step optional.

    Parameters
    ----------
    power : float
        Exponent of the signed power mapping; 1.0 disables it.
    l2 : bool
        L2-normalise before PCA and at the end.
    pca_dim : int or None
        Keep this many principal components; None skips PCA.
    whiten : bool
        Divide each component by the square root of its (shrunk) variance (with PCA only).
    shrinkage : float
        Whitening regularisation: each variance ``v`` becomes ``v + shrinkage * mean(v)`` (mean
        over the kept components) before the division. 0 is plain whitening, which divides by
        near-zero variances on small collections and amplifies noise; 1 halves the weight of an
        average component at most and leaves strong components nearly whitened.
    expand : int
        Query expansion / database-side augmentation (alpha-QE, Radenović et al. 2018): each
        vector gets its ``expand`` nearest collection vectors added, weighted by
        ``max(cos, 0) ** expand_alpha``, then is L2-normalised again. The collection (after the
        rest of the chain) is kept in the state as the neighbours; 0 disables it. No labels are
        used; it favours images that look like their neighbours (category retrieval).
    expand_alpha : float
        Exponent of the neighbour weights (0: plain average).
    expand_floor : float
        Neighbours less similar than this (cosine) get no weight: an instance query whose
        one or two matches stand far above the rest pulls in nothing else, while the many
        close neighbours of a category image still count. 0 keeps every positive neighbour.
    """

    power: float = 1.0
    l2: bool = True
    pca_dim: int | None = None
    whiten: bool = False
    shrinkage: float = 1.0
    expand: int = 0
    expand_alpha: float = 3.0
    expand_floor: float = 0.0
    state: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        require_bool("post.l2", self.l2)
        require_bool("post.whiten", self.whiten)
        require_number("post.power", self.power, 0, strict=True)
        require_positive_int("post.pca_dim", self.pca_dim, null=True)
        require_number("post.shrinkage", self.shrinkage)
        require_int("post.expand", self.expand, 0)
        require_number("post.expand_alpha", self.expand_alpha)
        require_number("post.expand_floor", self.expand_floor, below=1.0)
        if self.whiten and self.pca_dim is None:
            raise ConfigError("post.whiten needs post.pca_dim (whitening is done in PCA space)")
        if self.expand and not self.l2:
            raise ConfigError("post.expand needs post.l2=true (neighbours by cosine similarity)")

    @property
    def fitted(self) -> bool:
        """True when nothing is left to learn (no PCA, or its state is present)."""
        pca_done = self.pca_dim is None or "components" in self.state
        return pca_done and (not self.expand or EXPAND_BASE in self.state)

    def _pre(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self.power != 1.0:
            x = signed_power(x, self.power)
        return l2n(x) if self.l2 else x

    def fit(self, x: np.ndarray) -> PostProcessor:
        """Learn the PCA of the (N, D) collection and keep its neighbours for ``expand``.

        A no-op without PCA and expansion. The component count is at most ``pca_dim`` and at
        most the collection's rank (N - 1 for N distinct images, fewer for duplicates); a
        reduction is logged.
        """
        if self.pca_dim is not None:
            self._fit_pca(x)
        if self.expand:
            self.state[EXPAND_BASE] = self._reduce(x).astype(np.float32)
        return self

    def _fit_pca(self, x: np.ndarray) -> None:
        """Learn the (shrunk, whitened) PCA of the collection into ``state``."""
        x = self._pre(x)
        mean = x.mean(axis=0)
        self._set_pca(mean, *_principal_axes(x - mean), len(x))

    def moments(self, x: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
        """Rows, sum and sum of outer products of pre-processed ``x``: one block's share of a fit.

        Summed over the blocks of a collection read one at a time, they give
        :meth:`fit_moments` the same PCA as :meth:`fit` on the whole matrix (to rounding).
        """
        x = self._pre(x)
        return len(x), x.sum(axis=0), x.T @ x

    def fit_moments(self, count: int, total: np.ndarray, outer: np.ndarray) -> PostProcessor:
        """Learn the PCA from moments summed over a collection's blocks (out-of-core builds)."""
        if self.expand:
            raise ValueError("post.expand keeps the whole collection: fit it in memory")
        if self.pca_dim is not None:
            mean = total / count
            scatter = outer - count * np.outer(mean, mean)
            self._set_pca(mean, *_axes_of_scatter(scatter, count), count)
        return self

    def _set_pca(self, mean: np.ndarray, variance: np.ndarray, axes: np.ndarray, n: int) -> None:
        """Keep the first ``pca_dim`` axes (at most the rank) and their whitening scales."""
        dim = min(self.pca_dim, len(variance))
        if dim < self.pca_dim:
            log.info(
                "post.pca_dim=%d reduced to %d: the %d images support no more components",
                self.pca_dim,
                dim,
                n,
            )
        variance, components = variance[:dim], axes[:dim]
        if self.whiten:
            scale = 1.0 / np.sqrt(variance + self.shrinkage * variance.mean() + EPS)
        else:
            scale = np.ones(dim)
        self.state = {"mean": mean, "components": components, "scale": scale}

    def _reduce(self, x: np.ndarray) -> np.ndarray:
        """The chain up to (not including) the expansion: power, L2, PCA, L2."""
        x = self._pre(np.atleast_2d(x))
        if self.pca_dim is not None:
            if "components" not in self.state:
                raise RuntimeError("PostProcessor.transform called before fit")
            x = (x - self.state["mean"]) @ self.state["components"].T * self.state["scale"]
            if self.l2:
                x = l2n(x)
        return x

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Map (N, D) or (D,) descriptors; returns float32 of the output dimension."""
        x = self._reduce(x)
        if self.expand:
            if EXPAND_BASE not in self.state:
                raise RuntimeError("PostProcessor.transform called before fit")
            x = expand_queries(
                x, self.state[EXPAND_BASE], self.expand, self.expand_alpha, self.expand_floor
            )
        return x.astype(np.float32)

    def fit_transform(self, x: np.ndarray) -> np.ndarray:
        """fit then transform."""
        return self.fit(x).transform(x)


def expand_queries(
    x: np.ndarray, base: np.ndarray, k: int, alpha: float, floor: float = 0.0, chunk: int = 256
) -> np.ndarray:
    """alpha-weighted query expansion of unit rows ``x`` over the unit rows of ``base``.

    Each row becomes ``l2n(x + sum_j max(cos_j, 0) ** alpha * base_j)`` over its ``k`` most
    similar ``base`` rows whose ``cos_j >= floor`` (a row of ``base`` itself included, with
    weight 1), in chunks of ``chunk`` rows so memory stays ``chunk x len(base)``.
    """
    out = np.empty((len(x), base.shape[1]), dtype=np.float64)
    for start in range(0, len(x), chunk):
        rows = np.asarray(x[start : start + chunk], dtype=np.float64)
        out[start : start + chunk] = rows + neighbour_weights(rows @ base.T, k, alpha, floor) @ base
    return l2n(out)


def neighbour_weights(sims: np.ndarray, k: int, alpha: float, floor: float = 0.0) -> np.ndarray:
    """``max(cos, 0) ** alpha`` on each row's ``k`` most similar columns of ``sims`` whose
    ``cos >= floor``, 0 elsewhere (all columns when there are fewer than ``k``): the weights
    :func:`expand_queries` sums neighbours by."""
    k = min(k, sims.shape[1])
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    picked = np.take_along_axis(sims, top, axis=1)
    weights = np.zeros_like(sims)
    np.put_along_axis(
        weights, top, np.where(picked >= floor, np.maximum(picked, 0.0) ** alpha, 0.0), axis=1
    )
    return weights


def _principal_axes(centred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Variances (decreasing) and unit principal axes (rows) of centred (N, D) data.

    Works on the smaller of the N x N Gram matrix and the D x D covariance, and keeps only the
    components with a variance above ``RANK_TOL`` of the largest (the collection's rank).
    """
    n, d = centred.shape
    if n > d:
        return _axes_of_scatter(centred.T @ centred, n)
    eigval, eigvec = _ranked_eigen(centred @ centred.T)
    axes = (eigvec / np.sqrt(eigval)).T @ centred
    return eigval / max(n - 1, 1), axes


def _axes_of_scatter(scatter: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Variances and principal axes from the (D, D) scatter matrix of ``n`` centred rows."""
    eigval, eigvec = _ranked_eigen(scatter)
    return eigval / max(n - 1, 1), eigvec.T


def _ranked_eigen(symmetric: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (decreasing) and eigenvectors (columns) above the rank tolerance."""
    eigval, eigvec = np.linalg.eigh(symmetric)
    order = np.argsort(eigval)[::-1]
    eigval, eigvec = eigval[order], eigvec[:, order]
    keep = eigval > RANK_TOL * max(float(eigval[0]), EPS)
    return eigval[keep], eigvec[:, keep]
