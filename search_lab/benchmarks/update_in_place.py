"""An update in place against a rebuild from cached vectors: ``python -m
search_lab.benchmarks.update_in_place --photos DIR [--count 5000] [--feature hsv] [--work DIR]
[--refit-share 0.2]``.

A plain library of ``count`` photos of ``--photos`` (hard links, 100 a folder) is indexed by
``build_index`` with each index type below; each index folder is copied; then 250 photos are
added and 100 removed, and ``build_index`` updates every index twice from the same state: the
original in place (what an update does by default), the copy with ``refit_share=0``, which
makes it rebuild the index from the cached vectors (what an update does for index types that
cannot remove items). Both read the same vectors (the 250 new ones are extracted by the first
update only). Compared: the update's time without extraction (``Report.update_s``: planning,
the index changed or rebuilt, the folder written and swapped in) and the index step alone
(``Report.index_s``). Results: ``bench/update-in-place.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from search_lab.benchmarks.common import extraction_machine, load_avg, measure_and_report
from search_lab.benchmarks.library import ADDED, REMOVED, photo_files, place
from search_lab.retrieval import Report, build_pipeline, update_index

log = logging.getLogger(__name__)

INDEXES = {  # label -> build_index overrides
    "exact": ["index=exact"],
    "hnsw": ["index=hnsw"],
    "faiss Flat": ["index=faiss", "index.factory=Flat"],
    "faiss IVF64,Flat": ["index=faiss", "index.factory='IVF64,Flat'"],
    "faiss HNSW32": ["index=faiss", "index.factory=HNSW32"],
}


def _build(library: Path, index: Path, cache: Path, feature: str, *extra: str) -> Report:
    """What ``build_index`` does on the local executor (in this process): build or update."""
    from search_lab.cli import compose_config

    overrides = [
        f"dataset.root={library}", "dataset.layout=plain", f"feature={feature}",
        f"index_dir={index}", f"cache_dir={cache}", "progress=false", *extra,
    ]  # fmt: skip
    cfg = compose_config(overrides, "build_index")
    _, report = update_index(build_pipeline(cfg), index)
    log.info("%s: %s", index.name, report.line())
    return report


def _how(index: Path) -> dict[str, Any]:
    return json.loads((index / "manifest.json").read_text())["update"]["index"]


def bench(args: argparse.Namespace) -> dict[str, Any]:
    """Full builds, then the same update in place and by rebuild, for every index type."""
    photos = photo_files(args.photos, args.count + ADDED)
    machine = extraction_machine()  # its load average: at the start
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_update."))
    library, cache = work / "library", work / "cache"
    folders = {label: work / label.replace(" ", "-").replace(",", "") for label in INDEXES}
    for folder in [library, cache, *folders.values()]:  # what an earlier run left; nothing else
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(folder.with_name(folder.name + "-rb"), ignore_errors=True)
    placed = [place(p, library, i) for i, p in enumerate(photos[: args.count])]
    full = {}
    for label, extra in INDEXES.items():
        log.info("%s: full build of %d photos", label, args.count)
        start = time.perf_counter()
        _build(library, folders[label], cache, args.feature, *extra)
        full[label] = time.perf_counter() - start
        shutil.copytree(folders[label], folders[label].with_name(folders[label].name + "-rb"))
    for path in placed[:: max(1, args.count // REMOVED)][:REMOVED]:
        path.unlink()
    for i, photo in enumerate(photos[args.count : args.count + ADDED], args.count):
        place(photo, library, i)
    rows = []
    for label, extra in INDEXES.items():
        share = f"refit_share={args.refit_share}"
        done = _build(library, folders[label], cache, args.feature, *extra, share)
        copy = folders[label].with_name(folders[label].name + "-rb")
        rebuilt = _build(library, copy, cache, args.feature, *extra, "refit_share=0")
        rows.append({
            "index": label, "full_build_s": round(full[label], 2), "summary": done.line(),
            "in_place": done.in_place, "how": _how(folders[label]),
            "update_s": round(done.update_s, 3), "index_s": round(done.index_s, 3),
            "rebuild_update_s": round(rebuilt.update_s, 3),
            "rebuild_index_s": round(rebuilt.index_s, 3), "rebuild_why": _how(copy).get("why"),
        })  # fmt: skip
    return {"photos": str(args.photos), "count": args.count, "feature": args.feature,
            "added": ADDED, "removed": REMOVED, "machine": machine,
            "load_avg_at_end": load_avg(), "rows": rows}  # fmt: skip


def report(result: dict[str, Any]) -> str:
    """Markdown table: update time in place and by rebuild, per index type."""
    lines = [
        f"# Update in place or rebuild from cached vectors ({result['feature']}, "
        f"{result['count']:,} photos, +{result['added']} −{result['removed']})",
        "",
        f"Photos: {result['photos']}; load average at the start "
        f"{result['machine'].get('load_avg_at_start')}, at the end {result['load_avg_at_end']} "
        f"on {result['machine']['cores']} cores. Times without extraction (`update_s`).",
        "",
        "| index | full build (s) | how the update went | update (s) | index step (s) | "
        "update by rebuild (s) | index step by rebuild (s) | update: in place / rebuild |",
        "|---|--:|---|--:|--:|--:|--:|--:|",
    ]
    for r in result["rows"]:
        how = f"in place ({r['how']['mode']})" if r["in_place"] else f"rebuilt: {r['how']['why']}"
        ratio = r["update_s"] / r["rebuild_update_s"] if r["rebuild_update_s"] else float("nan")
        lines.append(
            f"| {r['index']} | {r['full_build_s']} | {how} | {r['update_s']} | {r['index_s']} | "
            f"{r['rebuild_update_s']} | {r['rebuild_index_s']} | {100 * ratio:.0f}% |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; problems are one line and exit status 2."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(
        prog="python -m search_lab.benchmarks.update_in_place",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--photos", type=Path, required=True, help="folder of JPEGs")
    parser.add_argument("--count", type=int, default=5000, help="library size")
    parser.add_argument("--feature", default="hsv")
    parser.add_argument("--refit-share", type=float, default=0.2,
                        help="refit_share of the in-place updates (as build_index's)")  # fmt: skip
    parser.add_argument("--work", type=Path, default=None, help="folder for library, indexes")
    parser.add_argument("--json", type=Path, default=Path("bench/update-in-place.json"))
    parser.add_argument("--md", type=Path, default=Path("bench/update-in-place.md"))
    args = parser.parse_args(argv)
    return measure_and_report(partial(bench, args), report, args.json, args.md)


if __name__ == "__main__":
    sys.exit(main())
