"""Exhaustive k-nearest-neighbour search: float32 products to shortlist, float64 to answer.

Every query is compared with every item, in chunks of items so memory stays bounded. For
euclidean, cosine and dot the products run in float32 (one BLAS ``sgemm`` per chunk, no float64
copy of the collection); each query keeps every item whose float32 distance lies within a
rounding-error bound of its k-th best so far, and only those are scored again in float64
(:func:`distances`). The answer is therefore the float64 answer over the whole collection,
ties broken by the smaller id. Other metrics are scored in float64 directly.
"""

from __future__ import annotations

import numpy as np

from search_lab.indexes.distances import EPS, pairwise

SHORTLISTED = frozenset({"euclidean", "cosine", "dot"})
SCORES = 1 << 24  # float32 scores per product (64 MB): items per chunk = SCORES / queries
CHUNK = 65536  # rows per float64 conversion when computing norms
UNIT = float(np.finfo(np.float32).eps)  # float32 rounding unit (2 x the unit roundoff)


def squared_norms(items: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """Squared L2 norm of every row in float64, read chunk by chunk (a memory map stays cold)."""
    out = np.empty(len(items), np.float64)
    for start in range(0, len(items), chunk):
        rows = np.asarray(items[start : start + chunk], np.float64)
        out[start : start + len(rows)] = np.einsum("ij,ij->i", rows, rows)
    return out


def top_k(
    metric: str,
    queries: np.ndarray,
    items: np.ndarray,
    k: int,
    norms2: np.ndarray,
    chunk: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(ids, distances), both (Q, k), nearest first, of the exact search of ``queries``.

    ``items`` is a float32 (N, D) matrix (memory-mapped or not), ``norms2`` its
    :func:`squared_norms`, ``k`` at most N; ``chunk`` items are scored at a time (default:
    ``SCORES`` scores per product). Ties are broken by the smaller id.
    """
    q64 = np.asarray(queries, np.float64)
    ids = np.empty((len(q64), k), np.int64)
    dists = np.empty((len(q64), k), np.float64)
    if k == 0 or len(q64) == 0:
        return ids, dists
    if metric in SHORTLISTED:
        chunk = chunk or max(1024, SCORES // len(q64))
        rows, cols = _shortlist(metric, q64, items, k, norms2, chunk)
        bounds = np.searchsorted(rows, np.arange(len(q64) + 1))
        for i in range(len(q64)):
            cand = cols[bounds[i] : bounds[i + 1]]
            ids[i], dists[i] = _nearest(cand, distances(metric, q64[i], items[cand]), k)
        return ids, dists
    every = pairwise(metric, q64, items)  # (Q, N) float64: callers pass blocks of queries
    for i, d in enumerate(every):
        cand = np.flatnonzero(d <= np.partition(d, k - 1)[k - 1])
        ids[i], dists[i] = _nearest(cand, d[cand], k)
    return ids, dists


def distances(metric: str, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """float64 distances from one query to ``rows``; euclidean from the differences themselves.

    ``sqrt(|q|^2 + |x|^2 - 2 q.x)`` loses every digit between near-duplicates (1e-7 apart it
    is off by 1%); the few shortlisted rows can afford the exact form.
    """
    if metric == "euclidean":
        diff = np.asarray(rows, np.float64) - query
        return np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return pairwise(metric, query[None, :], rows)[0]


def _nearest(cand: np.ndarray, d: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` candidates of smallest distance ``d``, equal distances by smaller id."""
    best = np.lexsort((cand, d))[:k]
    return cand[best], d[best]


def _shortlist(
    metric: str, q64: np.ndarray, items: np.ndarray, k: int, norms2: np.ndarray, chunk: int
) -> tuple[np.ndarray, np.ndarray]:
    """(query row, item id) pairs, sorted by row, holding every item of each query's top k."""
    q32 = q64.astype(np.float32)
    q_norms2 = np.einsum("ij,ij->i", q64, q64)
    slack = 2 * _error_bound(metric, q_norms2, norms2, items.shape[1])
    kth = np.full(len(q64), np.inf)  # each query's k-th best approximate score so far
    rows, ids, kept = (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32))
    for start in range(0, len(items), chunk):
        scores = _approximate(metric, q32, items[start : start + chunk], q_norms2, norms2, start)
        if scores.shape[1] >= k:
            kth = np.minimum(kth, np.partition(scores, k - 1, axis=1)[:, k - 1])
        row, col = np.nonzero(scores <= (kth + slack)[:, None])
        rows, ids = np.concatenate([rows, row]), np.concatenate([ids, col + start])
        kept = np.concatenate([kept, scores[row, col]])
        rows, ids, kept, kth = _tighten(rows, ids, kept, kth, k)
        keep = kept <= kth[rows] + slack[rows]  # the k-th best only falls: dropped items stay out
        rows, ids, kept = rows[keep], ids[keep], kept[keep]
    order = np.lexsort((ids, rows))
    return rows[order], ids[order]


def _tighten(
    rows: np.ndarray, ids: np.ndarray, scores: np.ndarray, kth: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The pool sorted by (row, score), and each row's k-th best lowered to its pool's k-th."""
    order = np.lexsort((scores, rows))
    rows, ids, scores = rows[order], ids[order], scores[order]
    starts = np.searchsorted(rows, np.arange(len(kth)))
    counts = np.searchsorted(rows, np.arange(len(kth)), side="right") - starts
    full = np.flatnonzero(counts >= k)
    kth = kth.copy()
    kth[full] = np.minimum(kth[full], scores[starts[full] + k - 1])
    return rows, ids, scores, kth


def _approximate(
    metric: str,
    q32: np.ndarray,
    block: np.ndarray,
    q_norms2: np.ndarray,
    norms2: np.ndarray,
    start: int,
) -> np.ndarray:
    """float32 scores ordered as the metric's distances (squared for euclidean), (Q, len(block))."""
    dots = q32 @ np.asarray(block, np.float32).T
    if metric == "dot":
        return -dots
    n2 = norms2[start : start + len(block)].astype(np.float32)
    if metric == "euclidean":
        return q_norms2.astype(np.float32)[:, None] + n2[None, :] - 2.0 * dots
    scale = np.sqrt(q_norms2).astype(np.float32)[:, None] * np.sqrt(n2)[None, :]
    return 1.0 - dots / np.maximum(scale, np.float32(EPS))


def _error_bound(metric: str, q_norms2: np.ndarray, norms2: np.ndarray, dim: int) -> np.ndarray:
    """Per query, a bound on |float32 score - exact score| (four times the textbook one).

    A float32 dot product of length D errs by at most about D u |q| |x| (u the unit roundoff);
    rounding the query to float32 and the few operations after the product add a few u more.
    """
    factor = 4 * (dim + 8) * UNIT
    max_norm2 = float(norms2.max(initial=0.0))
    if metric == "cosine":
        return np.full(len(q_norms2), factor)
    if metric == "dot":
        return factor * np.sqrt(q_norms2 * max_norm2)
    return factor * (q_norms2 + max_norm2)  # euclidean, on squared distances
