"""One query as the app runs it: top hits, and for a dataset query its AP and ground truth."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search_lab.data import Dataset
from search_lab.evaluation import ap_rule, positive_ranks
from search_lab.retrieval import EngineReranker, Hit, SearchEngine


def dataset_queries(dataset: Dataset, indexed: Sequence[str]) -> list[str]:
    """Names of the dataset's queries that the index holds (so they can be looked up)."""
    held = set(indexed)
    return [dataset.names[q] for q in dataset.queries if dataset.names[q] in held]


def matching_names(names: Sequence[str], typed: str, limit: int) -> tuple[list[str], int]:
    """The names holding every word of ``typed``, ignoring case, sorted (a name typed whole
    first): the first ``limit`` of them, and how many match in all."""
    whole, words = typed.strip().casefold(), typed.casefold().split()
    found = sorted(n for n in names if all(w in n.casefold() for w in words))
    found.sort(key=lambda n: n.casefold() != whole)  # stable: the rest stays sorted
    return found[:limit], len(found)


def relevant_names(dataset: Dataset, query: str) -> frozenset[str]:
    """Ground truth of a dataset query: the names of its relevant images (empty if not a query)."""
    qid = dataset.names.index(query) if query in dataset.names else -1
    return frozenset(dataset.names[i] for i in dataset.relevant.get(qid, ()))


def query_ap(dataset: Dataset, query: str, ranking: Sequence[str]) -> float | None:
    """Average precision of a full ranking (names, best first) for a dataset query.

    The rule is the dataset protocol's (Holidays trapezoid for instance datasets, standard
    non-interpolated AP for category ones, as ``evaluate`` scores them). The query itself is
    ignored wherever it appears, as in the benchmark; returns None when
    ``query`` has no ground truth. Rank the whole index for an honest figure: relevant images
    missing from ``ranking`` count as never retrieved.
    """
    id_of = {name: i for i, name in enumerate(dataset.names)}
    qid = id_of.get(query)
    if qid is None or qid not in dataset.relevant:
        return None
    relevant = dataset.relevant[qid]
    ids = [id_of[name] for name in ranking if name in id_of]
    return ap_rule(dataset.protocol).per_query(positive_ranks(ids, qid, relevant), len(relevant))


def without_query(hits: Sequence[Hit], query: str) -> list[Hit]:
    """The hits with the query image itself left out and the ranks renumbered from 1."""
    kept = [hit for hit in hits if hit.name != query]
    return [Hit(rank, hit.id, hit.name, hit.distance) for rank, hit in enumerate(kept, start=1)]


@dataclass
class Result:
    """What a query shows: top hits, seconds taken, and for a dataset query its AP and ground truth.

    ``ranked`` is how many images the engine ranked (the whole index for a dataset query).
    """

    hits: list[Hit]
    seconds: float
    ranked: int
    ap: float | None = None
    relevant: frozenset[str] | None = None
    ap_rule: str | None = None  # the AP rule's name (metrics.AP_RULES), for a dataset query


def search(
    engine: SearchEngine,
    source: Path | bytes,
    k: int,
    dataset: Dataset | None = None,
    query: str | None = None,
    reranker: EngineReranker | None = None,
) -> Result:
    """Top ``k`` hits of ``source``; for a dataset query ``query``, also its AP.

    With ``reranker``, the top results are re-scored by geometric verification first.

    A dataset query ranks the whole index so the AP is the benchmark's, then shows the top
    ``k`` with the query image itself left out; so does any other indexed image ``query``
    (one "more like this" away), which has no ground truth. Raises ImageLoadError for
    unreadable sources.
    """
    truth = relevant_names(dataset, query) if dataset is not None and query else frozenset()
    indexed = query is not None and query in engine.names
    depth = len(engine.names) if truth else min(k + indexed, len(engine.names))
    hits, seconds = (reranker or engine).query(source, depth)
    hits = [hit for hit in hits if hit.id >= 0]  # an approximate index may pad with -1
    if not truth:  # an indexed image ("more like this") is not shown as its own first result
        return Result((without_query(hits, query) if indexed else hits)[:k], seconds, depth)
    ap = query_ap(dataset, query, [hit.name for hit in hits])
    rule = ap_rule(dataset.protocol).name
    return Result(without_query(hits, query)[:k], seconds, depth, ap, truth, rule)


def overlap(a: Sequence[str], b: Sequence[str]) -> tuple[int, float]:
    """Shared items of two result lists and their Jaccard index |A ∩ B| / |A ∪ B|."""
    set_a, set_b = set(a), set(b)
    union = set_a | set_b
    shared = len(set_a & set_b)
    return shared, (shared / len(union) if union else 1.0)


def overlap_rows(results: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    """Pairwise overlap of several named result lists: one row per pair."""
    rows = []
    for (name_a, a), (name_b, b) in itertools.combinations(results.items(), 2):
        shared, jaccard = overlap(a, b)
        rows.append(
            {
                "A": name_a,
                "B": name_b,
                "shared": shared,
                "of": max(len(a), len(b)),
                "jaccard": round(jaccard, 3),
            }
        )
    return rows
