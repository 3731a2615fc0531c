"""One post-processing chain for every feature: power mapping, L2, PCA (optionally whitened), L2.

PCA is fitted on the indexed collection alone (no labels) and its state is saved with the index
so queries are mapped exactly as the collection was.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from search_lab.errors import ConfigError

EPS = 1e-12


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
        Divide each component by the square root of its variance (with PCA only).
    """

    power: float = 1.0
    l2: bool = True
    pca_dim: int | None = None
    whiten: bool = False
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
        if self.power <= 0:
            raise ConfigError(f"post.power must be positive, got {self.power}")
        if self.pca_dim is not None and self.pca_dim <= 0:
            raise ConfigError(f"post.pca_dim must be positive or null, got {self.pca_dim}")
        if self.whiten and self.pca_dim is None:
            raise ConfigError("post.whiten needs post.pca_dim (whitening is done in PCA space)")

    def _pre(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self.power != 1.0:
            x = signed_power(x, self.power)
        return l2n(x) if self.l2 else x

    def fit(self, x: np.ndarray) -> PostProcessor:
        """Learn the PCA of the (N, D) collection (a no-op without PCA)."""
        if self.pca_dim is None:
            return self
        x = self._pre(x)
        mean = x.mean(axis=0)
        _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
        dim = min(self.pca_dim, vt.shape[0])
        variance = s[:dim] ** 2 / max(len(x) - 1, 1)
        scale = 1.0 / np.sqrt(variance + EPS * 1e6) if self.whiten else np.ones(dim)
        self.state = {"mean": mean, "components": vt[:dim], "scale": scale}
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
