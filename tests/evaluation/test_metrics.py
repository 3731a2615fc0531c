"""Scores checked against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from search_lab.evaluation import ap_rule, positive_ranks, score_ranked
from search_lab.evaluation.metrics import (
    average_precision,
    precision_at,
    recall_at,
    standard_average_precision,
)


def test_positive_ranks_skip_the_query_and_shift_later_results() -> None:
    # ranking: 7 (relevant), 0 (the query), 3, 5 (relevant)
    assert positive_ranks([7, 0, 3, 5], query=0, relevant={7, 5}) == [0, 2]
    assert positive_ranks([3, 7, 5], query=0, relevant={7, 5}) == [1, 2]


def test_average_precision_perfect_and_trapezoid() -> None:
    assert average_precision([0, 1], 2) == pytest.approx(1.0)
    # one relevant at rank 1 (second place): trapezoid with sides 0/1 and 1/2, width 1
    assert average_precision([1], 1) == pytest.approx(0.25)
    # two relevant at ranks 0 and 2: (1 + 1)/2 * 0.5 + (1/2 + 2/3)/2 * 0.5
    assert average_precision([0, 2], 2) == pytest.approx(0.5 + (0.5 + 2 / 3) / 4)
    # a relevant image never retrieved adds nothing
    assert average_precision([0], 2) == pytest.approx(0.5)
    assert average_precision([], 3) == 0.0


def test_average_precision_needs_a_relevant_image() -> None:
    with pytest.raises(ValueError):
        average_precision([], 0)


def test_precision_and_recall_at_k() -> None:
    ranks = [0, 3, 9]
    assert precision_at(ranks, 1) == 1.0
    assert precision_at(ranks, 5) == pytest.approx(2 / 5)  # divides by k, not by hits
    assert precision_at(ranks, 10) == pytest.approx(3 / 10)
    assert recall_at(ranks, 4, 5) == pytest.approx(2 / 4)
    with pytest.raises(ValueError):
        precision_at(ranks, 0)


def test_score_rankings_means_over_queries() -> None:
    ranked = np.array([[1, 2, 3], [12, 11, 13]])
    relevant = {0: frozenset({1}), 10: frozenset({11})}
    scores = score_ranked(ranked, [0, 10], relevant, ks=(1, 2))
    assert scores["ap"] == {0: 1.0, 10: pytest.approx(0.25)}
    assert scores["map"] == pytest.approx(0.625)
    assert scores["precision_at"] == {"1": 0.5, "2": 0.5}
    assert scores["recall_at"] == {"1": 0.5, "2": 1.0}
    assert scores["n_queries"] == 2
    # resampled means of the APs [1, 0.25] are 1, 0.625, 0.25: the 95% interval spans both
    assert scores["map_ci95"] == [0.25, 1.0]
    assert score_ranked(np.zeros((0, 0), np.int64), [], {})["map_ci95"] is None


def test_standard_average_precision_by_hand() -> None:
    assert standard_average_precision([0, 1], 2) == pytest.approx(1.0)
    assert standard_average_precision([1], 1) == pytest.approx(0.5)  # trapezoid: 0.25
    # hits at ranks 0 and 2 of 2 relevant: (1/1 + 2/3) / 2
    assert standard_average_precision([0, 2], 2) == pytest.approx(5 / 6)
    # 3 relevant, hits at ranks 1 and 3, the third never retrieved: (1/2 + 2/4) / 3
    assert standard_average_precision([1, 3], 3) == pytest.approx(1 / 3)
    assert standard_average_precision([], 3) == 0.0
    with pytest.raises(ValueError):
        standard_average_precision([], 0)


def test_score_ranked_picks_the_protocol_rule_and_skips_query_and_padding() -> None:
    # query 0: 5 (the only relevant image) after the query itself; -1 pads the row
    ranked = np.array([[0, 7, 5, -1], [8, 9, 3, 2]])
    relevant = {0: frozenset({5}), 2: frozenset({3, 9})}
    instance = score_ranked(ranked, [0, 2], relevant, ks=(1, 2))
    category = score_ranked(ranked, [0, 2], relevant, ks=(1, 2), protocol="category")
    # query 0: hit at rank 1 -> trapezoid (0 + 1/2)/2 = 0.25, standard 1/2
    # query 2: hits at ranks 1, 2 of 2 -> trapezoid ((0 + 1/2)/2 + (1/2 + 2/3)/2) / 2, standard
    # (1/2 + 2/3) / 2
    assert instance["ap"] == {0: pytest.approx(0.25), 2: pytest.approx((0.25 + 7 / 12) / 2)}
    assert category["ap"] == {0: pytest.approx(0.5), 2: pytest.approx(7 / 12)}
    assert instance["ap_protocol"] == "holidays_trapezoid"
    assert category["ap_protocol"] == "standard_noninterpolated"
    assert category["precision_at"] == {"1": 0.0, "2": pytest.approx((1 / 2 + 1 / 2) / 2)}
    assert category["recall_at"] == {"1": 0.0, "2": pytest.approx((1 + 1 / 2) / 2)}
    with pytest.raises(ValueError, match="protocol"):
        score_ranked(ranked, [0, 2], relevant, protocol="scene")


@pytest.mark.parametrize("protocol", ["instance", "category"])
def test_vectorised_scores_equal_the_per_query_rules(protocol: str) -> None:
    rng = np.random.default_rng(3)
    n, queries = 60, list(range(0, 60, 3))
    labels = rng.integers(0, 5, size=n)
    relevant = {q: frozenset(np.flatnonzero(labels == labels[q]).tolist()) - {q} for q in queries}
    relevant = {q: r for q, r in relevant.items() if r}
    queries = list(relevant)
    ranked = np.array([rng.permutation(n) for _ in queries])
    ranked[::4, -7:] = -1  # some rows padded, as an approximate index may leave them
    rule = ap_rule(protocol).per_query
    scores = score_ranked(ranked, queries, relevant, ks=(1, 5, 20), protocol=protocol)
    for q, row in zip(queries, ranked, strict=True):
        ranks = positive_ranks([i for i in row if i >= 0], q, relevant[q])
        assert scores["ap"][q] == pytest.approx(rule(ranks, len(relevant[q])), abs=1e-12)
    expected_p20 = np.mean(
        [
            precision_at(positive_ranks([i for i in r if i >= 0], q, relevant[q]), 20)
            for q, r in zip(queries, ranked, strict=True)
        ]
    )
    assert scores["precision_at"]["20"] == pytest.approx(expected_p20, abs=1e-12)
