"""On-disk feature cache keyed by everything the vectors depend on; writes are atomic.

A key hashes the dataset fingerprint (file names, sizes, mtimes) and the feature's name and
parameters, so changing the metric or index reuses features and changing any feature parameter
re-extracts. Concurrent jobs needing the same features take a file lock: one extracts, the
others wait and read its result.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from search_lab.core import atomic_write_bytes, expect, integrity, parse_json, remove_leftovers

log = logging.getLogger(__name__)

FORMAT_VERSION = 1  # bump when the extraction code changes what vectors mean


@dataclass
class Features:
    """Descriptors of a collection: row i of ``vectors`` belongs to ``names[i]``.

    ``skipped`` maps each unreadable file's name to the reason it was skipped.
    """

    names: list[str]
    vectors: np.ndarray
    skipped: dict[str, str]
    seconds: float = 0.0

    def restricted(self, names: Sequence[str]) -> Features:
        """The rows of ``names`` only (those that were read), in this order of extraction."""
        wanted = set(names)
        rows = [i for i, n in enumerate(self.names) if n in wanted]
        return Features(
            [self.names[i] for i in rows],
            self.vectors[rows],
            {n: why for n, why in self.skipped.items() if n in wanted},
            self.seconds,
        )


def cache_key(**parts: Any) -> str:
    """Stable hash of JSON-serialisable ``parts`` (sorted keys)."""
    blob = json.dumps({"v": FORMAT_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _checksum(vectors: np.ndarray, kind: str) -> str:
    """Digest of a matrix's bytes: XXH3-128 (files written before it: SHA-256)."""
    data = memoryview(np.ascontiguousarray(vectors)).cast("B")
    return integrity.digest(data) if kind == integrity.HASH else hashlib.sha256(data).hexdigest()


def _features(vectors: np.ndarray, meta: Any) -> Features:
    """The cached features of ``vectors`` and their parsed metadata, every type checked.

    Raises ValueError (one phrase) when the metadata is not an object with ``names`` (one
    string per row of the 2-D ``vectors``), ``skipped`` (name -> reason) and ``seconds``.
    """
    meta = expect(meta, dict, "metadata")
    names = expect(meta.get("names"), list, "'names'")
    skipped = expect(meta.get("skipped", {}), dict, "'skipped'")
    seconds = expect(meta.get("seconds", 0.0), (int, float), "'seconds'")
    if vectors.ndim != 2:
        raise ValueError(f"vectors of shape {vectors.shape}, not a matrix")
    if len(names) != len(vectors):
        raise ValueError(f"{len(names)} names for {len(vectors)} vectors")
    if not all(isinstance(n, str) for n in names) or not all(
        isinstance(v, str) for v in (*skipped, *skipped.values())
    ):
        raise ValueError("'names' and 'skipped' must hold strings only")
    return Features(names, vectors, skipped, float(seconds))


class FeatureCache:
    """Feature matrices stored as ``<dir>/<key>.npz`` with a checksum that detects corruption."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        remove_leftovers(self.directory)

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.npz"

    @contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Exclusive lock for extracting ``key`` (other processes wait for it)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.directory / f"{key}.lock")):
            yield

    def get(self, key: str) -> Features | None:
        """Cached features for ``key``, or None if absent; a corrupt file is removed and ignored."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                vectors = data["vectors"]
                meta = parse_json(bytes(data["meta"]), f"the metadata of {path}")
            features = _features(vectors, meta)
            kind = integrity.HASH if integrity.HASH in meta else "sha256"
            if _checksum(vectors, kind) != meta.get(kind):
                raise ValueError("checksum mismatch")
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as err:
            log.warning("feature cache file %s is corrupt (%s): extracting again", path, err)
            path.unlink(missing_ok=True)
            return None
        return features

    def put(self, key: str, features: Features) -> None:
        """Store ``features`` under ``key`` atomically."""
        vectors = np.ascontiguousarray(features.vectors, dtype=np.float32)
        meta = {
            "names": features.names,
            "skipped": features.skipped,
            "seconds": features.seconds,
            integrity.HASH: _checksum(vectors, integrity.HASH),
        }
        buffer = io.BytesIO()
        np.savez(buffer, vectors=vectors, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
        atomic_write_bytes(self.path(key), buffer.getvalue())
