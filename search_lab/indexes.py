"""Search indexes behind one interface: ``build``, ``search``, ``save``, ``load``; made by name.

``ExactIndex`` compares every query with every item (the baseline); ``AnnoyIndex`` searches a
forest of random-projection trees (approximate, memory-mapped from disk). Both return distances
in the configured metric's own units, so rankings and scores never depend on the index.
"""

from __future__ import annotations

import functools
import logging
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

import annoy
import numpy as np

from search_lab import exact_search
from search_lab.distances import check_metric
from search_lab.errors import ConfigError, IndexMismatchError
from search_lab.params import (
    is_int,
    require,
    require_jobs,
    require_number,
    require_positive_int,
    require_seed,
)
from search_lab.registry import Registry
from search_lab.results import read_json, write_json

log = logging.getLogger(__name__)

PAD_ID = -1
"""Id that pads a result row when an approximate index finds fewer than ``k`` items."""

Check = Callable[[str, Any], Any]
"""A parameter check: (name for messages, value) -> the value to keep, or ConfigError."""

COMMON_CHECKS: dict[str, Check] = {
    "seed": require_seed,
    "n_jobs": require_jobs,
    "query_jobs": require_jobs,
    "threads": require_jobs,
    "eps": require_number,
    "epsilon": require_number,
}
"""Parameters that mean the same in every index; any other one is a positive integer."""


class Index:
    """A searchable set of N descriptors; ids are 0..N-1 in insertion order.

    Distances returned by :meth:`search` are in the configured metric's own units
    (see :mod:`search_lab.distances`), whatever the index computes internally.
    """

    kind: ClassVar[str] = ""
    exact: ClassVar[bool] = False
    """True when :meth:`search` is exhaustive (no fidelity to measure against a baseline)."""
    description: ClassVar[str] = ""
    """The method in words, and when to pick it (the app shows it)."""
    label: ClassVar[str] = ""
    """The method in a few plain words (the app's configuration line)."""
    shown: ClassVar[dict[str, str]] = {}
    """Parameters worth showing beside the label, each with how its value reads."""
    streaming: ClassVar[bool] = False
    """True when :meth:`build_streaming` holds one block at a time (out-of-core build)."""
    DEFAULTS: ClassVar[dict[str, Any]] = {}
    """Parameter name -> default; :meth:`__init__` checks each value and sets it as attribute."""
    CHECKS: ClassVar[dict[str, Check]] = {}
    """Checks of this index's own parameters; others: :data:`COMMON_CHECKS`, else positive int."""
    BUILD_PARAMS: ClassVar[tuple[str, ...]] = ()
    """Parameters that shape the built structure: a saved index must have the configured ones."""

    def __init__(self, *, metric: str, **params: Any) -> None:
        self.metric = check_metric(metric)
        self.dim = 0
        self.size = 0
        unknown = sorted(set(params) - set(self.DEFAULTS))
        if unknown:  # TypeError, as for any unexpected keyword: the registry names the index
            valid = ", ".join(self.DEFAULTS) or "none"
            raise TypeError(f"unknown parameter(s) {', '.join(unknown)}; valid ones: {valid}")
        for name, default in self.DEFAULTS.items():
            check = self.CHECKS.get(name) or COMMON_CHECKS.get(name, require_positive_int)
            setattr(self, name, check(f"{self.kind} index: {name}", params.get(name, default)))

    def build(self, vectors: np.ndarray) -> None:
        """Index an (N, D) matrix; replaces whatever was indexed before."""
        raise NotImplementedError

    def build_streaming(self, blocks: Iterable[np.ndarray], rows: int, directory: Path) -> None:
        """Index blocks of rows that arrive one at a time (memory-mapped shards); ids in order.

        ``rows`` is their total. Files may be written straight into ``directory``, the folder
        :meth:`save` will then be given. This default concatenates the blocks and calls
        :meth:`build`, so memory grows with the collection: index types whose library needs
        the whole matrix (kd-tree, NN-descent) keep it; the others override it.
        """
        log.info("%s index cannot be built out of core: reading all %d rows", self.kind, rows)
        self.build(np.concatenate([np.asarray(b) for b in blocks], axis=0))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Nearest ``k`` items of each (Q, D) query: ids (Q, k') int64 and distances (Q, k') float.

        ``k'`` is ``min(k, N)``; rows are sorted by increasing distance. An approximate index
        may find fewer than ``k'`` items for a query: the row then ends with ``PAD_ID`` (-1)
        ids and ``inf`` distances, so callers must drop ids < 0.
        """
        raise NotImplementedError

    def save(self, directory: Path) -> None:
        """Write the index's own files into an existing ``directory``."""
        raise NotImplementedError

    def load(self, directory: Path) -> None:
        """Read files written by :meth:`save`; raises IndexMismatchError if they are missing."""
        raise NotImplementedError

    def _check_queries(self, queries: np.ndarray) -> np.ndarray:
        queries = np.atleast_2d(np.asarray(queries, np.float32))
        if queries.shape[1] != self.dim:
            raise IndexMismatchError(
                f"query has dimension {queries.shape[1]} but the index holds {self.dim}-d vectors"
            )
        return queries


