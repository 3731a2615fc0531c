"""Feature vectors kept by image content, so an image is extracted once whatever its name.

The feature cache (:mod:`search_lab.retrieval.cache`) keys a whole collection's matrix by its file
list; an index kept current needs the vectors of single images instead. This store, under
``<cache_dir>/content/<feature key>/``, holds chunks of ``(content hash, vector)`` rows, each
written atomically as soon as it is extracted: an update killed half-way keeps every finished chunk,
and a renamed, copied or restored photo is found by its content, not re-extracted.
"""

from __future__ import annotations

import io
import logging
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from search_lab.core import atomic_write_bytes, owner_tag, remove_leftovers
from search_lab.features import Extractor
from search_lab.retrieval.cache import cache_key
from search_lab.retrieval.extract import Progress, cached_features, feature_key, workers_kept

log = logging.getLogger(__name__)

CHUNK = 256  # images extracted (and stored) at a time: the most a kill -9 can lose


class VectorStore:
    """Vectors of one extractor by content hash, in chunk files of one folder."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self._known: dict[str, np.ndarray] = {}
        self._loaded = folder is None

    def _load(self) -> None:
        """Read every chunk file once, at the first look-up (an update with nothing new to
        extract never reads the store)."""
        if self._loaded or self.folder is None:
            return
        self._loaded = True
        remove_leftovers(self.folder)
        for path in sorted(self.folder.glob("*.npz")) if self.folder.is_dir() else []:
            self._read(path)

    @classmethod
    def for_extractor(cls, cache_dir: Path | None, extractor: Extractor) -> VectorStore:
        """The store of ``extractor``'s vectors under ``cache_dir`` (in memory only if None)."""
        if cache_dir is None:
            return cls(None)
        return cls(Path(cache_dir) / "content" / cache_key(feature=feature_key(extractor)))

    def _read(self, path: Path) -> None:
        """Add one chunk file's rows; a damaged chunk is deleted (its images are re-extracted)."""
        try:
            with np.load(path, allow_pickle=False) as chunk:
                hashes, vectors = chunk["hashes"], chunk["vectors"]
            if len(hashes) != len(vectors):
                raise ValueError("row counts differ")
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as err:
            log.warning("vector store chunk %s is damaged (%s): extracting again", path, err)
            path.unlink(missing_ok=True)
            return
        self._known.update(zip(hashes.tolist(), vectors, strict=True))

    def get(self, digest: str) -> np.ndarray | None:
        """The vector of the image with this content hash, or None."""
        self._load()
        return self._known.get(digest)

    def remember(self, hashes: Sequence[str], vectors: np.ndarray) -> None:
        """Know rows for this run only (they are kept elsewhere already)."""
        self._known.update(zip(hashes, vectors, strict=True))

    def put(self, hashes: Sequence[str], vectors: np.ndarray) -> None:
        """Remember rows (and write them as one chunk file when the store has a folder)."""
        self.remember(hashes, vectors)
        if self.folder is None or not len(hashes):
            return
        buffer = io.BytesIO()
        np.savez(buffer, hashes=np.array(hashes), vectors=np.asarray(vectors, np.float32))
        name = f"{time.time_ns()}-{owner_tag()}.npz"
        atomic_write_bytes(self.folder / name, buffer.getvalue())


def extract_missing(
    store: VectorStore,
    extractor: Extractor,
    root: Path,
    todo: Sequence[tuple[str, str]],
    *,
    workers: int | None,
    progress: Progress,
    fetch: Callable | None = None,
) -> tuple[dict[str, str], int, float]:
    """Extract the ``(name, hash)`` images the store lacks, chunk by chunk, into the store.

    Returns the unreadable files (name -> reason), how many images were extracted and the
    seconds it took. ``progress`` is as for :func:`search_lab.retrieval.extract.extract_files`; a
    callable gets the count over all chunks.
    """
    missing = {}
    for name, digest in todo:
        if store.get(digest) is None:
            missing.setdefault(digest, name)  # two copies of one photo: extracted once
    pending = [(name, digest) for digest, name in missing.items()]
    skipped: dict[str, str] = {}
    start = time.perf_counter()
    with workers_kept():  # a CNN's worker processes start once, not once per chunk
        for first in range(0, len(pending), CHUNK):
            chunk = pending[first : first + CHUNK]
            feats, _ = cached_features(
                None,
                root,
                [name for name, _ in chunk],
                "",
                extractor,
                workers=workers,
                progress=_offset(progress, first, len(pending)),
                fetch=fetch,
            )
            digest_of = dict(chunk)
            store.put([digest_of[n] for n in feats.names], feats.vectors)
            skipped.update(feats.skipped)
    return skipped, len(pending), time.perf_counter() - start


def _offset(progress: Progress, done: int, total: int) -> Progress:
    """``progress`` for one chunk: a callable is told the count over the whole extraction."""
    if not callable(progress):
        return progress
    return lambda n, _: progress(done + n, total)
