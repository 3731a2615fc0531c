"""The photo-library benchmark runs end to end on a small library (long: several builds)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from search_lab.benchmarks.library import main

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
    assert "| hsv | 150 |" in out_md.read_text()


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
