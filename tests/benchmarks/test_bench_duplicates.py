"""The near-duplicates benchmark end to end on tiny planted sets (hsv and imagededup PHash)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from search_lab.benchmarks import duplicates as bench
from search_lab.data import EDITS


def test_sweep_picks_the_best_f1_threshold_by_hand() -> None:
    names = ["a", "a_copy", "b", "c"]
    truth = [["a", "a_copy"]]
    # a-a_copy at 0.1 (true), b-c at 0.2 (false), a-b at 0.3 (false)
    pairs = (np.array([0, 2, 0]), np.array([1, 3, 2]), np.array([0.1, 0.2, 0.3]))
    points = dict(bench.sweep(4, names, pairs, truth))
    assert points[0.1] == 1.0  # one pair found, the true one
    assert points[0.2] == pytest.approx(2 / 3)  # precision 1/2, recall 1
    assert points[0.3] == pytest.approx(2 / 7)  # all four in one group: 1 of 6 pairs true
    assert bench.best(list(points.items())) == 0.1
    assert bench.f1_at(4, names, pairs, truth, 0.05) == 0.0


@pytest.mark.long
def test_bench_writes_json_and_markdown(tmp_path: Path, holidays_dir: Path, wang_dir: Path) -> None:
    out_json, out_md = tmp_path / "d.json", tmp_path / "d.md"
    argv = ["--features", "hsv", "--originals", "3", "--unrelated", "4", "--work",
            str(tmp_path / "work"), "--holidays", str(holidays_dir), "--wang", str(wang_dir),
            "--json", str(out_json), "--md", str(out_md)]  # fmt: skip
    assert bench.main(argv) == 0
    result = json.loads(out_json.read_text())
    assert result["sets"]["tune"] == {"collection": "wang", "originals": 3, "copies": 15,
                                      "unrelated": 4, "images": 22}  # fmt: skip
    tools = [row["tool"] for row in result["rows"]]
    assert tools == ["search_lab hsv (cosine, exact)", "imagededup PHash (default threshold)",
                     "imagededup PHash (tuned threshold)"]  # fmt: skip
    for row in result["rows"]:
        assert 0 <= row["test"]["precision"] <= 1 and set(row["test"]["recall_per_edit"]) == set(
            EDITS
        )
    assert "| search_lab hsv (cosine, exact) |" in out_md.read_text()
    assert bench.main([*argv[:-4], "--tune", "wang", "--test", "wang"]) == 2
