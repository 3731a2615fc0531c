"""Tests for search_lab.bench_ann: the quick run writes its reports; helpers do what they say."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from search_lab import bench_ann
from search_lab.bench_ann import Mixture, PeakRSS, exact_batched, exact_single, recall
from search_lab.results import read_json


def test_quick_run_writes_json_and_markdown(tmp_path: Path) -> None:
    out = tmp_path / "bench" / "ann.json"
    bench_ann.main(["--quick", "--out", str(out)])
    report = read_json(out)
    assert {"command", "machine", "config", "runs", "targets", "elapsed_s"} <= set(report)
    assert {"cpu", "cores", "ram_gb", "python", "numpy", "annoy"} <= set(report["machine"])
    (run,) = report["runs"]
    assert run["n_items"] == 5000
    assert {"batched_qps", "single", "single_queries"} <= set(run["exact"])
    assert {"matvec", "qps", "ms_p50", "ms_p95"} <= set(run["exact"]["single"])
    assert set(run["exact"]["single_by_matvec"]) == {"blas", "einsum"}
    (build,) = run["annoy"]
    assert {"n_trees", "build_s", "index_mb", "build_peak_rss_mb", "load_ms"} <= set(build)
    assert build["index_mb"] > 0
    assert [s["search_k"] for s in build["settings"]] == [-1, 1000]
    for setting in build["settings"]:
        assert {"qps", "ms_p50", "ms_p95", "recall_at_10", "speedup_vs_exact_single"} <= set(
            setting
        )
        assert 0.0 <= setting["recall_at_10"] <= 1.0
    assert report["targets"][0]["n_items"] == 5000
    table = out.with_suffix(".md").read_text()
    assert "| annoy | 10 |" in table and report["machine"]["cpu"] in table


def test_mixture_is_seeded_and_streams_differ() -> None:
    mix = Mixture(dim=8, components=5, intrinsic_dim=2)
    a, b = mix.sample(100, stream=0), mix.sample(100, stream=0)
    assert a.dtype == np.float32 and a.shape == (100, 8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, mix.sample(100, stream=1))


@pytest.mark.parametrize("matvec", ["blas", "einsum"])
def test_exact_single_and_batched_agree(matvec: str) -> None:
    rng = np.random.default_rng(0)
    items = rng.standard_normal((500, 8)).astype(np.float32)
    queries = rng.standard_normal((40, 8)).astype(np.float32)
    batched, _ = exact_batched(items, queries, 5, block=7)
    single, seconds = exact_single(items, queries, 5, matvec=matvec)
    np.testing.assert_array_equal(batched, single)
    assert len(seconds) == 40
    d = ((queries[:, None, :] - items[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(batched, np.argsort(d, axis=1)[:, :5])


def test_recall_ignores_padding() -> None:
    truth = np.array([[1, 2], [3, 4]])
    assert recall(np.array([[2, 1], [3, -1]]), truth) == pytest.approx(0.75)


def test_peak_rss_sees_a_short_lived_allocation() -> None:
    with PeakRSS() as mem:
        block = np.ones(20_000_000)  # 160 MB, touched, then freed
        del block
    assert mem.added >= 100 * 2**20
