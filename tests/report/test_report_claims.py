"""The report's sentence builders, fed series that rise, fall and both: the words must agree.

The report once said "no method loses recall as dimension grows" beside
``0.474 → 0.871 → 0.679 → 0.575`` (it compared the two ends only), and called a run "best"
that its own test found no different. These tables are typed out by hand.
"""

from __future__ import annotations

import pytest

from search_lab.report.claims import (
    Candidate,
    dimension_sentence,
    largest_drop,
    steps,
    trend,
    winner_sentence,
)

DIMS = ["32-d", "128-d", "512-d", "1280-d"]


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ([0.1, 0.2, 0.3], "rises at every step"),
        ([0.3, 0.2, 0.1], "falls at every step"),
        ([0.1, 0.1, 0.3], "never falls"),
        ([0.3, 0.3, 0.1], "never rises"),
        ([0.5, 0.5, 0.5], "stays level"),
        ([0.474, 0.871, 0.679, 0.575], "rises, then falls"),
        ([0.5, 0.3, 0.6, 0.2], "goes up and down"),
        ([0.98, 0.9984, 0.9986, 0.9985], "never falls"),  # 0.0001 steps are flat at 3 decimals
        ([0.7], "has one value"),
    ],
)
def test_trend_reads_every_step(values: list[float], words: str) -> None:
    assert trend(values) == words


def test_steps_and_largest_drop_by_hand() -> None:
    assert steps([0.474, 0.871, 0.679, 0.575]) == [1, -1, -1]
    drop, i, j = largest_drop([0.474, 0.871, 0.679, 0.575])
    assert (i, j) == (1, 3) and drop == pytest.approx(0.871 - 0.575)
    assert largest_drop([0.1, 0.2, 0.3]) == (0.0, 0, 0)
    # the first and last values are equal, yet recall fell on the way
    assert largest_drop([0.9, 0.95, 0.8, 0.9])[0] == pytest.approx(0.15)


def test_dimension_sentence_names_a_fall_the_ends_would_hide() -> None:
    rows = [
        ("faiss IVF1024,PQ16", [0.474, 0.871, 0.679, 0.575]),  # last > first, but it falls
        ("hnsw M16", [0.869, 0.981, 0.999, 0.990]),
        ("annoy 50 trees", [0.841, 0.989, 1.0, 1.0]),
        ("faiss Flat", [1.0, 1.0, 1.0, 1.0]),
    ]
    text = dimension_sentence(rows, DIMS)
    assert text == (
        "Recall falls at some step as dimension grows for faiss IVF1024,PQ16 (rises, then "
        "falls; down 0.296 from 0.871 at 128-d to 0.575 at 1280-d); hnsw M16 (rises, then "
        "falls; down 0.009 from 0.999 at 512-d to 0.990 at 1280-d); it never falls for annoy "
        "50 trees; it stays at 1 for faiss Flat (exhaustive search)."
    )
    assert "No method loses" not in text


def test_dimension_sentence_when_every_method_rises_or_falls() -> None:
    up = dimension_sentence([("a", [0.5, 0.6, 0.7, 0.8])], DIMS)
    assert up == "Recall never falls as dimension grows for a (rises at every step)."
    down = dimension_sentence([("b", [0.8, 0.7, 0.6, 0.5])], DIMS)
    assert down == (
        "Recall falls at some step as dimension grows for b (falls at every step; down 0.300 "
        "from 0.800 at 32-d to 0.500 at 1280-d)."
    )
    assert dimension_sentence([], DIMS) == ""


def test_best_is_said_only_of_a_measurable_winner() -> None:
    top = Candidate("cnn", "mAP 0.768", beaten_by_top=False)
    clear = winner_sentence(
        "the feature families",
        top,
        [Candidate("hsv", "mAP 0.569", True), Candidate("lbp", "mAP 0.366", True)],
    )
    assert clear == (
        "Of the feature families, **cnn** is best (mAP 0.768), measurably ahead of each of the "
        "other 2."
    )
    tied = winner_sentence(
        "hsv layouts (with plain hsv)",
        Candidate("hsv grid2x2", "mAP 0.599", False),
        [Candidate("hsv grid3x3", "mAP 0.595", False), Candidate("hsv", "mAP 0.569", True)],
    )
    assert tied.startswith(
        "No clear winner among hsv layouts (with plain hsv): hsv grid2x2 (mAP 0.599), "
        "hsv grid3x3 (mAP 0.595) are within noise"
    )
    assert "best" not in tied and "hsv (mAP 0.569)" not in tied  # measurably worse: not named
    assert winner_sentence("x", top, []) == "Of x, only **cnn** (mAP 0.768) ran."


def test_quick_cites_cnn_runs_only_when_made(tmp_path) -> None:
    """--quick's CNN rows of question 4 are never run: a missing one is a "not run" row."""
    from search_lab.report.plan import CNN_REUSED, dimensions
    from search_lab.report.runs import REUSE_ONLY_REASON, ensure

    runs, dim = dimensions(True)
    reused = [r for r in runs if r.group == CNN_REUSED]
    assert dim == 288 and [r.overrides[0] for r in reused] == ["feature=cnn", "feature=cnn"]
    assert all(r.reuse_only for r in reused) and not any(r.reuse_only for r in dimensions(False)[0])
    outcome = ensure(reused[0], tmp_path, ())
    assert not outcome.ok and outcome.reason == REUSE_ONLY_REASON
    assert not (tmp_path / "feature=cnn").exists()  # nothing was evaluated
