"""metrics.recall_at_k, the one ANN recall of the code base, on rankings worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from search_lab.evaluation import recall_at_k


def test_recall_at_k_by_hand() -> None:
    truth = np.array([[1, 2, 3], [4, 5, 6]])
    found = np.array([[3, 9, 1], [6, 7, 8]])
    # row 0: top 2 found {3, 9}, true {1, 2}: 0/2; row 1: {6, 7} against {4, 5}: 0/2
    assert recall_at_k(found, truth, 2) == 0.0
    # top 3: row 0 finds 3 and 1 of {1, 2, 3} (2/3), row 1 finds 6 of {4, 5, 6} (1/3)
    assert recall_at_k(found, truth, 3) == pytest.approx((2 / 3 + 1 / 3) / 2)
    # k beyond the width compares whole rows: the same as k = 3
    assert recall_at_k(found, truth, 10) == pytest.approx(0.5)


def test_padding_is_skipped_not_counted() -> None:
    truth = np.array([[1, 2], [3, 4]])
    # row 0 has both (2/2); row 1 has 3 and a pad (1/2): (1 + 0.5) / 2
    assert recall_at_k(np.array([[2, 1], [3, -1]]), truth, 2) == pytest.approx(0.75)
    # a pad before real ids: the first 2 non-negative ids of [-1, 2, 7] are 2 and 7 (1/2)
    assert recall_at_k(np.array([[-1, 2, 7]]), np.array([[1, 2]]), 2) == pytest.approx(0.5)
    # the query itself (id 0) set to -1 in both lists drops out; the next ids move up
    found = np.array([[-1, 5, 6, 9]])
    true = np.array([[-1, 5, 9, 6]])
    assert recall_at_k(found, true, 1) == 1.0  # {5} against {5}
    assert recall_at_k(found, true, 2) == pytest.approx(0.5)  # {5, 6} against {5, 9}


def test_repeated_found_ids_count_once_and_empty_truth_rows_are_left_out() -> None:
    assert recall_at_k(np.array([[4, 4]]), np.array([[4, 5]]), 2) == pytest.approx(0.5)
    # row 1 has no true id: only row 0 (1/2) is averaged
    found, truth = np.array([[4, 8], [1, 2]]), np.array([[4, 5], [-1, -1]])
    assert recall_at_k(found, truth, 2) == pytest.approx(0.5)
    assert recall_at_k(np.array([[1]]), np.array([[-1]]), 1) == 1.0  # nothing to miss
    assert recall_at_k(np.zeros((0, 3), int), np.zeros((0, 3), int), 3) == 1.0


def test_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="k must be positive"):
        recall_at_k(np.array([[1]]), np.array([[1]]), 0)
    with pytest.raises(ValueError, match="rows"):
        recall_at_k(np.array([[1], [2]]), np.array([[1]]), 1)
    with pytest.raises(ValueError, match="matrix"):
        recall_at_k(np.array([1, 2]), np.array([1, 2]), 1)


def _per_query_loop(found: np.ndarray, truth: np.ndarray, query: np.ndarray, k: int) -> float:
    """The per-query rule written out with sets: query and padding left out of both lists."""
    shares = []
    for q, f, t in zip(query, found, truth, strict=True):
        got = [i for i in f if i >= 0 and i != q][:k]
        want = [i for i in t if i >= 0 and i != q][:k]
        if want:
            shares.append(len(set(got) & set(want)) / len(want))
    return float(np.mean(shares)) if shares else 1.0


def test_matches_the_per_query_rule_on_random_rankings() -> None:
    rng = np.random.default_rng(0)
    query = rng.integers(0, 30, size=200)
    found = rng.integers(-1, 30, size=(200, 11))
    truth = np.array([rng.permutation(30)[:11] for _ in range(200)])
    for k in (1, 5, 10):
        left_out = np.where(found == query[:, None], -1, found)
        true_left_out = np.where(truth == query[:, None], -1, truth)
        assert recall_at_k(left_out, true_left_out, k) == pytest.approx(
            _per_query_loop(found, truth, query, k)
        )
