"""Q2's re-ranking rows: one recipe without and with geometric re-ranking, mAP and cost.

Re-ranking (``rerank=sv``) is the other half of "search effectively": it changes the order of
each query's top candidates, so it costs time per query that no index setting shows. The two
runs (see :func:`search_lab.report.plan.rerank`) are the same recipe on the same collection;
the table gives each one's mAP with its interval, the paired difference, and the time per
query of the global search and of the verification.
"""

from __future__ import annotations

from collections.abc import Sequence

from search_lab.report.cells import (
    MAP_COLUMN,
    RUN_COLUMN,
    delta_text,
    map_cell,
    metric,
    paired,
    run_cell,
    short,
    verdict,
)
from search_lab.report.render import Table
from search_lab.report.runs import Outcome

COLUMNS = [
    "re-ranking",
    MAP_COLUMN,
    "Δ mAP vs without (paired)",
    "search ms p50",
    "re-ranking ms/query",
    "verified / pairs",
    RUN_COLUMN,
]


def _rerank_ms(o: Outcome) -> str:
    """Verification ms per query ('0' without re-ranking), '' when the run is missing."""
    if not o.ok:
        return ""
    info = o.metrics.get("rerank")
    return "0" if info is None else f"{info['ms_per_query']:.0f}"


def _pairs(o: Outcome) -> str:
    """``verified / pairs`` of a re-ranked run, '' otherwise."""
    info = o.metrics.get("rerank") if o.ok else None
    return "" if info is None else f"{info['verified_pairs']:,} / {info['pairs']:,}"


def table(without: Outcome, with_sv: Outcome) -> Table:
    """The two runs side by side: mAP, paired Δ, and the cost per query of each step."""
    pc = paired(without, with_sv)
    rows = [
        [
            o.run.label,
            map_cell(o),
            "" if o is without else (delta_text(pc) if o.ok and without.ok else ""),
            metric(o, "query_ms_p50", fmt="{:.3f}"),
            _rerank_ms(o),
            _pairs(o),
            run_cell(o),
        ]
        for o in (without, with_sv)
    ]
    note = (
        "search ms p50: the index search of one query; re-ranking ms/query: the geometric "
        "verification of its top candidates (local features read from the cache), timed over "
        "every query of the run; on a shared machine both vary with its load."
    )
    return Table("Geometric re-ranking: mAP and cost per query", COLUMNS, rows, note)


def answer(without: Outcome, with_sv: Outcome) -> str:
    """One sentence: what re-ranking changes in mAP and what it costs per query."""
    if not (without.ok and with_sv.ok):
        missing = [o for o in (without, with_sv) if not o.ok]
        return "Re-ranking is not compared here: " + "; ".join(
            f"{o.run.label} {o.reason.removeprefix('not run: ')}" for o in missing
        )
    info = with_sv.metrics.get("rerank") or {}
    pc = paired(without, with_sv)
    return (
        f"Geometric re-ranking (`rerank=sv`: SIFT matches of each query's top "
        f"{info.get('candidates', '?')} candidates, verified by RANSAC) takes mAP from "
        f"{short(without)} to {short(with_sv)}: {delta_text(pc)} ({verdict(pc)}), for "
        f"{info.get('ms_per_query', 0.0):,.0f} ms more per query against "
        f"{without.metrics['query_ms_p50']:.3f} ms for the index search (p50)."
    )


def pair(outcomes: Sequence[Outcome]) -> tuple[Outcome, Outcome] | None:
    """The (without, with) outcomes of the plan's two re-ranking runs, in that order."""
    return (outcomes[0], outcomes[1]) if len(outcomes) == 2 else None
