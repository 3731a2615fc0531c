"""The engines table of ``python -m search_lab.bench``: the CNN under torch eager, ONNX Runtime
and OpenVINO, side by side in one run.

Each engine is timed in a fresh process (so its peak memory is its own and no thread setting
leaks from one engine to the next); the processes take turns over ``rounds`` interleaved
rounds, and each figure is the best of its rounds, so a burst of load from other jobs on the
shared machine hits every engine alike. Per engine and batch size:

- **one process**: ``extract_batch`` on pre-decoded images, one thread (the pure per-image
  cost), batches of ``batch_size`` images as ``extract_files`` hands them over;
- **real extraction path**: ``extract_files(..., workers=None)`` over the files, decoding
  included, threads on every core;
- ms per image of wall time and of CPU time (``time.process_time``, every thread of the
  process: on a machine shared with other jobs the CPU time is the steadier measure of cost,
  and its ratios the ones to quote), the ratio to decode-only time (``load_image`` at the
  CNN's ``max_side``), the start-up (network load, export or verified export, fidelity
  check) and the peak resident memory of the process (``VmHWM``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from search_lab.benchmarks.common import load_1m
from search_lab.benchmarks.memory import peak_rss_mb

log = logging.getLogger(__name__)

ENGINES = ("torch", "onnxruntime", "openvino")
BATCH_SIZES = (1, 16)  # a single query (app, `search`), and bulk extraction


def _engine_round(
    root: str, names: Sequence[str], cfg: dict[str, Any], batch_sizes: Sequence[int]
) -> dict[str, Any]:
    """One engine's timings in this (fresh) process: see the module docstring."""
    from search_lab.data import load_image
    from search_lab.retrieval import build_extractor, extract_files

    paths = [Path(root) / n for n in names]
    out: dict[str, Any] = {}
    start = time.perf_counter()
    one = build_extractor({**cfg, "threads": 1})
    one.prepare()
    out["startup_s"], out["engine_used"] = time.perf_counter() - start, one.engine_used
    start = time.perf_counter()
    images = [load_image(p, max_side=one.max_side) for p in paths]
    out["decode_s"] = time.perf_counter() - start
    one.extract_batch(images[: max(batch_sizes)])  # warm-up: first-shape allocations
    for bs in batch_sizes:
        one.batch_size = bs
        start, cpu = time.perf_counter(), time.process_time()
        for i in range(0, len(images), bs):
            one.extract_batch(images[i : i + bs])
        out[f"one_process_b{bs}_s"] = time.perf_counter() - start
        out[f"one_process_b{bs}_cpu_s"] = time.process_time() - cpu
    real = build_extractor({**cfg, "threads": os.cpu_count() or 1, "batch_size": max(batch_sizes)})
    real.prepare()  # its start-up is the one above, timed apart
    start, cpu = time.perf_counter(), time.process_time()
    extract_files(Path(root), names, real, progress=False)
    out["real_path_s"] = time.perf_counter() - start
    out["real_path_cpu_s"] = time.process_time() - cpu
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def _child(*args: Any) -> dict[str, Any]:
    """Pool task: one round of one engine, in a process of its own."""
    return _engine_round(*args)


