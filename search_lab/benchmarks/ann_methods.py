"""The search methods and their parameter grid, and how one method is built, timed and scored."""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from search_lab import indexes
from search_lab.benchmarks.memory import MB, PeakRSS
from search_lab.evaluation import recall_at_k

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Method:
    """One build of one index type and the query-time values swept on it."""

    label: str
    kind: str
    build: dict[str, Any] = field(default_factory=dict)
    knob: str | None = None  # query-time attribute swept, e.g. "ef"
    values: tuple[Any, ...] = (None,)
    batch: dict[str, Any] = field(default_factory=dict)  # attribute -> value for batched runs
    max_queries: int | None = None  # slow methods: time only this many queries one at a time


ALL = -1


def _faiss(factory: str, knob: str, values: tuple[Any, ...]) -> Method:
    """A Faiss index built and batch-searched on every core."""
    build = {"factory": factory, "threads": ALL}
    return Method(f"faiss {factory}", "faiss", build, knob, values, batch={"threads": ALL})


GRID: tuple[Method, ...] = (
    Method("exact (numpy)", "exact", max_queries=20),
    Method("faiss Flat", "faiss", {"factory": "Flat"}, batch={"threads": ALL}),
    Method(
        "annoy 50 trees",
        "annoy",
        {"n_trees": 50, "seed": 0, "n_jobs": ALL},
        "search_k",
        (500, 2000, 10000),
    ),
    Method("kdtree", "kdtree", {}, "eps", (0.0, 2.0), batch={"n_jobs": ALL}, max_queries=20),
    Method(
        "hnsw M16",
        "hnsw",
        {"M": 16, "ef_construction": 100, "n_jobs": ALL},
        "ef",
        (10, 20, 40, 80, 160),
        batch={"query_jobs": ALL},
    ),
    Method(
        "nndescent",
        "nndescent",
        {"n_neighbors": 30, "leaf_budget": 16, "n_jobs": ALL},
        "epsilon",
        (0.0, 0.1, 0.2, 0.3),
    ),
    _faiss("IVF1024,Flat", "nprobe", (1, 4, 16, 64)),
    _faiss("IVF1024,PQ16", "nprobe", (4, 16, 64)),
    _faiss("HNSW32", "ef", (16, 32, 64, 128)),
)
"""The parameter grid. Builds use every core (n_jobs / threads -1: faster, not bit-for-bit
reproducible for the graph methods); single queries run on one thread, batches on every core."""

DIM_SETTING: dict[str, Any] = {
    "annoy 50 trees": 2000,
    "kdtree": 0.0,
    "hnsw M16": 40,
    "nndescent": 0.1,
    "faiss IVF1024,Flat": 16,
    "faiss IVF1024,PQ16": 16,
    "faiss HNSW32": 64,
}
"""The one query setting per method in the dimension sweep."""

SINGLE_THREAD = {"threads": 1, "query_jobs": 1, "n_jobs": 1}


def _set(index: indexes.Index, values: dict[str, Any]) -> None:
    for name, value in values.items():
        if hasattr(index, name):
            setattr(index, name, value)


def _disk_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.iterdir()) / MB


def _numba_threads(n: int) -> None:
    """pynndescent follows numba's global thread count; set it for the next call."""
    try:
        import numba

        numba.set_num_threads(max(1, n if n > 0 else os.cpu_count() or 1))
    except ImportError:  # nndescent not installed: nothing to set
        pass


def _latency(seconds: Sequence[float]) -> dict[str, float]:
    """Queries per second from the median latency (robust to a busy shared CPU), and the mean."""
    ms = 1e3 * np.asarray(seconds)
    return {
        "qps": float(1e3 / np.percentile(ms, 50)),
        "qps_mean": float(len(ms) / (ms.sum() / 1e3)),
        "ms_p50": float(np.percentile(ms, 50)),
        "ms_p95": float(np.percentile(ms, 95)),
    }


