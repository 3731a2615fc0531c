"""Every search method side by side: ``python -m search_lab.bench_ann [options]``.

Each method of the index registry (exact, Annoy, kd-tree, NN-descent, HNSW, Faiss) is built
with a small parameter grid on clustered synthetic vectors (a seeded Gaussian mixture, 100k
and 1M x 128), on the real Holidays CNN descriptors (1280-d, and PCA to 128, read through the
project's extraction and feature cache) and, for the effect of dimension, on mixtures of
32, 128, 512 and 1280 dimensions. Ground truth is :class:`~search_lab.indexes.ExactIndex`, the
one exact top-k of the code base. Measured per build: seconds, size of the saved folder on
disk, peak resident memory added by the build (:class:`PeakRSS`); per query setting: queries
per second one query at a time and in one batch (every core), latency percentiles and
recall@k. Results go to a JSON file, a Markdown report and a recall-vs-QPS chart beside it
(:mod:`search_lab.bench_ann_report`).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import re
import shlex
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from search_lab import indexes
from search_lab.results import write_json

log = logging.getLogger(__name__)

DEFAULT_OUT = Path("bench/ann.json")
QUICK_OUT = Path("bench/ann-quick.json")


@dataclass(frozen=True)
class Mixture:
    """A Gaussian mixture whose components are flat: low-rank spread plus a little noise.

    Component c draws ``mean_c + spread * B_c z + noise * e`` with ``z`` ~ N(0, I) in
    ``intrinsic_dim`` dimensions, ``B_c`` a random orthonormal (dim, intrinsic_dim) basis and
    ``e`` ~ N(0, I) in ``dim`` dimensions; means are N(0, I). Real descriptors behave like this
    (clusters of low intrinsic dimension); isotropic 128-d components would make every
    nearest neighbour about as far as any other point of its cluster, a test of nothing.
    """

    dim: int = 128
    components: int = 1000
    intrinsic_dim: int = 24
    spread: float = 2.0
    noise: float = 0.1
    seed: int = 0

    def sample(self, n: int, stream: int) -> np.ndarray:
        """``n`` float32 vectors (N, dim); the same ``stream`` gives the same vectors.

        The mixture's parameters depend on ``seed`` alone, so items and queries drawn with
        different streams come from one distribution.
        """
        params = np.random.default_rng([self.seed, 0])
        means = params.standard_normal((self.components, self.dim), dtype=np.float32)
        rng = np.random.default_rng([self.seed, 1 + stream])
        counts = rng.multinomial(n, np.full(self.components, 1.0 / self.components))
        out = np.empty((n, self.dim), np.float32)
        start = 0
        for c, count in enumerate(counts):
            # the basis is drawn whether or not the component is used: same mixture for every n
            basis, _ = np.linalg.qr(params.standard_normal((self.dim, self.intrinsic_dim)))
            if count == 0:
                continue
            z = rng.standard_normal((count, self.intrinsic_dim), dtype=np.float32)
            block = out[start : start + count]
            block[:] = means[c] + self.spread * (z @ basis.T.astype(np.float32))
            block += self.noise * rng.standard_normal((count, self.dim), dtype=np.float32)
            start += count
        rng.shuffle(out)  # in place, by rows: components interleaved, no copy
        return out


def _proc_status(field: str) -> int | None:
    """A ``kB`` field of /proc/self/status in bytes, or None where there is no procfs."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else None


class PeakRSS:
    """Peak resident memory (RSS) added to this process inside a ``with`` block, in bytes.

    Annoy allocates in C++, which ``tracemalloc`` never sees, so the operating system is asked:
    on Linux the kernel's high-water mark (``VmHWM``) is reset to the current RSS by writing
    ``5`` to ``/proc/self/clear_refs`` and read back at the end, which catches even a brief
    peak. Elsewhere a thread samples ``psutil`` RSS every 10 ms (may miss short peaks).
    The result is ``peak - RSS before``: memory already resident (the input vectors) is not
    counted; pages of a memory-mapped file being written count while they are resident.
    """

    def __enter__(self) -> PeakRSS:
        self._process = psutil.Process()
        self.before = self._process.memory_info().rss
        self.peak = self.before
        self._kernel = False
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self._kernel = _proc_status("VmHWM") is not None
        except OSError:
            pass
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if not self._kernel:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        rss = self._process.memory_info().rss
        hwm = _proc_status("VmHWM") if self._kernel else None
        self.peak = max(self.peak, rss, hwm or 0)
        self.method = "VmHWM after clear_refs" if self._kernel else "psutil RSS sampled every 10 ms"

    @property
    def added(self) -> int:
        """Peak RSS minus RSS before the block, in bytes."""
        return self.peak - self.before


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each row of ``truth`` (Q, k) found in the same row of ``found``."""
    hits = [len(set(f[f >= 0]) & set(t)) for f, t in zip(found, truth, strict=True)]
    return float(np.sum(hits) / truth.size)


def _latency(seconds: Sequence[float]) -> dict[str, float]:
    """Queries per second from the median latency (robust to a busy shared CPU), and the mean."""
    ms = 1e3 * np.asarray(seconds)
    return {
        "qps": float(1e3 / np.percentile(ms, 50)),
        "qps_mean": float(len(ms) / (ms.sum() / 1e3)),
        "ms_p50": float(np.percentile(ms, 50)),
        "ms_p95": float(np.percentile(ms, 95)),
    }


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
    Method(
        "faiss IVF1024,Flat",
        "faiss",
        {"factory": "IVF1024,Flat", "threads": ALL},
        "nprobe",
        (1, 4, 16, 64),
        batch={"threads": ALL},
    ),
    Method(
        "faiss IVF1024,PQ16",
        "faiss",
        {"factory": "IVF1024,PQ16", "threads": ALL},
        "nprobe",
        (4, 16, 64),
        batch={"threads": ALL},
    ),
    Method(
        "faiss HNSW32",
        "faiss",
        {"factory": "HNSW32", "threads": ALL},
        "ef",
        (16, 32, 64, 128),
        batch={"threads": ALL},
    ),
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
    return sum(p.stat().st_size for p in folder.iterdir()) / 2**20


def _numba_threads(n: int) -> None:
    """pynndescent follows numba's global thread count; set it for the next call."""
    try:
        import numba

        numba.set_num_threads(max(1, n if n > 0 else os.cpu_count() or 1))
    except ImportError:  # nndescent not installed: nothing to set
        pass


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


