"""Retrieval scores from rankings: Holidays average precision, precision@k and recall@k.

Pure functions: rankings (image ids, best first) and ground truth in, numbers out. Search is
kept apart from scoring so every index is scored by the same code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from search_lab.stats import bootstrap_ci


def positive_ranks(
    ranking: Iterable[int], query: int, relevant: frozenset[int] | set[int]
) -> list[int]:
    """0-based ranks of the relevant images in ``ranking``, the query itself skipped.

    As in the official ``holidays_map.py``: when the query appears in its own result list it
    is ignored and the images after it move up by one.
    """
    ranks, shift = [], 0
    for rank, image in enumerate(ranking):
        if image == query:
            shift = -1
        elif image in relevant:
            ranks.append(rank + shift)
    return ranks


def average_precision(ranks: Sequence[int], n_relevant: int) -> float:
    """Average precision by the Holidays trapezoid rule (``score_ap_from_ranks_1``).

    Parameters
    ----------
    ranks : sequence of int
        Increasing 0-based ranks of the relevant images that were retrieved (query excluded).
    n_relevant : int
        Number of relevant images in the dataset; those never retrieved add nothing.

    Each retrieved relevant image adds a trapezoid of width ``1 / n_relevant`` whose sides are
    the precision just before it (``ntp / rank``, or 1 at rank 0) and just after it
    (``(ntp + 1) / (rank + 1)``).
    """
    if n_relevant <= 0:
        raise ValueError("average precision needs at least one relevant image")
    ap = 0.0
    for ntp, rank in enumerate(ranks):
        before = 1.0 if rank == 0 else ntp / rank
        after = (ntp + 1) / (rank + 1)
        ap += (before + after) / (2.0 * n_relevant)
    return ap


def precision_at(ranks: Sequence[int], k: int) -> float:
    """Share of the first ``k`` results (query excluded) that are relevant: hits / k."""
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    return sum(1 for rank in ranks if rank < k) / k


def recall_at(ranks: Sequence[int], n_relevant: int, k: int) -> float:
    """Share of the relevant images found in the first ``k`` results (query excluded)."""
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    return sum(1 for rank in ranks if rank < k) / n_relevant


def score_rankings(
    rankings: Mapping[int, Sequence[int]],
    relevant: Mapping[int, frozenset[int]],
    ks: Sequence[int] = (1, 5, 10),
) -> dict:
    """mAP, mean precision@k and mean recall@k over every query of ``rankings``.

    Returns
    -------
    dict
        ``map``, ``map_ci95`` (``[low, high]``: the 95% percentile bootstrap interval of the
        mean AP, 2000 resamples of the queries, seed 0, see
        :func:`search_lab.stats.bootstrap_ci`; None without queries), ``precision_at`` and
        ``recall_at`` (keyed by ``str(k)``), ``n_queries`` and ``ap`` (query id -> its average
        precision).
    """
    aps: dict[int, float] = {}
    precision = {str(k): [] for k in ks}
    recall = {str(k): [] for k in ks}
    for query, ranking in rankings.items():
        gt = relevant[query]
        ranks = positive_ranks(ranking, query, gt)
        aps[query] = average_precision(ranks, len(gt))
        for k in ks:
            precision[str(k)].append(precision_at(ranks, k))
            recall[str(k)].append(recall_at(ranks, len(gt), k))
    return {
        "map": float(np.mean(list(aps.values()))) if aps else 0.0,
        "map_ci95": list(bootstrap_ci(list(aps.values()))) if aps else None,
        "precision_at": {k: float(np.mean(v)) if v else 0.0 for k, v in precision.items()},
        "recall_at": {k: float(np.mean(v)) if v else 0.0 for k, v in recall.items()},
        "n_queries": len(aps),
        "ap": aps,
    }
