"""A photo library at scale: ``python -m search_lab.benchmarks.library --photos DIR
[--count 25000] [--features hsv cnn] [--cnn-count N] [--work DIR] [--app-queries N] [--reuse]``.

``--photos`` is a folder of at least ``count + 250`` JPEGs (``python -m search_lab.data
distractors --count 25250 --dest DIR`` writes synthetic ones; the report says which were
used). For each feature, a library of ``count`` photos (hard links into ``--work``, a plain
folder tree of 100 photos per folder) is indexed by ``python -m search_lab.build_index``
with an empty feature cache, each command in a fresh child process:

- **full build**: wall time and the child's peak resident memory (``VmHWM`` of the build
  process; hsv's extraction workers, forked, hold their own few MB each);
- **update**: 250 photos added and 100 removed, then ``build_index`` again with the cache
  warm: its summary line, wall time and the share of the full build's time (target <= 5%);
- **search**: ``python -m search_lab.search --json`` over 50 library photos in one command:
  p50/p95 of the per-query milliseconds it reports (extraction + search), and the wall time
  of one single-image command (start-up and index checks included);
- **app search**: the same photos queried in a real ``streamlit run app.py`` through the
  browser's protocol, each picked by typing its name into the Search page's name filter
  (:mod:`search_lab.benchmarks.app_latency`): p50/p95 from the keystroke to the results, and
  to the results with their thumbnails fetched, and the load average around it;
- **duplicates**: ``python -m search_lab.duplicates --index DIR --json`` timed when that
  command exists, else recorded as not available.

Results go to ``bench/library.json`` and ``bench/library.md``. ``--reuse`` measures only
the searches and duplicates on the library and index a previous run left in ``--work``,
keeping the build and update figures that run wrote to ``--json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from functools import partial
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np

from search_lab.benchmarks.common import REPO, extraction_machine, load_avg, measure_and_report
from search_lab.benchmarks.memory import peak_rss_mb
from search_lab.core import SearchLabError

log = logging.getLogger(__name__)

ADDED, REMOVED, QUERIES, PER_FOLDER = 250, 100, 50, 100


def photo_files(folder: Path, needed: int) -> list[Path]:
    """The first ``needed`` JPEGs of ``folder`` by name (SearchLabError if there are fewer)."""
    if not folder.is_dir():
        raise SearchLabError(f"--photos {folder} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    if len(files) < needed:
        raise SearchLabError(
            f"--photos {folder} holds {len(files)} JPEGs, {needed} are needed; write more with "
            f"`python -m search_lab.data distractors --count {needed} --dest {folder}`"
        )
    return files[:needed]


def place(photo: Path, library: Path, i: int) -> Path:
    """Hard-link photo ``i`` into the library's folder ``i // 100`` (a copy across devices)."""
    target = library / f"{i // PER_FOLDER:04d}" / photo.name
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(photo, target)
    except OSError:
        shutil.copy2(photo, target)
    return target


def run_child(argv: list[str]) -> dict[str, Any]:
    """``argv`` in a fresh child (this module's ``--child``): wall time, peak RSS, stdout."""
    cmd = [sys.executable, "-m", "search_lab.benchmarks.library", "--child", "--", *argv]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SearchLabError(f"{' '.join(argv[:3])} failed: {done.stderr.strip()[-400:]}")
    lines = done.stdout.strip().splitlines()
    return {"wall_s": round(wall, 2), **json.loads(lines[-1]), "stdout": lines[:-1]}


def child(argv: list[str]) -> None:
    """Run one command (``-m module args``) in this process; print its peak RSS as JSON."""
    import runpy

    module, args = argv[1], argv[2:]
    sys.argv = [module, *args]
    status = 0
    try:
        runpy.run_module(module, run_name="__main__")
    except SystemExit as exit_:
        status = exit_.code if isinstance(exit_.code, int) else 1
    sys.stdout.flush()
    print(json.dumps({"peak_rss_mb": round(peak_rss_mb(), 1), "status": status}))
    sys.exit(status)


def build_command(library: Path, index: Path, cache: Path, feature: str) -> list[str]:
    return [
        "-m", "search_lab.build_index", f"dataset.root={library}", "dataset.layout=plain",
        f"feature={feature}", f"index_dir={index}", f"cache_dir={cache}", "progress=false",
        f"hydra.run.dir={index.parent / 'hydra'}",
    ]  # fmt: skip


