"""Speed benchmark of extraction, search and evaluation: ``python -m search_lab.bench [options]``.

One run on one machine measures, and reports as throughputs and ratios:

- **decode against extraction** on the Holidays images: decode-only throughput of
  :func:`~search_lab.images.load_image` (the floor, at full size and at each feature's own
  ``max_side``) against the extraction throughput of ``hsv``, ``lbp``, ``hog`` and ``cnn``, each
  timed in one process (``workers=1``; ``threads=1`` for the CNN: the pure per-image cost) and on
  the real extraction path (``extract_files(..., workers=None)``: the process pool, or torch
  threads on every core for the CNN). Ratio = seconds per image of the feature / of decoding.
- **the same on camera-size JPEGs**: Holidays images upscaled to 3264x2448 (JPEG quality 90),
  generated once and cached per image count; there ``hsv`` with reduced-size (draft) decoding
  is compared with full-size decoding, and its mAP with draft and with full-size decoding.
- **single-query latency** (p50, p95) of exact and Annoy search on the Holidays index, query
  feature extraction included (:meth:`~search_lab.engine.SearchEngine.query`).
- **end-to-end** ``python -m search_lab.evaluate`` for the default configuration, as a whole
  command, with a cold and with a warm feature cache.
- **checksum verification on load** (:mod:`search_lab.bench_integrity`): full XXH3-128
  verification of an exact and an Annoy index of ``--integrity-items`` x 128 vectors against
  their load + first query time.

Results go to a JSON file and a Markdown table beside it (:mod:`search_lab.results`), with the
machine and its load average (other jobs distort timings: the load is recorded per stage).
One-process timings are the best of ``--repeats`` interleaved rounds after a warm-up (page
cache, colour table, model); pool timings include the pool's start-up, as a real run does.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import logging
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from importlib.metadata import PackageNotFoundError, version
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from PIL import Image

from search_lab.bench_integrity import markdown_lines, verification_cost
from search_lab.data import Dataset, default_root, load_dataset
from search_lab.errors import SearchLabError
from search_lab.extract import build_extractor, extract_files
from search_lab.images import load_image, shrink
from search_lab.results import read_json, write_json, write_text

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
DEFAULT_OUT = Path("bench/speed.json")
# a quick run never replaces the real report
QUICK_OUT = Path(".cache/search_lab/bench/speed-quick.json")
CAMERA_SIZE = (3264, 2448)  # longer, shorter side of the generated camera-size images
CAMERA_QUALITY = 90
FULL_SIDE = 100_000  # a max_side no image reaches: full-size decoding
FEATURES = ("hsv", "lbp", "hog", "cnn")
TARGETS = {  # name -> (comparison, threshold)
    "hsv_over_decode": ("<=", 2.0),
    "cnn_images_per_s": (">=", 20.0),
    "camera_hsv_draft_speedup": (">=", 4.0),
    "camera_map_difference": ("<=", 0.01),
}


# --------------------------------------------------------------------------------------------
# Machine and configuration
# --------------------------------------------------------------------------------------------


def load_1m() -> float | None:
    """One-minute load average, or None where the platform has none."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def load_avg() -> list[float] | None:
    """Load averages over 1, 5 and 15 minutes, or None where the platform has none."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def _package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    """CPU model, cores, RAM, library versions and current load of this machine."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = found.group(1).strip() if found else cpu
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_avg_at_start": load_avg(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": _package_version("torch"),
        "pillow": _package_version("Pillow") or _package_version("pillow"),
        "platform": platform.platform(),
    }


