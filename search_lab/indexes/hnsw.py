"""``index=hnsw``: NMSLib's Hierarchical Navigable Small World graph, through ``hnswlib``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from search_lab.core import IndexMismatchError
from search_lab.indexes.base import register
from search_lab.indexes.editing import SLOTS
from search_lab.indexes.files import FileIndex, padded

SPACES: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
    "euclidean": ("l2", lambda d: np.sqrt(np.maximum(d, 0.0))),  # hnswlib's l2 is squared
    "cosine": ("cosine", lambda d: np.maximum(d, 0.0)),  # 1 - cos, rows normalised inside
    "dot": ("ip", lambda d: d - 1.0),  # hnswlib's ip is 1 - a.b; our dot is -a.b
}
"""Our metric -> (hnswlib's space, map from its distance to ours)."""


@register("hnsw")
class HNSWIndex(FileIndex):
    """Approximate search on a layered proximity graph (HNSW, as in NMSLib), via ``hnswlib``.

    Parameters
    ----------
    metric : str
        ``euclidean`` (hnswlib ``l2``, squared: the root is taken), ``cosine`` (``cosine``,
        1 - cos) or ``dot`` (``ip``, 1 - a.b, turned into -a.b); others raise ConfigError.
    M : int
        Links per node (2 M on the bottom layer): more = higher recall, more memory.
    ef_construction : int
        Candidate list while inserting: larger = a better graph and a slower build.
    ef : int
        Candidate list while searching (at least ``k`` is used): the recall/speed knob.
    seed : int
        Seed of the level each node is given.
    n_jobs : int
        Insertion threads. With more than one, insertion order and thus the graph vary from
        run to run; the default 1 keeps builds reproducible.
    query_jobs : int
        Threads answering a batch of queries (results do not depend on it).
    """

    METRICS = tuple(sorted(SPACES))
    DATA_FILE, BUILD_PARAMS = "hnsw.bin", ("M", "ef_construction", "seed")
    description = (
        "HNSW graph (hnswlib, NMSLib's algorithm): greedy search through a layered "
        "small-world graph; among the fastest at high recall, the vectors stay in memory"
    )
    label = "HNSW graph (hnswlib, NMSLib's algorithm)"
    shown: ClassVar[dict[str, str]] = {"M": "M={}", "ef": "ef={}"}

    DEFAULTS: ClassVar[dict[str, Any]] = dict(
        M=16, ef_construction=200, ef=50, seed=100, n_jobs=1, query_jobs=1
    )
    _graph: Any = None
    slots = 0
    """Items the graph holds, those marked deleted by in-place updates included."""

    streaming = True

    def _new_graph(self, rows: int, dim: int) -> Any:
        import hnswlib

        graph = hnswlib.Index(space=SPACES[self.metric][0], dim=dim)
        graph.init_index(
            max_elements=max(1, rows), M=self.M, ef_construction=self.ef_construction,
            random_seed=self.seed,
        )  # fmt: skip
        return graph

    def build(self, vectors: np.ndarray) -> None:
        """Insert the rows of an (N, D) matrix as items 0..N-1."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        graph = self._new_graph(len(vectors), vectors.shape[1])
        graph.add_items(vectors, np.arange(len(vectors)), num_threads=self.n_jobs)
        self._graph, (self.size, self.dim), self._built = graph, vectors.shape, True
        self.slots = self.size

    def edit_mode(self, size: int) -> str | None:
        """hnswlib keeps labels: removed ones are marked deleted, then reused."""
        return SLOTS

    def edit(self, drop: np.ndarray, put: np.ndarray, vectors: np.ndarray) -> None:
        """Mark ``drop`` deleted, then insert ``vectors`` under labels ``put``: a deleted
        label is revived with its new vector (hnswlib repairs its links), a new one is added
        (the graph grows first if it must). Deleted items stay in the graph as waypoints."""
        self._require_built("edit()")
        for label in drop.tolist():
            self._graph.mark_deleted(label)
        if len(put):
            need = int(put.max()) + 1
            if need > self._graph.get_max_elements():
                self._graph.resize_index(need)
            rows = np.ascontiguousarray(vectors, dtype=np.float32)
            self._graph.add_items(rows, put, num_threads=self.n_jobs)
        self.size += len(put) - len(drop)
        self.slots = self._graph.get_current_count()

    def record(self) -> dict[str, Any]:
        """The common record plus ``slots`` (items held, deleted ones included)."""
        return {**super().record(), "slots": self.slots}

    def build_streaming(self, blocks: Iterable[np.ndarray], rows: int, directory: Path) -> None:
        """Insert block after block (hnswlib adds to a sized graph): the graph is the memory."""
        graph, n = None, 0
        for block in blocks:
            if graph is None:
                graph = self._new_graph(rows, block.shape[1])
            rows_in = np.ascontiguousarray(block, dtype=np.float32)
            graph.add_items(rows_in, np.arange(n, n + len(block)), num_threads=self.n_jobs)
            n += len(block)
        if graph is None or n != rows:
            raise ValueError(f"hnsw index: {n} rows streamed, {rows} announced")
        self._graph, self.size, self.dim, self._built = graph, n, graph.dim, True
        self.slots = n

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-k with ``max(ef, k)`` candidates; distances in the metric's units."""
        self._graph.set_ef(max(self.ef, k))
        try:
            ids, d = self._graph.knn_query(queries, k=k, num_threads=self.query_jobs)
        except RuntimeError:  # some query reached fewer than k items: fill what each one can
            ids, d = self._one_by_one(queries, k)
        return padded(ids.astype(np.int64), SPACES[self.metric][1](d.astype(np.float64)), k)

    def _one_by_one(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Each query alone, asking for fewer items until hnswlib can return them all."""
        ids, d = np.full((len(queries), k), -1, np.int64), np.full((len(queries), k), np.nan)
        for q, row in enumerate(queries):
            want = k
            while want > 0:
                try:
                    got_ids, got_d = self._graph.knn_query(row[None], k=want)
                except RuntimeError:
                    want //= 2
                    continue
                ids[q, :want], d[q, :want] = got_ids[0], got_d[0]
                break
        return ids, d

    def stored_rows(self, start: int, stop: int) -> np.ndarray:
        """The graph's stored items (hnswlib keeps cosine rows at unit length)."""
        self._require_built("stored_rows()")
        ids = np.arange(start, min(stop, self.size))
        rows = self._graph.get_items(ids, return_type="numpy") if len(ids) else []
        return np.asarray(rows, np.float32).reshape(len(ids), self.dim)

    def _write(self, path: Path) -> None:
        self._graph.save_index(str(path))

    def _read(self, path: Path, record: dict[str, Any]) -> None:
        import hnswlib

        graph = hnswlib.Index(space=SPACES[self.metric][0], dim=self.dim)
        graph.load_index(str(path), max_elements=max(1, self.size))
        self.slots = int(record.get("slots", self.size))
        if graph.get_current_count() != self.slots:
            raise IndexMismatchError(
                f"{path} holds {graph.get_current_count()} items, its record says {self.slots}"
            )
        self._mismatch(path, "M", graph.M, self.M)
        self._mismatch(path, "ef_construction", graph.ef_construction, self.ef_construction)
        self._graph = graph
