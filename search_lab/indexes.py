"""Search indexes behind one interface: ``build``, ``search``, ``save``, ``load``; created by name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from search_lab.distances import check_metric, pairwise
from search_lab.errors import ConfigError, IndexMismatchError


class Index:
    """A searchable set of N descriptors; ids are 0..N-1 in insertion order.

    Distances returned by :meth:`search` are in the configured metric's own units
    (see :mod:`search_lab.distances`), whatever the index computes internally.
    """

    kind: ClassVar[str] = ""

    def __init__(self, *, metric: str) -> None:
        self.metric = check_metric(metric)
        self.dim = 0
        self.size = 0

    def build(self, vectors: np.ndarray) -> None:
        """Index an (N, D) matrix; replaces whatever was indexed before."""
        raise NotImplementedError

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Nearest ``k`` items of each (Q, D) query: ids (Q, k') int64 and distances (Q, k') float.

        ``k'`` is ``min(k, N)``; rows are sorted by increasing distance.
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
    """Top-k of every query over several views of it (e.g. rotations); each item keeps its best distance.

    ``views`` are (Q, D) matrices whose row q describes query q; with one view this is ``search``.
    """
    results = [index.search(view, k) for view in views]
    if len(results) == 1:
        return results[0]
    ids_all = np.concatenate([ids for ids, _ in results], axis=1)
    d_all = np.concatenate([d for _, d in results], axis=1)
    k = min(k, index.size)
    out_ids = np.empty((len(ids_all), k), np.int64)
    out_d = np.empty((len(ids_all), k))
    for q in range(len(ids_all)):
        order = np.argsort(d_all[q], kind="stable")
        _, first = np.unique(ids_all[q][order], return_index=True)
        best = order[np.sort(first)][:k]
        out_ids[q], out_d[q] = ids_all[q][best], d_all[q][best]
    return out_ids, out_d


I = TypeVar("I", bound=type[Index])
_REGISTRY: dict[str, Callable[..., Index]] = {}


def register(kind: str) -> Callable[[I], I]:
    """Class decorator that makes an index creatable by ``kind``."""

    def wrap(cls: I) -> I:
        cls.kind = kind
        _REGISTRY[kind] = cls
        return cls

    return wrap


def available() -> list[str]:
    """Names of every registered index type."""
    return sorted(_REGISTRY)


def create(kind: str, *, metric: str, **params: Any) -> Index:
    """Build an empty index of type ``kind``; unknown names raise ConfigError listing the valid ones."""
    if kind not in _REGISTRY:
        raise ConfigError(f"unknown index {kind!r}; choose one of: {', '.join(available())}")
    try:
        return _REGISTRY[kind](metric=metric, **params)
    except TypeError as err:
        raise ConfigError(f"index {kind!r}: {err}") from err


@register("exact")
class ExactIndex(Index):
    """Exhaustive search: every query is compared with every item (the exact baseline).

    Queries are processed in blocks of ``block`` rows so memory stays bounded at
    ``block x N`` distances.
    """

    def __init__(self, *, metric: str, block: int = 256) -> None:
        super().__init__(metric=metric)
        if block <= 0:
            raise ConfigError(f"exact index: block must be positive, got {block}")
        self.block = block
        self.vectors = np.zeros((0, 0), np.float32)

    def build(self, vectors: np.ndarray) -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.size, self.dim = self.vectors.shape

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = self._check_queries(queries)
        k = min(k, self.size)
        ids = np.empty((len(queries), k), np.int64)
        dists = np.empty((len(queries), k), np.float64)
        for start in range(0, len(queries), self.block):
            d = pairwise(self.metric, queries[start : start + self.block], self.vectors)
            top = np.argpartition(d, k - 1, axis=1)[:, :k] if k < self.size else np.tile(np.arange(self.size), (len(d), 1))
            order = np.take_along_axis(d, top, 1).argsort(axis=1, kind="stable")
            top = np.take_along_axis(top, order, 1)
            ids[start : start + len(d)] = top
            dists[start : start + len(d)] = np.take_along_axis(d, top, 1)
        return ids, dists

    def save(self, directory: Path) -> None:
        np.save(Path(directory) / "vectors.npy", self.vectors)

    def load(self, directory: Path) -> None:
        path = Path(directory) / "vectors.npy"
        if not path.is_file():
            raise IndexMismatchError(f"{directory} holds no exact index (vectors.npy missing)")
        self.build(np.load(path, mmap_mode="r"))
