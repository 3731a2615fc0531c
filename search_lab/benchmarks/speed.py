"""Speed benchmark of extraction, search and evaluation: ``python -m search_lab.bench [options]``.

One run on one machine measures, and reports as throughputs and ratios:

- **decode against extraction** on the Holidays images: decode-only throughput of
  :func:`~search_lab.data.images.load_image` (the floor, at full size and at each feature's own
  ``max_side``) against the extraction throughput of ``hsv``, ``lbp``, ``hog`` and ``cnn``, each
  timed in one process (``workers=1``; ``threads=1`` for the CNN: the pure per-image cost) and on
  the real extraction path (``extract_files(..., workers=None)``: the process pool, or torch
  threads on every core for the CNN). Ratio = seconds per image of the feature / of decoding.
- **the same on camera-size JPEGs**: Holidays images upscaled to 3264x2448 (JPEG quality 90),
  generated once and cached per image count; there ``hsv`` with reduced-size (draft) decoding
  is compared with full-size decoding, and its mAP with draft and with full-size decoding.
- **single-query latency** (p50, p95) of exact and Annoy search on the Holidays index, query
  feature extraction included (:meth:`~search_lab.retrieval.engine.SearchEngine.query`).
- **end-to-end** ``python -m search_lab.evaluate`` for the default configuration, as a whole
  command, with a cold and with a warm feature cache.
- **CNN engines** (:mod:`search_lab.benchmarks.speed_engines`): torch eager, ONNX Runtime and
  OpenVINO side by side at ``--engine-size`` (default 320), one thread and on the real
  extraction path, at batch sizes 1 (a query) and 16 (bulk), with start-up and peak memory.
- **checksum verification on load** (:mod:`search_lab.benchmarks.integrity`): full XXH3-128
  verification of an exact and an Annoy index of ``--integrity-items`` x 128 vectors against
  their load + first query time.

Results go to a JSON file and a Markdown table beside it (:mod:`search_lab.core.results`), with the
machine and its load average (other jobs distort timings: the load is recorded per stage).
One-process timings are the best of ``--repeats`` interleaved rounds after a warm-up (page
cache, colour table, model); pool timings include the pool's start-up, as a real run does.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from search_lab.benchmarks.common import compose, extraction_machine, load_avg, start_cli
from search_lab.benchmarks.integrity import verification_cost
from search_lab.benchmarks.speed_engines import engines_table
from search_lab.benchmarks.speed_images import camera_set, link_subset, whole_groups
from search_lab.benchmarks.speed_report import check_targets, fmt, markdown
from search_lab.benchmarks.speed_service import camera_map, evaluate_command, query_latency
from search_lab.benchmarks.speed_timing import bench_set, draft_comparison, feature_configs
from search_lab.core import SearchLabError, cache_root, write_json, write_text
from search_lab.data import Dataset, default_root, load_dataset
from search_lab.retrieval import build_extractor

log = logging.getLogger(__name__)

DEFAULT_OUT = Path("bench/speed.json")
# a quick run never replaces the real report
QUICK_OUT = Path(".cache/search_lab/bench/speed-quick.json")


def _parser() -> argparse.ArgumentParser:
    """The options of ``python -m search_lab.bench``."""
    cache = cache_root()
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
    p.add_argument("--engine-size", type=int, default=320, help="CNN longer side, engines table")
    p.add_argument(
        "--engine-images", type=int, default=64, help="images of the engines table (0: skip it)"
    )
    p.add_argument(
        "--engine-real-images",
        type=int,
        default=320,
        help="images of the engines table's real extraction path (the network pool starts at "
        "64: fewer are extracted in one process)",
    )
    p.add_argument("--note", default="", help="a sentence added to the report")
    p.add_argument(
        "--integrity-items",
        type=int,
        default=1_000_000,
        help="vectors (x 128) of the checksum-verification stage (0: skip)",
    )
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--quick`` shrinks every part to a seconds-long smoke run."""
    p = _parser()
    args = p.parse_args(argv)
    if args.quick:
        args.images = args.images or 12
        args.camera_images, args.queries, args.rounds = min(args.camera_images, 4), 5, 1
        args.integrity_items = min(args.integrity_items, 20_000)
        args.engine_images = min(args.engine_images, 4)
        args.engine_real_images = min(args.engine_real_images, 4)
    args.out = args.out or (QUICK_OUT if args.quick else DEFAULT_OUT)
    for name in ("images", "queries", "rounds", "cnn_size", "engine_size"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    if args.camera_images < 0:
        p.error("--camera-images must be 0 or positive")
    return args


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Run every stage; write the JSON report and the Markdown table beside it."""
    started = time.perf_counter()
    report: dict[str, Any] = {
        "command": command,
        "machine": extraction_machine(),
        "note": args.note,
    }
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
        if args.engine_images and not args.no_cnn:
            log.info("CNN engines side by side")
            cnn = compose(["feature=cnn", f"feature.size={args.engine_size}"])["feature"]
            names = full.names[: args.engine_images]
            real = full.names[: args.engine_real_images]
            report["engines"] = engines_table(full.root, names, cnn, args.rounds, real_names=real)
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
    argv, command = start_cli("search_lab.bench", argv)
    args = parse_args(argv)
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
            f"  {t['name']}: {fmt(t['value'], 3)} ({t['comparison']} {t['threshold']:g}) {verdict}"
        )
    return report


if __name__ == "__main__":
    main()
