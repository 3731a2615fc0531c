"""Scores checked against values worked out by hand."""

from __future__ import annotations

import pytest

from search_lab.metrics import (
    average_precision,
    positive_ranks,
    precision_at,
    recall_at,
    score_rankings,
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
    rankings = {0: [1, 2, 3], 10: [12, 11, 13]}
    relevant = {0: frozenset({1}), 10: frozenset({11})}
    scores = score_rankings(rankings, relevant, ks=(1, 2))
    assert scores["ap"] == {0: 1.0, 10: pytest.approx(0.25)}
    assert scores["map"] == pytest.approx(0.625)
    assert scores["precision_at"] == {"1": 0.5, "2": 0.5}
    assert scores["recall_at"] == {"1": 0.5, "2": 1.0}
    assert scores["n_queries"] == 2
    # resampled means of the APs [1, 0.25] are 1, 0.625, 0.25: the 95% interval spans both
    assert scores["map_ci95"] == [0.25, 1.0]
    assert score_rankings({}, {})["map_ci95"] is None
