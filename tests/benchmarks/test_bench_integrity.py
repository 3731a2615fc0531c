"""The checksum-verification benchmark stage on a small index."""

from __future__ import annotations

from pathlib import Path

from search_lab.benchmarks import integrity as bench_integrity


def test_verification_cost_small(tmp_path: Path) -> None:
    result = bench_integrity.verification_cost(n=3000, dim=16, rounds=2, work=tmp_path)
    assert result["hash"] == "xxh3_128" and (result["n"], result["dim"]) == (3000, 16)
    for kind in ("exact", "annoy"):
        r = result[kind]
        assert r["bytes"] > 3000 * 16 * 4  # the vectors (or forest) plus manifest and metadata
        assert r["verify_s"] > 0 and r["load_first_query_s"] > 0
        assert r["verify_share"] == r["verify_s"] / r["load_first_query_s"]
    lines = bench_integrity.markdown_lines(result)
    assert lines[0].startswith("## Checksum verification on load (3,000 x 16, xxh3_128")
    assert [line.split(" | ")[0] for line in lines[4:6]] == ["| exact", "| annoy"]
    assert list(tmp_path.iterdir()) == []  # the temporary indexes are gone


def test_cli_writes_both_reports(tmp_path: Path, capsys) -> None:
    out = tmp_path / "integrity.json"
    bench_integrity.main(["--n", "500", "--dim", "8", "--rounds", "1", "--out", str(out)])
    assert out.is_file() and "| exact |" in out.with_suffix(".md").read_text()
    assert "Load average" in capsys.readouterr().out
