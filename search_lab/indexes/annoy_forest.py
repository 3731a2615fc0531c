"""Annoy: a forest of random-projection trees, built in memory or on disk, memory-mapped."""

from __future__ import annotations

import functools
import logging
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

import annoy
import numpy as np

from search_lab.core import (
    ConfigError,
    IndexMismatchError,
    is_int,
    library_write,
    require,
    require_seed,
    write_json,
)
from search_lab.indexes.base import PAD_ID, REBUILD, Check, Index, read_record, register

log = logging.getLogger(__name__)


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


def leaf_capacity(dim: int, annoy_metric: str) -> int:
    """Most items Annoy keeps in one node: its node's bytes, counted in item ids.

    A node holds ``n_descendants``, two children ids and the ``dim`` floats of a split (plus
    one float for ``dot``); a leaf stores its item ids in that space instead (annoylib.h, ``K``).
    """
    return dim + (3 if annoy_metric == "dot" else 2)


def loaded_trees(n_items: int, dim: int, annoy_metric: str, n_trees: int) -> frozenset[int]:
    """The tree counts Annoy's ``get_n_trees()`` may report after loading a forest of ``n_trees``.

    Annoy does not store the tree count: ``load`` finds the roots by scanning back from the end
    of the file for nodes with as many descendants as the last one. With more items than a
    node holds (:func:`leaf_capacity`) that finds the ``n_trees`` roots. With fewer, each tree
    is a single leaf holding every item and the scan also counts the copies of the roots Annoy
    appends, less one: it reports 2 ``n_trees`` - 1 (measured for N = 2 to the capacity, every
    metric). With one item the item itself joins the scan: 2 ``n_trees`` or 2 ``n_trees`` + 1,
    by metric. Search is then exhaustive whatever the tree count.
    """
    if n_items > leaf_capacity(dim, annoy_metric):
        return frozenset({n_trees})
    if n_items == 1:
        return frozenset({2 * n_trees, 2 * n_trees + 1})
    return frozenset({2 * n_trees - 1})


NODE_CHUNK = 1 << 16  # tree nodes checked per numpy pass


def node_layout(dim: int, annoy_metric: str) -> tuple[int, int]:
    """(32-bit words per node, word where the children ids start) of Annoy's node struct.

    annoylib.h: ``n_descendants``, then (euclidean, manhattan) the split offset ``a``, then the
    two children ids, then (dot) ``dot_factor``, then the ``dim`` floats; a leaf's item ids
    overwrite the space from the children on.
    """
    minkowski = annoy_metric in ("euclidean", "manhattan")
    extra = 1 if minkowski or annoy_metric == "dot" else 0
    return 3 + extra + dim, 2 if minkowski else 1


def forest_problem(path: Path, dim: int, annoy_metric: str, n_items: int) -> str | None:
    """What makes the tree nodes of ``path`` unsafe to search (one phrase), or None.

    Annoy follows the ids it reads without checking them: a crafted file whose checksums were
    recomputed could make it read outside the file or loop forever. Every node after the items
    is checked: at least one descendant; a leaf (at most :func:`leaf_capacity` descendants)
    names items 0..N-1 only; an inner node's children come before it (Annoy writes a node
    after its children), so no walk can loop. Items themselves are only read as vectors.
    """
    words, first = node_layout(dim, annoy_metric)
    capacity = leaf_capacity(dim, annoy_metric)
    raw = np.memmap(path, np.int32, mode="r")
    if raw.size % words:
        return "it is not a whole number of Annoy nodes"
    nodes = raw.reshape(-1, words)
    for start in range(n_items, len(nodes), NODE_CHUNK):
        block = np.asarray(nodes[start : start + NODE_CHUNK])
        count = block[:, 0]
        if (count < 1).any():
            return "a tree node has no descendants"
        ids = block[:, first : first + capacity]
        inner = count > capacity
        own = np.arange(start, start + len(block))[inner, None]
        kids = ids[inner, :2]
        if ((kids < 0) | (kids >= own)).any():
            return "a tree node links to itself, to a later node or outside the file"
        listed = np.arange(capacity)[None, :] < count[~inner, None]
        if (((ids[~inner] < 0) | (ids[~inner] >= n_items)) & listed).any():
            return f"a leaf names items outside 0..{n_items - 1}"
    return None


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

    def stored_rows(self, start: int, stop: int) -> np.ndarray:
        """Annoy's stored items (one call per item: Annoy has no batch read)."""
        if self._forest is None:
            raise RuntimeError("annoy index: call build() or load() before stored_rows()")
        rows = [self._forest.get_item_vector(i) for i in range(start, min(stop, self.size))]
        return np.array(rows, np.float32).reshape(len(rows), self.dim)

    def save(self, directory: Path) -> None:
        """Write ``annoy.ann`` and ``annoy.json`` (metric, dim, size, file size).

        The number of trees is a parameter: the index folder records it once, in its config.

        Annoy re-opens the written file memory-mapped, so the index keeps working afterwards.
        """
        if self._forest is None:
            raise RuntimeError("annoy index: nothing to save, call build() first")
        path = Path(directory) / self.FOREST_FILE
        if self._file is None:
            library_write(path, lambda: self._forest.save(str(path)))
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

    def data_files(self) -> tuple[str, ...]:
        """The forest and its record."""
        return (self.FOREST_FILE, self.META_FILE)

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
        if forest.get_n_trees() not in loaded_trees(size, dim, self.annoy_metric, self.n_trees):
            raise IndexMismatchError(
                f"{path} holds {forest.get_n_trees()} trees, but the configuration says "
                f"{self.n_trees}; {rebuild}"
            )
        if problem := forest_problem(path, dim, self.annoy_metric, size):
            forest.unload()
            raise IndexMismatchError(f"{path} is damaged: {problem}; {rebuild}")
        if forest.get_n_items() != size:
            raise IndexMismatchError(
                f"{path} holds {forest.get_n_items()} items, {self.META_FILE} says {size}; "
                f"{rebuild}"
            )
        self._forest, self.dim, self.size = forest, dim, size


# The other index types live in modules of their own; importing them registers them.
