"""``index=nndescent``: a k-NN graph built by NN-descent (KGraph's method), via ``pynndescent``."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from search_lab.core import ConfigError, IndexMismatchError
from search_lab.indexes.base import register
from search_lab.indexes.files import FileIndex, padded
from search_lab.indexes.nndescent_arrays import LEGACY_FILE, read_graph, write_graph


@register("nndescent")
class NNDescentIndex(FileIndex):
    """Approximate search on a k-nearest-neighbour graph refined by NN-descent (``pynndescent``).

    NN-descent (Dong et al., the algorithm behind KGraph) starts from random-projection-tree
    neighbours and improves the graph by "a neighbour of a neighbour is likely a neighbour";
    queries walk the pruned graph from tree-chosen entry points.

    Parameters
    ----------
    metric : str
        ``euclidean``, ``manhattan`` or ``cosine`` (pynndescent's own, distances returned in
        our units). ``dot`` is refused: pynndescent's ``dot`` is 1 - a.b, meant for unit
        vectors, not our -a.b.
    n_neighbors : int
        Neighbours per node in the graph (capped at N - 1): more = higher recall, slower build.
    epsilon : float
        Search breadth (pynndescent's ``epsilon``, 0 to about 0.5): larger = higher recall.
    leaf_budget : int
        Search-tree leaves that seed each query (``search_tree_leaf_budget``). On
        well-separated clusters the k-NN graph splits into one component per cluster and a
        query can only find what its entry points reach: with pynndescent's default of one
        leaf, recall@10 on 100k clustered vectors was 0.47; with 16 it was 0.97.
    seed : int
        ``random_state``: with it pynndescent builds the same graph every time.
    n_jobs : int
        numba threads for build and queries (-1 = every core).

    Notes
    -----
    pynndescent compiles its search code with numba in each new process: the first build
    for a metric takes about 30 s of CPU before any work, later builds are quick. ``save``
    writes the prepared index as plain arrays (``nndescent.npz``, read with
    ``allow_pickle=False``, see :mod:`search_lab.indexes.nndescent_arrays`): no pickle, so a
    handed-over folder can hold wrong numbers at worst, which ``load`` checks, never code.
    """

    METRICS = ("cosine", "euclidean", "manhattan")
    DATA_FILE, BUILD_PARAMS = "nndescent.npz", ("n_neighbors", "leaf_budget", "seed")
    description = (
        "NN-descent k-NN graph (pynndescent, KGraph's method): graph search from "
        "random-projection-tree entry points; high recall, slow first build (numba compiles)"
    )
    label = "NN-descent k-NN graph (pynndescent, KGraph's method)"
    shown: ClassVar[dict[str, str]] = {"n_neighbors": "{} neighbours", "epsilon": "epsilon={}"}

    DEFAULTS: ClassVar[dict[str, Any]] = dict(
        n_neighbors=30, epsilon=0.1, leaf_budget=16, seed=42, n_jobs=1
    )
    _graph: Any = None

    def build(self, vectors: np.ndarray) -> None:
        """Build and prepare the search graph over an (N, D) matrix (N >= 2)."""
        from pynndescent import NNDescent

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(vectors) < 2:
            raise ConfigError("nndescent index: needs at least 2 vectors; use index=exact")
        graph = NNDescent(
            vectors,
            metric=self.metric,
            n_neighbors=min(self.n_neighbors, len(vectors) - 1),
            random_state=self.seed,
            n_jobs=self.n_jobs,
            search_tree_leaf_budget=self.leaf_budget,
        )
        graph.prepare()
        self._graph, (self.size, self.dim), self._built = graph, vectors.shape, True

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-k by graph search; distances in the metric's units."""
        ids, d = self._graph.query(queries, k=k, epsilon=self.epsilon)
        return padded(np.asarray(ids), np.asarray(d, np.float64), k)

    def stored_rows(self, start: int, stop: int) -> np.ndarray:
        """The rows the graph was built on, in item order (a prepared search graph keeps its
        rows in its own ``_vertex_order``)."""
        self._require_built("stored_rows()")
        rows = np.arange(start, max(start, min(stop, self.size)))
        order = getattr(self._graph, "_vertex_order", None)
        if order is not None:
            rows = np.argsort(order)[rows]
        return np.asarray(self._graph._raw_data[rows], np.float32)

    def _write(self, path: Path) -> None:
        write_graph(path, self._graph)

    def refuse_legacy(self, directory: Path) -> None:
        """An old folder (``nndescent.pkl``) is refused with the command that rebuilds it."""
        old = Path(directory) / LEGACY_FILE
        if old.is_file() and not (Path(directory) / self.DATA_FILE).is_file():
            command = (
                f"python -m search_lab.build_index index=nndescent metric={self.metric} "
                f"index_dir={shlex.quote(str(directory))} (and the feature it was built with)"
            )
            raise IndexMismatchError(
                f"{old} is an NN-descent index saved as a pickle, which search_lab no longer "
                f"reads (a pickle can run code); rebuild it: {command}"
            )

    def load(self, directory: Path) -> None:
        """Read ``nndescent.npz`` (see :meth:`FileIndex.load`); an old pickled folder is refused."""
        self.refuse_legacy(directory)
        super().load(directory)

    def _read(self, path: Path, record: dict[str, Any]) -> None:
        self._graph = read_graph(path, self.metric, self.size, self.dim)
        graph = self._graph
        wanted = min(self.n_neighbors, max(1, self.size - 1))  # build() caps it likewise
        self._mismatch(path, "n_neighbors", graph.n_neighbors, wanted)
        self._mismatch(path, "leaf_budget", graph.search_tree_leaf_budget, self.leaf_budget)
