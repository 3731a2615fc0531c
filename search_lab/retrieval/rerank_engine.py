"""Geometric re-ranking for a saved index (``python -m search_lab.search --rerank sv``).

The collection's local features come from the feature cache (computed once from the indexed
image files, which must still be on disk); each query's are computed from its file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from search_lab.retrieval.cache import FeatureCache
from search_lab.retrieval.engine import Hit, SearchEngine
from search_lab.retrieval.local_features import Keypoints, check_on_disk, collection_keypoints
from search_lab.retrieval.rerank import RerankOptions, RerankStats, candidate_count, rerank_row


def engine_cache(engine: SearchEngine) -> FeatureCache | None:
    """The feature cache: ``$SEARCH_LAB_CACHE``, else the one the index was built with."""
    folder = os.environ.get("SEARCH_LAB_CACHE") or engine.config.get("cache_dir")
    return FeatureCache(folder) if folder else None


class EngineReranker:
    """Answers queries on ``engine`` with their top ``opts.candidates`` geometrically verified."""

    def __init__(self, engine: SearchEngine, opts: RerankOptions) -> None:
        check_on_disk(engine.root, engine.names)  # one line naming the first missing file
        self.engine, self.opts, self.stats = engine, opts, RerankStats()
        self.count = candidate_count(opts, len(engine.names))
        self._keypoints: list[Keypoints] | None = None
        self.inliers_of: dict[int, int] = {}
        """Inliers of each result of the last query, by item id."""

    @property
    def keypoints(self) -> list[Keypoints]:
        """The collection's local features (cache first), loaded on first use."""
        if self._keypoints is None:
            fingerprint = str(self.engine.manifest.get("fingerprint"))
            self._keypoints = collection_keypoints(
                self.opts.local, self.engine.root, self.engine.names, fingerprint,
                engine_cache(self.engine),
            )  # fmt: skip
        return self._keypoints

    def query(self, source: str | Path | bytes, k: int) -> tuple[list[Hit], float]:
        """Top-k hits after re-ranking, and the seconds taken (both extractions included)."""
        keypoints = self.keypoints
        start = time.perf_counter()
        hits = self.engine.search_vectors(self.engine.vectorize(source), max(k, self.count))
        query = self.opts.local.of_file(source)
        ids = np.array([h.id for h in hits], np.int64)
        dists = np.array([h.distance for h in hits])
        ids, dists, counts = rerank_row(
            ids, dists, query, keypoints.__getitem__, self.opts, self.stats, count=self.count
        )
        self.inliers_of = dict(zip(ids.tolist(), counts.tolist(), strict=True))
        names = self.engine.names
        top = [
            Hit(r + 1, int(i), names[i], float(d))
            for r, (i, d) in enumerate(zip(ids, dists, strict=True))
        ]
        return top[:k], time.perf_counter() - start


def index_local_features(engine: SearchEngine, section: Mapping[str, Any] | None) -> str | None:
    """With a ``rerank`` config section that re-ranks, the collection's local features computed
    now (and cached) so that the first query does not wait for them; the line saying so, or
    None without re-ranking."""
    opts = RerankOptions.from_config(section)
    if not opts.enabled:
        return None
    start = time.perf_counter()
    count = len(EngineReranker(engine, opts).keypoints)
    return (f"local features ({opts.local.name}) of {count} images for rerank={opts.name} "
            f"in {time.perf_counter() - start:.1f} s")  # fmt: skip
