"""Geometric re-ranking measured: ``python -m search_lab.benchmarks.rerank {local,merge}``.

``local``: SIFT against ORB on a seeded sample of queries of one side of holidays-small: the
share of relevant pairs each verifies, the share of unrelated pairs, and the cost (what chose
``rerank.local``). ``merge``: the inliers of every query's top 100 under a recipe, counted
once, then the mAP of every merge setting (what chose ``rerank.weight``, ``min_inliers``,
``saturate``; run it on the tune side only).
"""

from __future__ import annotations

import argparse
import itertools
import os
import time

import numpy as np

from search_lab.cli import compose_config
from search_lab.evaluation import pick_queries, ranked_ids, score_ranked
from search_lab.retrieval import (
    SV_DEFAULTS,
    RerankOptions,
    build_pipeline,
    collection_keypoints,
    index_collection,
    inliers,
)

GRID = {
    "weight": [0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 1.0, 2.0],
    "min_inliers": [6, 8, 10, 12, 15],
    "saturate": [20, 50, 100],
}
"""The settings tried (the two runs quoted in docs/results.md, together)."""


def local(side: str, queries: int, unrelated: int) -> None:
    """Verified shares of relevant and unrelated pairs, and costs, for each local feature."""
    from search_lab.data import load_dataset, split_dataset

    root = os.environ.get("HOLIDAYS_DIR", "data/holidays")
    data = split_dataset(load_dataset(root), side, fraction=0.5, seed=0)
    rng = np.random.default_rng(0)
    qs = sorted(rng.choice(data.queries, queries, replace=False).tolist())
    pool = sorted(rng.choice(len(data.names), unrelated, replace=False).tolist())
    need = sorted(set(qs) | set(pool) | {r for q in qs for r in data.relevant[q]})
    for name in ("sift", "orb"):
        opts = RerankOptions.from_config({**SV_DEFAULTS, "local": name})
        start = time.perf_counter()
        kp = {i: opts.local.of_file(data.root / data.names[i]) for i in need}
        extract = (time.perf_counter() - start) / len(need)
        pairs = [(q, r, True) for q in qs for r in data.relevant[q]]
        pairs += [(q, r, False) for q in qs for r in pool if data.groups[r] != data.groups[q]]
        start = time.perf_counter()
        found = [(inliers(kp[q], kp[r], opts), good) for q, r, good in pairs]
        verify = (time.perf_counter() - start) / len(pairs)
        pos = np.array([n for n, good in found if good])
        neg = np.array([n for n, good in found if not good])
        print(
            f"{name}: {extract * 1e3:.0f} ms/image, {verify * 1e3:.1f} ms/pair; relevant "
            f"verified {np.mean(pos >= opts.min_inliers):.2f} of {len(pos)} (median "
            f"{np.median(pos):.0f} inliers); unrelated verified "
            f"{np.mean(neg >= opts.min_inliers):.3f} of {len(neg)} (max {neg.max()}); "
            f"load {os.getloadavg()[0]:.1f}"
        )


def merge(overrides: list[str], candidates: int) -> None:
    """mAP of every merge setting of :data:`GRID`, from inliers counted once."""
    pipe = build_pipeline(compose_config([*overrides, "progress=false"]))
    col = index_collection(pipe)
    names = col.features.names
    row = {n: i for i, n in enumerate(names)}
    queries = pick_queries(col.data, set(row), None)
    qrows = [row[col.data.names[q]] for q in queries]
    ids, dists = col.index.search(col.vectors[qrows], len(names))
    opts = RerankOptions.from_config({**SV_DEFAULTS, "min_inliers": min(GRID["min_inliers"])})
    kps = collection_keypoints(opts.local, col.data.root, names, col.fingerprint, col.cache)
    head = min(candidates + 1, len(names))
    counts = np.zeros((len(qrows), head), np.int64)
    for q, qr in enumerate(qrows):
        for j in range(head):
            if ids[q, j] != qr:
                counts[q, j] = inliers(kps[qr], kps[ids[q, j]], opts)

    def score(weight: float, least: int, saturate: int) -> float:
        new = ids.copy()
        for q in range(len(qrows)):
            v = np.where(counts[q] >= least, np.minimum(counts[q], saturate), 0)
            order = np.argsort(-(-dists[q, :head] + weight * v / saturate), kind="stable")
            new[q, :head] = ids[q, :head][order]
        ranked = ranked_ids(col.data, names, new)
        return score_ranked(ranked, queries, col.data.relevant, [1], protocol=col.data.protocol)[
            "map"
        ]

    print(f"no re-ranking: mAP {score(0.0, 8, 50):.4f}")
    for w, least, sat in itertools.product(*GRID.values()):
        print(f"weight={w} min_inliers={least} saturate={sat}: mAP {score(w, least, sat):.4f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m search_lab.benchmarks.rerank")
    sub = parser.add_subparsers(dest="what", required=True)
    one = sub.add_parser("local", help="SIFT against ORB on a sample of queries")
    one.add_argument("--side", default="tune")
    one.add_argument("--queries", type=int, default=12)
    one.add_argument("--unrelated", type=int, default=10)
    two = sub.add_parser("merge", help="mAP of the merge settings from inliers counted once")
    two.add_argument("overrides", nargs="*", default=["+experiment=best", "dataset.split=tune"])
    two.add_argument("--candidates", type=int, default=100)
    args = parser.parse_args(argv)
    if args.what == "local":
        local(args.side, args.queries, args.unrelated)
    else:
        merge(args.overrides, args.candidates)


if __name__ == "__main__":
    main()