def compose(overrides: Sequence[str]) -> dict[str, Any]:
    """Resolved plain-dict configuration from ``conf/`` with Hydra's compose API."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = hydra_compose(config_name="config", overrides=list(overrides))
    return OmegaConf.to_container(cfg, resolve=True)


def feature_configs(cnn_size: int, *, with_cnn: bool = True) -> dict[str, dict[str, Any]]:
    """Default configuration of each benchmarked feature (the CNN at ``cnn_size``)."""
    out = {}
    for name in FEATURES if with_cnn else FEATURES[:-1]:
        extra = [f"feature.size={cnn_size}"] if name == "cnn" else []
        out[name] = compose([f"feature={name}", *extra])["feature"]
    return out


# --------------------------------------------------------------------------------------------
# Image sets
# --------------------------------------------------------------------------------------------


def whole_groups(data: Dataset, n: int) -> list[str]:
    """Names of the first groups of ``data`` (in name order) until at least ``n`` images.

    Whole groups keep the Holidays ground truth valid on the subset.
    """
    by_group: dict[str, list[str]] = {}
    for name, group in zip(data.names, data.groups, strict=True):
        by_group.setdefault(group, []).append(name)
    chosen: list[str] = []
    for members in by_group.values():
        if len(chosen) >= n:
            break
        chosen += members
    return chosen


def link_subset(root: Path, names: Iterable[str], dest: Path) -> Path:
    """A folder of symbolic links to ``root / name`` for each name (a dataset subset, no copy)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).symlink_to((root / name).resolve())
    return dest


def _upscale(job: tuple[Path, Path]) -> None:
    """Worker task: one image upright, upscaled to camera size, saved as a quality-90 JPEG."""
    src, dst = job
    image = Image.fromarray(load_image(src))
    long, short = CAMERA_SIZE
    size = (long, short) if image.width >= image.height else (short, long)
    image.resize(size, Image.Resampling.BICUBIC).save(dst, quality=CAMERA_QUALITY)


def _camera_key(root: Path, names: Sequence[str], n: int) -> str:
    """Cache folder name: requested count plus a hash of the sources and generation settings."""
    digest = hashlib.sha256(f"{CAMERA_SIZE}{CAMERA_QUALITY}".encode())
    for name in names:
        stat = (root / name).stat()
        digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return f"n{n}-{digest.hexdigest()[:12]}"


def camera_set(data: Dataset, n: int, cache_dir: Path, workers: int) -> tuple[Path, float | None]:
    """Folder of camera-size copies of the first whole groups of ``data`` (at least ``n`` images).

    Generated once into ``cache_dir`` (built in a temporary folder, then renamed) and reused.
    Returns the folder and the seconds generation took (None when it came from the cache).
    """
    names = whole_groups(data, n)
    final = cache_dir / _camera_key(data.root, names, n)
    if (final / "complete.json").is_file():
        return final, None
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=cache_dir))
    start = time.perf_counter()
    try:
        jobs = [(data.root / name, tmp / Path(name).with_suffix(".jpg")) for name in names]
        log.info("generating %d camera-size images in %s", len(jobs), final)
        with _pool(workers) as pool:
            list(pool.map(_upscale, jobs, chunksize=4))
        write_json(tmp / "complete.json", {"sources": names, "size": CAMERA_SIZE})
        with contextlib.suppress(OSError):  # another run may have finished the same set first
            os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not (final / "complete.json").is_file():
        raise SearchLabError(f"could not create the camera-size set in {final}")
    return final, time.perf_counter() - start


def typical_size(paths: Sequence[Path]) -> str:
    """Most common ``WIDTHxHEIGHT`` among the images (from their headers)."""
    sizes: Counter[str] = Counter()
    for path in paths:
        with Image.open(path) as img:
            sizes[f"{img.width}x{img.height}"] += 1
    return sizes.most_common(1)[0][0] if sizes else "-"


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------


def _pool(workers: int) -> ProcessPoolExecutor:
    """A process pool started as ``extract_files`` starts its own (fork where available)."""
    ctx = get_context("fork") if "fork" in get_all_start_methods() else None
    return ProcessPoolExecutor(workers, ctx)


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
    with _pool(workers) as pool:
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


