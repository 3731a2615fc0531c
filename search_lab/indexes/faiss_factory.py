"""``index=faiss``: any Faiss index described by an index-factory string, through ``faiss-cpu``."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from search_lab.core import ConfigError, IndexMismatchError, require
from search_lab.indexes.base import REBUILD, Check, register
from search_lab.indexes.editing import COMPACT, SLOTS
from search_lab.indexes.files import FileIndex, padded, unit_rows

log = logging.getLogger(__name__)

KINDS: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
    "euclidean": ("l2", lambda d: np.sqrt(np.maximum(d, 0.0))),  # Faiss's L2 is squared
    "cosine": ("ip", lambda d: np.maximum(1.0 - d, 0.0)),  # inner product of unit rows
    "dot": ("ip", lambda d: -d),
}
"""Our metric -> (Faiss metric, map from its score to our distance)."""

TRAIN_PER_LIST = 39
"""Faiss warns when k-means gets fewer than 39 training points per centroid."""


def adapt_nlist(factory: str, n: int, *, note: bool = True) -> str:
    """``factory`` with ``IVF<nlist>`` lowered to ``n // 39`` (at least 1) when ``n`` is too few.

    k-means needs training points for each of the ``nlist`` lists; rather than failing on a
    small collection the list count is reduced, with a logged note (``note=False``: silent).
    """
    match = re.search(r"IVF(\d+)", factory)
    if not match or n >= TRAIN_PER_LIST * int(match.group(1)):
        return factory
    nlist = max(1, n // TRAIN_PER_LIST)
    if note:
        log.warning(
            "faiss: %d vectors are too few to train %s lists (Faiss wants %d per list); using "
            "IVF%d instead",
            n,
            match.group(1),
            TRAIN_PER_LIST,
            nlist,
        )
    return factory[: match.start(1)] + str(nlist) + factory[match.end(1) :]


def _no_polysemous(faiss: Any, index: Any) -> None:
    """Skip PQ's polysemous training (tens of seconds of annealing for Hamming pre-filtering
    that plain PQ search never uses)."""
    for part in (index, faiss.try_extract_index_ivf(index)):
        if part is not None and hasattr(faiss.downcast_index(part), "do_polysemous_training"):
            faiss.downcast_index(part).do_polysemous_training = False


def _factory(name: str, value: Any) -> str:
    """A Faiss index factory string (``"HNSW32"``, ``"IVF1024,PQ16"``), stripped."""
    require(name, value, isinstance(value, str) and bool(value.strip()), "a factory string")
    return value.strip()


@register("faiss")
class FaissIndex(FileIndex):
    """Any Faiss index by factory string: ``Flat``, ``IVF1024,Flat``, ``IVF1024,PQ16``, ``HNSW32``.

    Parameters
    ----------
    metric : str
        ``euclidean`` (Faiss L2, squared: the root is taken), ``cosine`` (inner product of
        unit-length rows, 1 - cos) or ``dot`` (inner product, negated); others raise ConfigError.
    factory : str
        Faiss index-factory string. ``Flat`` is exhaustive and exact (``exact`` is then True);
        ``IVF<n>,...`` clusters into n lists (lowered with a logged note when the collection
        has fewer than 39 n vectors); ``PQ<m>`` compresses each vector to m bytes, so its
        distances are estimates; ``HNSW<M>`` is Faiss's HNSW graph.
    nprobe : int
        Lists searched per query by IVF indexes: the recall/speed knob.
    ef : int
        ``efSearch`` of HNSW indexes (at least ``k`` is used).
    seed : int
        Seed of the k-means training of IVF and PQ indexes.
    threads : int
        OpenMP threads for training, adding and batched search (-1 = Faiss's default, every
        core). HNSW builds with several threads vary from run to run; the default 1 does not.
    """

    METRICS = tuple(sorted(KINDS))
    DATA_FILE, BUILD_PARAMS = "faiss.index", ("factory", "seed")
    description = (
        "Faiss (faiss-cpu): Flat is a fast exact exhaustive scan; IVF searches the nprobe "
        "nearest clusters; PQ compresses vectors to a few bytes; HNSW is a graph"
    )
    label = "Faiss (faiss-cpu)"
    shown: ClassVar[dict[str, str]] = {"factory": "{}", "nprobe": "nprobe={}", "ef": "ef={}"}

    DEFAULTS: ClassVar[dict[str, Any]] = dict(
        factory="HNSW32", nprobe=16, ef=64, seed=1234, threads=1
    )
    CHECKS: ClassVar[dict[str, Check]] = {"factory": _factory}

    def __init__(self, *, metric: str, **params: Any) -> None:
        super().__init__(metric=metric, **params)
        self.exact = self.factory == "Flat"
        self.faiss_metric, self._to_metric = KINDS[self.metric]
        self.built_factory = self.factory
        self._index: Any = None

    def _faiss(self) -> Any:
        logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # not its CPU probing
        import faiss

        if self.threads > 0:
            faiss.omp_set_num_threads(self.threads)
        return faiss

    def _rows(self, vectors: np.ndarray) -> np.ndarray:
        if self.metric == "cosine":
            return unit_rows(vectors, "faiss")
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _create(self, train: np.ndarray, rows: int) -> Any:
        """The factory's empty index for ``rows`` vectors, trained on ``train`` if it must be."""
        faiss = self._faiss()
        factory = adapt_nlist(self.factory, rows)
        metric = faiss.METRIC_L2 if self.faiss_metric == "l2" else faiss.METRIC_INNER_PRODUCT
        try:
            index = faiss.index_factory(train.shape[1], factory, metric)
            ivf = faiss.try_extract_index_ivf(index)
            if ivf is not None:
                ivf.cp.seed = self.seed
            _no_polysemous(faiss, index)
            if not index.is_trained:
                index.train(train)
        except RuntimeError as err:  # Faiss's own message, first line only
            reason = re.sub(r"^.*? at \S+:\d+: (Error: )?", "", str(err).strip().splitlines()[0])
            raise ConfigError(
                f"faiss index: cannot build {factory!r} on {train.shape[0]} vectors of "
                f"dimension {train.shape[1]}: {reason}"
            ) from err
        self.built_factory = factory
        return index

    def build(self, vectors: np.ndarray) -> None:
        """Create the factory's index, train it on the vectors if it needs to, add them."""
        vectors = self._rows(vectors)
        index = self._create(vectors, len(vectors))
        index.add(vectors)
        self._index = index
        self.size, self.dim = vectors.shape
        self._built = True

    streaming = True

    def build_streaming(self, blocks: Iterable[np.ndarray], rows: int, directory: Path) -> None:
        """Add block after block; a factory that needs training (IVF, PQ) first gathers blocks
        until it holds the training sample the whole collection's index wants.

        The index itself stays in memory (Faiss's on-disk inverted lists are not used); besides
        it, at most the training sample is held.
        """
        index, n, held, need = None, 0, [], -1
        for block in blocks:
            block = self._rows(block)
            if index is None:
                held.append(block)
                need = self._training_rows(block.shape[1], rows) if need < 0 else need
                if sum(len(b) for b in held) < need:
                    continue
                block = np.concatenate(held)
                index, held = self._create(block, rows), []
            index.add(block)
            n += len(block)
        if index is None and held:  # fewer rows than the sample wants: train on them all
            block = np.concatenate(held)
            index = self._create(block, rows)
            index.add(block)
            n += len(block)
        if index is None or n != rows:
            raise ValueError(f"faiss index: {n} rows streamed, {rows} announced")
        self._index, self.size, self.dim, self._built = index, n, index.d, True

    def edit_mode(self, size: int) -> str | None:
        """``compact`` for code arrays (``Flat``, ``PQ``, ``SQ``, ``LSH``: Faiss renumbers on
        removal), ``slots`` for IVF indexes (ids kept), both also behind a transform such as
        ``PCA64,``; None for graphs (``HNSW``, ``NSG``: Faiss cannot remove from them) and
        for an IVF whose list count would be adapted to another value at ``size`` items."""
        if adapt_nlist(self.factory, size, note=False) != self.built_factory:
            return None
        faiss = self._faiss()
        inner = faiss.downcast_index(self._index)
        if isinstance(inner, faiss.IndexPreTransform):
            inner = faiss.downcast_index(inner.index)
        if isinstance(inner, faiss.IndexFlatCodes):
            return COMPACT
        return SLOTS if isinstance(inner, faiss.IndexIVF) else None

    def why_not_in_place(self, size: int) -> str:
        """The IVF list count that would change, or the structure Faiss cannot remove from."""
        adapted = adapt_nlist(self.factory, size, note=False)
        if adapted != self.built_factory:
            return f"it was built as {self.built_factory}, at {size} items it would be {adapted}"
        return f"Faiss cannot remove items from {self.built_factory}"

    def edit(self, drop: np.ndarray, put: np.ndarray, vectors: np.ndarray) -> None:
        """Remove ids ``drop``, then add ``vectors`` with ids ``put`` (appended, when compact).
        Trained parts (IVF centroids, PQ codebooks) are kept from the build."""
        self._require_built("edit()")
        mode = self.edit_mode(self.size - len(drop) + len(put))
        if len(drop):
            self._index.remove_ids(np.ascontiguousarray(drop, dtype=np.int64))
        if len(put):
            rows = self._rows(vectors)
            if mode == SLOTS:
                self._index.add_with_ids(rows, np.ascontiguousarray(put, dtype=np.int64))
            elif np.array_equal(put, np.arange(self._index.ntotal, self._index.ntotal + len(put))):
                self._index.add(rows)
            else:
                raise ValueError(f"faiss index {self.built_factory!r}: rows can only be appended")
        self.size = int(self._index.ntotal)

    def _training_rows(self, dim: int, rows: int) -> int:
        """Rows to train the factory's index for ``rows`` vectors on: 0 if it needs no training,
        else what k-means wants for every list (``TRAIN_PER_LIST`` per list, at least 256)."""
        faiss = self._faiss()
        factory = adapt_nlist(self.factory, rows, note=False)
        if faiss.index_factory(dim, factory).is_trained:
            return 0
        match = re.search(r"IVF(\d+)", factory)
        return min(rows, TRAIN_PER_LIST * max(256, int(match.group(1)) if match else 256))

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (exact for ``Flat``); distances in the metric's units (estimates for PQ)."""
        queries = self._rows(queries)
        faiss = self._faiss()
        params = faiss.ParameterSpace()
        if faiss.try_extract_index_ivf(self._index) is not None:
            params.set_index_parameter(self._index, "nprobe", self.nprobe)
        if "HNSW" in self.built_factory:
            params.set_index_parameter(self._index, "efSearch", max(self.ef, k))
        d, ids = self._index.search(queries, k)
        return padded(ids, np.where(ids < 0, np.inf, self._to_metric(d.astype(np.float64))), k)

    def stored_rows(self, start: int, stop: int) -> np.ndarray:
        """Faiss's reconstruction of the items: exact for flat storage, decoded codes for PQ."""
        self._require_built("stored_rows()")
        stop = min(stop, self.size)
        ivf = self._faiss().try_extract_index_ivf(self._index)
        if ivf is not None and ivf.direct_map.type == 0:  # IVF lists need an id -> slot map
            ivf.make_direct_map()
        return np.asarray(self._index.reconstruct_n(start, max(0, stop - start)), np.float32)

    @classmethod
    def applicable(cls, params: dict[str, Any]) -> dict[str, Any]:
        """``nprobe`` only for IVF factories, ``ef`` only for HNSW ones."""
        factory = str(params.get("factory", ""))
        drop = {"nprobe"} if "IVF" not in factory else set()
        drop |= {"ef"} if "HNSW" not in factory else set()
        return {k: v for k, v in params.items() if k not in drop}

    def built_params(self) -> dict[str, Any]:
        """The factory string built (``IVF1024,Flat`` becomes ``IVF16,Flat`` on 648 vectors)."""
        return {"factory": self.built_factory}

    def record(self) -> dict[str, Any]:
        """The common record plus the factory string actually built (IVF lists adapted)."""
        return {**super().record(), "built_factory": self.built_factory}

    def _write(self, path: Path) -> None:
        self._faiss().write_index(self._index, str(path))

    def _read(self, path: Path, record: dict[str, Any]) -> None:
        self.built_factory = str(record.get("built_factory", self.factory))
        expected = adapt_nlist(self.factory, self.size, note=False)  # what the config builds
        self._mismatch(path, "factory", self.built_factory, expected)
        index = self._faiss().read_index(str(path))
        if (index.d, index.ntotal) != (self.dim, self.size):
            raise IndexMismatchError(
                f"{path} holds {index.ntotal} vectors of dimension {index.d}, its record says "
                f"{self.size} of dimension {self.dim}; {REBUILD.format(kind=self.kind)}"
            )
        self._index = index
