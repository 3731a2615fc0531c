"""Exhaustive search: every item compared with the query (the baseline)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from search_lab.core import IndexMismatchError, library_write, write_json
from search_lab.indexes import exact_search
from search_lab.indexes.base import Index, read_record, register
from search_lab.indexes.editing import COMPACT

log = logging.getLogger(__name__)


@register("exact")
class ExactIndex(Index):
    """Exhaustive search: every query is compared with every item (the exact baseline).

    Queries are processed in blocks of ``block`` rows; :mod:`search_lab.indexes.exact_search`
    shortlists in float32 and answers in float64, so memory stays bounded and no float64 copy is
    made.
    """

    exact = True
    description = "exact search: every image compared with the query (the baseline)"
    label = "exact search (every image compared)"

    DEFAULTS: ClassVar[dict[str, Any]] = {"block": 256}

    def __init__(self, *, metric: str, **params: Any) -> None:
        super().__init__(metric=metric, **params)
        self.vectors = np.zeros((0, 0), np.float32)
        self._file: Path | None = None  # vectors.npy when built out of core (memory-mapped)
        self._norms2: np.ndarray | None = None

    streaming = True

    def build(self, vectors: np.ndarray) -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.size, self.dim = self.vectors.shape
        self._norms2: np.ndarray | None = None  # squared row norms, computed at the first search
        self._file = None

    def build_streaming(self, blocks: Iterable[np.ndarray], rows: int, directory: Path) -> None:
        """Copy the blocks into ``directory/vectors.npy`` one at a time and memory-map it."""
        path, out, start = Path(directory) / self.VECTORS_FILE, None, 0
        for block in blocks:
            if out is None:
                shape = (rows, block.shape[1])
                out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
            out[start : start + len(block)] = block
            start += len(block)
        if out is None or start != rows:
            raise ValueError(f"exact index: {start} rows streamed, {rows} announced")
        out.flush()
        del out
        self.build(np.load(path, mmap_mode="r"))
        self._file = path

    def edit_mode(self, size: int) -> str | None:
        """Rows are kept in order and appended (a new matrix: the old one may be mapped)."""
        return COMPACT

    def edit(self, drop: np.ndarray, put: np.ndarray, vectors: np.ndarray) -> None:
        """Keep the rows not in ``drop``, append ``vectors`` (``put`` are the appended ids)."""
        kept = np.setdiff1d(np.arange(self.size), drop)
        if not np.array_equal(put, np.arange(len(kept), len(kept) + len(vectors))):
            raise ValueError("exact index: new rows can only be appended")
        self.build(np.concatenate([self.vectors[kept], np.asarray(vectors, np.float32)]))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = self._check_queries(queries)
        k = min(k, self.size)
        if self._norms2 is None:
            self._norms2 = exact_search.squared_norms(self.vectors)
        ids = np.empty((len(queries), k), np.int64)
        dists = np.empty((len(queries), k), np.float64)
        for start in range(0, len(queries), self.block):
            block = slice(start, start + self.block)
            ids[block], dists[block] = exact_search.top_k(
                self.metric, queries[block], self.vectors, k, self._norms2
            )
        return ids, dists

    def stored_rows(self, start: int, stop: int) -> np.ndarray:
        return np.array(self.vectors[start:stop], np.float32)

    VECTORS_FILE: ClassVar[str] = "vectors.npy"
    META_FILE: ClassVar[str] = "exact.json"

    def save(self, directory: Path) -> None:
        """Write ``vectors.npy`` and ``exact.json`` (metric, dim, size: what the matrix means)."""
        target = Path(directory) / self.VECTORS_FILE
        if self._file is None or self._file.resolve() != target.resolve():
            library_write(target, lambda: np.save(target, self.vectors))  # (unless streamed)
        meta = {"metric": self.metric, "dim": self.dim, "size": self.size}
        write_json(Path(directory) / self.META_FILE, meta)

    def data_files(self) -> tuple[str, ...]:
        """The matrix and its record."""
        return (self.VECTORS_FILE, self.META_FILE)

    def load(self, directory: Path) -> None:
        """Memory-map ``vectors.npy`` after checking it against ``exact.json`` and the metric.

        Raises
        ------
        IndexMismatchError
            If a file is missing, truncated or unreadable, or the matrix was saved for another
            metric or shape.
        """
        path = Path(directory) / self.VECTORS_FILE
        meta = read_record(self, path, Path(directory) / self.META_FILE)
        shape = (meta["size"], meta["dim"])
        try:
            vectors = np.load(path, mmap_mode="r")
        except (OSError, ValueError, EOFError) as err:  # empty, truncated header or data
            raise IndexMismatchError(f"{path} is truncated or not a numpy matrix ({err})") from err
        if vectors.shape != shape or vectors.dtype != np.float32:
            raise IndexMismatchError(
                f"{path} holds a {vectors.dtype} matrix of shape {vectors.shape}, "
                f"{self.META_FILE} says float32 {shape}"
            )
        self.build(vectors)