def _best(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per measure, the best (smallest) value over rounds; the engine used in the last one."""
    keys = [k for k in rounds[0] if k != "engine_used"]
    best = {k: min(r[k] for r in rounds) for k in keys}
    return {**best, "engine_used": rounds[-1]["engine_used"]}


def engines_table(
    root: Path,
    names: Sequence[str],
    cnn_cfg: dict[str, Any],
    rounds: int,
    batch_sizes: Sequence[int] = BATCH_SIZES,
) -> dict[str, Any]:
    """Every engine's record (see the module docstring) and its ratios to torch eager."""
    ctx = get_context("spawn")  # a fresh interpreter: no torch threads or memory inherited
    got: dict[str, list[dict[str, Any]]] = {e: [] for e in ENGINES}
    load = {"before": load_1m()}
    for r in range(rounds):
        for engine in ENGINES:
            log.info("engines: round %d/%d, %s", r + 1, rounds, engine)
            cfg = {**cnn_cfg, "engine": engine}
            with ProcessPoolExecutor(1, ctx) as pool:
                got[engine].append(
                    pool.submit(_child, str(root), list(names), cfg, batch_sizes).result()
                )
    load["after"] = load_1m()
    n = len(names)
    table: dict[str, Any] = {}
    for engine, records in got.items():
        best = _best(records)
        rec: dict[str, Any] = {"engine_used": best["engine_used"], "startup_s": best["startup_s"]}
        for mode in [f"one_process_b{bs}" for bs in batch_sizes] + ["real_path"]:
            s, cpu = best[f"{mode}_s"], best[f"{mode}_cpu_s"]
            rec[mode] = {
                "images_per_s": n / s,
                "ms_per_image": 1e3 * s / n,
                "cpu_ms_per_image": 1e3 * cpu / n,
                "ratio_to_decode": s / best["decode_s"],
            }
        rec["decode_ms_per_image"] = 1e3 * best["decode_s"] / n
        rec["peak_rss_mb"] = max(r["peak_rss_mb"] for r in records)
        table[engine] = rec
    for rec in table.values():  # speed-up over torch eager, same mode
        for mode in [f"one_process_b{bs}" for bs in batch_sizes] + ["real_path"]:
            ref = table["torch"][mode]
            rec[mode]["x_torch"] = rec[mode]["images_per_s"] / ref["images_per_s"]
            rec[mode]["x_torch_cpu"] = ref["cpu_ms_per_image"] / rec[mode]["cpu_ms_per_image"]
    return {
        "n_images": n,
        "config": cnn_cfg,
        "batch_sizes": list(batch_sizes),
        "rounds": rounds,
        "load_1m": load,
        "engines": table,
    }


def engines_markdown(part: dict[str, Any]) -> list[str]:
    """The engines table as Markdown lines."""
    bs = part["batch_sizes"]
    cfg = part["config"]
    lines = [
        f"### CNN engines: {cfg.get('backbone')} {cfg.get('pooling')} at longer side "
        f"{cfg.get('size')}, {part['n_images']} Holidays images, best of {part['rounds']} "
        f"interleaved rounds (1-min load {part['load_1m']['before']} -> "
        f"{part['load_1m']['after']})",
        "",
        "| engine | "
        + " | ".join(
            f"1 thread, batch {b}: img/s (× torch) | ms/img | CPU ms/img (× torch) | × decode"
            for b in bs
        )
        + " | real path img/s (× torch) | CPU ms/img (× torch) | × decode | start-up s "
        "| peak MB |",
        "|---|" + "--:|--:|--:|--:|" * len(bs) + "--:|--:|--:|--:|--:|",
    ]
    for engine, r in part["engines"].items():
        cells = []
        for b in bs:
            m = r[f"one_process_b{b}"]
            cells += [
                f"{m['images_per_s']:.1f} ({m['x_torch']:.2f}×)",
                f"{m['ms_per_image']:.1f}",
                f"{m['cpu_ms_per_image']:.1f} ({m['x_torch_cpu']:.2f}×)",
                f"{m['ratio_to_decode']:.1f}",
            ]
        real = r["real_path"]
        cells += [
            f"{real['images_per_s']:.1f} ({real['x_torch']:.2f}×)",
            f"{real['cpu_ms_per_image']:.1f} ({real['x_torch_cpu']:.2f}×)",
            f"{real['ratio_to_decode']:.1f}",
            f"{r['startup_s']:.1f}",
            f"{r['peak_rss_mb']:.0f}",
        ]
        label = engine if r["engine_used"] == engine else f"{engine} ({r['engine_used']})"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return [*lines, ""]
