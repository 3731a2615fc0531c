"""What the kd-tree, HNSW, NN-descent and Faiss indexes share: checks, padding, their own record.

Each of them is a :class:`FileIndex`: one data file plus ``<kind>.json`` recording the metric,
dimension, size, build parameters and the data file's size and XXH3-128 checksum (verified
through :mod:`search_lab.core.integrity`, so a file unchanged since it was last verified is not
hashed again; folders from before record sha256, still checked), so ``load`` refuses a
folder built for another metric or with other build parameters, and a damaged or replaced file,
before the library reads it (a library fed garbage may crash the process instead of raising).
A file whose checksums were recomputed (a hostile hand-over) still reaches the library: what
the library raises then becomes one IndexMismatchError naming the file.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from search_lab.core import (
    ConfigError,
    IndexMismatchError,
    SearchLabError,
    integrity,
    library_write,
    write_json,
)
from search_lab.indexes.base import PAD_ID, REBUILD, Index, read_record

LIBRARY_ERRORS = (
    RuntimeError, ValueError, TypeError, OSError, EOFError, IndexError, KeyError, MemoryError,
    OverflowError, zipfile.BadZipFile,
)  # fmt: skip
"""What hnswlib, Faiss, SciPy, numpy and pynndescent raise on a data file they cannot read."""


def unit_rows(vectors: np.ndarray, kind: str) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32): cosine distance is then ||a - b||^2 / 2 = 1 - a.b.

    Cosine distance ignores norms, so this is exact; a zero row has no direction (its cosine
    is undefined) and is refused.
    """
    vectors = np.asarray(vectors, np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ConfigError(
            f"{kind} index: metric cosine is undefined for the {int((norms == 0).sum())} "
            "all-zero vector(s) given; use metric=euclidean or index=exact"
        )
    return np.ascontiguousarray(vectors / norms, dtype=np.float32)


def padded(ids: np.ndarray, dists: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(Q, k) int64 ids and float64 distances; negative ids or non-finite distances -> padding."""
    out_ids = np.full((len(ids), k), PAD_ID, np.int64)
    out_d = np.full((len(ids), k), np.inf)
    width = min(k, ids.shape[1]) if ids.ndim == 2 else 0
    got_ids, got_d = ids[:, :width].astype(np.int64), dists[:, :width].astype(np.float64)
    missing = (got_ids < 0) | ~np.isfinite(got_d)
    out_ids[:, :width] = np.where(missing, PAD_ID, got_ids)
    out_d[:, :width] = np.where(missing, np.inf, got_d)
    order = np.argsort(out_d, axis=1, kind="stable")  # padding (inf) goes last
    return np.take_along_axis(out_ids, order, 1), np.take_along_axis(out_d, order, 1)


def _differs(path: Path, n_bytes: int, kind: str, digest: str) -> bool:
    """Whether ``path`` is not the file recorded with this size and checksum."""
    if kind == "sha256":  # recorded before the XXH3 checksums
        return path.stat().st_size != n_bytes or integrity.sha256(path) != digest
    recorded = {path.name: {"bytes": n_bytes, integrity.HASH: digest}}
    return integrity.problem(path.parent, recorded) is not None


class FileIndex(Index):
    """An index kept in one data file plus a JSON record; subclasses say how to use the library.

    Subclasses set ``METRICS`` (the metrics they support) and ``DATA_FILE`` and implement
    ``_write(path)`` and ``_read(path, record)``. The record holds what the build produced
    (dimension, size, checksum); the parameters are the folder's configuration, recorded once
    in its manifest: ``_read`` checks them against what the data file itself says.
    """

    METRICS: ClassVar[tuple[str, ...]] = ()
    DATA_FILE: ClassVar[str] = ""

    def __init__(self, *, metric: str, **params: Any) -> None:
        super().__init__(metric=metric, **params)
        if self.metric not in self.METRICS:
            raise ConfigError(
                f"{self.kind} index does not support metric {self.metric!r}; choose one of: "
                f"{', '.join(sorted(self.METRICS))} (or index=exact, which supports every metric)"
            )
        self._built = False

    def _require_built(self, action: str) -> None:
        if not self._built:
            raise RuntimeError(f"{self.kind} index: call build() or load() before {action}")

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k per query (see :meth:`Index.search`); checks here, the search in ``_search``."""
        self._require_built("search()")
        queries = self._check_queries(queries)
        k = max(0, min(int(k), self.size))
        if k == 0:
            return padded(np.empty((len(queries), 0)), np.empty((len(queries), 0)), 0)
        return self._search(queries, k)

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (1 <= k <= size) of checked (M, D) queries; ids and distances, padded with -1."""
        raise NotImplementedError

    def record(self) -> dict[str, Any]:
        """Kind, metric, dimension and size, as saved beside the data file."""
        return {"kind": self.kind, "metric": self.metric, "dim": self.dim, "size": self.size}

    def _mismatch(self, path: Path, name: str, built: Any, configured: Any) -> None:
        """IndexMismatchError when the data file was built with another value of ``name``."""
        if built != configured:
            raise IndexMismatchError(
                f"{path} was built with {name}={built!r}, but the configuration says "
                f"{configured!r}; {REBUILD.format(kind=self.kind)}"
            )

    def save(self, directory: Path) -> None:
        """Write the data file, then ``<kind>.json`` with its record, size and checksum."""
        self._require_built("save()")
        path = Path(directory) / self.DATA_FILE
        library_write(path, lambda: self._write(path))  # a full disk: OSError naming path
        digest = integrity.file_digest(path)
        record = {**self.record(), "bytes": path.stat().st_size, integrity.HASH: digest}
        write_json(Path(directory) / f"{self.kind}.json", record)

    def load(self, directory: Path) -> None:
        """Check the record against the config and the data file, then read the data file.

        Raises
        ------
        IndexMismatchError
            A file is missing or unreadable, the index was built for another metric or with
            other build parameters, or the data file's size or checksum is not the one saved.
        """
        meta = Path(directory) / f"{self.kind}.json"
        path, rebuild = Path(directory) / self.DATA_FILE, REBUILD.format(kind=self.kind)
        record = read_record(self, path, meta)
        kind = integrity.HASH if integrity.HASH in record else "sha256"
        try:
            n_bytes, digest = record["bytes"], str(record[kind])
        except KeyError as err:
            raise IndexMismatchError(f"{meta} is unreadable ({err!r}); {rebuild}") from err
        if _differs(path, n_bytes, kind, digest):
            raise IndexMismatchError(
                f"{path} is not the file that was saved (size or {kind} checksum differs): it "
                f"is damaged or was replaced; {rebuild}"
            )
        self.dim, self.size = record["dim"], record["size"]
        try:
            self._read(path, record)
        except SearchLabError:
            raise
        except LIBRARY_ERRORS as err:  # the library's own complaint about damaged bytes
            reason = (str(err).strip().splitlines() or [type(err).__name__])[-1][:200]
            raise IndexMismatchError(
                f"{path} cannot be read as a {self.kind} index ({reason}); {rebuild}"
            ) from err
        self._built = True

    def data_files(self) -> tuple[str, ...]:
        """The data file and its record."""
        return (self.DATA_FILE, f"{self.kind}.json")

    def _write(self, path: Path) -> None:
        raise NotImplementedError

    def _read(self, path: Path, record: dict[str, Any]) -> None:
        raise NotImplementedError