def bench_method(
    method: Method, items: np.ndarray, queries: np.ndarray, truth: np.ndarray, k: int, work: Path
) -> dict[str, Any]:
    """Build ``method`` once, save it, and time every query setting; recall from the batch."""
    index = indexes.create(method.kind, metric="euclidean", **method.build)
    _numba_threads(method.build.get("n_jobs", 1))
    start = time.perf_counter()
    with PeakRSS() as mem:
        index.build(items)
    build_s = time.perf_counter() - start
    folder = work / method.label.replace(" ", "_").replace(",", "_")
    folder.mkdir(parents=True, exist_ok=True)
    index.save(folder)
    out = {
        "method": method.label,
        "kind": method.kind,
        "build": method.build,
        "knob": method.knob,
        "build_s": build_s,
        "index_mb": _disk_mb(folder),
        "build_peak_rss_mb": mem.added / 2**20,
        "settings": [],
    }
    shutil.rmtree(folder, ignore_errors=True)
    for value in method.values:
        if method.knob:
            setattr(index, method.knob, value)
        n_single = min(len(queries), method.max_queries or len(queries))
        row = {"value": value, **time_queries(index, queries, k, n_single)}
        _set(index, method.batch)
        _numba_threads(-1)
        start = time.perf_counter()
        found, _ = index.search(queries[:n_single], k)  # slow methods: their queries only
        row["batched_qps"] = n_single / (time.perf_counter() - start)
        row[f"recall_at_{k}"] = recall(found, truth[:n_single])
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
    exact = indexes.create("exact", metric="euclidean", block=64)
    exact.build(items)
    start = time.perf_counter()
    truth, _ = exact.search(queries, k)
    truth_s = time.perf_counter() - start
    skip = skip or {}
    runs = [bench_method(m, items, queries, truth, k, work) for m in methods if m.label not in skip]
    return {
        "name": name,
        "n_items": len(items),
        "dim": items.shape[1],
        "n_queries": len(queries),
        "items_mb": items.nbytes / 2**20,
        "truth_s": truth_s,
        "methods": runs,
        "skipped": skip,
    }


def holidays_sets(root: Path, n_queries: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """CNN descriptors of a Holidays folder (1280-d, and PCA to 128) via the project's cache.

    The same configuration as ``python -m search_lab.evaluate feature=cnn`` (its cache is
    reused); the queries are the collection's first ``n_queries`` vectors (each finds itself).
    """
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from search_lab.app.paths import CONF_DIR
    from search_lab.engine import index_collection

    out = []
    for label, extra in (
        ("holidays cnn 1280-d", []),
        ("holidays cnn PCA 128", ["post.pca_dim=128"]),
    ):
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(
                "config",
                overrides=["feature=cnn", f"dataset.root={root}", "progress=false", *extra],
            )
        vectors = index_collection(OmegaConf.to_container(cfg, resolve=True)).vectors
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        out.append((label, vectors, vectors[:n_queries]))
    return out


def best_at(run: dict[str, Any], k: int, min_recall: float) -> dict[str, dict[str, Any]]:
    """Per method label, its fastest single-query setting with recall@k >= ``min_recall``."""
    best: dict[str, dict[str, Any]] = {}
    for m in run["methods"]:
        for s in m["settings"]:
            if s[f"recall_at_{k}"] >= min_recall and s["qps"] > best.get(m["method"], {}).get(
                "qps", 0.0
            ):
                best[m["method"]] = {"knob": m["knob"], **s}
    return best


def machine() -> dict[str, Any]:
    """CPU model, cores, RAM, load and library versions of the machine running the benchmark."""
    cpu = platform.processor() or platform.machine()
    try:
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = found.group(1).strip() if found else cpu
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_avg_1m_at_start": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "numpy": np.__version__,
        **{name: _version(name) for name in LIBRARIES},
        "platform": platform.platform(),
    }


