"""The index interface (``build``, ``search``, ``save``, ``load``), its registry and the checks
every index shares: parameters, the JSON record saved beside the data, multi-view search."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from search_lab.core import (
    RECORD_MAX_BYTES,
    IndexMismatchError,
    Registry,
    read_json_object,
    require_jobs,
    require_number,
    require_positive_int,
    require_seed,
)
from search_lab.indexes.distances import check_metric

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
    (see :mod:`search_lab.indexes.distances`), whatever the index computes internally.
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
    """Parameters that shape the built structure; older records saved them (checked if so)."""

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

    @classmethod
    def applicable(cls, params: dict[str, Any]) -> dict[str, Any]:
        """The parameters of ``params`` that mean something for this index as configured
        (all, for most; a Faiss HNSW has no ``nprobe``). Summaries show only these."""
        return dict(params)

    def built_params(self) -> dict[str, Any]:
        """Parameters the built index has where they may differ from the configured ones
        (a Faiss IVF's list count is lowered on a small collection); saved in the manifest."""
        return {}

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

    def stored_rows(self, start: int, stop: int) -> np.ndarray:
        """The indexed vectors of items ``start..stop-1`` as a float32 (n, D) matrix.

        What the index holds, so searching with row i finds item i at (about) distance 0:
        near-duplicate search (:mod:`search_lab.retrieval.duplicates`) queries the index with its
        own items. Indexes that keep cosine rows at unit length give them back so; PQ codes give
        their reconstruction.
        """
        raise NotImplementedError(f"{self.kind} index cannot give its vectors back")

    def edit_mode(self, size: int) -> str | None:
        """How this built index can be changed in place to hold ``size`` items afterwards:
        ``"compact"`` or ``"slots"`` (:mod:`search_lab.indexes.editing`), or None when the
        library cannot remove items (the index is then rebuilt from the vectors)."""
        return None

    def why_not_in_place(self, size: int) -> str:
        """Why :meth:`edit_mode` is None for ``size`` items (a few words, for the manifest)."""
        return "the library cannot remove items from it"

    def edit(self, drop: np.ndarray, put: np.ndarray, vectors: np.ndarray) -> None:
        """Change the built index in place: remove items ``drop``, then set items ``put`` to
        the rows of ``vectors`` (see :class:`search_lab.indexes.editing.Edit`)."""
        raise NotImplementedError(f"{self.kind} index cannot be changed in place")

    def save(self, directory: Path) -> None:
        """Write the index's own files into an existing ``directory``."""
        raise NotImplementedError

    def load(self, directory: Path) -> None:
        """Read files written by :meth:`save`; raises IndexMismatchError if they are missing."""
        raise NotImplementedError

    def data_files(self) -> tuple[str, ...]:
        """Names of the files :meth:`load` reads: each must be in the folder's checksum list."""
        raise NotImplementedError

    def refuse_legacy(self, directory: Path) -> None:
        """IndexMismatchError for a folder saved in a form this version no longer reads."""

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
        record = read_json_object(meta, max_bytes=RECORD_MAX_BYTES)
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
    for name in index.BUILD_PARAMS:  # records written before parameters were recorded once
        if name in saved and saved[name] != getattr(index, name):
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
