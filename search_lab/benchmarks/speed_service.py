"""Service-side stages of the speed benchmark: mAP on the camera-size set, query latency, the
end-to-end ``evaluate`` command."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from search_lab.benchmarks.common import REPO, compose, load_1m
from search_lab.benchmarks.speed_timing import FULL_SIDE
from search_lab.core import SearchLabError, read_json_object
from search_lab.data import load_dataset


def _evaluate_quietly(cfg: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """The evaluate command's run, its summary not printed (the benchmark prints its own)."""
    from search_lab.cli import evaluate

    return evaluate.run(cfg, out_dir, quiet=True)


def camera_map(root: Path, hsv_side: int, work: Path) -> dict[str, Any]:
    """mAP of ``hsv`` on the camera-size set with draft decoding and with full-size decoding."""
    out: dict[str, Any] = {}
    for key, side in (("draft", hsv_side), ("full", FULL_SIDE)):
        cfg = compose(
            [f"dataset.root={root}", "feature=hsv", f"feature.max_side={side}", "progress=false"]
        )
        cfg["cache_dir"] = None
        metrics = _evaluate_quietly(cfg, work / f"map-{key}")
        out[key] = {"max_side": side, "map": metrics["map"], "extract_s": metrics["extract_s"]}
        out["n_images"], out["n_queries"] = metrics["n_images"], metrics["n_queries"]
    out["difference"] = abs(out["draft"]["map"] - out["full"]["map"])
    return out


def query_latency(root: Path, n_queries: int, work: Path) -> dict[str, Any]:
    """p50 / p95 of ``SearchEngine.query(path, k=10)`` for exact and Annoy search (hsv features).

    The engines share one feature cache; the first query of each is a warm-up, not timed.
    """
    from search_lab.retrieval import build_engine

    out: dict[str, Any] = {}
    for index in ("exact", "annoy"):
        cfg = compose(
            [
                f"dataset.root={root}",
                f"cache_dir={work / 'cache'}",
                "progress=false",
                f"index={index}",
            ]
        )
        start = time.perf_counter()
        engine = build_engine(cfg)
        build_s = time.perf_counter() - start
        data = load_dataset(root)
        queries = [root / data.names[q] for q in data.queries[:n_queries]]
        engine.query(queries[0], k=10)
        ms = np.array([1e3 * engine.query(path, k=10)[1] for path in queries])
        out[index] = {
            "index": cfg["index"],
            "engine_build_s": build_s,
            "n_queries": len(queries),
            "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)),
            "mean_ms": float(ms.mean()),
            "load_1m": load_1m(),
        }
    return out


def evaluate_command(root: Path, work: Path) -> dict[str, Any]:
    """Wall time of ``python -m search_lab.evaluate`` (default config), cold then warm cache."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    out: dict[str, Any] = {}
    for run in ("cold", "warm"):
        command = [
            sys.executable,
            "-m",
            "search_lab.evaluate",
            "progress=false",
            f"cache_dir={work / 'eval-cache'}",
            f"hydra.run.dir={work / f'eval-{run}'}",
            f"dataset.root={root}",
        ]
        start = time.perf_counter()
        done = subprocess.run(
            command, cwd=REPO, env=env, capture_output=True, text=True, check=False
        )
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise SearchLabError(
                f"evaluate failed ({done.returncode}): {done.stderr.strip()[-500:]}"
            )
        metrics = read_json_object(work / f"eval-{run}" / "metrics.json")
        out[run] = {
            "seconds": seconds,
            "map": metrics["map"],
            "features_cached": metrics["features_cached"],
            "extract_s": metrics["extract_s"],
            "load_1m": load_1m(),
        }
        shown = ["python", *command[1:]]
        out["command"] = shlex.join(shown).replace(str(work), "<tmp>").replace(f"-{run}", "-<run>")
    return out