LIBRARIES = ("annoy", "scipy", "hnswlib", "pynndescent", "faiss-cpu")


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--quick`` replaces the sizes with a seconds-long run."""
    p = argparse.ArgumentParser(prog="python -m search_lab.bench_ann", description=__doc__)
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--dims", type=int, nargs="+", default=[32, 128, 512, 1280])
    p.add_argument("--dim-items", type=int, default=20_000, help="items per dimension-sweep set")
    p.add_argument("--methods", nargs="+", default=None, help="index kinds to run (default all)")
    p.add_argument(
        "--no-nndescent-above",
        type=int,
        default=200_000,
        help="leave NN-descent out above this many items (its build is slow here)",
    )
    p.add_argument(
        "--holidays",
        type=Path,
        default=os.environ.get("HOLIDAYS_DIR"),
        help="Holidays folder for the CNN sets (default $HOLIDAYS_DIR; none: skipped)",
    )
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help=f"JSON report; default {DEFAULT_OUT}")
    p.add_argument("--note", default="", help="a sentence added to the report (e.g. load)")
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"3k items, 16/32 dims, 50 queries, no Holidays; default out {QUICK_OUT}",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.queries, args.dims, args.dim_items = [3000], 50, [16, 32], 2000
        if "--holidays" not in (argv or []):
            args.holidays = None
    args.out = args.out or (QUICK_OUT if args.quick else DEFAULT_OUT)
    if min(args.sizes + args.dims) <= 0 or args.queries <= 0 or args.k <= 0:
        p.error("--sizes, --dims, --queries and --k must be positive")
    if min(*args.sizes, args.dim_items) < args.k:
        p.error("every size must be at least k")
    unknown = set(args.methods or []) - set(indexes.available())
    if unknown:
        p.error(f"unknown method(s) {sorted(unknown)}; choose from {indexes.available()}")
    return args


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Run the benchmark described by ``args``; writes the JSON, Markdown and chart."""
    from search_lab.bench_ann_report import write_reports

    started = time.perf_counter()
    methods = [m for m in GRID if args.methods is None or m.kind in args.methods]
    report: dict[str, Any] = {
        "command": command,
        "machine": machine(),
        "note": args.note,
        "config": {
            **{k: v for k, v in vars(args).items() if k != "out"},
            "holidays": str(args.holidays) if args.holidays else None,
            "mixture": asdict(Mixture(seed=args.seed)),
            "grid": [asdict(m) for m in methods],
            "metric": "euclidean",
        },
        "runs": [],
        "dims": [],
    }
    work = Path(tempfile.mkdtemp(prefix="bench_ann."))
    try:
        mixture = Mixture(seed=args.seed)
        queries = mixture.sample(args.queries, stream=1)
        for n in args.sizes:
            skip = {"nndescent": f"build too slow above {args.no_nndescent_above:,} items here"}
            items = mixture.sample(n, stream=0)
            report["runs"].append(
                bench_set(
                    f"clustered {n:,} x 128",
                    items,
                    queries,
                    k=args.k,
                    methods=methods,
                    work=work,
                    skip=skip if n > args.no_nndescent_above else None,
                )
            )
            del items
        if args.holidays:
            for name, items, qs in holidays_sets(Path(args.holidays), args.queries):
                report["runs"].append(
                    bench_set(name, items, qs, k=args.k, methods=methods, work=work)
                )
        for dim in args.dims:
            mix = Mixture(dim=dim, intrinsic_dim=min(Mixture.intrinsic_dim, dim), seed=args.seed)
            dim_methods = [
                Method(**{**asdict(m), "values": (DIM_SETTING[m.label],)})
                if m.label in DIM_SETTING
                else m
                for m in methods
            ]
            report["dims"].append(
                bench_set(
                    f"clustered {args.dim_items:,} x {dim}",
                    mix.sample(args.dim_items, 0),
                    mix.sample(min(args.queries, 200), 1),
                    k=args.k,
                    methods=dim_methods,
                    work=work,
                )
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["elapsed_s"] = time.perf_counter() - started
    report["machine"]["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    write_json(args.out, report)
    write_reports(report, args.out)
    return report


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Entry point: parse options, run, print where the reports went."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = parse_args(argv)
    command = shlex.join(["python", "-m", "search_lab.bench_ann", *(argv or [])])
    report = run(args, command)
    print(
        f"wrote {args.out}, {args.out.with_suffix('.md')} and {args.out.with_suffix('.png')} "
        f"in {report['elapsed_s']:.0f} s"
    )
    return report


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
