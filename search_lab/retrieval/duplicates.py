"""Near-duplicate groups of an index: its own neighbour search, pairs within a threshold, groups.

Every indexed item is searched for in the index itself, in blocks (one batch k-NN call per
block, no all-pairs loop): the neighbours within ``threshold`` (in the index metric's units) are
its near-duplicate pairs, and the groups are the connected components of those pairs (so a
chain a~b, b~c makes one group a, b, c even if a and c are further apart). An item whose k-th
neighbour is still within the threshold is searched again with twice the k, until its list
ends beyond the threshold or holds the whole collection: with an exact index no pair within
the threshold is missed, with an approximate one recall is that of the index.

The default threshold per feature was calibrated on a planted set (Wang photos and their
edited copies) and checked on another (Holidays photos); see
:mod:`search_lab.benchmarks.duplicates` and docs/guide.md, "Near-duplicates".
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from search_lab.core import ConfigError
from search_lab.indexes import Index

CALIBRATED: dict[str, float] = {"hsv": 0.0212, "cnn": 0.134}
"""Default threshold per feature (default parameters), in cosine distance (1 - cos) on the
default post-processing chain (L2 at the end, no PCA, whitening or expansion): the best pair
F1 on the planted Wang set (540 images) of ``python -m search_lab.benchmarks.duplicates``
(0.02124 and 0.1339, rounded to 3 digits), reported on the planted Holidays set
(bench/duplicates.md)."""

FIRST_K = 8
"""Neighbours asked for at first (the item itself included); doubled for crowded items."""


@dataclass
class DuplicateGroups:
    """Groups of near-duplicates (item ids, each group sorted, groups largest first) and cost."""

    threshold: float
    groups: list[list[int]]
    pairs: int
    queries: int
    rounds: list[tuple[int, int]] = field(default_factory=list)
    seconds: float = 0.0

    def cost(self) -> str:
        """The work done, in one line: queries, k per round, seconds."""
        ks = ", ".join(f"{rows} at k={k}" for k, rows in self.rounds) or "none"
        return (
            f"{counted(len(self.groups), 'group')} of {sum(map(len, self.groups))} images from "
            f"{counted(self.pairs, 'pair')} within {self.threshold:g}; "
            f"{self.queries} queries ({ks}) in {self.seconds:.2f} s"
        )


def counted(n: int, noun: str) -> str:
    """``1 group``, ``2 groups``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def default_threshold(config: dict[str, Any]) -> float:
    """The calibrated threshold for an index's configuration, in its metric's units.

    Raises
    ------
    ConfigError
        If the feature was not calibrated, or the metric or post-processing changes the units
        the calibration was made in (the caller must then give a threshold).
    """
    feature, metric = config["feature"]["name"], config["metric"]["name"]
    post = config.get("post") or {}
    reason = None
    if feature not in CALIBRATED:
        reason = f"feature {feature!r} has no calibrated threshold (only {', '.join(CALIBRATED)})"
    elif fitted_on_collection(config) or float(post.get("power", 1.0)) != 1.0:
        reason = "the index's post-processing (PCA, power or expansion) changes its distances"
    elif metric not in ("cosine", "euclidean") or (metric == "euclidean" and not post.get("l2")):
        reason = f"metric {metric!r} on these vectors was not calibrated"
    if reason:
        raise ConfigError(f"{reason}; give the distance with --threshold")
    cosine = CALIBRATED[feature]
    return cosine if metric == "cosine" else math.sqrt(2.0 * cosine)  # unit rows: ‖a-b‖² = 2(1-cos)


def fitted_on_collection(config: dict[str, Any]) -> bool:
    """Whether the index's chain is learned from a collection (PCA, whitening or expansion:
    its own, or ``post.fit_on``'s), which scales its distances."""
    post = config.get("post") or {}
    return bool(post.get("pca_dim") or post.get("expand"))


def check_threshold(value: float) -> float:
    """``value`` as a finite float (ConfigError otherwise)."""
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        threshold = math.nan
    if not math.isfinite(threshold):
        raise ConfigError(f"threshold must be a finite number, got {value!r}")
    return threshold


