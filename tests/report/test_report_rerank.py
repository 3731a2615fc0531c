"""Q2's re-ranking rows: mAP with and without ``rerank=sv`` and the cost per query of each.

The two runs are written by hand (their ``metrics.json`` as an evaluation writes it, four
queries each), so every cell of the table and the sentence has a value computed by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

from search_lab.report import plan
from search_lab.report.rerank import COLUMNS, answer, pair, table
from search_lab.report.runs import REUSE_ONLY_REASON, Outcome, Run, run_folder
from search_lab.report.sections import search

WITHOUT_AP = {"a.jpg": 0.5, "b.jpg": 1.0, "c.jpg": 0.25, "d.jpg": 0.75}  # mean 0.625
WITH_AP = {"a.jpg": 0.9, "b.jpg": 1.0, "c.jpg": 0.45, "d.jpg": 0.95}  # mean 0.825, +0.2
RERANK_INFO = {
    "name": "sv",
    "local": "sift",
    "candidates": 100,
    "ms_per_query": 612.4,
    "pairs": 400,
    "verified_pairs": 37,
    "fallback_queries": 0,
    "fallback_images": 0,
}


def _outcome(tmp: Path, run_index: int, aps: dict[str, float], **extra: object) -> Outcome:
    run = plan.rerank(False)[run_index]
    folder = tmp / str(run_index)
    folder.mkdir()
    metrics = {
        "map": sum(aps.values()) / len(aps),
        "map_ci95": [0.4, 0.9],
        "per_query_ap": aps,
        "query_ms_p50": 0.0912,
        **extra,
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return Outcome(run, folder, metrics)


def test_plan_reuses_the_recipe_run_of_question_1(tmp_path: Path) -> None:
    """'without' is Q1's `best` run (same folder: reused, not run again); 'with' adds sv."""
    without, with_sv = plan.rerank(False)
    best = next(r for r in plan.features(False) if r.label == "best (cnn + hsv)")
    assert run_folder(tmp_path, without, ()) == run_folder(tmp_path, best, ())
    assert with_sv.overrides == (*without.overrides, "rerank=sv")
    assert not (without.reuse_only or with_sv.reuse_only)
    assert all(r.reuse_only for r in plan.rerank(True))  # --quick cites them, never runs them


def test_table_gives_map_delta_and_cost_per_query(tmp_path: Path) -> None:
    without = _outcome(tmp_path, 0, WITHOUT_AP)
    with_sv = _outcome(tmp_path, 1, WITH_AP, rerank=RERANK_INFO)
    got = table(without, with_sv)
    assert got.columns == COLUMNS
    rows = [dict(zip(got.columns, row, strict=True)) for row in got.rows]
    assert [r["re-ranking"] for r in rows] == ["without", "rerank=sv"]
    assert rows[0]["mAP [95% CI]"] == "0.6250 [0.400, 0.900]"
    assert rows[1]["mAP [95% CI]"] == "0.8250 [0.400, 0.900]"
    assert rows[0]["Δ mAP vs without (paired)"] == ""
    assert rows[1]["Δ mAP vs without (paired)"].startswith("+0.200 [")
    assert [r["search ms p50"] for r in rows] == ["0.091", "0.091"]
    assert [r["re-ranking ms/query"] for r in rows] == ["0", "612"]
    assert [r["verified / pairs"] for r in rows] == ["", "37 / 400"]
    words = answer(without, with_sv)
    assert "top 100 candidates" in words
    assert "from 0.625 [0.400, 0.900] to 0.825 [0.400, 0.900]: +0.200 [" in words
    assert "612 ms more per query against 0.091 ms for the index search" in words


def test_a_missing_run_is_named_not_compared(tmp_path: Path) -> None:
    without = _outcome(tmp_path, 0, WITHOUT_AP)
    missing = Outcome(plan.rerank(True)[1], tmp_path / "none", reason=REUSE_ONLY_REASON)
    rows = table(without, missing).rows
    assert rows[1][1] == REUSE_ONLY_REASON and rows[1][2:6] == ["", "", "", ""]
    assert answer(without, missing) == (
        "Re-ranking is not compared here: rerank=sv --quick cites it only once the full report "
        "has made it"
    )


def test_question_2_section_carries_the_rows(tmp_path: Path) -> None:
    """The Q2 section gains the table, the sentence and the with-run's command."""
    without = _outcome(tmp_path, 0, WITHOUT_AP)
    with_sv = _outcome(tmp_path, 1, WITH_AP, rerank=RERANK_INFO)
    exact = {
        **without.metrics,
        "config": {"feature": {"name": "cnn"}},
        "dim": 1280,
        "n_images": 4,
        "query_ms_p95": 0.1,
        "build_s": 0.001,
    }
    methods = Outcome(Run("exact", ("index=exact",), "methods"), without.folder, exact)
    section = search([methods], None, (), [without, with_sv])
    assert section.tables[-1].title == "Geometric re-ranking: mAP and cost per query"
    assert any("612 ms more per query" in a for a in section.answer)
    assert "python -m search_lab.evaluate +experiment=best rerank=sv" in section.commands
    assert pair([without]) is None
