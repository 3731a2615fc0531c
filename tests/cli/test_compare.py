"""search_lab.compare and the runs modules behind it on hand-written metrics files: loading,
filters, sorting, baseline, output."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from search_lab.cli.charts import write_chart
from search_lab.cli.compare import main
from search_lab.core import write_json, write_text
from search_lab.evaluation import (
    CompareError,
    bootstrap_ci,
    diff_to_baseline,
    filter_runs,
    load_runs,
    name_items,
    parse_filter,
    short_labels,
    sort_runs,
    table_markdown,
)
from search_lab.evaluation.runs import run_name


def make_run(
    folder: Path,
    map_: float,
    *,
    overrides: list[str] | None = None,
    feature: str = "hsv",
    metric: str = "cosine",
    index: dict[str, Any] | None = None,
    p1: float = 0.5,
    ann: dict[str, float] | None = None,
    ms: float | None = None,
    extract_s: float = 1.0,
    aps: dict[str, float] | None = None,
    ci: list[float] | None = None,
) -> Path:
    """A run folder with a metrics.json (and Hydra's overrides.yaml when ``overrides`` given).

    ``aps`` becomes ``per_query_ap`` and ``ci`` ``map_ci95`` (both absent when None).
    """
    metrics: dict[str, Any] = {
        "map": map_,
        "precision_at": {"1": p1, "10": p1 / 10},
        "recall_at": {"1": p1 / 2, "10": p1},
        "n_queries": 4,
        "n_images": 12,
        "n_skipped": 0,
        "extract_s": extract_s,
        "build_s": 0.5,
        "search_s": 0.25,
        "dim": 8,
        "config": {
            "feature": {"name": feature, "bins": [2, 2, 2]},
            "metric": {"name": metric},
            "index": index or {"name": "exact", "block": 256},
        },
    }
    if ann is not None:
        metrics["ann_recall_at"] = ann
    if aps is not None:
        metrics["per_query_ap"] = aps
    if ci is not None:
        metrics["map_ci95"] = ci
    if ms is not None:
        metrics["query_ms_p50"] = ms
        metrics["query_ms_p95"] = 2 * ms
    write_json(folder / "metrics.json", metrics)
    if overrides is not None:
        write_text(folder / ".hydra" / "overrides.yaml", "".join(f"- {o}\n" for o in overrides))
    return folder


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """A sweep of three runs (one Annoy) and a single run elsewhere."""
    sweep = tmp_path / "sweep"
    make_run(
        sweep / "a",
        0.5,
        overrides=["metric=cosine", "progress=false", "+experiment=x"],
        p1=0.6,
        ms=1.0,
    )
    make_run(
        sweep / "b",
        0.6,
        overrides=["index=annoy", "index.n_trees=10", "cache_dir=/c"],
        index={"name": "annoy", "n_trees": 10},
        p1=0.7,
        ann={"1": 0.9, "10": 0.8},
        ms=0.25,
    )
    make_run(
        sweep / "c", 0.4, overrides=["metric=euclidean"], metric="euclidean", p1=0.3, extract_s=3.0
    )
    make_run(tmp_path / "single" / "2025-01-01_10-00-00", 0.45, feature="lbp")
    return tmp_path


def test_load_runs_rows_columns_and_order(runs: Path) -> None:
    df = load_runs([runs / "sweep"])
    assert list(df["name"]) == ["index.n_trees=10,index=annoy", "metric=cosine", "metric=euclidean"]
    assert list(df["map"]) == [0.6, 0.5, 0.4]
    assert list(df.columns) == [
        "run",
        "name",
        "feature",
        "metric",
        "index",
        "index.n_trees",
        "map",
        "P@1",
        "P@10",
        "R@1",
        "R@10",
        "ANN-R@1",
        "ANN-R@10",
        "query_ms_p50",
        "query_ms_p95",
        "extract_s",
        "build_s",
        "search_s",
        "n_images",
        "n_skipped",
        "dim",
    ]
    assert df.loc[0, "run"] == str(runs / "sweep" / "b")
    assert df.loc[0, "index"] == "annoy" and df.loc[0, "index.n_trees"] == 10
    assert math.isnan(df.loc[1, "index.n_trees"]) and math.isnan(df.loc[1, "ANN-R@10"])
    assert df.loc[0, "ANN-R@10"] == 0.8 and df.loc[1, "P@1"] == 0.6 and df.loc[1, "R@10"] == 0.6
    assert math.isnan(df.loc[2, "query_ms_p50"]) and df.loc[2, "extract_s"] == 3.0


def test_load_runs_mixes_sweeps_single_runs_and_files_once(runs: Path) -> None:
    single = runs / "single" / "2025-01-01_10-00-00"
    df = load_runs([runs / "sweep", single / "metrics.json", runs, runs / "sweep" / "a"])
    assert len(df) == 4  # each metrics.json once, however often it is reachable
    row = df[df["feature"] == "lbp"].iloc[0]
    assert row["name"] == "2025-01-01_10-00-00"  # no overrides: the folder name
    assert "ANN-R@1" not in load_runs([single]).columns  # optional columns only when present


def test_load_runs_errors_and_skips(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(CompareError, match="does not exist"):
        load_runs([tmp_path / "nowhere"])
    write_text(tmp_path / "bad" / "metrics.json", "{not json")
    write_json(tmp_path / "other" / "metrics.json", {"accuracy": 1})
    df = load_runs([tmp_path])
    assert df.empty and "map" in df.columns and "name" in df.columns
    assert "not readable JSON" in caplog.text and "no 'map'" in caplog.text


def test_run_name_drops_result_neutral_keys() -> None:
    folder = Path("/x/job0")
    assert (
        run_name(folder, [("metric", "cosine"), ("workers", "2"), ("dataset.root", "/d")])
        == "metric=cosine"
    )
    assert (
        run_name(folder, [("experiment", "sweep_annoy"), ("index.n_trees", "5")])
        == "index.n_trees=5"
    )
    assert run_name(folder, [("experiment", "sweep_annoy")]) == "experiment=sweep_annoy"
    assert run_name(folder, [("progress", "false")]) == "job0"


def test_diff_to_baseline_by_name_row_and_run(runs: Path) -> None:
    df = load_runs([runs / "sweep"])  # rows: b (0.6), a (0.5), c (0.4)
    out = diff_to_baseline(df, "metric=cosine")
    assert out["Δmap"].tolist() == pytest.approx([0.1, 0.0, -0.1])
    assert out["ΔP@1"].tolist() == pytest.approx([0.1, 0.0, -0.3])
    assert out["Δextract_s"].tolist() == pytest.approx([0.0, 0.0, 2.0])
    assert out["Δquery_ms_p50"].iloc[0] == pytest.approx(-0.75) and math.isnan(
        out["Δquery_ms_p50"].iloc[2]
    )
    assert math.isnan(out["ΔANN-R@10"].iloc[0])  # the baseline has no ANN recall
    columns = list(out.columns)
    assert (
        columns[columns.index("map") + 1] == "Δmap" and columns[columns.index("P@1") + 1] == "ΔP@1"
    )
    assert "Δn_images" not in columns and "Δname" not in columns
    assert out.attrs["baseline"] == "metric=cosine"
    assert list(out["map"]) == list(df["map"])  # values kept, differences added
    by_row = diff_to_baseline(df, 2)
    assert by_row["Δmap"].tolist() == pytest.approx([0.2, 0.1, 0.0])
    assert diff_to_baseline(df, "2")["Δmap"].tolist() == by_row["Δmap"].tolist()
    by_run = diff_to_baseline(df, str(runs / "sweep" / "b"))
    assert by_run["Δmap"].tolist() == pytest.approx([0.0, -0.1, -0.2])


def test_name_items_and_short_labels() -> None:
    assert name_items("feature.bins=[2,2,2],metric=cosine") == [
        "feature.bins=[2,2,2]",
        "metric=cosine",
    ]
    assert name_items("job0") == ["job0"]
    names = ["index=annoy,index.n_trees=5,metric=dot", "index=annoy,index.n_trees=50,metric=dot"]
    assert short_labels(names) == ["index.n_trees=5", "index.n_trees=50"]
    assert short_labels(["a=1"]) == ["a=1"] and short_labels(["a=1", "a=1"]) == ["a=1", "a=1"]


def test_baseline_name_items_in_any_order(runs: Path) -> None:
    df = load_runs([runs / "sweep"])
    assert diff_to_baseline(df, "index=annoy,index.n_trees=10")["Δmap"].iloc[0] == 0


def test_diff_to_baseline_rejects_unknown_or_ambiguous(runs: Path) -> None:
    df = load_runs([runs / "sweep"])
    with pytest.raises(CompareError, match="metric=cosine"):  # the message lists the names
        diff_to_baseline(df, "feature=nope")
    with pytest.raises(CompareError, match=r"rows 0\.\.2"):
        diff_to_baseline(df, 7)
    twice = pd.concat([df, df], ignore_index=True)
    with pytest.raises(CompareError, match="names 2 rows"):
        diff_to_baseline(twice, "metric=cosine")


@pytest.mark.parametrize(
    ("expression", "parsed"),
    [
        ("feature==hsv", ("feature", "==", "hsv")),
        ("feature=hsv", ("feature", "==", "hsv")),
        ("map >= 0.5", ("map", ">=", "0.5")),
        ("P@1<0.7", ("P@1", "<", "0.7")),
        ("index.n_trees != 10", ("index.n_trees", "!=", "10")),
        ("name=='metric=cosine'", ("name", "==", "metric=cosine")),
        ("ANN-R@10>-1", ("ANN-R@10", ">", "-1")),
    ],
)
def test_parse_filter(expression: str, parsed: tuple[str, str, str]) -> None:
    assert parse_filter(expression) == parsed


@pytest.mark.parametrize(
    "expression", ["map", "map>", "==hsv", "map ~ 1", "__import__('os').system('true')"]
)
def test_parse_filter_rejects(expression: str) -> None:
    with pytest.raises(CompareError, match="COLUMN OP VALUE"):
        parse_filter(expression)


def test_filter_runs(runs: Path) -> None:
    df = load_runs([runs / "sweep"])

    def names(*expressions: str) -> list[str]:
        return list(filter_runs(df, expressions)["name"])

    assert names("metric==cosine") == ["index.n_trees=10,index=annoy", "metric=cosine"]
    assert names("metric=euclidean") == ["metric=euclidean"]
    assert names("map>=0.5", "metric!=euclidean") == [
        "index.n_trees=10,index=annoy",
        "metric=cosine",
    ]
    assert names("map<0.5") == ["metric=euclidean"]
    assert names("index.n_trees==10") == ["index.n_trees=10,index=annoy"]
    assert names("index.n_trees!=10") == ["metric=cosine", "metric=euclidean"]  # missing != 10
    assert names("query_ms_p50<=1") == ["index.n_trees=10,index=annoy", "metric=cosine"]
    assert filter_runs(df, ["metric==cosine"]).index.tolist() == [0, 1]
    with pytest.raises(CompareError, match="needs a number"):
        filter_runs(df, ["metric<cosine"])
    with pytest.raises(CompareError, match="available: run, name"):
        filter_runs(df, ["colour==red"])


def test_sort_runs(runs: Path) -> None:
    df = load_runs([runs / "sweep"])
    assert list(sort_runs(df, ["P@1"], ascending=True)["P@1"]) == [0.3, 0.6, 0.7]
    assert sort_runs(df, ["metric", "map"])["name"].iloc[0] == "metric=euclidean"
    fastest = sort_runs(df, ["query_ms_p50"], ascending=True)
    assert fastest["name"].iloc[0] == "index.n_trees=10,index=annoy"
    assert list(fastest.index) == [0, 1, 2]
    with pytest.raises(CompareError, match="unknown column"):
        sort_runs(df, ["speed"])


def test_table_markdown() -> None:
    df = pd.DataFrame(
        {"name": ["a|b", "c"], "map": [0.5, float("nan")], "Δmap": [0.0, -0.25], "n_images": [3, 4]}
    )
    assert table_markdown(df) == (
        "| name | map | Δmap | n_images |\n"
        "| --- | ---: | ---: | ---: |\n"
        "| a\\|b | 0.5000 | +0.0000 | 3 |\n"
        "| c |  | -0.2500 | 4 |\n"
    )
    assert table_markdown(df, index=True).splitlines()[2].startswith("| 0 | a\\|b |")


def test_write_chart_png_and_html(runs: Path, tmp_path: Path) -> None:
    df = load_runs([runs])
    png = write_chart(df, tmp_path / "out" / "chart.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = write_chart(diff_to_baseline(df, 0), tmp_path / "chart.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "data:image/png;base64," in page
    assert "<table" in page and "index.n_trees=10,index=annoy" in page and "Δmap" in page
    with pytest.raises(CompareError, match=r"\.png or \.html"):
        write_chart(df, tmp_path / "chart.pdf")
    with pytest.raises(CompareError, match="nothing to chart"):
        write_chart(df.iloc[0:0], tmp_path / "empty.png")


def test_cli_table_options(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = str(runs / "sweep")
    assert main([sweep, "--columns", "name,map", "--filter", "map>=0.5", "--format", "csv"]) == 0
    assert (
        capsys.readouterr().out
        == 'name,map\n"index.n_trees=10,index=annoy",0.6\nmetric=cosine,0.5\n'
    )

    assert (
        main(
            [
                sweep,
                "--columns",
                "name,map,P@1",
                "--sort",
                "P@1",
                "--ascending",
                "--baseline",
                "metric=cosine",
                "--format",
                "markdown",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "| # | name | map | Δmap | P@1 | ΔP@1 |"
    assert out[2] == "| 0 | metric=euclidean | 0.4000 | -0.1000 | 0.3000 | -0.3000 |"
    assert out[-1] == "Δ = row minus baseline 'metric=cosine'"

    assert main([sweep, str(runs / "single"), "--chart", str(runs / "c.png")]) == 0
    text = capsys.readouterr().out
    assert "2025-01-01_10-00-00" in text and "chart written" in text and "run " not in text
    assert (runs / "c.png").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing"], "does not exist"),
        (["--columns", "name,colour"], "unknown column(s) colour"),
        (["--filter", "map>>1"], "cannot read filter"),
        (["--filter", "map>2"], "no run passes"),
        (["--baseline", "nope"], "no row is named 'nope'"),
    ],
)
def test_cli_errors_are_one_line(
    runs: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    paths = [] if args == ["missing"] else [str(runs / "sweep")]
    argv = [str(runs / "missing")] if args == ["missing"] else [*paths, *args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_cli_no_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path)]) == 2
    assert "no metrics.json found" in capsys.readouterr().err


# ----------------------------------------------------------------- intervals and paired tests

THREE = ("q1.jpg", "q2.jpg", "q3.jpg")


@pytest.fixture
def scored(tmp_path: Path) -> Path:
    """Runs with hand-written per-query APs; A is the baseline (0.5 on q1..q3)."""
    make_run(tmp_path / "a", 0.5, overrides=["run=a"], aps=dict.fromkeys(THREE, 0.5))
    # 0.25 better on each of the three queries: exact p = 2/8, interval (0.25, 0.25)
    make_run(tmp_path / "b", 0.75, overrides=["run=b"], aps=dict.fromkeys(THREE, 0.75))
    make_run(tmp_path / "c", 0.5, overrides=["run=c"], aps=dict.fromkeys(THREE, 0.5))  # = A
    # shares q1 (+0.5) and q2 (0) only: differences [0.5, 0], interval (0, 0.5), p = 2/2
    make_run(
        tmp_path / "d",
        0.5,
        overrides=["run=d"],
        aps={"q1.jpg": 1.0, "q2.jpg": 0.5, "z.jpg": 0.0},
        ci=[0.1, 0.9],
    )
    make_run(tmp_path / "e", 0.9, overrides=["run=e"], aps={"other.jpg": 0.9})  # shares nothing
    make_run(tmp_path / "f", 0.45, overrides=["run=f"])  # written before per-query APs
    return tmp_path


def test_load_runs_map_interval_saved_or_bootstrapped(scored: Path) -> None:
    df = load_runs([scored]).set_index("name")
    assert list(df.columns[df.columns.get_loc("map") :][:4]) == [
        "map",
        "map_ci_low",
        "map_ci_high",
        "P@1",
    ]
    assert (df.loc["run=d", "map_ci_low"], df.loc["run=d", "map_ci_high"]) == (0.1, 0.9)  # saved
    assert (df.loc["run=b", "map_ci_low"], df.loc["run=b", "map_ci_high"]) == (0.75, 0.75)
    assert math.isnan(df.loc["run=f", "map_ci_low"])  # nothing to compute it from
    scores = df.attrs["per_query_ap"]
    assert scores[str(scored / "e")] == {"other.jpg": 0.9} and scores[str(scored / "f")] == {}


def test_load_runs_bootstraps_older_runs_like_evaluate(tmp_path: Path) -> None:
    aps = {"q1.jpg": 0.2, "q2.jpg": 0.9, "q3.jpg": 0.4, "q4.jpg": 1.0}
    make_run(tmp_path / "old", 0.625, aps=aps)
    make_run(tmp_path / "tampered", 0.625, aps=aps, ci=[0.9, "x"])  # type: ignore[list-item]
    make_run(tmp_path / "reversed", 0.625, aps=aps, ci=[0.9, 0.1])
    for _, row in load_runs([tmp_path]).iterrows():
        assert (row["map_ci_low"], row["map_ci_high"]) == bootstrap_ci(list(aps.values()))


def test_malformed_per_query_ap_is_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_run(tmp_path / "x", 0.5, aps={"q1.jpg": "high"})  # type: ignore[dict-item]
    df = load_runs([tmp_path])
    assert len(df) == 1 and "map_ci_low" not in df.columns
    assert "per_query_ap is not query -> number" in caplog.text


def test_diff_to_baseline_pairs_runs_query_by_query(scored: Path) -> None:
    out = diff_to_baseline(load_runs([scored]), "run=a").set_index("name")
    columns = list(out.columns)
    at = columns.index("Δmap")
    assert columns[at : at + 5] == ["Δmap", "Δmap_low", "Δmap_high", "Δmap_p", "Δmap_shared"]
    paired = out[["Δmap_low", "Δmap_high", "Δmap_p", "Δmap_shared"]]
    assert paired.loc["run=b"].tolist() == [0.25, 0.25, 0.25, 3]
    assert paired.loc["run=a"].tolist() == [0.0, 0.0, 1.0, 3]  # the baseline against itself
    assert paired.loc["run=c"].tolist() == [0.0, 0.0, 1.0, 3]  # an identical run
    assert paired.loc["run=d"].tolist() == [0.0, 0.5, 1.0, 2]  # q1 and q2 shared
    assert paired.loc["run=e", "Δmap_shared"] == 0 and math.isnan(paired.loc["run=e", "Δmap_p"])
    assert paired.loc["run=f"].isna().all()  # no per-query APs
    assert "Δmap_low" not in diff_to_baseline(load_runs([scored]), "run=f").columns


def test_significant_difference(tmp_path: Path) -> None:
    queries = [f"q{i:02d}.jpg" for i in range(20)]
    make_run(tmp_path / "base", 0.4, overrides=["run=base"], aps=dict.fromkeys(queries, 0.4))
    better = {q: 0.41 + 0.01 * i for i, q in enumerate(queries)}  # better on every query
    make_run(tmp_path / "better", 0.505, overrides=["run=better"], aps=better)
    out = diff_to_baseline(load_runs([tmp_path]), "run=base").set_index("name")
    assert out.loc["run=better", "Δmap_p"] < 0.01
    assert 0.0 < out.loc["run=better", "Δmap_low"] < 0.105 < out.loc["run=better", "Δmap_high"]
    text = table_markdown(out.reset_index()[["name", "map", "Δmap", "Δmap_low", "Δmap_high"]])
    assert "| run=better | 0.5050 | +0.1050 | [+0.0" in text and " ns" not in text


def test_cli_marks_differences_that_are_not_significant(
    scored: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [str(scored), "--columns", "name,map", "--baseline", "run=a", "--format", "markdown"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| # | name | map | map 95% CI | Δmap | Δmap 95% CI | p | shared |"
    rows = {line.split(" | ")[1]: line for line in lines[2:8]}
    assert rows["run=b"].endswith(
        "| 0.7500 | [0.7500, 0.7500] | +0.2500 ns | [+0.2500, +0.2500] | 0.250 | 3 |"
    )
    assert rows["run=a"].endswith("| 0.5000 | [0.5000, 0.5000] | +0.0000 | baseline |  | 3 |")
    assert rows["run=e"].endswith("| +0.4000 | no shared query |  | 0 |")
    assert rows["run=f"].endswith("| 0.4500 |  | -0.0500 |  |  |  |")
    assert "ns: not significant at 5% (p >= 0.05)" in lines[-1]
    assert lines[-2].startswith("map 95% CI: percentile bootstrap")

    assert main([*argv[:-1], "csv"]) == 0
    csv = capsys.readouterr().out.splitlines()
    assert csv[0] == "name,map,map_ci_low,map_ci_high,Δmap,Δmap_low,Δmap_high,Δmap_p,Δmap_shared"
    assert "run=b,0.75,0.75,0.75,0.25,0.25,0.25,0.25,3" in csv


def test_chart_with_intervals(scored: Path, tmp_path: Path) -> None:
    df = diff_to_baseline(load_runs([scored]), "run=a")
    assert write_chart(df, tmp_path / "ci.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = write_chart(df, tmp_path / "ci.html").read_text()
    assert "map 95% CI" in page and "not significant at 5%" in page