def one_feature(
    feature: str, photos: list[Path], count: int, work: Path, app_queries: int
) -> dict[str, Any]:
    """Full build, update, search and duplicates on a library of ``count`` photos."""
    base = work / feature
    shutil.rmtree(base, ignore_errors=True)
    library, index, cache = base / "library", base / "index", base / "cache"
    placed = [place(p, library, i) for i, p in enumerate(photos[:count])]
    command = build_command(library, index, cache, feature)
    log.info("%s: full build of %d photos", feature, count)
    full = run_child(command)
    for path in placed[:: max(1, count // REMOVED)][:REMOVED]:
        path.unlink()
    for i, photo in enumerate(photos[count : count + ADDED], count):
        place(photo, library, i)
    log.info("%s: update (+%d, -%d)", feature, ADDED, REMOVED)
    update = run_child(command)
    summary = next(line for line in update["stdout"] if line.startswith("added "))
    return {
        "feature": feature,
        "images": count,
        "full_build_s": full["wall_s"],
        "full_peak_rss_mb": full["peak_rss_mb"],
        "update": {"added": ADDED, "removed": REMOVED, "summary": summary,
                   "wall_s": update["wall_s"], "peak_rss_mb": update["peak_rss_mb"],
                   "share_of_full": round(update["wall_s"] / full["wall_s"], 4)},
        **searches(base, placed, app_queries),
    }  # fmt: skip


def searches(base: Path, placed: list[Path], app_queries: int) -> dict[str, Any]:
    """CLI search, app search and duplicates on the updated index of ``base``."""
    library, index = base / "library", base / "index"
    survivors = [p for p in placed if p.exists()]
    queries = [str(p) for p in survivors[:: max(1, len(survivors) // QUERIES)][:QUERIES]]
    searched = run_child(["-m", "search_lab.search", "--index", str(index), "--json", *queries])
    ms = [json.loads(line)["ms"] for line in searched["stdout"] if line.startswith("{")]
    single = run_child(["-m", "search_lab.search", "--index", str(index), queries[0]])
    names = [Path(q).relative_to(library).as_posix() for q in queries[:app_queries]]
    return {
        "search_ms": {"queries": len(ms), "p50": round(float(np.percentile(ms, 50)), 1),
                      "p95": round(float(np.percentile(ms, 95)), 1)},
        "search_command_s": single["wall_s"],
        "app_search": app_search(index, library, base / "cache", names),
        "duplicates": duplicates(index),
    }  # fmt: skip


def app_search(index: Path, library: Path, cache: Path, names: list[str]) -> dict[str, Any]:
    """The app's search latency on ``names`` (see :mod:`search_lab.benchmarks.app_latency`)."""
    if not names:
        return {"available": False, "note": "--app-queries 0"}
    if find_spec("websockets") is None:
        return {"available": False, "note": "websockets is not installed (requirements.txt)"}
    from websockets.exceptions import WebSocketException

    from search_lab.benchmarks import app_latency

    log.info("app: %d queries through a streamlit server on %s", len(names), index)
    try:
        return {"available": True, **app_latency.measure(index, library, cache, names)}
    except (SearchLabError, RuntimeError, OSError, WebSocketException) as err:  # keep the rest
        log.warning("app latency not measured: %s", err)
        return {"available": False, "note": f"failed: {str(err).splitlines()[0][:300]}"}


def reused(
    feature: str, photos: list[Path], count: int, work: Path, app_queries: int, previous: Path
) -> dict[str, Any]:
    """The searches on the library a previous run left, with that run's build figures."""
    base = work / feature
    if not (base / "index" / "manifest.json").is_file():
        raise SearchLabError(f"--reuse: {base / 'index'} holds no built index")
    runs = json.loads(previous.read_text())["runs"] if previous.is_file() else []
    before = next((r for r in runs if r["feature"] == feature and r["images"] == count), None)
    if before is None:
        raise SearchLabError(f"--reuse: {previous} has no {feature} run on {count} photos")
    placed = [base / "library" / f"{i // PER_FOLDER:04d}" / p.name for i, p in
              enumerate(photos[:count])]  # fmt: skip
    return {**before, **searches(base, placed, app_queries), "reused": True}


def duplicates(index: Path) -> dict[str, Any]:
    """Time the duplicates command on ``index`` when this checkout has it."""
    if find_spec("search_lab.retrieval.duplicates") is None:
        return {"available": False, "note": "search_lab.retrieval.duplicates is not on this branch"}
    done = run_child(["-m", "search_lab.duplicates", "--index", str(index), "--json"])
    groups = json.loads(next(line for line in done["stdout"] if line.startswith("{")))["groups"]
    return {"available": True, "wall_s": done["wall_s"], "groups": len(groups)}


def bench(args: argparse.Namespace) -> dict[str, Any]:
    """Every feature's figures, with the machine and the photos they were measured on."""
    if args.count < QUERIES + REMOVED:
        raise SearchLabError(f"--count must be at least {QUERIES + REMOVED}")
    sizes = {f: (args.cnn_count if f == "cnn" and args.cnn_count else args.count)
             for f in args.features}  # fmt: skip
    photos = photo_files(args.photos, max(sizes.values()) + ADDED)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_library."))
    machine = extraction_machine()  # its load average: at the start
    if args.reuse:
        runs = [reused(f, photos, sizes[f], work, args.app_queries, args.json)
                for f in args.features]  # fmt: skip
    else:
        runs = [one_feature(f, photos, sizes[f], work, args.app_queries) for f in args.features]
    return {
        "photos": str(args.photos),
        "photos_kind": args.kind,
        "machine": machine,
        "load_avg_at_end": load_avg(),
        "runs": runs,
    }


def report(result: dict[str, Any]) -> str:
    """Markdown table of every feature's figures."""
    lines = [
        "# A photo library at scale: full build, update, search, duplicates",
        "",
        f"Photos: {result['photos_kind']} ({result['photos']}); load average at the start "
        f"{result['machine'].get('load_avg_at_start')}, at the end "
        f"{result.get('load_avg_at_end', 'not recorded')} on {result['machine']['cores']} cores.",
        "",
        "| feature | images | full build (s) | peak RSS (MB) | update +250 −100 (s) | "
        "update / full | search p50 / p95 (ms) | one search command (s) | duplicates (s) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in result["runs"]:
        dup = r["duplicates"]
        dup_s = f"{dup['wall_s']}" if dup["available"] else "n/a"
        lines.append(
            f"| {r['feature']} | {r['images']:,} | {r['full_build_s']} | "
            f"{r['full_peak_rss_mb']:,.0f} | {r['update']['wall_s']} | "
            f"{100 * r['update']['share_of_full']:.1f}% | {r['search_ms']['p50']} / "
            f"{r['search_ms']['p95']} | {r['search_command_s']} | {dup_s} |"
        )
    lines += ["", "Update summary lines:", ""]
    lines += [f"- {r['feature']}: `{r['update']['summary']}`" for r in result["runs"]]
    return "\n".join(lines + app_lines(result["runs"])) + "\n"


def app_lines(runs: list[dict[str, Any]]) -> list[str]:
    """The app's search latency table (runs measured before it existed are left out)."""
    rows = [r for r in runs if r.get("app_search", {}).get("available")]
    lines = [
        "", "Search in the app (a real `streamlit run app.py`, one session speaking the browser's "
        "protocol; each photo picked by typing its name into the Search page's name filter):", "",
        "| feature | queries | results p50 / p95 (ms) | with thumbnails p50 / p95 (ms) | "
        "engine p50 / p95 (ms) | first page (s) | load average before → after |",
        "|---|--:|--:|--:|--:|--:|---|",
    ]  # fmt: skip
    for r in rows:
        a = r["app_search"]
        lines.append(
            f"| {r['feature']} | {a['queries']} | {a['results_ms']['p50']} / "
            f"{a['results_ms']['p95']} | {a['shown_ms']['p50']} / {a['shown_ms']['p95']} | "
            f"{a['engine_ms']['p50']} / {a['engine_ms']['p95']} | {a['first_page_s']} | "
            f"{a['load_avg']['before']} → {a['load_avg']['after']} |"
        )
    return lines if rows else []


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m search_lab.benchmarks.library", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--photos", type=Path, required=False, help="folder of JPEGs")
    parser.add_argument("--kind", default="synthetic (python -m search_lab.data distractors)",
                        help="what the photos are, for the report")  # fmt: skip
    parser.add_argument("--count", type=int, default=25_000, help="library size")
    parser.add_argument("--features", nargs="+", default=["hsv", "cnn"])
    parser.add_argument("--cnn-count", type=int, default=None, help="library size for cnn")
    parser.add_argument("--work", type=Path, default=None, help="folder for libraries, indexes")
    parser.add_argument("--json", type=Path, default=Path("bench/library.json"))
    parser.add_argument("--md", type=Path, default=Path("bench/library.md"))
    parser.add_argument("--app-queries", type=int, default=QUERIES,
                        help="queries through the app (0: no app measurement)")  # fmt: skip
    parser.add_argument("--reuse", action="store_true",
                        help="search again on the index a previous run left in --work")  # fmt: skip
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; problems are one line and exit status 2."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = parse_args(argv)
    if args.child:
        child([a for a in args.rest if a != "--"])
        return 0
    if args.photos is None:
        print("error: --photos DIR is needed (a folder of JPEGs)", file=sys.stderr)
        return 2
    return measure_and_report(partial(bench, args), report, args.json, args.md)


if __name__ == "__main__":
    sys.exit(main())
