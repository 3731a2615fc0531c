"""``index=kdtree``: SciPy's ``cKDTree``, exact for euclidean, manhattan and cosine."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from search_lab.core import IndexMismatchError
from search_lab.indexes.base import register
from search_lab.indexes.files import FileIndex, padded, unit_rows

if TYPE_CHECKING:
    from scipy.spatial import cKDTree

P_OF: dict[str, int] = {"euclidean": 2, "manhattan": 1, "cosine": 2}
"""Our metric -> the Minkowski p the tree searches with (cosine: L2 on unit vectors)."""


@register("kdtree")
class KDTreeIndex(FileIndex):
    """A k-d tree (SciPy ``cKDTree``): axis-aligned splits, exact branch-and-bound search.

    Parameters
    ----------
    metric : str
        ``euclidean`` (p=2), ``manhattan`` (p=1) or ``cosine``: vectors are scaled to unit
        length, where ||a - b||^2 / 2 = 1 - cos, so the search stays exact. ``dot`` and
        ``chi2`` are not distances a kd-tree can bound and raise ConfigError.
    leafsize : int
        Points per leaf: larger leaves mean a shallower tree and more brute-force work per leaf.
    eps : float
        0 = exact. With eps > 0 a branch is pruned when it cannot hold a point closer than
        d / (1 + eps), so the k-th result is within (1 + eps) of the true k-th distance.
    n_jobs : int
        Threads answering a batch of queries (``workers``; -1 = every core). Results do not
        depend on it.

    Notes
    -----
    Pruning works in few dimensions; beyond about 20 almost every leaf is visited, so the tree
    is rarely faster than exhaustive search on image descriptors (the benchmark shows by how
    much). ``save`` writes the indexed vectors (``kdtree.npy``); ``load`` rebuilds the tree from
    them, which is deterministic and takes about a second per million 128-d vectors.
    """

    METRICS = ("cosine", "euclidean", "manhattan")
    DATA_FILE, BUILD_PARAMS = "kdtree.npy", ("leafsize",)
    description = (
        "kd-tree (SciPy cKDTree): exact branch-and-bound search; fast in low dimensions, "
        "close to exhaustive beyond about 20"
    )
    label = "kd-tree (SciPy cKDTree)"
    shown: ClassVar[dict[str, str]] = {"eps": "eps={}"}

    DEFAULTS: ClassVar[dict[str, Any]] = dict(leafsize=16, eps=0.0, n_jobs=1)
    _tree: cKDTree | None = None

    @property
    def exact(self) -> bool:  # type: ignore[override]
        """Exhaustive unless ``eps`` allows approximate answers."""
        return self.eps == 0.0

    def build(self, vectors: np.ndarray) -> None:
        """Grow the tree over an (N, D) matrix (unit rows for cosine)."""
        vectors = np.asarray(vectors, np.float32)
        if self.metric == "cosine":
            vectors = unit_rows(vectors, "kdtree")
        from scipy.spatial import cKDTree  # ~0.4 s to import: only when a tree is built

        self._tree = cKDTree(vectors.astype(np.float64), leafsize=self.leafsize)
        self.size, self.dim = vectors.shape
        self._built = True

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by branch and bound; distances in the configured metric's units."""
        if self.metric == "cosine":
            queries = unit_rows(queries, "kdtree")
        d, ids = self._tree.query(
            queries.astype(np.float64), k=k, eps=self.eps, p=P_OF[self.metric], workers=self.n_jobs
        )
        d, ids = np.reshape(d, (len(queries), k)), np.reshape(ids, (len(queries), k))
        ids = np.where(ids >= self.size, -1, ids)  # SciPy marks a missing neighbour with N
        if self.metric == "cosine":
            d = 0.5 * d * d
        return padded(ids, d, k)

    def stored_rows(self, start: int, stop: int) -> np.ndarray:
        """The tree's points (unit length for cosine)."""
        self._require_built("stored_rows()")
        return self._tree.data[start:stop].astype(np.float32)

    def _write(self, path: Path) -> None:
        with path.open("wb") as fh:
            np.save(fh, self._tree.data.astype(np.float32))

    def _read(self, path: Path, record: dict[str, Any]) -> None:
        try:
            data = np.load(path, allow_pickle=False)
        except ValueError as err:  # numpy's message would suggest unpickling it
            raise IndexMismatchError(f"{path} is not a numpy array file (.npy)") from err
        if not isinstance(data, np.ndarray):
            raise IndexMismatchError(f"{path} is not a numpy array file (.npy)")
        if data.shape != (self.size, self.dim):
            raise IndexMismatchError(f"{path} holds {data.shape}, expected {(self.size, self.dim)}")
        if data.dtype.kind != "f" or not np.isfinite(data).all():
            raise IndexMismatchError(f"{path} holds {data.dtype} values that are not all finite")
        from scipy.spatial import cKDTree

        self._tree = cKDTree(data.astype(np.float64), leafsize=self.leafsize)
