"""Extraction throughput on Ray against the local executor: ``python -m search_lab.bench_ray
[--features hsv cnn] [--repeats 2] [--shard-size 100]`` (needs requirements-ray.txt).

On the dataset of ``$HOLIDAYS_DIR``, each feature is extracted with a cold cache by the local
executor (process pool / torch threads) and by Ray tasks on a Ray started here, alternately
``--repeats`` times, after a warm-up of both (4 images: Ray's workers started, modules
imported, the model loaded), so the figures are the steady state a long run sees. Writes
``bench/ray.json`` and ``bench/ray.md``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from search_lab.benchmarks.common import compose, extraction_machine, load_avg, measure_and_report
from search_lab.data import load_dataset
from search_lab.retrieval import FeatureCache, RayExecutor, cached_features, connect


def one_run(executor: str, feature: dict[str, Any], shard_size: int, count: int = 0) -> float:
    """Seconds to extract the dataset (its first ``count`` images) with a cold cache."""
    data = load_dataset()
    names = list(data.names[:count] if count else data.names)
    with tempfile.TemporaryDirectory() as tmp:
        cache, fp = FeatureCache(tmp), data.fingerprint()
        start = time.perf_counter()
        if executor == "local":
            cached_features(cache, data.root, names, fp, feature, progress=False)
        else:
            ex = {"name": "ray", "address": None, "num_cpus": None, "shard_size": shard_size,
                  "cpus_per_task": 1, "max_retries": 3}  # fmt: skip
            RayExecutor(ex).cached_features(cache, data.root, names, fp, feature,
                                            progress=False)  # fmt: skip
        return time.perf_counter() - start


def bench(features: list[str], repeats: int, shard_size: int) -> dict[str, Any]:
    """Images per second of each feature on both executors (best of ``repeats``)."""
    host = extraction_machine()
    connect({"address": None, "num_cpus": None})
    n = len(load_dataset().names)
    rows = []
    for name in features:
        feature = compose([f"feature={name}"])["feature"]
        times: dict[str, list[float]] = {"local": [], "ray": []}
        for executor in times:  # warm-up: workers started, modules imported, model loaded
            one_run(executor, feature, shard_size=2, count=4)
        for _ in range(repeats):
            for executor in times:
                times[executor].append(one_run(executor, feature, shard_size))
        local, ray = n / min(times["local"]), n / min(times["ray"])
        rows.append({"feature": name, "images": n, "local_img_s": round(local, 1),
                     "ray_img_s": round(ray, 1), "ray_vs_local": round(ray / local, 3),
                     "seconds": times})  # fmt: skip
    return {"machine": host, "load_avg_end": load_avg(), "shard_size": shard_size,
            "rows": rows}  # fmt: skip


def report(result: dict[str, Any]) -> str:
    """Markdown table: images per second on each executor and their ratio."""
    lines = [
        "# Extraction on Ray against the local executor",
        "",
        f"Ray started on this machine, shards of {result['shard_size']} images; load average "
        f"{result['machine']['load_avg_at_start']} at the start, {result['load_avg_end']} at "
        "the end. Best of the repeats, cold cache, after a warm-up.",
        "",
        "| feature | images | local img/s | Ray img/s | Ray / local |",
        "|---|--:|--:|--:|--:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['feature']} | {r['images']} | {r['local_img_s']} | {r['ray_img_s']} "
            f"| {r['ray_vs_local']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; problems are one line and exit status 2."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    parser = argparse.ArgumentParser(prog="python -m search_lab.bench_ray", description=__doc__)
    parser.add_argument("--features", nargs="+", default=["hsv", "cnn"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--shard-size", type=int, default=100)
    parser.add_argument("--json", type=Path, default=Path("bench/ray.json"))
    parser.add_argument("--md", type=Path, default=Path("bench/ray.md"))
    args = parser.parse_args(argv)
    measure = partial(bench, args.features, args.repeats, args.shard_size)
    return measure_and_report(measure, report, args.json, args.md)


if __name__ == "__main__":
    sys.exit(main())
