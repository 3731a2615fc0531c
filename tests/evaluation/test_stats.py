"""search_lab.evaluation.stats on hand-computed cases: bootstrap intervals and the paired sign-flip
test."""

from __future__ import annotations

import numpy as np
import pytest

from search_lab.core import summary_lines
from search_lab.evaluation import (
    PairedComparison,
    bootstrap_ci,
    paired_comparison,
    shared_values,
    stats,
)
from search_lab.evaluation.stats import sign_flip_p_value


def test_constant_values_give_a_point_interval() -> None:
    assert bootstrap_ci([0.3] * 7) == (0.3, 0.3)
    assert bootstrap_ci([0.1]) == (0.1, 0.1)


def test_two_values_hand_computed() -> None:
    # Resampled means of [0, 1] are 0, 0.5, 1 with probability 1/4, 1/2, 1/4:
    # the 2.5% and 97.5% quantiles are 0 and 1, the 30% and 70% quantiles both 0.5.
    assert bootstrap_ci([0.0, 1.0]) == (0.0, 1.0)
    assert bootstrap_ci([0.0, 1.0], level=0.4) == (0.5, 0.5)


def test_interval_contains_the_mean_and_narrows_with_n() -> None:
    widths = []
    for repeats in (5, 50, 1000):  # half zeros, half ones: mean 0.5, sd of the mean 0.5/sqrt(n)
        low, high = bootstrap_ci(np.tile([0.0, 1.0], repeats))
        assert low < 0.5 < high
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]
    # normal approximation for n = 2000: 2 * 1.96 * 0.5 / sqrt(2000) = 0.0438
    assert widths[2] == pytest.approx(2 * 1.96 * 0.5 / np.sqrt(2000), rel=0.15)


def test_seed_makes_it_deterministic() -> None:
    values = np.random.default_rng(7).random(100)
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values, seed=3)
    assert bootstrap_ci(values, seed=3) != bootstrap_ci(values, seed=4)
    a, b = values[:50], values[50:]
    assert paired_comparison(a, b, seed=1) == paired_comparison(a, b, seed=1)


def test_result_does_not_depend_on_the_memory_block(monkeypatch: pytest.MonkeyPatch) -> None:
    values = np.random.default_rng(8).random(40)
    whole = bootstrap_ci(values, n_resamples=500)
    p_whole = sign_flip_p_value(values - 0.5, n_resamples=500)
    monkeypatch.setattr(stats, "_BLOCK", 100)  # 2 resamples per block
    assert bootstrap_ci(values, n_resamples=500) == whole
    assert sign_flip_p_value(values - 0.5, n_resamples=500) == p_whole


def test_identical_runs() -> None:
    a = [0.2, 0.9, 0.5, 0.7]
    result = paired_comparison(a, a)
    assert result == PairedComparison(0.0, 0.0, 0.0, 1.0, 4, True, 0.95)
    assert not result.significant()


def test_exact_enumeration_by_hand() -> None:
    # [1, 1, 1]: of the 8 sign patterns only +++ and --- reach |sum| = 3.
    assert sign_flip_p_value([1.0, 1.0, 1.0]) == (0.25, True)
    # zeros change no sum and are left out
    assert sign_flip_p_value([0.0, 1.0, 0.0, 1.0, 1.0]) == (0.25, True)
    # [1, -2, 3], observed |2|: the 8 sums are +-6, +-4, +-2, 0, 0, so 6 of 8 reach 2.
    assert sign_flip_p_value([1.0, -2.0, 3.0]) == (0.75, True)
    # 16 positive differences: only the all-plus and all-minus patterns are as extreme
    assert sign_flip_p_value(np.arange(1.0, 17.0)) == (2 / 2**16, True)


def test_better_on_every_query_is_significant() -> None:
    a = np.linspace(0.1, 0.6, 20)
    b = a + np.linspace(0.01, 0.2, 20)
    result = paired_comparison(a, b)
    assert not result.exact  # 20 non-zero differences: Monte-Carlo
    assert 1 / 2001 <= result.p_value < 0.01
    assert result.significant()
    assert result.delta == pytest.approx(0.105)
    assert 0.0 < result.low < result.delta < result.high


@pytest.mark.parametrize("size", [5, 13, 16])
def test_monte_carlo_agrees_with_exact_enumeration(size: int) -> None:
    d = np.random.default_rng(size).normal(0.05, 0.2, size)  # p somewhere in the middle
    exact, is_exact = sign_flip_p_value(d)
    estimate, is_estimate = sign_flip_p_value(d, n_resamples=20000, exact_limit=0)
    assert is_exact and not is_estimate
    assert estimate == pytest.approx(exact, abs=0.015)  # Monte-Carlo sd below 0.004


def test_monte_carlo_p_value_of_balanced_differences_is_large() -> None:
    d = np.tile([1.0, -1.0], 15)  # sum 0: every pattern is at least as extreme
    p, exact = sign_flip_p_value(d)
    assert (p, exact) == (1.0, False)


def test_constant_improvement_has_a_point_interval() -> None:
    a = [0.25, 0.5, 0.0, 0.5]
    b = [0.5, 0.75, 0.25, 0.75]
    result = paired_comparison(a, b)
    assert (result.delta, result.low, result.high) == (0.25, 0.25, 0.25)
    assert (result.p_value, result.exact) == (2 / 16, True)  # 4 queries cannot reach 5%


@pytest.mark.parametrize(
    "values",
    [[], np.zeros((2, 2)), [0.1, float("nan")], [0.1, float("inf")]],
    ids=["empty", "2-d", "nan", "inf"],
)
def test_bad_values_raise(values: object) -> None:
    with pytest.raises(ValueError):
        bootstrap_ci(values)
    with pytest.raises(ValueError):
        sign_flip_p_value(values)


def test_mismatched_shapes_and_options_raise() -> None:
    with pytest.raises(ValueError, match="pair up"):
        paired_comparison([0.1, 0.2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="empty"):
        paired_comparison([], [])
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_ci([0.1], n_resamples=0)
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci([0.1], level=1.0)


def test_shared_values_pairs_by_name() -> None:
    names, a, b = shared_values({"q1": 0.1, "q2": 0.2, "q3": 0.3}, {"q3": 0.5, "q1": 0.4, "x": 1.0})
    assert names == ["q1", "q3"]
    assert a.tolist() == [0.1, 0.3] and b.tolist() == [0.4, 0.5]
    names, a, b = shared_values({"q1": 0.1}, {"q2": 0.2})
    assert names == [] and a.size == b.size == 0


def test_run_summary_shows_the_map_interval() -> None:
    metrics = {
        "map": 0.5686,
        "map_ci95": [0.5312, 0.6051],
        "n_queries": 240,
        "n_images": 648,
        "n_skipped": 0,
        "precision_at": {"1": 0.6},
        "recall_at": {"1": 0.3},
    }
    assert summary_lines(metrics)[0].startswith("mAP            0.5686   95% CI [0.5312, 0.6051]")
    del metrics["map_ci95"]  # runs written before the interval existed
    assert summary_lines(metrics)[0].startswith("mAP            0.5686   (240 queries")