class Pairs(NamedTuple):
    """Pairs (left[p], right[p]) at ``distance[p]``, and the searches that found them."""

    left: np.ndarray
    right: np.ndarray
    distance: np.ndarray
    queries: int
    rounds: list[tuple[int, int]]


def close_pairs(
    index: Index, threshold: float, *, first_k: int = FIRST_K, block: int = 1024
) -> Pairs:
    """Pairs (i, j), i < j, with one among the other's neighbours within ``threshold``.

    Each pair appears once (an exact index finds it from both ends, and again when an item is
    searched with a larger k). ``queries`` counts the query rows searched, ``rounds`` holds
    ``(k, rows searched)`` per round.
    """
    left, right, dist, rounds, queries = [], [], [], [], 0
    pending, k = np.arange(index.size), min(max(2, first_k), index.size)
    while len(pending) and k > 0:
        rounds.append((k, len(pending)))
        crowded = []
        for start in range(0, len(pending), block):
            ids = pending[start : start + block]
            found, dists = index.search(_rows(index, ids), k)
            queries += len(ids)
            keep = (found >= 0) & (dists <= threshold) & (found != ids[:, None])
            left.append(np.repeat(ids, keep.sum(axis=1)))
            right.append(found[keep])
            dist.append(dists[keep])
            crowded.append(ids[dists[:, -1] <= threshold])  # the list may go on past k
        pending = np.concatenate(crowded) if k < index.size else np.empty(0, np.int64)
        k = min(2 * k, index.size)
    a, b = np.concatenate(left or [_no_ids()]), np.concatenate(right or [_no_ids()])
    d = np.concatenate(dist or [np.empty(0)])
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    _, first = np.unique(lo * max(index.size, 1) + hi, return_index=True)
    return Pairs(lo[first], hi[first], d[first], queries, rounds)


def _no_ids() -> np.ndarray:
    """An empty id array."""
    return np.empty(0, np.int64)


def _rows(index: Index, ids: np.ndarray) -> np.ndarray:
    """Stored vectors of sorted ``ids``: one slice read when they lie close together."""
    if not len(ids) or ids[-1] - ids[0] < 8 * len(ids) + 64:
        first = int(ids[0]) if len(ids) else 0
        return index.stored_rows(first, int(ids[-1]) + 1 if len(ids) else 0)[ids - first]
    return np.concatenate([index.stored_rows(int(i), int(i) + 1) for i in ids])


def components(n: int, left: np.ndarray, right: np.ndarray) -> list[list[int]]:
    """Connected components of two or more items, each sorted, largest first then by first id."""
    graph = coo_matrix((np.ones(len(left), np.int8), (left, right)), shape=(n, n))
    count, labels = connected_components(graph, directed=True, connection="weak")
    sizes = np.bincount(labels, minlength=count)
    order = np.argsort(labels, kind="stable")
    groups = [
        [int(i) for i in members]
        for members in np.split(order, np.cumsum(sizes)[:-1])
        if len(members) > 1
    ]
    return sorted(groups, key=lambda g: (-len(g), g[0]))


def find_duplicates(index: Index, threshold: float) -> DuplicateGroups:
    """Near-duplicate groups of every item of a built ``index`` within ``threshold``."""
    threshold = check_threshold(threshold)
    start = time.perf_counter()
    pairs = close_pairs(index, threshold)
    groups = components(index.size, pairs.left, pairs.right)
    seconds = time.perf_counter() - start
    return DuplicateGroups(threshold, groups, len(pairs.left), pairs.queries, pairs.rounds, seconds)


def pairs_of(groups: list[list[Any]]) -> set[frozenset]:
    """Every unordered pair of members within each group (how groups are scored)."""
    return {frozenset((a, b)) for g in groups for i, a in enumerate(g) for b in g[i + 1 :]}


def pair_scores(found: set[frozenset], truth: set[frozenset]) -> dict[str, float]:
    """Precision, recall and F1 of ``found`` pairs against ``truth`` (1.0 for empty sets)."""
    hits = len(found & truth)
    precision = hits / len(found) if found else 1.0
    recall = hits / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "pairs": len(found), "hits": hits}
