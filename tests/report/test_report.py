"""The findings report: ``python -m search_lab.report --quick`` end to end on holidays-small.

Every table row that cites a run must show exactly that run's ``metrics.json`` figures; a
second report reuses every run; bad overrides are one line and exit status 2.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from search_lab.core import ConfigError, read_json_object
from search_lab.report import HTML_FILE, MD_FILE
from search_lab.report.cells import same_top
from search_lab.report.runs import Outcome, Run, not_run_reason, run_folder
from search_lab.report.sections import HEADINGS

ROOT = Path(__file__).resolve().parents[2]


def report(out: Path, cache: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the report command on holidays-small into ``out`` with a private feature cache."""
    env = {**os.environ, "SEARCH_LAB_CACHE": str(cache)}
    return subprocess.run(
        [sys.executable, "-m", "search_lab.report", "--out", str(out), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def md_tables(section: str) -> list[list[dict[str, str]]]:
    """The Markdown tables of a section, each as a list of {column: cell} rows."""
    tables, lines = [], section.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("| ") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            head = [c.strip() for c in line.strip("|").split(" | ")]
            rows = []
            for row in lines[i + 2 :]:
                if not row.startswith("| "):
                    break
                rows.append(
                    dict(zip(head, [c.strip() for c in row[2:-2].split(" | ")], strict=True))
                )
            tables.append(rows)
    return tables


def expected_cells(metrics: dict) -> dict[str, str]:
    """How the report must print each figure of ``metrics``."""
    low, high = metrics["map_ci95"]
    cells = {
        "mAP [95% CI]": f"{metrics['map']:.4f} [{low:.3f}, {high:.3f}]",
        "P@1": f"{metrics['precision_at']['1']:.4f}",
        "dim": str(metrics["dim"]),
        "query ms p50": f"{metrics['query_ms_p50']:.3f}",
        "exact query ms p50": f"{metrics['query_ms_p50']:.3f}",
        "query ms p95": f"{metrics['query_ms_p95']:.3f}",
        "build s": f"{metrics['build_s']:.3f}",
    }
    if "ann_recall_at" in metrics:
        cells["recall@10 of exact"] = f"{metrics['ann_recall_at']['10']:.4f}"
    return cells


def check_section(section: str) -> int:
    """Every run-citing row of ``section`` equals its run's metrics.json; rows checked."""
    checked = 0
    for table in md_tables(section):
        for row in table:
            if "run" not in row:
                continue
            folder = Path(row["run"].strip("`"))
            folder = folder if folder.is_absolute() else ROOT / folder
            if not (folder / "metrics.json").is_file():
                assert row["mAP [95% CI]"].startswith("not run: "), row
                continue
            metrics = read_json_object(folder / "metrics.json")
            for column, text in expected_cells(metrics).items():
                if column in row:
                    assert row[column] == text, (folder, column)
            checked += 1
    return checked


@pytest.mark.long  # about a minute: CI runs it with `-m long`, apart from the default run
def test_quick_report_end_to_end(tmp_path: Path, holidays_dir: Path) -> None:
    """Four sections, each with tables equal to the cited runs; charts inline; resumed rerun."""
    out, cache = tmp_path / "report", tmp_path / "cache"
    done = report(out, cache, "--quick")
    assert done.returncode == 0, done.stderr[-2000:]
    (folder,) = [p for p in out.iterdir() if p.name != "runs"]
    md = (folder / MD_FILE).read_text()
    top = md.split("\n## ")[0]
    assert "`--quick` leaves out" in top and "cnn two scales" in top and "1,280-d" in top
    assert "Best of all" not in md  # "best" only of a measurable winner (claims.py)
    sections = re.split(r"^## ", md, flags=re.M)[1:]
    assert [s.splitlines()[0] for s in sections] == list(HEADINGS)
    for section in sections:
        assert check_section(section) >= 3, section[:200]
    # Q3: unit-length euclidean ranks exactly as cosine (||a-b||^2 = 2 - 2cos)
    assert re.search(r"\| unit length \(default\) \| euclidean \| [^|]+ \| 100\.0% \|", md)
    assert "2 − 2·cos(a, b)" in sections[2]
    assert "not run: weights missing (feature.weights=" in sections[3]
    page = (folder / HTML_FILE).read_text()
    assert page.count('src="data:image/png;base64,') >= 4
    assert "http://" not in page and "https://" not in page
    for heading in HEADINGS:
        assert f"<h2>{heading}</h2>" in page
    for chart in re.findall(r"!\[[^]]*\]\(([^)]+)\)", md):
        assert (folder / chart).read_bytes().startswith(b"\x89PNG")

    again = report(out, cache, "--quick", "--export", str(tmp_path / "docs"))
    assert again.returncode == 0, again.stderr[-2000:]
    exported = sorted(p.name for p in (tmp_path / "docs").iterdir())
    assert exported == sorted([MD_FILE, *(p.name for p in folder.glob("*.png"))])
    record = read_json_object(
        sorted(p for p in out.iterdir() if p.name != "runs")[-1] / "report.json"
    )
    assert all(r["reused"] or r["reason"] for r in record["runs"])


def test_bad_override_is_one_line(tmp_path: Path) -> None:
    """An override that does not compose stops the report with one error line, status 2."""
    done = report(tmp_path / "out", tmp_path / "cache", "--quick", "feature.binz=3")
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: ")
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() or not [
        p for p in (tmp_path / "out").iterdir() if p.name != "runs"
    ]


def test_run_folder_ignores_neutral_overrides(tmp_path: Path) -> None:
    """cache_dir / progress / workers do not change where a run is kept (so it is reused)."""
    run = Run("lbp", ("feature=lbp",))
    plain = run_folder(tmp_path, run, ())
    assert plain == tmp_path / "feature=lbp"
    assert run_folder(tmp_path, run, ("cache_dir=/x", "workers=1")) == plain
    assert run_folder(tmp_path, run, ("dataset=wang",)) == tmp_path / "feature=lbp,dataset=wang"
    assert run_folder(tmp_path, Run("hsv"), ()) == tmp_path / "defaults"


def test_not_run_reason_names_the_weights() -> None:
    """A missing-weights error becomes 'not run: weights missing (feature.weights=...)'."""
    err = ConfigError(
        "cnn: pretrained weights a.pth are not available offline (no network); put the file "
        "at /hub/a.pth (the torch hub cache) or pass feature.weights=/path/to/a.pth"
    )
    assert not_run_reason(err) == "not run: weights missing (feature.weights=/path/to/a.pth)"
    assert not_run_reason(ConfigError("metric chi2 needs non-negative vectors")) == (
        "not run: metric chi2 needs non-negative vectors"
    )


def test_same_top_reads_rankings(tmp_path: Path) -> None:
    """Share of queries whose top-k lists agree, read from two rankings.dat files."""
    outcomes = []
    for name, lines in (
        ("a", ["q1 0 x 1 y 2 z", "q2 0 y 1 x"]),
        ("b", ["q1 0 x 1 y 2 w", "q2 0 x 1 y"]),
    ):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "rankings.dat").write_text("\n".join(lines) + "\n")
        outcomes.append(Outcome(Run(name), folder, metrics={"map": 0.0}))
    assert same_top(*outcomes, k=2) == 0.5  # q1 agrees on its top 2, q2 does not
    assert same_top(*outcomes, k=3) == 0.0
