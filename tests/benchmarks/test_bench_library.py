"""The photo-library benchmark runs end to end on a small library (long: several builds)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from search_lab.benchmarks import app_latency
from search_lab.benchmarks.library import app_lines, main
from search_lab.cli import build_index, compose_config

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.long
def test_library_benchmark_on_150_photos(tmp_path: Path, holidays_dir: Path) -> None:
    out_json, out_md = tmp_path / "library.json", tmp_path / "library.md"
    argv = ["--photos", str(holidays_dir), "--count", "150", "--features", "hsv",
            "--work", str(tmp_path / "work"), "--kind", "holidays-small",
            "--json", str(out_json), "--md", str(out_md)]  # fmt: skip
    assert main(argv) == 0
    run = json.loads(out_json.read_text())["runs"][0]
    assert run["images"] == 150 and run["full_build_s"] > 0 and run["full_peak_rss_mb"] > 0
    # 150 photos, every 1st of each 1/100 removed (100), 250 added: 300 left of the 150 - 100
    assert run["update"]["summary"].startswith(
        "added 250, changed 0, removed 100, unchanged 50; extracted 250 images in "
    )
    assert run["search_ms"]["queries"] == 50 and run["search_ms"]["p95"] >= run["search_ms"]["p50"]
    app = run["app_search"]
    assert app["available"] and app["queries"] == 50 and not app["errors"]
    assert app["shown_ms"]["p50"] >= app["results_ms"]["p50"] > 0
    assert "| hsv | 150 |" in out_md.read_text() and "| hsv | 50 | " in out_md.read_text()
    again = main([*argv, "--reuse", "--app-queries", "3"])  # searches only, build figures kept
    assert again == 0
    rerun = json.loads(out_json.read_text())["runs"][0]
    assert rerun["reused"] and rerun["full_build_s"] == run["full_build_s"]
    assert rerun["app_search"]["queries"] == 3


def test_app_latency_picks_each_photo_by_name_in_a_real_server(
    tmp_path: Path, wang_dir: Path
) -> None:
    library = tmp_path / "library"
    for i, name in enumerate(("0.jpg", "1.jpg", "100.jpg", "300.jpg", "400.jpg")):
        (library / f"{i % 2:04d}").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(wang_dir / "images" / name, library / f"{i % 2:04d}" / name)
    index, cache = tmp_path / "work" / "index", tmp_path / "work" / "cache"
    overrides = [f"dataset.root={library}", "dataset.layout=plain", f"index_dir={index}",
                 f"cache_dir={cache}", "progress=false", "workers=1"]  # fmt: skip
    build_index.run(compose_config(overrides, "build_index"), tmp_path / "out")
    names = ["0000/0.jpg", "0001/1.jpg", "0001/300.jpg"]
    got = app_latency.measure(index, library, cache, names)
    assert got["queries"] == 3 and got["errors"] == []  # each found itself first, at d=0
    for key in ("results_ms", "shown_ms", "engine_ms"):
        assert 0 < got[key]["p50"] <= got[key]["p95"]
    assert got["shown_ms"]["p95"] >= got["results_ms"]["p50"] and got["first_page_s"] > 0
    with pytest.raises(Exception, match="no query was answered"):
        app_latency.measure(index, library, cache, ["0000/no-such.jpg"])  # filter: nothing


def test_app_lines_lay_out_the_app_figures() -> None:
    app = {"available": True, "queries": 50, "errors": [], "first_page_s": 1.5,
           "results_ms": {"p50": 40.0, "p95": 90.5}, "shown_ms": {"p50": 60.0, "p95": 120.0},
           "engine_ms": {"p50": 20.0, "p95": 30.0},
           "load_avg": {"before": [1.0, 1.2, 1.3], "after": [1.1, 1.2, 1.3]}}  # fmt: skip
    lines = app_lines([{"feature": "hsv", "app_search": app}, {"feature": "cnn"}])
    assert lines[-1] == (
        "| hsv | 50 | 40.0 / 90.5 | 60.0 / 120.0 | 20.0 / 30.0 | 1.5 | "
        "[1.0, 1.2, 1.3] → [1.1, 1.2, 1.3] |"
    )
    assert app_lines([{"feature": "cnn"}]) == []  # measured before the app column existed


def test_too_few_photos_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"x")
    done = subprocess.run(
        [sys.executable, "-m", "search_lab.benchmarks.library", "--photos", str(tmp_path),
         "--count", "150", "--json", str(tmp_path / "x.json"), "--md", str(tmp_path / "x.md")],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: --photos {tmp_path} holds 1 JPEGs, 400 are needed; write more with "
        f"`python -m search_lab.data distractors --count 400 --dest {tmp_path}`"
    )
