"""The evaluation protocol: rank the collection for every query, score it, measure the index.

:func:`evaluate` takes a :class:`~search_lab.retrieval.pipeline.Pipeline` and returns an
:class:`Evaluation` (the metrics and every query's ranking); it prints and writes nothing, so
the command line, the benchmarks and the tests share it. Besides mAP, P@k and R@k it measures
per-query latency and, for approximate indexes, recall of exact search (:func:`index_fidelity`),
and optionally scores rotated queries, random subsets and growing numbers of distractors.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from search_lab import indexes
from search_lab.data import Dataset, check_ground_truth, group_subsets
from search_lab.evaluation.metrics import ann_recall, score_ranked
from search_lab.features import engines_used
from search_lab.indexes import Index, search_views
from search_lab.retrieval import (
    Collection,
    Pipeline,
    RerankStats,
    as_pipeline,
    candidate_count,
    collection_keypoints,
    fit_and_index,
    index_collection,
    rerank_row,
)

log = logging.getLogger(__name__)

QUERY_SAMPLE_SEED = 0  # eval.max_queries draws the same queries on every run
LATENCY_QUERIES = 256  # queries timed one by one for query_ms_p50/p95
CURVE_KEYS = ("map", "map_ci95", "precision_at", "recall_at", "per_query_ap", "ann_recall_at")
"""The metrics of each row of the distractor curve."""

Rankings = list[tuple[str, list[str]]]


@dataclass
class Evaluation:
    """What :func:`evaluate` found: ``metrics`` (``metrics.json``) and each query's ranking."""

    metrics: dict[str, Any]
    rankings: Rankings


def evaluate(run: Pipeline | Mapping[str, Any]) -> Evaluation:
    """Index the configured collection, rank it for every query and score the rankings.

    A plain collection (no ground truth) is refused before any extraction (DatasetError).
    """
    pipe = as_pipeline(run)
    check_ground_truth(pipe.dataset.load())
    col = index_collection(pipe)
    feats = col.features
    metrics, rankings = search_and_score(pipe, col)
    metrics.update(
        n_images=len(feats.names),
        n_skipped=len(feats.skipped),
        skipped=feats.skipped,
        features_cached=col.cached,
        extract_s=col.extract_s + metrics["rotations_extract_s"],
        build_s=col.build_s,
        dim=int(col.vectors.shape[1]),
        feature_engine=engines_used(pipe.extractor),
        config=pipe.config,
    )
    if pipe.eval.subsets:
        metrics["subsets"] = subset_scores(pipe, col)
    if pipe.eval.distractor_counts is not None:
        metrics["distractors"] = distractor_curve(pipe, col, metrics)
    return Evaluation(metrics, rankings)


def rotated_queries(pipe: Pipeline, col: Collection, names: list[str]) -> list[np.ndarray]:
    """Post-processed query descriptors for 1, 2 and 3 quarter turns (rotation-robust search)."""
    out = []
    for turns in (1, 2, 3):
        feats, _ = pipe.features(col.data.root, names, col.fingerprint, rotation=turns)
        rows = {n: i for i, n in enumerate(feats.names)}
        out.append(col.post.transform(feats.vectors[[rows[n] for n in names]]))
    return out


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


def search_and_score(pipe: Pipeline, col: Collection) -> tuple[dict[str, Any], Rankings]:
    """Rank the collection for every readable query and score the rankings."""
    data, names, vectors, index = col.data, col.features.names, col.vectors, col.index
    ks = list(pipe.eval.k)
    row = {name: i for i, name in enumerate(names)}
    queries = pick_queries(data, set(row), pipe.eval.max_queries)
    query_names = [data.names[q] for q in queries]
    views = [vectors[[row[n] for n in query_names]]]
    t0 = time.perf_counter()
    if pipe.eval.rotations:
        views += rotated_queries(pipe, col, query_names)
    rotations_s = time.perf_counter() - t0
    depth = min((pipe.eval.depth or len(names)) + 1, len(names))

    t0 = time.perf_counter()
    ids, dists = search_views(index, views, depth)
    search_s = time.perf_counter() - t0
    rerank_info = None
    if pipe.rerank.enabled:
        ids, rerank_info = rerank_collection(pipe, col, [row[n] for n in query_names], ids, dists)

    ranked = ranked_ids(data, names, ids)
    metrics = score_ranked(ranked, queries, data.relevant, ks, protocol=data.protocol)
    metrics["per_query_ap"] = {data.names[q]: ap for q, ap in metrics.pop("ap").items()}
    metrics["search_s"] = search_s
    metrics["rotations_extract_s"] = rotations_s  # rotated query views (eval.rotations)
    if rerank_info is not None:
        metrics["rerank"] = rerank_info
    metrics.update(index_fidelity(index, vectors, [row[n] for n in query_names], ks))
    all_names = np.array(data.names, dtype=object)
    rankings = [
        (data.names[q], all_names[r[(r >= 0) & (r != q)]].tolist())
        for q, r in zip(queries, ranked, strict=True)
    ]
    return metrics, rankings


