"""I have an image, give me similar images: ``python -m search_lab.search --index DIR IMAGE ...``.

Loads a built index (every check of :meth:`SearchEngine.load`, checksums included) and prints,
for each image, its top-k file names and distances in the index metric's own units; ``--json``
writes one JSON object per image and line instead, with ``image`` and every result ``name``
exactly as given (a name with bytes that are not UTF-8 carries them as the lone surrogates
U+DC80 to U+DCFF of Python's ``surrogateescape``: ``os.fsencode`` gives the bytes back).
An image that cannot be read gets one line naming it and the others are still answered:
exit status 0 when all were answered, 1 when any image failed, 2 for a bad index or bad
arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from search_lab.core import ImageLoadError, run_command, shown
from search_lab.retrieval import RERANKERS, SV_DEFAULTS, EngineReranker, RerankOptions, SearchEngine

log = logging.getLogger(__name__)


def _positive(value: str) -> int:
    k = int(value) if value.isdigit() else 0
    if k < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value!r}")
    return k


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m search_lab.search", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--index", required=True, type=Path, help="a built index folder")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files to search with")
    parser.add_argument("--k", type=_positive, default=10, help="results per image (default 10)")
    parser.add_argument("--json", action="store_true", help="one JSON object per image and line")
    parser.add_argument(
        "--sizes-only",
        action="store_true",
        help="check the index files' sizes but not their checksums (faster on huge indexes)",
    )
    parser.add_argument(
        "--rerank",
        choices=RERANKERS,
        default=None,
        help="geometric re-ranking of the top results (default: the index's rerank setting)",
    )
    parser.add_argument(
        "--candidates", type=_positive, default=None, help="results re-ranked (default 100)"
    )
    parser.add_argument(
        "--rehash",
        action="store_true",
        help="hash every index file, even those unchanged since they were last verified",
    )
    return parser.parse_args(argv)


def answer(
    engine: SearchEngine, image: str, k: int, reranker: EngineReranker | None = None
) -> dict[str, Any]:
    """The top-k of one image as a plain dict (``error`` instead of results if unreadable)."""
    try:
        if reranker is None:
            hits, seconds = engine.query(image, k)
        else:
            hits, seconds = reranker.query(image, k)
    except ImageLoadError as err:
        return {"image": image, "error": str(err)}
    results = [{"rank": h.rank, "name": h.name, "distance": h.distance} for h in hits]
    if reranker is not None:
        for result, hit in zip(results, hits, strict=True):
            result["inliers"] = reranker.inliers_of.get(hit.id, 0)
    return {"image": image, "ms": round(seconds * 1e3, 3), "results": results}


def reranker_of(engine: SearchEngine, args: argparse.Namespace) -> EngineReranker | None:
    """The re-ranker ``--rerank`` / ``--candidates`` (or the index's config) asks for, if any."""
    section = dict(engine.config.get("rerank") or {"name": "none"})
    if args.rerank is not None:
        section = {**SV_DEFAULTS, **section, "name": args.rerank}
    if args.candidates is not None:
        section = {**SV_DEFAULTS, **section, "candidates": args.candidates}
    opts = RerankOptions.from_config(section)
    return EngineReranker(engine, opts) if opts.enabled else None


def write_text(out: TextIO, record: dict[str, Any], metric: str) -> None:
    """One image's answer for people: a heading line, then ``rank  distance  name`` lines."""
    out.write(f"{shown(record['image'])}  ({record['ms']:.1f} ms, {metric} distance)\n")
    for hit in record["results"]:
        out.write(f"{hit['rank']:>4}  {hit['distance']:.6f}  {shown(hit['name'])}\n")


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Answer every image of ``args`` on ``out`` (stdout); exit status 0, or 1 if any failed."""
    out = out or sys.stdout
    engine = SearchEngine.load(args.index, verify=not args.sizes_only, rehash=args.rehash)
    metric = engine.config["metric"]["name"]
    engine.extractor.prepare()  # network loaded (weights checked) before the first query
    reranker = reranker_of(engine, args)
    failed = 0
    for image in args.images:
        record = answer(engine, image, args.k, reranker)
        if "error" in record:
            failed += 1
            if not args.json:
                print(f"error: {shown(record['error'])}", file=sys.stderr)
        if args.json:  # names as given: json escapes them, undecodable bytes as \udcXX
            out.write(json.dumps({**record, "metric": metric}) + "\n")
        elif "error" not in record:
            write_text(out, record, metric)
        out.flush()
    if reranker is not None and reranker.stats.fallback_queries:
        print(
            f"note: {reranker.stats.fallback_queries} image(s) had too few local features to "
            "re-rank: global order kept",
            file=sys.stderr,
        )
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: problems with the index are one line and exit status 2."""
    args = parse_args(argv)
    return run_command(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
