"""Cost of verifying an index folder's checksums on load: ``python -m search_lab.bench_integrity``.

Builds an exact and an Annoy index over N random D-dimensional vectors (default 1M x 128:
a 512 MB ``vectors.npy``), saves each as an engine folder, then times, best of ``rounds``
with the files in the page cache: loading with sizes-only checks plus the first query
(``SearchEngine.load(verify=False)``, one top-10 search), against the full XXH3-128
verification of every data file (what ``verify=True`` adds the first time a folder is seen,
or after any change to its files) and the check of files unchanged since they were verified
(what it adds on every later load: one ``stat`` per file). Writes
``bench/integrity.json`` and ``bench/integrity.md``; ``search_lab.bench`` runs it as one stage.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from search_lab.benchmarks.common import load_avg
from search_lab.core import FORMAT, integrity, write_json, write_text
from search_lab.retrieval import SearchEngine, make_index, make_post

log = logging.getLogger(__name__)

DEFAULT_OUT = Path("bench/integrity.json")
INDEXES = {
    "exact": {"name": "exact", "block": 256},
    "annoy": {"name": "annoy", "n_trees": 10, "search_k": -1, "seed": 0, "n_jobs": -1},
}


def save_engine(vectors: np.ndarray, index: dict[str, Any], folder: Path, root: Path) -> Path:
    """An engine over ``vectors`` (no images: the feature is never used) saved to ``folder``."""
    cfg = {
        "feature": {"name": "hsv"},
        "metric": {"name": "euclidean"},
        "index": index,
        "post": {},
    }
    built = make_index(cfg)
    built.build(vectors)
    manifest = {
        "format": FORMAT,
        "config": cfg,
        "root": str(root),
        "names": [f"{i:07d}.jpg" for i in range(len(vectors))],
        "skipped": {},
        "dim": int(vectors.shape[1]),
    }
    return SearchEngine(manifest, built, make_post(cfg)).save(folder)


def time_folder(folder: Path, query: np.ndarray, rounds: int) -> dict[str, Any]:
    """Best-of-``rounds`` seconds: sizes-only load + first query, and the two verifications.

    ``verify_s`` hashes every file (a folder seen for the first time, or changed since);
    ``verify_unchanged_s`` is the default check of files unchanged since they were verified.
    """
    _wait_until_settled(folder)
    load_query, verify, unchanged = [], [], []
    for _ in range(rounds):
        start = time.perf_counter()
        engine = SearchEngine.load(folder, verify=False)
        engine.search_vectors([query], 10)
        load_query.append(time.perf_counter() - start)
        check = partial(integrity.problem, folder, engine.manifest["files"], full=True)
        verify.append(_timed(partial(check, rehash=True)))
        unchanged.append(_timed(check))
        del engine
    n_bytes = sum(p.stat().st_size for p in folder.iterdir())
    best_lq, best_v, best_u = min(load_query), min(verify), min(unchanged)
    return {
        "bytes": n_bytes,
        "load_first_query_s": best_lq,
        "verify_s": best_v,
        "verify_share": best_v / best_lq,
        "verify_gb_per_s": n_bytes / best_v / 1e9,
        "verify_unchanged_s": best_u,
        "verify_unchanged_share": best_u / best_lq,
    }


def _timed(check: Callable[[], str | None]) -> float:
    """Seconds one verification takes; it must find nothing wrong."""
    start = time.perf_counter()
    problem = check()
    seconds = time.perf_counter() - start
    assert problem is None, problem
    return seconds


def _wait_until_settled(folder: Path) -> None:
    """Sleep until the just-written files are old enough to be remembered once verified."""
    newest = max(p.stat().st_ctime_ns for p in folder.iterdir())
    time.sleep(max(0.0, (newest + integrity.RACY_NS - time.time_ns()) / 1e9 + 0.05))


def verification_cost(
    n: int = 1_000_000, dim: int = 128, rounds: int = 3, work: Path | None = None
) -> dict[str, Any]:
    """Load + first query against full checksum verification, for each index type."""
    vectors = np.random.default_rng(0).standard_normal((n, dim), dtype=np.float32)
    query = vectors[0] + 0.01
    out: dict[str, Any] = {"n": n, "dim": dim, "rounds": rounds, "hash": integrity.HASH}
    with tempfile.TemporaryDirectory(prefix="search_lab-integrity.", dir=work) as tmp:
        base = Path(tmp)
        (base / "data").mkdir()
        engine_log = logging.getLogger("search_lab.retrieval.engine")
        level = engine_log.level
        engine_log.setLevel(logging.ERROR)  # no dataset here: the "changed" warning is noise
        try:
            for kind, index in INDEXES.items():
                log.info("integrity: %s index of %d x %d", kind, n, dim)
                folder = save_engine(vectors, index, base / kind, base / "data")
                out[kind] = time_folder(folder, query, rounds)
        finally:
            engine_log.setLevel(level)
    return out


def markdown_lines(result: dict[str, Any]) -> list[str]:
    """The verification-cost table."""
    lines = [
        f"## Checksum verification on load ({result['n']:,} x {result['dim']}, "
        f"{result['hash']}, best of {result['rounds']}, files in the page cache)",
        "",
        "| index | data MB | load + first query s | full verification s | share | GB/s "
        "| check of unchanged files s | share |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for kind in INDEXES:
        r = result[kind]
        lines.append(
            f"| {kind} | {r['bytes'] / 1e6:,.0f} | {r['load_first_query_s']:.3f} "
            f"| {r['verify_s']:.3f} | {100 * r['verify_share']:.0f}% | {r['verify_gb_per_s']:.2f} "
            f"| {r['verify_unchanged_s']:.5f} | {100 * r['verify_unchanged_share']:.2f}% |"
        )
    return [*lines, ""]


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Entry point: measure, write the JSON and Markdown reports, print the table."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(prog="python -m search_lab.bench_integrity")
    parser.add_argument("--n", type=int, default=1_000_000, help="vectors (default 1M)")
    parser.add_argument("--dim", type=int, default=128, help="dimension (default 128)")
    parser.add_argument("--rounds", type=int, default=3, help="best of this many")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if min(args.n, args.dim, args.rounds) <= 0:
        parser.error("--n, --dim and --rounds must be positive")
    result = verification_cost(args.n, args.dim, args.rounds)
    result["load_avg"] = load_avg()
    write_json(args.out, result)
    text = "\n".join(markdown_lines(result)) + f"\nLoad average: {result['load_avg']}\n"
    write_text(args.out.with_suffix(".md"), text)
    print(text)
    return result


if __name__ == "__main__":
    main()
