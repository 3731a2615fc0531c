"""Unit tests for issue 24's app helpers: the weak-match calibration, the readable runs table and
its case-insensitive filter, bounded charts, and "more like this" searches (hand-made inputs)."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from search_lab.app import calibration, charts, run_table
from search_lab.app import queries as app_queries
from search_lab.data import Dataset
from search_lab.data.splits import on_tune_side
from search_lab.evaluation import CompareError
from search_lab.indexes import create
from tests.app.test_app_support import _FakeEngine, _runs_table


def test_separating_threshold_by_hand() -> None:
    assert calibration.separating_threshold([0.1, 0.2], [0.3, 0.4]) == pytest.approx(0.25)
    # candidates .1 .15 .225 .275 .35 .45 .5; TPR + TNR is 5/3 at .225 and at .35: the larger
    assert calibration.separating_threshold([0.1, 0.2, 0.3], [0.25, 0.4, 0.5]) == pytest.approx(
        0.35
    )
    with pytest.raises(ValueError, match="both"):
        calibration.separating_threshold([], [0.3])


def test_similarity_scale_and_weak_mark() -> None:
    cal = calibration.Calibration(threshold=0.2, queries=3, relevant=3, irrelevant=12)
    assert [cal.similarity(d) for d in (0.0, 0.1, 0.2, 0.3, 0.4, 0.9)] == pytest.approx(
        [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    )
    assert not cal.weak(0.2) and cal.weak(0.2001)
    assert "0.2000" in cal.help_text() and "3 tune-side queries" in cal.help_text()


def _line_engine() -> tuple[SimpleNamespace, Dataset]:
    """Three groups of two points on a line: a and c on the tune side, b (near a) on the test."""
    assert [on_tune_side(g, fraction=0.5, seed=0) for g in "abc"] == [True, False, True]
    points = {"a0": 0.0, "a1": 1.0, "b0": 3.0, "b1": 3.5, "c0": 20.0, "c1": 21.0}
    names = list(points)
    index = create("exact", metric="euclidean")
    index.build(np.array([[points[n], 0.0] for n in names], np.float32))
    engine = SimpleNamespace(names=names, config={"dataset": {}}, index=index)
    data = Dataset(
        root=Path("/nowhere"),
        names=tuple(names),
        groups=("a", "a", "b", "b", "c", "c"),
        queries=(0, 2, 4),
        relevant={0: frozenset({1}), 2: frozenset({3}), 4: frozenset({5})},
    )
    return engine, data


def test_calibration_uses_tune_side_only() -> None:
    engine, data = _line_engine()
    cal = calibration.calibrate(engine, data)  # type: ignore[arg-type]
    # a0: a1 at 1 (relevant), c0 20, c1 21; c0: c1 at 1, a1 19, a0 20. The test-side b images
    # (3 and 3.5 from a0) would pull the threshold down to 1.75 if they counted.
    assert cal is not None
    assert (cal.threshold, cal.queries, cal.relevant, cal.irrelevant) == (10.0, 2, 2, 4)
    assert calibration.calibrate(engine, None) is None  # type: ignore[arg-type]


def test_calibration_extracts_queries_when_the_index_keeps_no_vectors() -> None:
    engine, data = _line_engine()
    rows = dict(zip(engine.names, engine.index.vectors, strict=True))
    extracted: list[str] = []

    def vectorize(path: str) -> list[np.ndarray]:
        extracted.append(path)
        return [rows[path]]

    bare = SimpleNamespace(
        names=engine.names,
        config=engine.config,
        index=SimpleNamespace(search=engine.index.search),  # an ANN index: no stored rows
        vectorize=vectorize,
        path_of=lambda name: name,
    )
    cal = calibration.calibrate(bare, data)  # type: ignore[arg-type]
    assert extracted == ["a0", "c0"]  # the tune-side queries only
    assert cal is not None and cal.threshold == 10.0


def test_search_leaves_an_indexed_image_out_of_its_own_results() -> None:
    engine = _FakeEngine(["b.jpg", "a.jpg", "c.jpg"])
    result = app_queries.search(engine, Path("b.jpg"), 2, None, "b.jpg")  # type: ignore[arg-type]
    assert engine.asked == [3]  # one more than shown: the image itself comes first
    assert [(h.rank, h.name) for h in result.hits] == [(1, "a.jpg"), (2, "c.jpg")]
    assert result.ap is None


def test_column_labels_and_legend() -> None:
    assert [run_table.column_label(c) for c in ("map", "P@10", "ANN-R@5", "index.n_trees")] == [
        "mAP",
        "Precision@10",
        "ANN recall@5",
        "index.n_trees",
    ]
    legend = run_table.legend(["map", "R@20", "post.whiten"])
    assert legend["key"].tolist() == ["map", "R@20", "post.whiten"]
    assert "first 20 results" in legend["meaning"][1]


def test_filter_ignores_case_in_column_and_text(tmp_path: Path) -> None:
    runs = _runs_table(tmp_path)  # mAP 0.50 (a), 0.45 (b, annoy), 0.60 (c)
    names = lambda expression: run_table.filter_expression(runs, expression)["name"].tolist()  # noqa: E731
    assert names("mAP>0.55") == ["run-c"]
    assert names("MAP >= 0.5") == ["run-a", "run-c"]
    assert names("Search=ANNOY") == ["run-b"]  # a column by its human name, a value in caps
    assert names("feature==HSV") == ["run-a", "run-b", "run-c"]
    runs.loc[0, "feature"] = "HSV"  # a value written in capitals matches too
    assert names("feature=hsv") == ["run-a", "run-b", "run-c"]
    with pytest.raises(CompareError, match=r"unknown column.*bogus"):
        names("bogus>1")


def test_dates_and_empty_cells(tmp_path: Path) -> None:
    runs = _runs_table(tmp_path)
    stamp = datetime(2026, 1, 2, 3, 4, 5).timestamp()
    os.utime(tmp_path / "a" / "metrics.json", (stamp, stamp))
    dated = run_table.with_dates(runs)
    assert dated.columns[2] == "date" and dated["date"][0] == "2026-01-02 03:04:05"
    html = run_table.display_table(dated, ["name", "map", "ANN-R@10"]).to_html()
    assert "ANN recall@10" in html and "0.5000" in html and "—" in html and "None" not in html
    assert [run_table.cell_text(v) for v in (None, float("nan"), 0.123456, 648)] == [
        "—",
        "—",
        "0.1235",
        "648",
    ]


def test_charts_stay_within_one_screen() -> None:
    runs = pd.DataFrame(
        {
            "name": [f"feature=f{i}" for i in range(100)],
            "map": np.linspace(0, 1, 100),
            "P@5": np.linspace(1, 0, 100),
        }
    )
    assert charts.chart_metrics(runs) == ["map", "P@5"]
    spec = charts.metric_chart(runs, "P@5").to_dict()
    assert spec["height"] == charts.bar_height(charts.MAX_BARS) <= charts.MAX_HEIGHT
    labels = spec["encoding"]["y"]["sort"]
    assert len(labels) == charts.MAX_BARS and labels[0] == "f0"  # best P@5 first
    assert (charts.bar_height(3), charts.bar_height(10), charts.bar_height(99)) == (120, 260, 600)


def test_ann_chart_latency_on_a_log_axis() -> None:
    points = pd.DataFrame(
        {"name": ["a", "b"], "method": ["hnsw", "annoy"], "query_ms_p50": [0.1, 2], "R": [0.9, 1]}
    )
    spec = charts.ann_chart(points, "R").to_dict()
    assert spec["layer"][0]["encoding"]["x"]["scale"]["type"] == "log"
    assert spec["height"] <= charts.MAX_HEIGHT
    assert json.dumps(spec).count('"method"') >= 1
