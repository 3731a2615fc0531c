"""Peak memory of an out-of-core index build against the in-memory one: ``python -m
search_lab.bench_scale [--rows 1000000] [--dim 128] [--shard-rows 100000] [--trees 10]``.

Writes ``--rows`` clustered synthetic vectors as memory-mapped feature shards
(:mod:`search_lab.retrieval.shards`, one shard generated at a time), then builds the same Annoy
index twice, each in a fresh child process that reports its own peak resident memory (``VmHWM``,
file-backed pages of memory maps included):

- **streaming**: ``AnnoyIndex.build_streaming``, shards read one by one into Annoy's on-disk
  build (``on_disk_build``), so the forest grows in its file, not in memory;
- **in memory**: every shard read into one matrix, ``AnnoyIndex.build``, then ``save``.

With one build thread (``--jobs 1``) and one seed both forests are byte-identical, which the
benchmark checks. Results go to ``bench/scale.json`` and ``bench/scale.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from search_lab.benchmarks.common import (
    exit_status,
    extraction_machine,
    load_avg,
    measure_and_report,
)
from search_lab.benchmarks.memory import MB, peak_rss_mb
from search_lab.core import SearchLabError, integrity
from search_lab.indexes import AnnoyIndex
from search_lab.retrieval import RECORD, ShardSet, write_shards

log = logging.getLogger(__name__)

MODES = ("streaming", "in_memory")


def clustered_blocks(rows: int, dim: int, shard_rows: int, seed: int = 0) -> Iterator[np.ndarray]:
    """``rows`` vectors around 1,000 random centres, yielded ``shard_rows`` at a time.

    Shard ``s`` depends on ``(seed, s)`` only, so the set is the same however it is cut.
    """
    centres = np.random.default_rng(seed).standard_normal((1000, dim), dtype=np.float32)
    for s, start in enumerate(range(0, rows, shard_rows)):
        rng = np.random.default_rng((seed, s))
        n = min(shard_rows, rows - start)
        picks = rng.integers(0, len(centres), size=n)
        yield centres[picks] + 0.3 * rng.standard_normal((n, dim), dtype=np.float32)


def shard_set(folder: Path, rows: int, dim: int, shard_rows: int) -> ShardSet:
    """The benchmark's shards in ``folder``, written unless a matching set is already there."""
    if (folder / RECORD).is_file():
        found = ShardSet.open(folder)
        if found.rows == rows and found.dim == dim and int(found.entries[0]["rows"]) == shard_rows:
            return found
    return write_shards(folder, clustered_blocks(rows, dim, shard_rows))


def child(mode: str, shards: Path, out: Path, trees: int, jobs: int) -> dict[str, Any]:
    """Build one index from ``shards`` into ``out`` in this process; its peak memory and time."""
    base_mb = peak_rss_mb()
    shard_set_ = ShardSet.open(shards)
    index = AnnoyIndex(metric="euclidean", n_trees=trees, seed=1, n_jobs=jobs)
    start = time.perf_counter()
    if mode == "streaming":
        index.build_streaming(shard_set_.blocks(), shard_set_.rows, out)
    else:  # the whole matrix in memory, copied in shard by shard (no second copy)
        matrix = np.empty((shard_set_.rows, shard_set_.dim), np.float32)
        start_row = 0
        for block in shard_set_.blocks():
            matrix[start_row : start_row + len(block)] = block
            start_row += len(block)
        index.build(matrix)
    index.save(out)
    seconds = time.perf_counter() - start
    return {
        "mode": mode,
        "build_s": round(seconds, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "start_rss_mb": round(base_mb, 1),
        "index_mb": round((out / AnnoyIndex.FOREST_FILE).stat().st_size / MB, 1),
        "forest_xxh3": integrity.file_digest(out / AnnoyIndex.FOREST_FILE),
    }


def run_child(mode: str, shards: Path, out: Path, trees: int, jobs: int) -> dict[str, Any]:
    """:func:`child` in a fresh interpreter, so each peak is its own."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "search_lab.benchmarks.scale", "--child", mode]
    cmd += ["--shards", str(shards), "--out", str(out), "--trees", str(trees), "--jobs", str(jobs)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SearchLabError(f"{mode} build failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(result: dict[str, Any]) -> str:
    """Markdown table of both builds."""
    p = result["params"]
    lines = [
        f"# Out-of-core index build: {p['rows']:,} x {p['dim']} Annoy, {p['trees']} trees",
        "",
        f"Shards of {p['shard_rows']:,} rows ({p['shards_mb']} MB of features in all); "
        f"load average {result['load_avg']} at the start.",
        "",
        "| build | peak RSS (MB) | index file (MB) | peak − index (MB) | time (s) |",
        "|---|--:|--:|--:|--:|",
    ]
    for r in result["builds"]:
        over = r["peak_rss_mb"] - r["index_mb"]
        lines.append(
            f"| {r['mode']} | {r['peak_rss_mb']:,.0f} | {r['index_mb']:,.0f} | {over:,.0f} "
            f"| {r['build_s']} |"
        )
    lines += ["", f"Identical forests: {result['identical']}."]
    return "\n".join(lines) + "\n"


def bench(args: argparse.Namespace) -> dict[str, Any]:
    """Write the shards, build both ways, compare; returns the result record."""
    if min(args.rows, args.dim, args.shard_rows, args.trees, args.jobs) <= 0:
        raise SearchLabError("--rows, --dim, --shard-rows, --trees and --jobs must be positive")
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_scale."))
    shards = shard_set(work / "shards", args.rows, args.dim, args.shard_rows)
    shards_mb = sum((shards.folder / e["file"]).stat().st_size for e in shards.entries) / MB
    builds = [run_child(m, shards.folder, work / m, args.trees, args.jobs) for m in MODES]
    return {
        "params": {
            "rows": args.rows,
            "dim": args.dim,
            "shard_rows": args.shard_rows,
            "trees": args.trees,
            "jobs": args.jobs,
            "shards_mb": round(shards_mb, 1),
        },
        "machine": extraction_machine(),
        "load_avg": load_avg(),
        "builds": builds,
        "identical": len({b["forest_xxh3"] for b in builds}) == 1,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options (``--child`` and its paths are for :func:`run_child` only)."""
    parser = argparse.ArgumentParser(prog="python -m search_lab.bench_scale", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--shard-rows", type=int, default=100_000)
    parser.add_argument("--trees", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=1, help="Annoy build threads")
    parser.add_argument("--work", type=Path, default=None, help="folder for shards and indexes")
    parser.add_argument("--json", type=Path, default=Path("bench/scale.json"))
    parser.add_argument("--md", type=Path, default=Path("bench/scale.md"))
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--shards", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; problems are one line and exit status 2."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(argv)
    if args.child:
        build = partial(child, args.child, args.shards, args.out, args.trees, args.jobs)
        return exit_status(lambda: print(json.dumps(build())))
    return measure_and_report(partial(bench, args), report, args.json, args.md)


if __name__ == "__main__":
    sys.exit(main())
