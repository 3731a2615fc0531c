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

from search_lab.errors import ConfigError

log = logging.getLogger(__name__)

EPS = 1e-12
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
    """

    power: float = 1.0
    l2: bool = True
    pca_dim: int | None = None
    whiten: bool = False
    shrinkage: float = 1.0
    state: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for name in ("l2", "whiten"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"post.{name} must be true or false, got {getattr(self, name)!r}")
        if not isinstance(self.power, int | float) or isinstance(self.power, bool):
            raise ConfigError(f"post.power must be a positive number, got {self.power!r}")
        ok_dim = isinstance(self.pca_dim, int) and not isinstance(self.pca_dim, bool)
        if self.pca_dim is not None and not ok_dim:
            raise ConfigError(
                f"post.pca_dim must be a positive integer or null, got {self.pca_dim!r}"
            )
        ok_shrink = isinstance(self.shrinkage, int | float) and not isinstance(self.shrinkage, bool)
        if not ok_shrink or self.shrinkage < 0:
            raise ConfigError(f"post.shrinkage must be a number >= 0, got {self.shrinkage!r}")
        if self.power <= 0:
            raise ConfigError(f"post.power must be positive, got {self.power}")
        if self.pca_dim is not None and self.pca_dim <= 0:
            raise ConfigError(f"post.pca_dim must be positive or null, got {self.pca_dim}")
        if self.whiten and self.pca_dim is None:
            raise ConfigError("post.whiten needs post.pca_dim (whitening is done in PCA space)")

    @property
    def fitted(self) -> bool:
        """True when nothing is left to learn (no PCA, or its state is present)."""
        return self.pca_dim is None or bool(self.state)

    def _pre(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self.power != 1.0:
            x = signed_power(x, self.power)
        return l2n(x) if self.l2 else x

    def fit(self, x: np.ndarray) -> PostProcessor:
        """Learn the PCA of the (N, D) collection (a no-op without PCA).

        The component count is at most ``pca_dim`` and at most the collection's rank (N - 1 for
        N distinct images, fewer for duplicates); a reduction is logged.
        """
        if self.pca_dim is None:
            return self
        x = self._pre(x)
        mean = x.mean(axis=0)
        variance, components = _principal_axes(x - mean)
        dim = min(self.pca_dim, len(variance))
        if dim < self.pca_dim:
            log.info(
                "post.pca_dim=%d reduced to %d: the %d images support no more components",
                self.pca_dim,
                dim,
                len(x),
            )
        variance, components = variance[:dim], components[:dim]
        if self.whiten:
            scale = 1.0 / np.sqrt(variance + self.shrinkage * variance.mean() + EPS)
        else:
            scale = np.ones(dim)
        self.state = {"mean": mean, "components": components, "scale": scale}
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Map (N, D) or (D,) descriptors; returns float32 of the output dimension."""
        x = self._pre(np.atleast_2d(x))
        if self.pca_dim is not None:
            if not self.state:
                raise RuntimeError("PostProcessor.transform called before fit")
            x = (x - self.state["mean"]) @ self.state["components"].T * self.state["scale"]
            if self.l2:
                x = l2n(x)
        return x.astype(np.float32)

    def fit_transform(self, x: np.ndarray) -> np.ndarray:
        """fit then transform."""
        return self.fit(x).transform(x)


def _principal_axes(centred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Variances (decreasing) and unit principal axes (rows) of centred (N, D) data.

    Works on the smaller of the N x N Gram matrix and the D x D covariance, and keeps only the
    components with a variance above ``RANK_TOL`` of the largest (the collection's rank).
    """
    n, d = centred.shape
    small_n = n <= d
    eigval, eigvec = np.linalg.eigh(centred @ centred.T if small_n else centred.T @ centred)
    order = np.argsort(eigval)[::-1]
    eigval, eigvec = eigval[order], eigvec[:, order]
    keep = eigval > RANK_TOL * max(float(eigval[0]), EPS)
    eigval, eigvec = eigval[keep], eigvec[:, keep]
    axes = (eigvec / np.sqrt(eigval)).T @ centred if small_n else eigvec.T
    return eigval / max(n - 1, 1), axes