def _evaluate_quietly(cfg: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """``evaluate.run`` with its printed summary captured (the benchmark prints its own)."""
    from search_lab import evaluate

    with contextlib.redirect_stdout(io.StringIO()):
        return evaluate.run(cfg, out_dir)


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
    from search_lab.engine import build_engine

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
        metrics = read_json(work / f"eval-{run}" / "metrics.json")
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


# --------------------------------------------------------------------------------------------
# Targets and report
# --------------------------------------------------------------------------------------------


def target_values(report: dict[str, Any]) -> dict[str, float | None]:
    """The measured value behind each target (None when that part was not run)."""
    hol = report["holidays"]["features"]
    cam = report.get("camera")
    return {
        "hsv_over_decode": hol["hsv"]["one_process"]["ratio_to_decode"],
        "cnn_images_per_s": hol["cnn"]["parallel"]["images_per_s"] if "cnn" in hol else None,
        "camera_hsv_draft_speedup": (
            cam["draft_vs_full"]["speedup_vs_full_decode_full_feature"] if cam else None
        ),
        "camera_map_difference": report["camera_map"]["difference"] if cam else None,
    }


def check_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with its measured value and whether it is met (None: not measured)."""
    out = []
    for name, value in target_values(report).items():
        op, threshold = TARGETS[name]
        met = None if value is None else (value <= threshold if op == "<=" else value >= threshold)
        out.append(
            {"name": name, "value": value, "comparison": op, "threshold": threshold, "met": met}
        )
    return out


def _fmt(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{x:,.{digits}f}"


def extraction_markdown(title: str, part: dict[str, Any]) -> list[str]:
    """One table: decode-only rows, then feature rows, one process and parallel, with ratios."""
    lines = [
        f"### {title}: {part['n_images']} images, typically {part['typical_size']} "
        f"(1-min load {', '.join(f'{v}' for v in part['load_1m'].values())} "
        "before / after one-process / after parallel timing)",
        "",
        "| what | max_side | one process img/s | × decode | × decode at max_side "
        "| parallel img/s | × decode | × decode at max_side |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for key, rec in part["decode"].items():
        side = "full" if key == "full" else key.removeprefix("max_side_")
        lines.append(
            f"| decode only | {side} | {_fmt(rec['one_process']['images_per_s'])} | | "
            f"| {_fmt(rec['parallel']['images_per_s'])} ({rec['parallel']['workers']} proc) | | |"
        )
    for name, rec in part["features"].items():
        one, par = rec["one_process"], rec["parallel"]
        how = (
            f"{par['torch_threads']} threads"
            if "torch_threads" in par
            else f"{par['workers']} proc"
        )
        lines.append(
            f"| **{name}** | {rec['max_side']} | {_fmt(one['images_per_s'])} "
            f"| {_fmt(one['ratio_to_decode'], 2)} | {_fmt(one['ratio_to_decode_at_max_side'], 2)} "
            f"| {_fmt(par['images_per_s'])} ({how}) | {_fmt(par['ratio_to_decode'], 2)} "
            f"| {_fmt(par['ratio_to_decode_at_max_side'], 2)} |"
        )
    return [*lines, ""]


def camera_markdown(report: dict[str, Any]) -> list[str]:
    """Draft against full-size decoding (speed and mAP) on the camera-size set."""
    cam, cmap = report["camera"], report["camera_map"]
    d = cam["draft_vs_full"]
    generated = cam["generated_s"]
    origin = "reused" if generated is None else f"generated in {generated:.0f} s"
    return [
        f"Camera-size set: {cam['n_images']} Holidays images (whole groups) upscaled to "
        f"{CAMERA_SIZE[0]}x{CAMERA_SIZE[1]}, JPEG quality {CAMERA_QUALITY}, cached in "
        f"`{cam['root']}` ({origin}).",
        "",
        "| hsv on camera-size JPEGs, one process | img/s | draft speedup |",
        "|---|--:|--:|",
        f"| draft decoding to max_side {d['max_side']} "
        f"| {_fmt(d['draft']['images_per_s'], 2)} | 1.0 |",
        f"| full decoding, then shrink to {d['max_side']} | "
        f"{_fmt(d['full_decode_then_shrink']['images_per_s'], 2)} "
        f"| {_fmt(d['speedup_vs_full_decode_then_shrink'], 1)} |",
        f"| full decoding, feature on the full image | "
        f"{_fmt(d['full_decode_full_feature']['images_per_s'], 2)} "
        f"| {_fmt(d['speedup_vs_full_decode_full_feature'], 1)} |",
        "",
        f"hsv mAP on the camera-size set ({cmap['n_images']} images, {cmap['n_queries']} queries): "
        f"draft decoding {cmap['draft']['map']:.4f}, full-size decoding (max_side={FULL_SIDE}) "
        f"{cmap['full']['map']:.4f}, difference {cmap['difference']:.4f}.",
        "",
    ]


def service_markdown(report: dict[str, Any]) -> list[str]:
    """Query latency and end-to-end evaluate tables."""
    lines = [
        "| query latency (hsv, k=10, extraction included) | queries | p50 ms | p95 ms | mean ms |",
        "|---|--:|--:|--:|--:|",
    ]
    for name, rec in report["latency"].items():
        lines.append(
            f"| {name} | {rec['n_queries']} | {rec['p50_ms']:.2f} | {rec['p95_ms']:.2f} "
            f"| {rec['mean_ms']:.2f} |"
        )
    ev = report["evaluate"]
    return [
        *lines,
        "",
        f"| `{ev['command']}` | seconds | of which extraction | mAP |",
        "|---|--:|--:|--:|",
        *(
            f"| {run} feature cache | {ev[run]['seconds']:.2f} | {ev[run]['extract_s']:.2f} "
            f"| {ev[run]['map']:.4f} |"
            for run in ("cold", "warm")
        ),
        "",
    ]


def targets_markdown(targets: list[dict[str, Any]]) -> list[str]:
    """The target checklist."""
    lines = ["| target | measured | required | verdict |", "|---|--:|--:|---|"]
    for t in targets:
        verdict = "not run" if t["met"] is None else ("met" if t["met"] else "**NOT met**")
        lines.append(
            f"| {t['name']} | {_fmt(t['value'], 3)} | {t['comparison']} {t['threshold']:g} "
            f"| {verdict} |"
        )
    return [*lines, ""]


def markdown(report: dict[str, Any]) -> str:
    """The whole report as Markdown."""
    m = report["machine"]
    lines = [
        "# search_lab speed benchmark",
        "",
        f"Command: `{report['command']}` — total {report['elapsed_s']:.0f} s.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gb']} GB RAM; Python {m['python']}, "
        f"numpy {m['numpy']}, torch {m['torch']}, Pillow {m['pillow']}. Load average (1, 5, 15 "
        f"min) {m['load_avg_at_start']} at start, {report['load_avg_at_end']} at end. "
        f"{report.get('note', '')}".rstrip(),
        "",
        "Ratios are seconds per image of the feature over seconds per image of decode-only "
        "(`load_image` at full size, or at the feature's own max_side), in the same mode. One "
        "process = `workers=1` (CNN: 1 torch thread), best of interleaved rounds after a warm-up; "
        "parallel = `extract_files(..., workers=None)`, process pool (CNN: torch threads on every "
        "core), pool start-up included.",
        "",
        *extraction_markdown("Holidays", report["holidays"]),
    ]
    if "camera" in report:
        lines += extraction_markdown("Camera-size JPEGs", report["camera"])
        lines += camera_markdown(report)
    lines += service_markdown(report)
    if "integrity" in report:
        lines += markdown_lines(report["integrity"])
    lines += ["## Targets", "", *targets_markdown(report["targets"])]
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--quick`` shrinks every part to a seconds-long smoke run."""
    cache = Path(os.environ.get("SEARCH_LAB_CACHE", ".cache/search_lab"))
    p = argparse.ArgumentParser(
        prog="python -m search_lab.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"12 images, 4 camera-size images, 5 queries, 1 round; default out {QUICK_OUT}",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"JSON report (Markdown beside it); default {DEFAULT_OUT}",
    )
    p.add_argument(
        "--images",
        type=int,
        default=None,
        help="use the first whole groups holding at least N images",
    )
    p.add_argument(
        "--dataset", type=Path, default=None, help="Holidays folder; default $HOLIDAYS_DIR"
    )
    p.add_argument(
        "--camera-images",
        type=int,
        default=200,
        help="camera-size images to generate and time (0: skip)",
    )
    p.add_argument("--camera-cache", type=Path, default=cache / "bench-camera")
    p.add_argument("--queries", type=int, default=100, help="queries timed per index")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds of one-process timing")
    p.add_argument("--cnn-size", type=int, default=224, help="CNN input longer side")
    p.add_argument("--no-cnn", action="store_true", help="leave the CNN out")
    p.add_argument("--note", default="", help="a sentence added to the report")
    p.add_argument(
        "--integrity-items",
        type=int,
        default=1_000_000,
        help="vectors (x 128) of the checksum-verification stage (0: skip)",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.images = args.images or 12
        args.camera_images, args.queries, args.rounds = min(args.camera_images, 4), 5, 1
        args.integrity_items = min(args.integrity_items, 20_000)
    args.out = args.out or (QUICK_OUT if args.quick else DEFAULT_OUT)
    for name in ("images", "queries", "rounds", "cnn_size"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    if args.camera_images < 0:
        p.error("--camera-images must be 0 or positive")
    return args


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Run every stage; write the JSON report and the Markdown table beside it."""
    started = time.perf_counter()
    report: dict[str, Any] = {"command": command, "machine": machine(), "note": args.note}
    full = load_dataset(args.dataset or default_root())
    feats = feature_configs(args.cnn_size, with_cnn=not args.no_cnn)
    with tempfile.TemporaryDirectory(prefix="search_lab-bench.") as tmp:
        work = Path(tmp)
        data = full
        if args.images and args.images < len(full.names):
            data = load_dataset(
                link_subset(full.root, whole_groups(full, args.images), work / "subset")
            )
        report["config"] = {
            **{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "features": feats,
            "dataset_root": str(full.root),
        }
        report["holidays"] = bench_set("holidays", data.root, data.names, feats, args.rounds)
        if args.camera_images:
            report.update(camera_stages(data, feats, args, work))
        log.info("query latency")
        report["latency"] = query_latency(data.root, args.queries, work)
        log.info("end-to-end evaluate")
        report["evaluate"] = evaluate_command(data.root, work)
    if args.integrity_items > 0:
        log.info("checksum verification on load")
        report["integrity"] = verification_cost(args.integrity_items, rounds=args.rounds)
    report["targets"] = check_targets(report)
    report["load_avg_at_end"] = load_avg()
    report["elapsed_s"] = time.perf_counter() - started
    write_json(args.out, report)
    write_text(args.out.with_suffix(".md"), markdown(report))
    return report


def camera_stages(
    data: Dataset, feats: dict[str, dict[str, Any]], args: argparse.Namespace, work: Path
) -> dict[str, Any]:
    """Extraction, draft-against-full speed and mAP on the generated camera-size set."""
    root, generated = camera_set(data, args.camera_images, args.camera_cache, os.cpu_count() or 1)
    camera = load_dataset(root)
    cam_feats = {k: v for k, v in feats.items() if not (args.quick and k == "cnn")}
    part = bench_set("camera", root, camera.names, cam_feats, args.rounds)
    part["generated_s"] = generated
    log.info("camera: draft against full-size decoding")
    part["draft_vs_full"] = draft_comparison(root, camera.names, feats["hsv"], args.rounds)
    log.info("camera: mAP with draft and full-size decoding")
    cmap = camera_map(root, build_extractor(feats["hsv"]).max_side, work)
    return {"camera": part, "camera_map": cmap}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Entry point: run, print where the reports went and the target verdicts."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = parse_args(argv)
    command = shlex.join(["python", "-m", "search_lab.bench", *(argv or [])])
    try:
        report = run(args, command)
    except SearchLabError as err:
        print(f"search_lab.bench: error: {err}", file=sys.stderr)
        sys.exit(2)
    print(
        f"wrote {args.out} and {args.out.with_suffix('.md')} in {report['elapsed_s']:.0f} s "
        f"(load {report['machine']['load_avg_at_start']} -> {report['load_avg_at_end']})"
    )
    for t in report["targets"]:
        verdict = "not run" if t["met"] is None else ("met" if t["met"] else "NOT met")
        print(
            f"  {t['name']}: {_fmt(t['value'], 3)} ({t['comparison']} {t['threshold']:g}) {verdict}"
        )
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