def rerank_collection(
    pipe: Pipeline, col: Collection, query_rows: list[int], ids: np.ndarray, dists: np.ndarray
) -> tuple[np.ndarray, dict[str, Any]]:
    """``ids`` with each query's top ``rerank.candidates`` re-scored by geometric verification
    (:mod:`search_lab.retrieval.rerank`); the query itself stays where it is (scoring skips it)."""
    opts, names = pipe.rerank, col.features.names
    keypoints = collection_keypoints(opts.local, col.data.root, names, col.fingerprint, col.cache)
    count = candidate_count(opts, len(names)) + 1  # + the query itself, found first
    stats, out = RerankStats(), ids.copy()
    for q, query_row in enumerate(query_rows):
        out[q], _, _ = rerank_row(
            ids[q],
            dists[q],
            keypoints[query_row],
            keypoints.__getitem__,
            opts,
            stats,
            count=count,
            skip=query_row,
        )
    return out, stats.as_dict(opts)


def ranked_ids(data: Dataset, names: list[str], ids: np.ndarray) -> np.ndarray:
    """Dataset ids ranked for each query from index rows ``ids`` (rows of ``names``).

    The padding (ids < 0) an approximate index could not fill stays -1; the query itself is
    left in (scoring skips it, as ``holidays_map.py`` does).
    """
    id_of = {name: i for i, name in enumerate(data.names)}
    dataset_ids = np.array([id_of[n] for n in names] + [-1])  # [-1]: padding stays padding
    return dataset_ids[np.where(ids >= 0, ids, -1)]


def _own_collection(pipe: Pipeline, col: Collection, raw: np.ndarray) -> tuple[Any, ...]:
    """(post, vectors, index) of a smaller collection: its own chain (unless ``post.fit_on``
    fixed it) and its own index, as a user with that many photos would have."""
    post = col.post if pipe.config["post"].get("fit_on") else pipe.new_post()
    vectors, index = fit_and_index(pipe, raw, post)
    return post, vectors, index


def subset_scores(pipe: Pipeline, col: Collection) -> dict[str, Any]:
    """mAP on ``eval.subsets`` random collections of ``eval.subset_groups`` groups each."""
    ev = pipe.eval
    subsets = group_subsets(col.data, ev.subsets, ev.subset_groups, seed=ev.subset_seed)
    maps = []
    for subset in subsets:
        feats = col.features.restricted(subset.names)
        _, vectors, index = _own_collection(pipe, col, feats.vectors)
        row = {n: i for i, n in enumerate(feats.names)}
        queries = [q for q in subset.queries if subset.names[q] in row]
        ids, _ = index.search(vectors[[row[subset.names[q]] for q in queries]], len(feats.names))
        ranked = ranked_ids(subset, feats.names, ids)
        scores = score_ranked(ranked, queries, subset.relevant, [1], protocol=subset.protocol)
        maps.append(scores["map"])
    return {
        "groups": ev.subset_groups,
        "seed": ev.subset_seed,
        "map": maps,
        "map_mean": float(np.mean(maps)),
        "map_min": float(np.min(maps)),
        "map_std": float(np.std(maps)),
    }


def distractor_curve(pipe: Pipeline, col: Collection, full: dict[str, Any]) -> dict[str, Any]:
    """mAP of the same queries with the first n distractors, for n in ``eval.distractor_counts``.

    Each count is a collection of its own (see :func:`_own_collection`). ``full`` holds the
    metrics of the whole collection (the largest count), re-used.
    """
    base = len(col.features.names) - col.n_distractors
    rows = []
    for count in pipe.eval.distractor_counts or []:
        if count > col.n_distractors:
            log.warning("only %d distractors could be read, not %d", col.n_distractors, count)
        size = base + min(count, col.n_distractors)
        metrics = full
        if size < len(col.features.names):
            feats = col.features.restricted(col.features.names[:size])
            post, vectors, index = _own_collection(pipe, col, feats.vectors)
            part = replace(col, features=feats, vectors=vectors, index=index, post=post)
            metrics, _ = search_and_score(pipe, part)
        row = {key: metrics[key] for key in CURVE_KEYS if key in metrics}
        rows.append({"count": size - base, "n_images": size, **row})
    return {
        "folder": str(pipe.dataset.distractors),
        "seed": pipe.eval.distractor_seed,
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
        index's top-k contains (:func:`~search_lab.evaluation.metrics.ann_recall`).
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
    out["ann_recall_at"] = ann_recall(found, truth, ks, exclude=query_rows)
    return out