def time_queries(index: indexes.Index, queries: np.ndarray, k: int, n_single: int) -> dict:
    """Single-query latency (one thread) over ``n_single`` queries, then one batched call."""
    _set(index, SINGLE_THREAD)
    _numba_threads(1)
    seconds = []
    for q in queries[:n_single]:
        start = time.perf_counter()
        index.search(q[None, :], k)
        seconds.append(time.perf_counter() - start)
    return {**_latency(seconds), "single_queries": len(seconds)}


def build_method(
    method: Method, items: np.ndarray, work: Path
) -> tuple[indexes.Index, dict[str, Any]]:
    """``method`` built on ``items`` and saved once (for its size on disk); the build record."""
    index = indexes.create(method.kind, metric="euclidean", **method.build)
    _numba_threads(method.build.get("n_jobs", 1))
    start = time.perf_counter()
    with PeakRSS() as mem:
        index.build(items)
    build_s = time.perf_counter() - start
    folder = work / method.label.replace(" ", "_").replace(",", "_")
    folder.mkdir(parents=True, exist_ok=True)
    index.save(folder)
    record = {
        "method": method.label,
        "kind": method.kind,
        "build": method.build,
        "knob": method.knob,
        "build_s": build_s,
        "index_mb": _disk_mb(folder),
        "build_peak_rss_mb": mem.added / MB,
        "settings": [],
    }
    shutil.rmtree(folder, ignore_errors=True)
    return index, record


def time_setting(
    index: indexes.Index, method: Method, queries: np.ndarray, truth: np.ndarray, k: int
) -> dict[str, Any]:
    """Single-query and batched speed of the current setting; recall@k of the batch."""
    n_single = min(len(queries), method.max_queries or len(queries))
    row = time_queries(index, queries, k, n_single)
    _set(index, method.batch)
    _numba_threads(-1)
    start = time.perf_counter()
    found, _ = index.search(queries[:n_single], k)  # slow methods: their queries only
    row["batched_qps"] = n_single / (time.perf_counter() - start)
    row[f"recall_at_{k}"] = recall_at_k(found, truth[:n_single], k)
    return row


def bench_method(
    method: Method, items: np.ndarray, queries: np.ndarray, truth: np.ndarray, k: int, work: Path
) -> dict[str, Any]:
    """Build ``method`` once, save it, and time every query setting; recall from the batch."""
    index, out = build_method(method, items, work)
    for value in method.values:
        if method.knob:
            setattr(index, method.knob, value)
        row = {"value": value, **time_setting(index, method, queries, truth, k)}
        out["settings"].append(row)
        log.info(
            "  %s %s=%s: %.0f q/s single, %.0f batched, recall %.3f",
            method.label,
            method.knob,
            value,
            row["qps"],
            row["batched_qps"],
            row[f"recall_at_{k}"],
        )
    return out


def exact_truth(items: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Ids (Q, k) of the exact euclidean top ``k``: :class:`~search_lab.indexes.ExactIndex`."""
    exact = indexes.create("exact", metric="euclidean", block=64)
    exact.build(items)
    return exact.search(queries, k)[0]


def bench_set(
    name: str,
    items: np.ndarray,
    queries: np.ndarray,
    *,
    k: int,
    methods: Sequence[Method],
    work: Path,
    skip: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Every method on one collection; ``skip`` maps a method label to why it is left out."""
    log.info("%s: %d x %d, %d queries", name, *items.shape, len(queries))
    start = time.perf_counter()
    truth = exact_truth(items, queries, k)
    truth_s = time.perf_counter() - start
    skip = skip or {}
    runs = [bench_method(m, items, queries, truth, k, work) for m in methods if m.label not in skip]
    return {
        "name": name,
        "n_items": len(items),
        "dim": items.shape[1],
        "n_queries": len(queries),
        "items_mb": items.nbytes / MB,
        "truth_s": truth_s,
        "methods": runs,
        "skipped": skip,
    }
