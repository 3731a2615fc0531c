"""The search-method benchmark (``python -m search_lab.bench_ann``): the quick run writes its
reports; helpers do what they say."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from search_lab.benchmarks import ann
from search_lab.benchmarks.ann_data import Mixture
from search_lab.benchmarks.ann_methods import GRID
from search_lab.benchmarks.ann_report import pareto
from search_lab.benchmarks.memory import PeakRSS
from search_lab.core import read_json_object
from search_lab.evaluation import best_at


def test_quick_run_writes_json_markdown_and_chart(tmp_path: Path) -> None:
    out = tmp_path / "bench" / "ann.json"
    kinds = ["exact", "annoy", "kdtree", "hnsw", "faiss"]  # nndescent: numba compiles ~1 min
    ann.main(["--quick", "--methods", *kinds, "--out", str(out)])
    report = read_json_object(out)
    assert {"command", "machine", "config", "runs", "dims", "elapsed_s"} <= set(report)
    assert {"cpu", "cores", "ram_gb", "numpy", "annoy", "hnswlib", "faiss-cpu"} <= set(
        report["machine"]
    )
    (run,) = report["runs"]
    assert (run["n_items"], run["dim"]) == (3000, 128)
    assert {m["kind"] for m in run["methods"]} == set(kinds)
    for method in run["methods"]:
        assert {"build_s", "index_mb", "build_peak_rss_mb", "settings"} <= set(method)
        assert method["index_mb"] > 0 or "PQ" in method["method"]
        for s in method["settings"]:
            assert {"qps", "batched_qps", "ms_p50", "ms_p95", "recall_at_10"} <= set(s)
            assert 0.0 <= s["recall_at_10"] <= 1.0
    exact = next(m for m in run["methods"] if m["kind"] == "exact")
    assert exact["settings"][0]["recall_at_10"] == 1.0  # ground truth is ExactIndex itself
    assert [r["dim"] for r in report["dims"]] == [16, 32]
    assert all(len(m["settings"]) == 1 for r in report["dims"] for m in r["methods"])
    table = out.with_suffix(".md").read_text()
    assert "| hnsw M16 |" in table or "| **hnsw M16** |" in table
    assert "× Annoy" in table and "fastest method at recall@10 ≥ 0.95" in table
    assert "## Effect of dimension" in table and "(ann.png)" in table
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pareto_by_hand() -> None:
    pts = [("a", 0.5, 100.0), ("b", 0.9, 50.0), ("c", 0.8, 40.0), ("d", 0.99, 10.0)]
    assert [p[0] for p in pareto(pts)] == ["a", "b", "d"]  # c: b is better on both


def test_best_at_picks_the_fastest_setting_above_the_recall() -> None:
    run = {
        "methods": [
            {
                "method": "m",
                "knob": "ef",
                "settings": [
                    {"value": 1, "qps": 900.0, "recall_at_10": 0.5},
                    {"value": 2, "qps": 500.0, "recall_at_10": 0.92},
                    {"value": 3, "qps": 300.0, "recall_at_10": 0.99},
                ],
            }
        ]
    }
    assert best_at(run, 10, 0.9)["m"]["value"] == 2
    assert best_at(run, 10, 0.95)["m"]["value"] == 3
    assert best_at(run, 10, 0.999) == {}


def test_mixture_is_seeded_and_streams_differ() -> None:
    mix = Mixture(dim=8, components=5, intrinsic_dim=2)
    a, b = mix.sample(100, stream=0), mix.sample(100, stream=0)
    assert a.dtype == np.float32 and a.shape == (100, 8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, mix.sample(100, stream=1))


def test_faiss_grid_entries_build_and_batch_on_every_core() -> None:
    faiss = {m.label: m for m in GRID if m.kind == "faiss" and m.label != "faiss Flat"}
    assert sorted(faiss) == ["faiss HNSW32", "faiss IVF1024,Flat", "faiss IVF1024,PQ16"]
    for label, m in faiss.items():
        assert m.build == {"factory": label.removeprefix("faiss "), "threads": -1}
        assert m.batch == {"threads": -1} and m.knob in ("nprobe", "ef")


def test_peak_rss_sees_a_short_lived_allocation() -> None:
    with PeakRSS() as mem:
        block = np.ones(20_000_000)  # 160 MB, touched, then freed
        del block
    assert mem.added >= 100 * 2**20


def test_unknown_method_is_refused() -> None:
    with pytest.raises(SystemExit) as err:
        ann.parse_args(["--methods", "flann"])
    assert err.value.code == 2