def search_views(index: Index, views: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of every query over several views of it (e.g. rotations), each item at its best.

    Parameters
    ----------
    index : Index
        A built index.
    views : list of ndarray
        (Q, D) matrices whose row q describes query q; with one view this is ``index.search``.
    k : int
        Results wanted per query.

    Returns
    -------
    ids, distances : ndarray
        (Q, min(k, N)) arrays sorted by distance; each id appears at most once per row. Rows
        with fewer distinct items are padded with ``PAD_ID`` and ``inf``, like ``search``.
    """
    results = [index.search(view, k) for view in views]
    if len(results) == 1:
        return results[0]
    ids_all = np.concatenate([ids for ids, _ in results], axis=1)
    d_all = np.concatenate([d for _, d in results], axis=1)
    k = min(k, index.size)
    out_ids = np.full((len(ids_all), k), PAD_ID, np.int64)
    out_d = np.full((len(ids_all), k), np.inf)
    for q in range(len(ids_all)):
        found = ids_all[q] >= 0  # padding is not an item: it must not be merged or ranked
        ids, d = ids_all[q][found], d_all[q][found]
        order = np.argsort(d, kind="stable")
        _, first = np.unique(ids[order], return_index=True)
        best = order[np.sort(first)][:k]
        out_ids[q, : len(best)], out_d[q, : len(best)] = ids[best], d[best]
    return out_ids, out_d


REBUILD = "rebuild it with `python -m search_lab.build_index index={kind}`"


def read_record(index: Index, path: Path, meta: Path, *, label: str = "") -> dict[str, Any]:
    """The JSON record ``meta`` saved beside the data file ``path``, checked against ``index``.

    Both files must exist, the record must hold integers ``dim`` and ``size`` (and ``bytes``
    when present), and name the index's metric and the configured value of every build
    parameter (under ``params``; Annoy's record keeps them at the top level).

    Raises
    ------
    IndexMismatchError
        A file is missing or unreadable, or the index was built otherwise; the message says
        how to rebuild it.
    """
    rebuild = REBUILD.format(kind=index.kind)
    if not path.is_file() or not meta.is_file():
        raise IndexMismatchError(
            f"{path.parent} holds no {label or index.kind} index ({path.name} or {meta.name} "
            f"missing); {rebuild}"
        )
    try:
        record = read_json(meta)
        record |= {key: int(record[key]) for key in ("dim", "size", "bytes") if key in record}
        metric, saved = record["metric"], dict(record.get("params", record))
        if "dim" not in record or "size" not in record:
            raise KeyError("dim" if "dim" not in record else "size")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise IndexMismatchError(f"{meta} is unreadable ({err!r}); {rebuild}") from err
    if metric != index.metric:
        raise IndexMismatchError(
            f"{path} was built for metric {metric!r}, but {index.metric!r} was asked for"
        )
    for name in index.BUILD_PARAMS:
        if saved.get(name) != getattr(index, name):
            raise IndexMismatchError(
                f"{path} was built with {name}={saved.get(name)!r}, but the configuration "
                f"says {getattr(index, name)!r}; {rebuild}"
            )
    return record


INDEXES: Registry[Index] = Registry("index", attr="kind")
register = INDEXES.register
available = INDEXES.available


def create(kind: str, *, metric: str, **params: Any) -> Index:
    """An empty index of type ``kind``; unknown names raise ConfigError listing the valid ones."""
    return INDEXES.create(kind, metric=metric, **params)


@register("exact")
class ExactIndex(Index):
    """Exhaustive search: every query is compared with every item (the exact baseline).

    Queries are processed in blocks of ``block`` rows; :mod:`search_lab.exact_search` shortlists
    in float32 and answers in float64, so memory stays bounded and no float64 copy is made.
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

    VECTORS_FILE: ClassVar[str] = "vectors.npy"
    META_FILE: ClassVar[str] = "exact.json"

    def save(self, directory: Path) -> None:
        """Write ``vectors.npy`` and ``exact.json`` (metric, dim, size: what the matrix means)."""
        target = Path(directory) / self.VECTORS_FILE
        if self._file is None or self._file.resolve() != target.resolve():
            np.save(target, self.vectors)  # (a streamed build wrote it there already)
        meta = {"metric": self.metric, "dim": self.dim, "size": self.size}
        write_json(Path(directory) / self.META_FILE, meta)

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


def _cosine_from_angular(d: np.ndarray) -> np.ndarray:
    """Annoy's angular distance is sqrt(2 (1 - cos)), so 1 - cos = d**2 / 2."""
    return 0.5 * d * d


def _same(d: np.ndarray) -> np.ndarray:
    """Annoy's euclidean and manhattan distances are already ours."""
    return d


def _dot_from_inner(d: np.ndarray) -> np.ndarray:
    """Annoy's ``dot`` reports the inner product; our ``dot`` metric is its negative."""
    return -d


ANNOY_METRICS: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
    "cosine": ("angular", _cosine_from_angular),
    "euclidean": ("euclidean", _same),
    "manhattan": ("manhattan", _same),
    "dot": ("dot", _dot_from_inner),
}
"""Our metric -> (Annoy's metric name, map from Annoy's reported distance to ours)."""


def _search_k(name: str, value: Any) -> int:
    """Annoy's ``search_k``: -1 (its default, ``k * n_trees``) or a positive node count."""
    ok = is_int(value) and (value == -1 or value > 0)
    require(name, value, ok, "-1 (Annoy's default) or positive")
    return int(value)


@register("annoy")
class AnnoyIndex(Index):
    """Approximate search with Annoy: a forest of random-projection trees, memory-mapped from disk.

    Parameters
    ----------
    metric : str
        ``cosine``, ``euclidean``, ``manhattan`` or ``dot`` (Annoy's ``angular``, ``euclidean``,
        ``manhattan``, ``dot``); any other metric raises ConfigError listing these.
    n_trees : int
        Trees in the forest: more trees give higher recall, a larger file and a slower build.
    search_k : int
        Tree nodes inspected per query; -1 is Annoy's default, ``k * n_trees``. Larger gives
        higher recall and slower queries. With ``k = N`` the default visits every leaf, so
        ranking the whole collection is as exhaustive as exact search.
    seed : int or None
        Seed of the random splits (``set_seed``); None keeps Annoy's built-in seed. A build is
        reproducible for one seed *and* one ``n_jobs``: each build thread draws its own stream.
    n_jobs : int
        Threads that build trees; -1 uses every core. (Defaults: ``conf/index/annoy.yaml``.)

    Notes
    -----
    Annoy's rules: items cannot be added after ``build`` (so ``build`` makes a new forest),
    ids are 0..N-1 in row order, and a query may receive fewer than ``k`` items when an
    explicit ``search_k`` is small; such rows are padded with ``PAD_ID`` and ``inf``. (With
    ``search_k=-1`` a row is always full: an item sits in one leaf per tree, so ``k * n_trees``
    candidates hold at least ``k`` distinct items, or every leaf was visited.) ``save`` writes
    ``annoy.ann`` (the forest) and ``annoy.json`` (what it holds); ``load`` checks one against
    the other and memory-maps the forest without reading it, so loading is instant and the
    pages are shared between processes using the same file.
    """

    description = (
        "approximate search (Annoy): a forest of random-projection trees, memory-mapped; "
        "small and instant to load, slower than graph indexes at high recall"
    )
    label = "approximate search (Annoy)"
    shown: ClassVar[dict[str, str]] = {"n_trees": "{} trees"}
    FOREST_FILE: ClassVar[str] = "annoy.ann"
    META_FILE: ClassVar[str] = "annoy.json"
    # n_trees is recorded once, in the folder's config, and checked against the forest on load
    DEFAULTS: ClassVar[dict[str, Any]] = {"n_trees": 50, "search_k": -1, "seed": 42, "n_jobs": 1}
    CHECKS: ClassVar[dict[str, Check]] = {
        "search_k": _search_k,
        "seed": functools.partial(require_seed, null=True),
    }

    def __init__(self, *, metric: str, **params: Any) -> None:
        super().__init__(metric=metric, **params)
        if self.metric not in ANNOY_METRICS:
            raise ConfigError(
                f"annoy index does not support metric {self.metric!r}; "
                f"choose one of: {', '.join(sorted(ANNOY_METRICS))} (or index=exact)"
            )
        self.annoy_metric, self._to_metric = ANNOY_METRICS[self.metric]
        self._forest: annoy.AnnoyIndex | None = None
        self._file: Path | None = None  # the forest's file when built on disk

    streaming = True

    def _new_forest(self, dim: int) -> annoy.AnnoyIndex:
        forest = annoy.AnnoyIndex(dim, self.annoy_metric)
        if self.seed is not None:
            forest.set_seed(self.seed)
        return forest

    def build(self, vectors: np.ndarray) -> None:
        """Index the rows of an (N, D) matrix as items 0..N-1 and grow ``n_trees`` trees."""
        vectors = np.asarray(vectors, np.float32)
        if vectors.ndim != 2:
            raise ValueError(f"annoy index: expected an (N, D) matrix, got shape {vectors.shape}")
        forest = self._new_forest(vectors.shape[1])
        for i, row in enumerate(vectors):
            forest.add_item(i, row)
        forest.build(self.n_trees, n_jobs=self.n_jobs)
        self._forest, self._file = forest, None
        self.size, self.dim = vectors.shape

    def build_streaming(self, blocks: Iterable[np.ndarray], rows: int, directory: Path) -> None:
        """Annoy's on-disk build: items and trees go to ``directory/annoy.ann``, not to memory.

        The same seed and ``n_jobs`` give the same file as :meth:`build`.
        """
        path, forest, n = Path(directory) / self.FOREST_FILE, None, 0
        for block in blocks:
            if forest is None:
                forest = self._new_forest(block.shape[1])
                forest.on_disk_build(str(path))
                self.dim = block.shape[1]
            for row in np.asarray(block, np.float32):
                forest.add_item(n, row)
                n += 1
        if forest is None or n != rows:
            raise ValueError(f"annoy index: {n} rows streamed, {rows} announced")
        forest.build(self.n_trees, n_jobs=self.n_jobs)
        self._forest, self._file, self.size = forest, path, n

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-k per query, distances converted to the configured metric.

        Queries are answered one at a time (Annoy has no batch call); see :meth:`Index.search`
        for shapes and padding.
        """
        if self._forest is None:
            raise RuntimeError("annoy index: call build() or load() before search()")
        queries = self._check_queries(queries)
        k = max(0, min(int(k), self.size))
        ids = np.full((len(queries), k), PAD_ID, np.int64)
        dists = np.full((len(queries), k), np.inf)
        if k == 0:
            return ids, dists
        for q, row in enumerate(queries):
            found, d = self._forest.get_nns_by_vector(row, k, self.search_k, True)
            ids[q, : len(found)] = found
            dists[q, : len(found)] = self._to_metric(np.asarray(d, np.float64))
        return ids, dists

    def save(self, directory: Path) -> None:
        """Write ``annoy.ann`` and ``annoy.json`` (metric, dim, size, file size).

        The number of trees is a parameter: the index folder records it once, in its config.

        Annoy re-opens the written file memory-mapped, so the index keeps working afterwards.
        """
        if self._forest is None:
            raise RuntimeError("annoy index: nothing to save, call build() first")
        path = Path(directory) / self.FOREST_FILE
        if self._file is None:
            self._forest.save(str(path))
        elif self._file.resolve() != path.resolve():  # Annoy's save is a no-op once on disk
            shutil.copyfile(self._file, path)
        meta = {
            "metric": self.metric,
            "annoy_metric": self.annoy_metric,
            "dim": self.dim,
            "size": self.size,
            "bytes": path.stat().st_size,
        }
        write_json(Path(directory) / self.META_FILE, meta)

    def load(self, directory: Path) -> None:
        """Memory-map ``annoy.ann`` after checking it against ``annoy.json`` and the config.

        Raises
        ------
        IndexMismatchError
            If a file is missing or unreadable, the forest was built for another metric or
            number of trees, or its size on disk is not the one recorded when it was saved
            (Annoy itself would happily map a file of the wrong dimension as garbage).
        """
        path = Path(directory) / self.FOREST_FILE
        meta = read_record(self, path, Path(directory) / self.META_FILE, label="Annoy")
        dim, size, n_bytes = meta["dim"], meta["size"], meta["bytes"]
        rebuild = REBUILD.format(kind=self.kind)
        if path.stat().st_size != n_bytes:
            raise IndexMismatchError(
                f"{path} has {path.stat().st_size} bytes, {n_bytes} were written: the file is "
                f"truncated or was replaced; {rebuild}"
            )
        forest = annoy.AnnoyIndex(dim, self.annoy_metric)
        try:
            forest.load(str(path), prefault=False)  # mmap, pages read on demand
        except OSError as err:
            raise IndexMismatchError(f"{path} cannot be read by Annoy ({err}); {rebuild}") from err
        if forest.get_n_trees() != self.n_trees:
            raise IndexMismatchError(
                f"{path} holds {forest.get_n_trees()} trees, but the configuration says "
                f"{self.n_trees}; {rebuild}"
            )
        if forest.get_n_items() != size:
            raise IndexMismatchError(
                f"{path} holds {forest.get_n_items()} items, {self.META_FILE} says {size}; "
                f"{rebuild}"
            )
        self._forest, self.dim, self.size = forest, dim, size


# The other index types live in modules of their own; importing them registers them.
from search_lab import index_faiss, index_hnsw, index_kdtree, index_nndescent  # noqa: E402, F401
