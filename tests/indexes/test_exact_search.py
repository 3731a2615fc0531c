"""Exhaustive search equals the float64 answer over the whole collection, ties by smaller id."""

from __future__ import annotations

import numpy as np
import pytest

from search_lab.indexes.distances import METRICS, pairwise
from search_lab.indexes.exact_search import SHORTLISTED, distances, squared_norms, top_k


def reference(metric: str, queries: np.ndarray, items: np.ndarray, k: int):
    """Every distance in float64, sorted by (distance, id): the answer by definition."""
    d = np.stack([distances(metric, q, items) for q in np.asarray(queries, np.float64)])
    order = np.array([np.lexsort((np.arange(len(row)), row))[:k] for row in d])
    return order, np.take_along_axis(d, order, 1)


def test_distances_are_the_metrics_own() -> None:
    items, queries = hard_items()
    q = queries[0].astype(np.float64)
    for metric in METRICS:
        np.testing.assert_allclose(
            distances(metric, q, items), pairwise(metric, q[None, :], items)[0], atol=1e-6
        )
    assert distances("euclidean", np.array([0.0, 0.0]), np.array([[3.0, 4.0]]))[0] == 5.0
    tiny = np.array([[1.0, 1.0 + 2**-40]])
    assert distances("euclidean", np.array([1.0, 1.0]), tiny)[0] == 2**-40  # no cancellation


def hard_items(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Items full of exact duplicates and near-ties (1e-7 apart), plus queries among them."""
    rng = np.random.default_rng(seed)
    base = rng.random((300, 24), dtype=np.float32)
    near = base[:100] + np.float32(1e-7) * rng.standard_normal((100, 24), dtype=np.float32)
    items = np.concatenate([base, base[:50], near, np.zeros((2, 24), np.float32)])
    queries = np.concatenate([base[:20], near[:5] * 3, rng.random((10, 24))]).astype(np.float32)
    return items, queries


@pytest.mark.parametrize("metric", sorted(METRICS))
@pytest.mark.parametrize("chunk", [7, 64, 32768])
@pytest.mark.parametrize("k", [1, 10, 452])
def test_answers_equal_the_float64_reference(metric: str, chunk: int, k: int) -> None:
    items, queries = hard_items()
    ids, dists = top_k(metric, queries, items, k, squared_norms(items), chunk=chunk)
    want_ids, want_d = reference(metric, queries, items, k)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(dists, want_d, rtol=0, atol=1e-12)


def test_known_answer_with_a_tie() -> None:
    items = np.array([[3, 4], [0, 1], [1, 0], [0, 0]], np.float32)
    ids, dists = top_k("euclidean", np.array([[0.0, 0.0]]), items, 3, squared_norms(items))
    assert ids.tolist() == [[3, 1, 2]]  # 1 and 2 are both at distance 1: the smaller id first
    assert dists.tolist() == [[0.0, 1.0, 1.0]]
    ids, dists = top_k("cosine", np.array([[1.0, 1.0]]), items, 4, squared_norms(items), chunk=2)
    assert ids[0].tolist() == [0, 1, 2, 3]  # cos 0.99, then 0.707 twice, then the zero vector
    np.testing.assert_allclose(dists[0], [1 - 7 / np.sqrt(50), 1 - 0.5**0.5, 1 - 0.5**0.5, 1.0])


def test_the_shortlist_stays_short_on_spread_data() -> None:
    from search_lab.indexes.exact_search import _shortlist

    rng = np.random.default_rng(1)
    items = rng.standard_normal((20000, 64), dtype=np.float32)
    queries = rng.standard_normal((8, 64)).astype(np.float32)
    for metric in SHORTLISTED:
        rows, _ = _shortlist(
            metric, queries.astype(np.float64), items, 10, squared_norms(items), 4096
        )
        assert len(rows) <= 8 * 10 * 3  # a few near-ties at most, never the whole collection


def test_no_queries_or_no_neighbours_asked() -> None:
    items = np.eye(3, dtype=np.float32)
    for metric in METRICS:
        ids, dists = top_k(metric, np.zeros((0, 3)), items, 2, squared_norms(items))
        assert ids.shape == dists.shape == (0, 2)
        ids, dists = top_k(metric, np.ones((2, 3)), items, 0, squared_norms(items))
        assert ids.shape == dists.shape == (2, 0)
