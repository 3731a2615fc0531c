"""The update-in-place benchmark: its table from hand-made rows, and a small run (long)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from search_lab.benchmarks.update_in_place import INDEXES, main, report


def test_report_names_how_each_update_went() -> None:
    rows = [
        {"index": "hnsw", "full_build_s": 30.0, "in_place": True, "how": {"mode": "slots"},
         "update_s": 0.5, "index_s": 0.1, "rebuild_update_s": 2.0, "rebuild_index_s": 1.6},
        {"index": "faiss HNSW32", "full_build_s": 20.0, "in_place": False,
         "how": {"why": "Faiss cannot remove items from HNSW32"}, "update_s": 1.0, "index_s": 0.8,
         "rebuild_update_s": 1.0, "rebuild_index_s": 0.8},
    ]  # fmt: skip
    result = {"feature": "hsv", "count": 5000, "added": 250, "removed": 100, "photos": "p",
              "machine": {"cores": 2, "load_avg_at_start": [1.0]}, "load_avg_at_end": [2.0],
              "rows": rows}  # fmt: skip
    lines = report(result).splitlines()
    assert (
        lines[0]
        == "# Update in place or rebuild from cached vectors (hsv, 5,000 photos, +250 −100)"
    )
    assert lines[-2] == "| hnsw | 30.0 | in place (slots) | 0.5 | 0.1 | 2.0 | 1.6 | 25% |"
    assert lines[-1] == (
        "| faiss HNSW32 | 20.0 | rebuilt: Faiss cannot remove items from HNSW32 | 1.0 | 0.8 | "
        "1.0 | 0.8 | 100% |"
    )


@pytest.mark.long
def test_update_in_place_benchmark_on_300_photos(tmp_path: Path, holidays_dir: Path) -> None:
    out = tmp_path / "u.json"
    argv = ["--photos", str(holidays_dir), "--count", "300", "--work", str(tmp_path / "w"),
            "--json", str(out), "--md", str(tmp_path / "u.md")]  # fmt: skip
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "notes.txt").write_text("the user's own")  # --work may hold other files
    assert main([*argv, "--refit-share", "2"]) == 0  # 350 changes of 300: in place all the same
    rows = {r["index"]: r for r in json.loads(out.read_text())["rows"]}
    assert list(rows) == list(INDEXES)
    modes = {label: r["how"].get("mode") for label, r in rows.items()}
    # IVF64 on 300 vectors is built as IVF7 (300 // 39); at 450 it would be IVF11: rebuilt
    assert modes == {"exact": "compact", "hnsw": "slots", "faiss Flat": "compact",
                     "faiss IVF64,Flat": None, "faiss HNSW32": None}  # fmt: skip
    assert all(r["summary"].startswith("added 250, changed 0, removed 100") for r in rows.values())
    assert all(r["rebuild_why"].endswith("(over 0)") for r in rows.values())
    assert main(argv) == 0  # the default share 0.2: 350 of 300 changed, every index rebuilt
    rows = json.loads(out.read_text())["rows"]
    assert not any(r["in_place"] for r in rows)
    assert (tmp_path / "w" / "notes.txt").read_text() == "the user's own"  # never deleted
