"""Every search method side by side: ``python -m search_lab.bench_ann [options]``.

Each method of the index registry (exact, Annoy, kd-tree, NN-descent, HNSW, Faiss) is built
with a small parameter grid on clustered synthetic vectors (a seeded Gaussian mixture, 100k
and 1M x 128), on the real Holidays CNN descriptors (1280-d, and PCA to 128, read through the
project's extraction and feature cache) and, for the effect of dimension, on mixtures of
32, 128, 512 and 1280 dimensions. Ground truth is :class:`~search_lab.indexes.ExactIndex`, the
one exact top-k of the code base, and recall is :func:`~search_lab.evaluation.metrics.recall_at_k`.
Measured per build: seconds, size of the saved folder on disk, peak resident memory added by
the build (:class:`~search_lab.benchmarks.memory.PeakRSS`); per query setting: queries per
second one query at a time and in one batch (every core), latency percentiles and recall@k.
Results go to a JSON file, a Markdown report and a recall-vs-QPS chart beside it
(:mod:`search_lab.benchmarks.ann_report`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from search_lab import indexes
from search_lab.benchmarks.ann_data import Mixture, holidays_sets
from search_lab.benchmarks.ann_methods import DIM_SETTING, GRID, Method, bench_set
from search_lab.benchmarks.common import load_1m, machine, package_version, start_cli
from search_lab.core import write_json

DEFAULT_OUT = Path("bench/ann.json")
QUICK_OUT = Path("bench/ann-quick.json")
LIBRARIES = ("annoy", "scipy", "hnswlib", "pynndescent", "faiss-cpu")


def ann_machine() -> dict[str, Any]:
    """The machine, its load at the start and the versions of every search library."""
    versions = {name: package_version(name) or "not installed" for name in LIBRARIES}
    return machine(load_avg_1m_at_start=load_1m(), **versions)


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


def _config(args: argparse.Namespace, methods: Sequence[Method]) -> dict[str, Any]:
    """The run's settings as the report records them: options, mixture, grid, metric."""
    return {
        **{k: v for k, v in vars(args).items() if k != "out"},
        "holidays": str(args.holidays) if args.holidays else None,
        "mixture": asdict(Mixture(seed=args.seed)),
        "grid": [asdict(m) for m in methods],
        "metric": "euclidean",
    }


def collection_runs(
    args: argparse.Namespace, methods: Sequence[Method], work: Path
) -> list[dict[str, Any]]:
    """Every method on each clustered collection size, then on the Holidays CNN sets."""
    mixture = Mixture(seed=args.seed)
    queries = mixture.sample(args.queries, stream=1)
    skip = {"nndescent": f"build too slow above {args.no_nndescent_above:,} items here"}
    runs = []
    for n in args.sizes:
        items = mixture.sample(n, stream=0)
        name, left_out = f"clustered {n:,} x 128", skip if n > args.no_nndescent_above else None
        runs.append(
            bench_set(name, items, queries, k=args.k, methods=methods, work=work, skip=left_out)
        )
        del items
    if args.holidays:
        for name, items, qs in holidays_sets(Path(args.holidays), args.queries):
            runs.append(bench_set(name, items, qs, k=args.k, methods=methods, work=work))
    return runs


def dimension_runs(
    args: argparse.Namespace, methods: Sequence[Method], work: Path
) -> list[dict[str, Any]]:
    """Every method at its one :data:`DIM_SETTING` on a mixture of each dimension."""
    one_setting = [
        Method(**{**asdict(m), "values": (DIM_SETTING[m.label],)}) if m.label in DIM_SETTING else m
        for m in methods
    ]
    runs = []
    for dim in args.dims:
        mix = Mixture(dim=dim, intrinsic_dim=min(Mixture.intrinsic_dim, dim), seed=args.seed)
        runs.append(
            bench_set(
                f"clustered {args.dim_items:,} x {dim}",
                mix.sample(args.dim_items, 0),
                mix.sample(min(args.queries, 200), 1),
                k=args.k,
                methods=one_setting,
                work=work,
            )
        )
    return runs


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Run the benchmark described by ``args``; writes the JSON, Markdown and chart."""
    from search_lab.benchmarks.ann_report import write_reports

    started = time.perf_counter()
    methods = [m for m in GRID if args.methods is None or m.kind in args.methods]
    report: dict[str, Any] = {
        "command": command,
        "machine": ann_machine(),
        "note": args.note,
        "config": _config(args, methods),
    }
    work = Path(tempfile.mkdtemp(prefix="bench_ann."))
    try:
        report["runs"] = collection_runs(args, methods, work)
        report["dims"] = dimension_runs(args, methods, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["elapsed_s"] = time.perf_counter() - started
    report["machine"]["load_avg_1m_at_end"] = load_1m()
    write_json(args.out, report)
    write_reports(report, args.out)
    return report


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Entry point: parse options, run, print where the reports went."""
    argv, command = start_cli("search_lab.bench_ann", argv)
    args = parse_args(argv)
    report = run(args, command)
    print(
        f"wrote {args.out}, {args.out.with_suffix('.md')} and {args.out.with_suffix('.png')} "
        f"in {report['elapsed_s']:.0f} s"
    )
    return report


if __name__ == "__main__":
    main()
