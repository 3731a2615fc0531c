"""Evaluate one configuration on a retrieval dataset: ``python -m search_lab.evaluate [overrides]``.

Extracts (or reads cached) features, applies the post-processing chain, builds the configured
index, ranks the collection for every query and writes ``metrics.json`` and ``rankings.dat``
into the Hydra output folder.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig

from search_lab import distractor_report, distractors, indexes
from search_lab.data import Dataset
from search_lab.engine import Collection, fit_and_index, index_collection, make_post
from search_lab.extract import cached_features
from search_lab.indexes import Index, search_views
from search_lab.metrics import score_ranked
from search_lab.results import (
    METRICS_FILE,
    RANKINGS_FILE,
    summary_lines,
    write_json,
    write_rankings,
)
from search_lab.splits import group_subsets

log = logging.getLogger(__name__)

QUERY_SAMPLE_SEED = 0  # eval.max_queries draws the same queries on every run
LATENCY_QUERIES = 256  # queries timed one by one for query_ms_p50/p95


def rotated_queries(cfg: dict[str, Any], col: Collection, names: list[str]) -> list[np.ndarray]:
    """Post-processed query descriptors for 1, 2 and 3 quarter turns (rotation-robust search)."""
    out = []
    for turns in (1, 2, 3):
        feats, _ = cached_features(
            col.cache,
            col.data.root,
            names,
            col.fingerprint,
            cfg["feature"],
            rotation=turns,
            workers=cfg.get("workers"),
            progress=cfg.get("progress", True),
        )
        rows = {n: i for i, n in enumerate(feats.names)}
        out.append(col.post.transform(feats.vectors[[rows[n] for n in names]]))
    return out


def run(cfg: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """Evaluate ``cfg`` and write its results into ``out_dir``; returns the metrics dict."""
    col = index_collection(cfg)
    feats = col.features
    metrics, rankings = search_and_score(cfg, col)
    metrics.update(
        n_images=len(feats.names),
        n_skipped=len(feats.skipped),
        skipped=feats.skipped,
        features_cached=col.cached,
        extract_s=col.extract_s + metrics["rotations_extract_s"],
        build_s=col.build_s,
        dim=int(col.vectors.shape[1]),
        config=cfg,
    )
    if cfg["eval"].get("subsets"):
        metrics["subsets"] = subset_scores(cfg, col)
    if cfg["eval"].get("distractor_counts") is not None:
        metrics["distractors"] = distractor_curve(cfg, col, metrics)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_rankings(out_dir / RANKINGS_FILE, rankings)
    write_json(out_dir / METRICS_FILE, metrics)
    lines = [f"results in {out_dir}", *summary_lines(metrics)]
    if "distractors" in metrics:
        distractor_report.write(out_dir, metrics["distractors"], cfg["feature"]["name"])
        lines += distractor_report.summary_lines(metrics["distractors"])
    print("\n".join(lines))
    return metrics


def pick_queries(data: Dataset, readable: set[str], max_queries: int | None) -> list[int]:
    """The readable queries, or a seeded sample of ``max_queries`` of them (in id order)."""
    queries = [q for q in data.queries if data.names[q] in readable]
    if len(queries) < len(data.queries):
        log.warning(
            "%d queries could not be read and are left out", len(data.queries) - len(queries)
        )
    if max_queries is not None and max_queries < len(queries):
        rng = np.random.default_rng(QUERY_SAMPLE_SEED)
        queries = sorted(rng.choice(queries, size=max_queries, replace=False).tolist())
        log.info("scoring a seeded sample of %d queries (eval.max_queries)", max_queries)
    return queries


def search_and_score(
    cfg: dict[str, Any], col: Collection
) -> tuple[dict[str, Any], list[tuple[str, list[str]]]]:
    """Rank the collection for every readable query and score the rankings."""
    data, names, vectors, index = col.data, col.features.names, col.vectors, col.index
    row = {name: i for i, name in enumerate(names)}
    queries = pick_queries(data, set(row), cfg["eval"].get("max_queries"))
    query_names = [data.names[q] for q in queries]
    views = [vectors[[row[n] for n in query_names]]]
    t0 = time.perf_counter()
    if cfg["eval"].get("rotations"):
        views += rotated_queries(cfg, col, query_names)
    rotations_s = time.perf_counter() - t0
    depth = min((cfg["eval"].get("depth") or len(names)) + 1, len(names))

    t0 = time.perf_counter()
    ids, _ = search_views(index, views, depth)
    search_s = time.perf_counter() - t0

    ranked = ranked_ids(data, names, ids)
    metrics = score_ranked(ranked, queries, data.relevant, cfg["eval"]["k"], protocol=data.protocol)
    metrics["per_query_ap"] = {data.names[q]: ap for q, ap in metrics.pop("ap").items()}
    metrics["search_s"] = search_s
    metrics["rotations_extract_s"] = rotations_s  # rotated query views (eval.rotations)
    metrics.update(index_fidelity(index, vectors, [row[n] for n in query_names], cfg["eval"]["k"]))
    all_names = np.array(data.names, dtype=object)
    rankings = [
        (data.names[q], all_names[r[(r >= 0) & (r != q)]].tolist())
        for q, r in zip(queries, ranked, strict=True)
    ]
    return metrics, rankings


def ranked_ids(data: Dataset, names: list[str], ids: np.ndarray) -> np.ndarray:
    """Dataset ids ranked for each query from index rows ``ids`` (rows of ``names``).

    The padding (ids < 0) an approximate index could not fill stays -1; the query itself is
    left in (scoring skips it, as ``holidays_map.py`` does).
    """
    id_of = {name: i for i, name in enumerate(data.names)}
    dataset_ids = np.array([id_of[n] for n in names] + [-1])  # [-1]: padding stays padding
    return dataset_ids[np.where(ids >= 0, ids, -1)]


def subset_scores(cfg: dict[str, Any], col: Collection) -> dict[str, Any]:
    """mAP on ``eval.subsets`` random collections of ``eval.subset_groups`` groups each.

    Each subset is a collection of its own: the post-processing chain is fitted on it (unless
    ``post.fit_on`` fixed it) and it gets its own index, as a user with that few photos would.
    """
    ev = cfg["eval"]
    subsets = group_subsets(
        col.data, ev["subsets"], ev["subset_groups"], seed=ev.get("subset_seed", 0)
    )
    maps = []
    for subset in subsets:
        feats = col.features.restricted(subset.names)
        post = col.post if cfg["post"].get("fit_on") else make_post(cfg)
        vectors, index = fit_and_index(cfg, feats.vectors, post)
        row = {n: i for i, n in enumerate(feats.names)}
        queries = [q for q in subset.queries if subset.names[q] in row]
        depth = len(feats.names)
        ids, _ = index.search(vectors[[row[subset.names[q]] for q in queries]], depth)
        ranked = ranked_ids(subset, feats.names, ids)
        scores = score_ranked(ranked, queries, subset.relevant, [1], protocol=subset.protocol)
        maps.append(scores["map"])
    return {
        "groups": ev["subset_groups"],
        "seed": ev.get("subset_seed", 0),
        "map": maps,
        "map_mean": float(np.mean(maps)),
        "map_min": float(np.min(maps)),
        "map_std": float(np.std(maps)),
    }


def distractor_curve(cfg: dict[str, Any], col: Collection, full: dict[str, Any]) -> dict[str, Any]:
    """mAP of the same queries with the first n distractors, for n in ``eval.distractor_counts``.

    Each count is a collection of its own, as a user with that many photos would have: the
    post-processing chain is fitted on it (unless ``post.fit_on`` fixed it) and it gets its own
    index. ``full`` holds the metrics of the whole collection (the largest count), re-used.
    """
    counts = distractors.check_counts(cfg["eval"], cfg["dataset"].get("distractors"))
    base = len(col.features.names) - col.n_distractors
    rows = []
    for count in counts or []:
        if count > col.n_distractors:
            log.warning("only %d distractors could be read, not %d", col.n_distractors, count)
        size = base + min(count, col.n_distractors)
        metrics = full
        if size < len(col.features.names):
            feats = col.features.restricted(col.features.names[:size])
            post = col.post if cfg["post"].get("fit_on") else make_post(cfg)
            vectors, index = fit_and_index(cfg, feats.vectors, post)
            part = replace(col, features=feats, vectors=vectors, index=index, post=post)
            metrics, _ = search_and_score(cfg, part)
        keep = ("map", "map_ci95", "precision_at", "recall_at", "per_query_ap", "ann_recall_at")
        row = {key: metrics[key] for key in keep if key in metrics}
        rows.append({"count": size - base, "n_images": size, **row})
    return {
        "folder": str(cfg["dataset"]["distractors"]),
        "seed": cfg["eval"].get("distractor_seed", 0),
        "indexed": col.n_distractors,
        "rows": rows,
    }


def index_fidelity(
    index: Index, vectors: np.ndarray, query_rows: list[int], ks: list[int]
) -> dict[str, Any]:
    """Per-query latency of ``index`` and, if it is approximate, its recall of exact search.

    Up to :data:`LATENCY_QUERIES` queries (evenly spread; the collection vector
    ``vectors[row]``, without rotated views) are searched alone for their top ``max(ks) + 1``,
    timing the ``search`` call only. For an approximate index every query's top list is
    compared with :class:`~search_lab.indexes.ExactIndex` on the same vectors and metric, the
    query itself left out of both.

    Returns
    -------
    dict
        ``query_ms_p50`` and ``query_ms_p95`` (milliseconds per query) and, for approximate
        indexes only, ``ann_recall_at``: str(k) -> mean share of the exact top-k that the
        index's top-k contains.
    """
    depth = min(max(ks) + 1, index.size)
    timed = np.unique(np.linspace(0, len(query_rows) - 1, LATENCY_QUERIES).astype(int))
    ms = []
    for r in [query_rows[i] for i in timed] if query_rows else []:
        query = vectors[r : r + 1]
        start = time.perf_counter()
        index.search(query, depth)
        ms.append(1e3 * (time.perf_counter() - start))
    out: dict[str, Any] = {
        "query_ms_p50": float(np.percentile(ms, 50)) if ms else 0.0,
        "query_ms_p95": float(np.percentile(ms, 95)) if ms else 0.0,
    }
    if index.exact or not query_rows:
        return out
    found = [index.search(vectors[r : r + 1], depth)[0][0] for r in query_rows]
    baseline = indexes.create("exact", metric=index.metric)
    baseline.build(vectors)
    truth, _ = baseline.search(vectors[query_rows], depth)
    shares: dict[str, list[float]] = {str(k): [] for k in ks}
    for r, approx_ids, exact_ids in zip(query_rows, found, truth, strict=True):
        got = [i for i in approx_ids if i >= 0 and i != r]  # padding and the query left out
        want = [i for i in exact_ids if i != r]
        for k in ks:
            if want[:k]:
                shares[str(k)].append(len(set(got[:k]) & set(want[:k])) / len(want[:k]))
    out["ann_recall_at"] = {k: float(np.mean(v)) if v else 1.0 for k, v in shares.items()}
    return out


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float:
    """Hydra entry point; returns mAP for sweepers that optimise it."""
    from search_lab.cli import run_job

    return run_job(run, cfg)["map"]


if __name__ == "__main__":
    from search_lab.cli import check_overrides

    check_overrides(sys.argv[1:], "config")
    main()
