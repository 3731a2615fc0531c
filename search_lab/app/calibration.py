"""When is a result a weak match? A distance threshold calibrated on the tune side of a dataset.

A raw distance (0.17 for a true match, 0.39 for a poor one) means little to a reader, and its
scale differs per feature and metric. So the app calibrates, per index, the distance that best
separates relevant from irrelevant results: the top :data:`TOP` results of every tune-side
query (``dataset.split=tune`` with the index's own split fraction and seed) are labelled by the
ground truth, and the threshold maximises the balanced accuracy (Youden's J) of "a result at
most this far is a match". Only tune-side images count, so the test side never sets it.

The similarity shown beside a distance is a plain linear scale anchored on that threshold:
100% for distance 0, 50% at the threshold, 0% at twice the threshold or farther.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from search_lab.core import DatasetError, SearchLabError
from search_lab.data import Dataset, split_dataset
from search_lab.retrieval import SearchEngine

TOP = 5
"""Results per tune-side query that are labelled relevant or not."""
MAX_QUERIES = 200
"""At most this many tune-side queries (the first in name order): a bounded cost per index."""
MAX_EXTRACTED = 40
"""Queries whose vector must be extracted (an index that keeps no vectors): fewer, as slower."""


@dataclass(frozen=True)
class Calibration:
    """The weak-match distance of one index and what it was calibrated on."""

    threshold: float
    queries: int
    relevant: int  # labelled results that were relevant
    irrelevant: int

    def similarity(self, distance: float) -> float:
        """``distance`` on the plain 0..1 scale: 1 at 0, 0.5 at the threshold, 0 at twice it."""
        return float(np.clip(1.0 - distance / (2.0 * self.threshold), 0.0, 1.0))

    def weak(self, distance: float) -> bool:
        """True when a result at ``distance`` lies beyond the calibrated threshold."""
        return distance > self.threshold

    def help_text(self) -> str:
        """How the threshold was found, for the page's help text."""
        return (
            f"Similarity: 100% at distance 0, 50% at the weak-match distance "
            f"{self.threshold:.4f}, 0% at twice that or farther. A result farther than "
            f"{self.threshold:.4f} is marked as a weak match: that distance best separates "
            f"the relevant from the irrelevant results (balanced accuracy) among the top {TOP} "
            f"of {self.queries} tune-side queries (dataset.split=tune: {self.relevant} relevant, "
            f"{self.irrelevant} irrelevant results); test-side images never set it."
        )


def separating_threshold(relevant: Sequence[float], irrelevant: Sequence[float]) -> float:
    """The distance that best separates relevant from irrelevant results.

    Candidates are the midpoints between consecutive distinct distances (and the extremes);
    the one maximising TPR + TNR (relevant at most the threshold, irrelevant beyond it) wins,
    the largest on a tie, so true matches are flagged as weak as rarely as possible. E.g.
    relevant ``[0.1, 0.2]`` and irrelevant ``[0.3, 0.4]`` give 0.25.

    Raises
    ------
    ValueError
        If either list is empty (nothing to separate).
    """
    rel, irr = np.sort(np.asarray(relevant, float)), np.sort(np.asarray(irrelevant, float))
    if not len(rel) or not len(irr):
        raise ValueError("both relevant and irrelevant distances are needed")
    values = np.unique(np.concatenate([rel, irr]))
    candidates = np.concatenate([[values[0]], (values[:-1] + values[1:]) / 2, [values[-1]]])
    tpr = np.searchsorted(rel, candidates, side="right") / len(rel)
    tnr = 1.0 - np.searchsorted(irr, candidates, side="right") / len(irr)
    score = tpr + tnr
    best = np.flatnonzero(score == score.max())[-1]
    return float(candidates[best])


def _tune_side(engine: SearchEngine, dataset: Dataset) -> Dataset | None:
    """The tune side of ``dataset`` with the index's split settings (None if it has no query)."""
    options = engine.config.get("dataset") or {}
    try:
        return split_dataset(
            dataset,
            "tune",
            fraction=float(options.get("split_fraction", 0.5)),
            seed=int(options.get("split_seed", 0)),
        )
    except (DatasetError, SearchLabError, TypeError, ValueError):
        return None


def _query_vectors(engine: SearchEngine, names: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Vectors of indexed images: the index's own rows if it keeps them, else extracted."""
    ids = {name: i for i, name in enumerate(engine.names)}
    stored = getattr(engine.index, "vectors", None)
    if stored is not None and len(stored) == len(engine.names):
        return list(names), np.asarray(stored[[ids[n] for n in names]], np.float32)
    kept = list(names[:MAX_EXTRACTED])
    return kept, np.vstack([engine.vectorize(engine.path_of(n))[0] for n in kept])


def labelled_distances(engine: SearchEngine, tune: Dataset) -> tuple[list[float], list[float], int]:
    """Distances of the relevant and the irrelevant top results of tune-side queries, and the
    number of queries used (each query's own image and other-side images left out)."""
    held = set(engine.names)
    side = set(tune.names)
    queries = sorted(tune.names[q] for q in tune.queries if tune.names[q] in held)[:MAX_QUERIES]
    truth = {tune.names[q]: {tune.names[r] for r in tune.relevant[q]} for q in tune.queries}
    if not queries:
        return [], [], 0
    queries, vectors = _query_vectors(engine, queries)
    depth = min(len(engine.names), 4 * TOP + 1)
    ids, dists = engine.index.search(vectors, depth)
    relevant, irrelevant = [], []
    for query, row_ids, row_dists in zip(queries, ids, dists, strict=True):
        kept = [
            (engine.names[i], float(d))
            for i, d in zip(row_ids, row_dists, strict=True)
            if i >= 0 and engine.names[i] != query and engine.names[i] in side
        ][:TOP]
        for name, distance in kept:
            (relevant if name in truth[query] else irrelevant).append(distance)
    return relevant, irrelevant, len(queries)


def calibrate(engine: SearchEngine, dataset: Dataset | None) -> Calibration | None:
    """The weak-match calibration of ``engine`` on ``dataset``'s tune side; None without one.

    None when the collection has no ground truth, its tune side holds no query the index
    holds, or the labelled results are all relevant or all irrelevant.
    """
    if dataset is None or not dataset.queries:
        return None
    tune = _tune_side(engine, dataset)
    if tune is None:
        return None
    relevant, irrelevant, count = labelled_distances(engine, tune)
    if not relevant or not irrelevant:
        return None
    threshold = separating_threshold(relevant, irrelevant)
    if not np.isfinite(threshold) or threshold <= 0:
        return None
    return Calibration(threshold, count, len(relevant), len(irrelevant))
