"""Geometric re-ranking (``rerank=sv``): the top candidates re-scored by RANSAC-verified inliers.

For each query, the first ``candidates`` results of the global search are matched with the
query by local features (:mod:`search_lab.retrieval.local_features`: nearest neighbours with Lowe's
ratio test), and a similarity transform (rotation, scale, translation) is fitted to the matches by
RANSAC (OpenCV's ``estimateAffinePartial2D``). A candidate with at least ``min_inliers`` inliers is
verified; its score becomes

    global similarity (minus the distance) + weight * min(inliers, saturate) / saturate

and the candidates are sorted again by that score; results below the candidates keep their
order. An image with too few keypoints to reach ``min_inliers`` (too small, too flat) keeps its
global score: such queries and candidates are counted, never fatal. Photos of one scene taken
turned, cropped or from another angle share many verified points; different scenes do not.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from search_lab.core import ConfigError, require_int, require_number
from search_lab.retrieval.local_features import Keypoints, LocalSpec

log = logging.getLogger(__name__)

RERANKERS = ("none", "sv")
SV_DEFAULTS: dict[str, Any] = {
    "name": "sv",
    "candidates": 100,
    "local": "sift",
    "max_side": 512,
    "max_keypoints": 1000,
    "ratio": 0.8,
    "ransac_px": 8.0,
    "min_inliers": 8,
    "saturate": 50,
    "weight": 0.25,
}
"""``conf/rerank/sv.yaml`` (checked equal by the tests): ``search --rerank sv`` on an index
built without re-ranking takes these."""


@dataclass(frozen=True)
class RerankOptions:
    """The ``rerank`` section (values and defaults: ``conf/rerank/sv.yaml``)."""

    name: str = "none"
    candidates: int = 100
    local: LocalSpec = field(default_factory=LocalSpec)
    ratio: float = 0.8
    ransac_px: float = 8.0
    min_inliers: int = 8
    saturate: int = 50
    weight: float = 0.25

    @property
    def enabled(self) -> bool:
        return self.name != "none"

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> RerankOptions:
        """The checked options (ConfigError naming the first bad value); None: no re-ranking."""
        cfg = dict(cfg or {"name": "none"})
        name = cfg.get("name", "none")
        if name not in RERANKERS:
            raise ConfigError(f"unknown rerank {name!r}; choose one of: {', '.join(RERANKERS)}")
        if name == "none":
            return cls()
        local = LocalSpec(
            cfg["local"],
            require_int("rerank.max_side", cfg["max_side"], 32),
            require_int("rerank.max_keypoints", cfg["max_keypoints"], 4),
        )
        ratio = require_number("rerank.ratio", cfg["ratio"], 0, strict=True, below=1.0 + 1e-9)
        return cls(
            name,
            require_int("rerank.candidates", cfg["candidates"], 1),
            local,
            ratio,
            require_number("rerank.ransac_px", cfg["ransac_px"], 0, strict=True),
            require_int("rerank.min_inliers", cfg["min_inliers"], 3),
            require_int("rerank.saturate", cfg["saturate"], 1),
            require_number("rerank.weight", cfg["weight"]),
        )


def _matches(a: Keypoints, b: Keypoints, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Points of ``a`` and ``b`` that are each other's nearest neighbour by the ratio test."""
    import cv2

    if a.binary:
        matcher, da, db = cv2.BFMatcher(cv2.NORM_HAMMING), a.descriptors, b.descriptors
    else:
        matcher = cv2.BFMatcher(cv2.NORM_L2)
        da, db = a.descriptors.astype(np.float32), b.descriptors.astype(np.float32)
    pairs = matcher.knnMatch(da, db, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < ratio * p[1].distance]
    src = np.array([a.points[m.queryIdx] for m in good], np.float32).reshape(-1, 2)
    dst = np.array([b.points[m.trainIdx] for m in good], np.float32).reshape(-1, 2)
    return src, dst


def inliers(a: Keypoints, b: Keypoints, opts: RerankOptions) -> int:
    """Matches of ``a`` and ``b`` consistent with one similarity transform (RANSAC); 0 if too
    few keypoints or matches for ``opts.min_inliers``."""
    import cv2

    if min(len(a), len(b)) < opts.min_inliers:
        return 0
    src, dst = _matches(a, b, opts.ratio)
    if len(src) < opts.min_inliers:
        return 0
    cv2.setRNGSeed(0)  # RANSAC's samples: the same count on every run
    _, mask = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=opts.ransac_px, maxIters=1000
    )
    return 0 if mask is None else int(mask.sum())


@dataclass
class RerankStats:
    """What re-ranking did: time, verified pairs, images that fell back to the global score."""

    queries: int = 0
    seconds: float = 0.0
    pairs: int = 0
    verified: int = 0
    fallback_queries: int = 0
    fallback_images: set[int] = field(default_factory=set)

    def as_dict(self, opts: RerankOptions) -> dict[str, Any]:
        return {
            "name": opts.name,
            "local": opts.local.name,
            "candidates": opts.candidates,
            "ms_per_query": 1e3 * self.seconds / max(self.queries, 1),
            "pairs": self.pairs,
            "verified_pairs": self.verified,
            "fallback_queries": self.fallback_queries,
            "fallback_images": len(self.fallback_images),
        }


def candidate_count(opts: RerankOptions, size: int) -> int:
    """``opts.candidates``, or the collection's size (said once) when it holds fewer images."""
    if opts.candidates > size:
        log.warning(
            "rerank.candidates=%d is above the collection's %d images: re-ranking all of them",
            opts.candidates,
            size,
        )
    return min(opts.candidates, size)


def rerank_row(
    ids: np.ndarray,
    dists: np.ndarray,
    query: Keypoints,
    keypoints_of: Callable[[int], Keypoints],
    opts: RerankOptions,
    stats: RerankStats,
    *,
    count: int,
    skip: int = -1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One query's ranking (index rows ``ids``, ``dists``) with its first ``count`` re-scored.

    Row ``skip`` (the query itself, in evaluation) is not verified. Returns the new ids, their
    global distances and each result's inlier count (0 where not verified).
    """
    start = time.perf_counter()
    stats.queries += 1
    head = [i for i in range(min(count, len(ids))) if ids[i] >= 0]
    counts = np.zeros(len(ids), np.int64)
    if len(query) < opts.min_inliers:
        stats.fallback_queries += 1
    else:
        for i in head:
            if ids[i] == skip:
                continue
            other = keypoints_of(int(ids[i]))
            if len(other) < opts.min_inliers:
                stats.fallback_images.add(int(ids[i]))
                continue
            counts[i] = inliers(query, other, opts)
            stats.pairs += 1
    verified = np.where(counts >= opts.min_inliers, np.minimum(counts, opts.saturate), 0)
    stats.verified += int(np.count_nonzero(verified[head]))
    score = -np.asarray(dists[head], np.float64) + opts.weight * verified[head] / opts.saturate
    order = np.array(head)[np.argsort(-score, kind="stable")]
    order = np.concatenate([order, np.arange(len(head), len(ids))]).astype(int)
    stats.seconds += time.perf_counter() - start
    return ids[order], dists[order], counts[order]
