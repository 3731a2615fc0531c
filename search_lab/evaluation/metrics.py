"""Retrieval scores from rankings: average precision, precision@k and recall@k.

Two AP rules, picked by the dataset's protocol: ``instance`` datasets (Holidays, folders) use the
Holidays trapezoid rule of ``holidays_map.py``; ``category`` datasets (a labelled collection such
as Wang) use the standard non-interpolated AP (mean of the precision at each relevant hit).

Pure functions: rankings (image ids, best first) and ground truth in, numbers out. Search is
kept apart from scoring so every index is scored by the same code. The per-query functions
state the rules; :func:`score_ranked` applies them to a whole (queries x depth) matrix at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import NamedTuple

import numpy as np

from search_lab.evaluation.stats import bootstrap_ci


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


def standard_average_precision(ranks: Sequence[int], n_relevant: int) -> float:
    """Standard non-interpolated average precision (TREC, the Wang/Corel protocol).

    The mean over all ``n_relevant`` relevant images of the precision at the rank where each
    was retrieved: ``sum((ntp + 1) / (rank + 1)) / n_relevant`` over the increasing 0-based
    ``ranks`` (query excluded); a relevant image never retrieved adds 0.
    """
    if n_relevant <= 0:
        raise ValueError("average precision needs at least one relevant image")
    return sum((ntp + 1) / (rank + 1) for ntp, rank in enumerate(ranks)) / n_relevant


class APRule(NamedTuple):
    """An AP rule: its name in ``metrics.json``, per query, and over a matrix of hits."""

    name: str
    per_query: Callable[[Sequence[int], int], float]
    matrix: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _trapezoid_matrix(hits: np.ndarray, ranks: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    """:func:`average_precision` of every row of hit flags at once."""
    ntp = np.cumsum(hits, axis=1) - hits  # relevant images ranked before each position
    before = np.where(ranks <= 0, 1.0, ntp / np.maximum(ranks, 1))
    after = (ntp + 1) / (np.maximum(ranks, 0) + 1.0)  # ranks < 0 only where no hit
    return np.where(hits, (before + after) / 2.0, 0.0).sum(axis=1) / n_rel


def _standard_matrix(hits: np.ndarray, ranks: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    """:func:`standard_average_precision` of every row of hit flags at once."""
    ntp = np.cumsum(hits, axis=1) - hits
    precision = (ntp + 1) / (np.maximum(ranks, 0) + 1.0)  # ranks < 0 only where no hit
    return np.where(hits, precision, 0.0).sum(axis=1) / n_rel


AP_RULES: dict[str, APRule] = {
    "instance": APRule("holidays_trapezoid", average_precision, _trapezoid_matrix),
    "category": APRule("standard_noninterpolated", standard_average_precision, _standard_matrix),
}


def ap_rule(protocol: str) -> APRule:
    """The AP rule of a dataset protocol (``instance`` or ``category``)."""
    if protocol not in AP_RULES:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of: {', '.join(AP_RULES)}")
    return AP_RULES[protocol]


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


def relevance_hits(
    ranked: np.ndarray, queries: Sequence[int], relevant: Mapping[int, frozenset[int]]
) -> tuple[np.ndarray, np.ndarray]:
    """Relevant-hit flags and 0-based ranks of a (queries x depth) matrix of image ids.

    Ids below 0 are padding; the query itself is skipped and the images after it move up by
    one, as in ``holidays_map.py``. Returns ``hits`` (bool) and ``ranks`` (int), both shaped
    like ``ranked``; ``ranks`` is meaningful where an image was kept.
    """
    queries_arr = np.asarray(queries, dtype=np.int64).reshape(-1, 1)
    kept = (ranked >= 0) & (ranked != queries_arr)
    ranks = np.cumsum(kept, axis=1) - 1
    n_images = int(max(ranked.max(initial=-1), queries_arr.max(initial=-1))) + 1
    truth = np.zeros((len(queries), max(n_images, 1)), dtype=bool)
    for row, query in enumerate(queries):
        ids = np.fromiter(relevant[query], dtype=np.int64, count=len(relevant[query]))
        truth[row, ids[ids < n_images]] = True
    hits = np.take_along_axis(truth, np.where(ranked >= 0, ranked, 0), axis=1) & kept
    return hits, ranks


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else 0.0


def score_ranked(
    ranked: np.ndarray,
    queries: Sequence[int],
    relevant: Mapping[int, frozenset[int]],
    ks: Sequence[int] = (1, 5, 10),
    protocol: str = "instance",
) -> dict:
    """mAP, mean precision@k and mean recall@k of a (queries x depth) matrix of image ids.

    Row ``i`` of ``ranked`` ranks the collection for ``queries[i]``, best first; ids below 0
    are padding. AP follows the protocol's rule (:data:`AP_RULES`), vectorised over queries.

    Returns
    -------
    dict
        ``map``, ``map_ci95`` (``[low, high]``: the 95% percentile bootstrap interval of the
        mean AP, 2000 resamples of the queries, seed 0, see
        :func:`search_lab.evaluation.stats.bootstrap_ci`; None without queries), ``precision_at``
        and ``recall_at`` (keyed by ``str(k)``), ``n_queries``, ``ap_protocol`` (the AP rule's name)
        and ``ap`` (query id -> its average precision).
    """
    rule = ap_rule(protocol)
    if any(k <= 0 for k in ks):
        raise ValueError(f"k must be positive, got {list(ks)}")
    ranked = np.asarray(ranked, dtype=np.int64).reshape(len(queries), -1 if len(queries) else 0)
    n_rel = np.array([len(relevant[q]) for q in queries], dtype=np.float64)
    if np.any(n_rel <= 0):
        raise ValueError("average precision needs at least one relevant image")
    hits, ranks = relevance_hits(ranked, queries, relevant)
    aps = rule.matrix(hits, ranks, n_rel)
    found = {str(k): (hits & (ranks < k)).sum(axis=1) for k in ks}
    return {
        "map": _mean(aps),
        "map_ci95": list(bootstrap_ci(aps)) if len(aps) else None,
        "precision_at": {k: _mean(v / int(k)) for k, v in found.items()},
        "recall_at": {k: _mean(v / n_rel) for k, v in found.items()},
        "n_queries": len(queries),
        "ap_protocol": rule.name,
        "ap": {int(q): float(ap) for q, ap in zip(queries, aps, strict=True)},
    }


def _first_valid(ids: np.ndarray, k: int) -> np.ndarray:
    """The first ``k`` non-negative ids of each row, in order, padded with -1 at the end."""
    ids = np.asarray(ids, dtype=np.int64)
    if ids.ndim != 2:
        raise ValueError(f"ids must be a (queries, depth) matrix, got shape {ids.shape}")
    order = np.argsort(ids < 0, axis=1, kind="stable")  # valid ids first, order kept
    return np.take_along_axis(ids, order, axis=1)[:, :k]


def recall_at_k(found_ids: np.ndarray, true_ids: np.ndarray, k: int) -> float:
    """ANN recall@k: mean share of each query's true top k that the tested index's top k holds.

    Parameters
    ----------
    found_ids : (Q, m) int array
        Ids returned by the index under test, best first.
    true_ids : (Q, n) int array
        Ids of the exact search of the same queries (:class:`~search_lab.indexes.ExactIndex`),
        best first.
    k : int
        Depth compared; positive.

    Negative ids are padding and are skipped, not counted: a row's top k are its first ``k``
    non-negative ids (a caller leaves the query itself out by setting it to -1). Row ``i``
    scores ``|F_i & T_i| / |T_i|`` with ``F_i``, ``T_i`` the sets of those ids of
    ``found_ids[i]`` and ``true_ids[i]``; rows whose ``T_i`` is empty are left out. Returns
    the mean over the rows left, 1.0 when none is left (nothing to miss).
    """
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    found, truth = _first_valid(found_ids, k), _first_valid(true_ids, k)
    if len(found) != len(truth):
        raise ValueError(f"{len(found)} rows of found ids against {len(truth)} of true ids")
    span = int(max(found.max(initial=-1), truth.max(initial=-1))) + 2
    rows = np.arange(len(truth), dtype=np.int64)[:, None] * span  # one id range per row
    hit = np.isin(truth + rows, (found + rows)[found >= 0]) & (truth >= 0)
    n_true = (truth >= 0).sum(axis=1)
    scored = n_true > 0
    if not scored.any():
        return 1.0
    return float(np.mean(hit.sum(axis=1)[scored] / n_true[scored]))


def ann_recall(
    approx: Sequence[Sequence[int]],
    exact: Sequence[Sequence[int]],
    ks: Iterable[int],
    exclude: Sequence[int] | None = None,
) -> dict[str, float]:
    """:func:`recall_at_k` for each k, ``str(k) -> share``; ``exclude[q]`` (query q's own id)
    is left out of both rows. Rows may be of different lengths (padding: ids < 0)."""
    found, truth = _padded(approx), _padded(exact)
    if exclude is not None:
        own = np.asarray(exclude, dtype=np.int64)[:, None]
        found, truth = np.where(found == own, -1, found), np.where(truth == own, -1, truth)
    return {str(k): recall_at_k(found, truth, k) for k in ks}


def _padded(rows: Sequence[Sequence[int]]) -> np.ndarray:
    """Ragged rows of ids as one (Q, max length) int64 matrix padded with -1."""
    width = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), max(width, 1)), -1, dtype=np.int64)
    for q, r in enumerate(rows):
        out[q, : len(r)] = np.asarray(r, dtype=np.int64)
    return out
