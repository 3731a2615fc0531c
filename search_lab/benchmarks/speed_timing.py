"""Timing of decoding and extraction: one process (best of interleaved rounds) and in parallel."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from search_lab.benchmarks.common import compose, load_1m
from search_lab.benchmarks.speed_images import process_pool, typical_size
from search_lab.data import load_image, shrink
from search_lab.retrieval import build_extractor, extract_files

log = logging.getLogger(__name__)

FULL_SIDE = 100_000  # a max_side no image reaches: full-size decoding
FEATURES = ("hsv", "lbp", "hog", "cnn")


def feature_configs(cnn_size: int, *, with_cnn: bool = True) -> dict[str, dict[str, Any]]:
    """Default configuration of each benchmarked feature (the CNN at ``cnn_size``)."""
    out = {}
    for name in FEATURES if with_cnn else FEATURES[:-1]:
        extra = [f"feature.size={cnn_size}"] if name == "cnn" else []
        out[name] = compose([f"feature={name}", *extra])["feature"]
    return out


def _decode_one(job: tuple[Path, int | None]) -> tuple[int, ...]:
    """Worker task: decode one image, return only its shape (no pixels cross processes)."""
    path, max_side = job
    return load_image(path, max_side=max_side).shape


def rate(n: int, seconds: float, **extra: Any) -> dict[str, Any]:
    """A throughput record: images, seconds, images per second."""
    return {"images": n, "seconds": seconds, "images_per_s": n / seconds, **extra}


def timed(fn: Callable[[], object]) -> float:
    """Wall-clock seconds ``fn()`` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def best_of_rounds(tasks: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Best time of each task over ``rounds`` rounds that run every task in turn (interleaved).

    Interleaving spreads a burst of load from other jobs over all tasks instead of one.
    """
    best = dict.fromkeys(tasks, float("inf"))
    for _ in range(rounds):
        for key, task in tasks.items():
            best[key] = min(best[key], timed(task))
    return best


def decode_all(paths: Sequence[Path], max_side: int | None) -> None:
    """Decode every image in this process (the decode-only floor)."""
    for path in paths:
        load_image(path, max_side=max_side)


def decode_pool(paths: Sequence[Path], max_side: int | None, workers: int) -> None:
    """Decode every image with a process pool, chunked as ``extract_files`` chunks."""
    chunk = max(1, min(16, len(paths) // (workers * 8)))
    with process_pool(workers) as pool:
        list(pool.map(_decode_one, [(p, max_side) for p in paths], chunksize=chunk))


def one_process_cfg(cfg: dict[str, Any]) -> dict[str, Any]:
    """The feature config for one-process timing: the CNN on one torch thread."""
    return {**cfg, "threads": 1} if cfg["name"] == "cnn" else cfg


def parallel_cfg(cfg: dict[str, Any]) -> dict[str, Any]:
    """The feature config of the real extraction path: the CNN on a torch thread per core.

    Set explicitly because torch's thread count is global: a previous one-thread run must not
    leak into this one.
    """
    return {**cfg, "threads": os.cpu_count() or 1} if cfg["name"] == "cnn" else cfg


# --------------------------------------------------------------------------------------------
# Stages
# --------------------------------------------------------------------------------------------


def _extract(root: Path, names: Sequence[str], cfg: dict[str, Any], workers: int | None) -> None:
    extract_files(root, names, cfg, workers=workers, progress=False)


def warm_up(root: Path, names: Sequence[str], feats: dict[str, dict[str, Any]]) -> None:
    """Fill the page cache and build every extractor's tables and models before timing."""
    decode_all([root / n for n in names], None)
    for cfg in feats.values():
        _extract(root, names[:8], one_process_cfg(cfg), 1)


def max_sides(feats: dict[str, dict[str, Any]]) -> dict[str, int | None]:
    """Each feature's ``max_side`` as its extractor reports it (the CNN derives it from size)."""
    return {name: build_extractor(cfg).max_side for name, cfg in feats.items()}


def decode_key(max_side: int | None) -> str:
    """Key of a decode-only record: ``full`` or ``max_side_<n>``."""
    return "full" if max_side is None else f"max_side_{max_side}"


def time_one_process(
    root: Path, names: Sequence[str], feats: dict[str, dict[str, Any]], rounds: int
) -> dict[str, float]:
    """Best seconds of decode-only (each max_side) and of each feature, in this process.

    The hand-crafted features and decoding are interleaved over ``rounds``; the CNN, slow and
    less sensitive to a burst of load, is timed once.
    """
    paths = [root / n for n in names]
    tasks: dict[str, Callable[[], object]] = {}
    for side in dict.fromkeys([None, *max_sides(feats).values()]):
        tasks[decode_key(side)] = lambda side=side: decode_all(paths, side)
    for name, cfg in feats.items():
        if name != "cnn":
            tasks[name] = lambda cfg=cfg: _extract(root, names, cfg, 1)
    best = best_of_rounds(tasks, rounds)
    if "cnn" in feats:
        best["cnn"] = timed(lambda: _extract(root, names, one_process_cfg(feats["cnn"]), 1))
    return best


def time_parallel(
    root: Path, names: Sequence[str], feats: dict[str, dict[str, Any]], workers: int
) -> dict[str, float]:
    """Seconds of decode-only (each max_side) and of each feature on the real extraction path."""
    paths = [root / n for n in names]
    out = {}
    for side in dict.fromkeys([None, *max_sides(feats).values()]):
        out[decode_key(side)] = timed(lambda side=side: decode_pool(paths, side, workers))
    for name, cfg in feats.items():
        out[name] = timed(lambda cfg=cfg: _extract(root, names, parallel_cfg(cfg), None))
    return out


def extraction_table(
    n: int,
    feats: dict[str, dict[str, Any]],
    one: dict[str, float],
    par: dict[str, float],
    workers: int,
) -> dict[str, Any]:
    """Decode and feature throughputs with their ratios (feature s/img over decode s/img)."""
    sides = max_sides(feats)
    decode = {
        key: {"one_process": rate(n, one[key]), "parallel": rate(n, par[key], workers=workers)}
        for key in dict.fromkeys(decode_key(s) for s in [None, *sides.values()])
    }
    features = {}
    for name, cfg in feats.items():
        entry: dict[str, Any] = {"config": cfg, "max_side": sides[name]}
        for mode, seconds in (("one_process", one), ("parallel", par)):
            many = os.cpu_count() if name == "cnn" else workers
            how = "torch_threads" if name == "cnn" else "workers"
            entry[mode] = rate(n, seconds[name], **{how: 1 if mode == "one_process" else many})
            entry[mode]["ratio_to_decode"] = seconds[name] / seconds["full"]
            entry[mode]["ratio_to_decode_at_max_side"] = (
                seconds[name] / seconds[decode_key(sides[name])]
            )
        features[name] = entry
    return {"decode": decode, "features": features}


def bench_set(
    label: str, root: Path, names: Sequence[str], feats: dict[str, dict[str, Any]], rounds: int
) -> dict[str, Any]:
    """Every decode and extraction measurement on one image set."""
    workers = os.cpu_count() or 1
    log.info("%s: %d images, warming up", label, len(names))
    warm_up(root, names, feats)
    load = {"before": load_1m()}
    one = time_one_process(root, names, feats, rounds)
    load["after_one_process"] = load_1m()
    log.info("%s: one-process timings done (load %s)", label, load["after_one_process"])
    par = time_parallel(root, names, feats, workers)
    load["after_parallel"] = load_1m()
    log.info("%s: parallel timings done (load %s)", label, load["after_parallel"])
    return {
        "root": str(root),
        "n_images": len(names),
        "typical_size": typical_size([root / n for n in names]),
        "load_1m": load,
        **extraction_table(len(names), feats, one, par, workers),
    }


def draft_comparison(root: Path, names: Sequence[str], hsv: dict[str, Any], rounds: int) -> dict:
    """``hsv`` with draft decoding against full-size decoding, one process.

    Three ways: reduced-size (draft) decoding to ``max_side`` (what extraction does); full
    decoding, then shrinking to ``max_side`` before the feature; full decoding with the feature
    on the full image (``max_side`` raised to :data:`FULL_SIDE`).
    """
    paths = [root / n for n in names]
    extractor = build_extractor(hsv)
    side = extractor.max_side
    full_cfg = {**hsv, "max_side": FULL_SIDE}
    tasks = {
        "draft": lambda: _extract(root, names, hsv, 1),
        "full_decode_then_shrink": lambda: [
            extractor.extract(shrink(load_image(p), side)) for p in paths
        ],
        "full_decode_full_feature": lambda: _extract(root, names, full_cfg, 1),
    }
    best = best_of_rounds(tasks, rounds)
    n = len(names)
    out: dict[str, Any] = {"max_side": side, **{k: rate(n, s) for k, s in best.items()}}
    out["speedup_vs_full_decode_then_shrink"] = best["full_decode_then_shrink"] / best["draft"]
    out["speedup_vs_full_decode_full_feature"] = best["full_decode_full_feature"] / best["draft"]
    return out
