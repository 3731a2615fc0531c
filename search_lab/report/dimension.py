"""Q4 of the report: huge dimension — PCA and whitening, search speed, approximate recall.

mAP and exact-search latency against the PCA dimension (whitened or not) on the collection,
Annoy's recall of exact search at a few dimensions, AlexNet fc6's 4096-d row (or why it could
not run), and every method's recall as dimension grows from the benchmark (``bench/ann.json``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from search_lab.report.cells import (
    MAP_COLUMN,
    RUN_COLUMN,
    best,
    delta_text,
    interval,
    map_cell,
    metric,
    paired,
    run_cell,
    short,
    verdict,
    winner,
)
from search_lab.report.claims import dimension_sentence, trend
from search_lab.report.plan import CNN_REUSED
from search_lab.report.render import Chart, Section, Table, line_chart
from search_lab.report.runs import Outcome
from search_lab.report.sections import HEADINGS, commands

PCA_GROUPS = ("no whitening", "whitened")


def _pca_series(outcomes: Sequence[Outcome], group: str, full: Outcome | None) -> list[Outcome]:
    """The group's finished runs in dimension order, the unreduced run last."""
    runs = sorted(
        (o for o in outcomes if o.ok and o.run.group == group), key=lambda o: o.metrics["dim"]
    )
    if group != PCA_GROUPS[0] and full is not None:
        runs.append(full)
    return runs


def _unreduced(o: Outcome) -> bool:
    """Whether ``o`` is the PCA series' reference: no PCA, exact search."""
    return o.run.group == PCA_GROUPS[0] and not any("pca_dim" in x for x in o.run.overrides)


def _pca_table(outcomes: Sequence[Outcome]) -> Table:
    """PCA dimension x whitening: dim, mAP, exact query time."""
    rows = [
        [
            o.run.label,
            o.run.group,
            metric(o, "dim", fmt="{:d}"),
            map_cell(o),
            metric(o, "query_ms_p50", fmt="{:.3f}"),
            run_cell(o),
        ]
        for o in outcomes
        if o.run.group in (*PCA_GROUPS, CNN_REUSED, "alexnet")
    ]
    cols = ["configuration", "whitening", "dim", MAP_COLUMN, "exact query ms p50", RUN_COLUMN]
    note = "PCA is fitted on the collection itself (no labels); whitening with shrinkage 1.0."
    return Table("mAP and search time against dimension (exact search, cosine)", cols, rows, note)


def _annoy_table(outcomes: Sequence[Outcome]) -> Table:
    """Annoy (50 trees) at a few dimensions: recall of exact search and latency."""
    rows = [
        [
            o.run.label,
            metric(o, "dim", fmt="{:d}"),
            map_cell(o),
            metric(o, "ann_recall_at", "10"),
            metric(o, "query_ms_p50", fmt="{:.3f}"),
            run_cell(o),
        ]
        for o in outcomes
        if o.run.group == "annoy"
    ]
    cols = ["configuration", "dim", MAP_COLUMN, "recall@10 of exact", "query ms p50", RUN_COLUMN]
    return Table("Annoy's recall against dimension on the collection", cols, rows)


def _bench_dims(bench: dict[str, Any] | None) -> Table | None:
    """Every method's recall@10 at one fixed setting per dimension (benchmark)."""
    runs = (bench or {}).get("dims") or []
    if not runs:
        return None
    rows = []
    for name in [m["method"] for m in runs[0]["methods"]]:
        cells = []
        for r in runs:
            m = next((x for x in r["methods"] if x["method"] == name), None)
            cells.append(f"{m['settings'][0]['recall_at_10']:.3f}" if m else "—")
        rows.append([name, *cells])
    cols = ["method (one fixed setting)", *[f"{r['dim']}-d" for r in runs]]
    n = runs[0]["n_items"]
    note = (
        f"recall@10 of exact search on {n:,} clustered synthetic vectors; "
        "from `python -m search_lab.bench_ann` (bench/ann.json)."
    )
    return Table("Recall as dimension grows (benchmark)", cols, rows, note)


def _bench_sentence(table: Table) -> str:
    """Each method's recall at one setting over every dimension step (claims.dimension_sentence)."""
    rows = []
    for name, *cells in table.rows:
        try:
            rows.append((name, [float(c) for c in cells]))
        except ValueError:  # a method that did not run at some dimension
            continue
    text = dimension_sentence(rows, table.columns[1:])
    values = "; ".join(f"{name} {' → '.join(f'{v:.3f}' for v in vals)}" for name, vals in rows)
    return (
        f"Recall@10 at one fixed setting per method, {table.columns[1]} to {table.columns[-1]} "
        f"on the benchmark's synthetic vectors: {values}. {text}"
    )


def _cnn_sentence(rows: list[Outcome]) -> str:
    """``--quick``: the answer on the CNN's 1280-d descriptors, from the full report's runs."""
    if len(rows) != 2:
        return ""
    full, reduced = rows
    if not (full.ok and reduced.ok):
        return (
            "On the CNN's 1,280-d descriptors: not in this report (`--quick` never extracts "
            "CNN features; it cites the full report's runs once `python -m search_lab.report` "
            "has made them)."
        )
    pc = paired(full, reduced)
    return (
        f"On the CNN's {full.metrics['dim']:,}-d descriptors (the full report's runs, reused): "
        f"{reduced.run.label} mAP {short(reduced)} against {short(full)} unreduced "
        f"({delta_text(pc)}, {verdict(pc)})."
    )


def _named(runs: Sequence[Outcome]) -> list[Outcome]:
    """The runs relabelled with their whitening (``PCA 128 (whitened)``), the unreduced run once."""
    out, seen = [], set()
    for o in runs:
        if id(o) in seen:
            continue
        seen.add(id(o))
        label = o.run.label if _unreduced(o) else f"{o.run.label} ({o.run.group})"
        out.append(replace(o, run=replace(o.run, label=label)))
    return out


def _answer(
    outcomes: Sequence[Outcome], full: Outcome | None, bench_table: Table | None
) -> list[str]:
    """The section's words, from the numbers."""
    out = []
    plain = _pca_series(outcomes, PCA_GROUPS[0], full)
    white = _pca_series(outcomes, PCA_GROUPS[1], full)
    top = best(plain + white)
    if full and top:
        pc = paired(full, top)
        small = plain[0] if plain else full
        out.append(
            f"Reducing the {full.metrics['dim']}-d descriptors: "
            + winner(_named(plain + white), "the PCA settings")
            + f" The highest, {top.run.label} ({top.run.group}), against {short(full)} "
            f"unreduced: {delta_text(pc)} ({verdict(pc)}). Down at {small.metrics['dim']} "
            f"dimensions without whitening mAP is {small.metrics['map']:.3f}. Exact search takes "
            f"{full.metrics['query_ms_p50']:.3f} ms per query at {full.metrics['dim']}-d and "
            f"{small.metrics['query_ms_p50']:.3f} ms at {small.metrics['dim']}-d (p50)."
        )
    annoy = sorted(
        (o for o in outcomes if o.ok and o.run.group == "annoy"), key=lambda o: o.metrics["dim"]
    )
    if len(annoy) >= 2:
        recalls = [o.metrics["ann_recall_at"]["10"] for o in annoy]
        cells = ", ".join(
            f"{r:.3f} at {o.metrics['dim']}-d" for r, o in zip(recalls, annoy, strict=True)
        )
        out.append(
            f"Annoy (50 trees) keeps recall@10 of exact search {cells} on this collection: it "
            f"{trend(recalls)} as dimension grows."
        )
    if bench_table:
        out.append(_bench_sentence(bench_table))
    cnn = _cnn_sentence([o for o in outcomes if o.run.group == CNN_REUSED])
    if cnn:
        out.append(cnn)
    alex = next((o for o in outcomes if o.run.group == "alexnet"), None)
    if alex is not None:
        out.append(
            f"AlexNet fc6 (4096-d): mAP {short(alex)}."
            if alex.ok
            else f"AlexNet fc6 (4096-d): {alex.reason}."
        )
    return out


def dimension(
    outcomes: Sequence[Outcome], bench: dict[str, Any] | None, dataset: tuple[str, ...]
) -> Section:
    """Q4 section: tables, charts and answer."""
    full = next((o for o in outcomes if o.ok and _unreduced(o)), None)
    bench_table = _bench_dims(bench)
    section = Section(
        HEADINGS[3], _answer(outcomes, full, bench_table), commands=commands(outcomes, dataset)
    )
    section.tables += [_pca_table(outcomes), _annoy_table(outcomes)]
    if bench_table:
        section.tables.append(bench_table)
        section.commands.append("python -m search_lab.bench_ann")
    series, bands, speed = {}, {}, {}
    for group in PCA_GROUPS:
        runs = _pca_series(outcomes, group, full)
        dims = [o.metrics["dim"] for o in runs]
        series[group] = (dims, [o.metrics["map"] for o in runs])
        bands[group] = ([interval(o)[0] for o in runs], [interval(o)[1] for o in runs])
        speed[group] = (dims, [o.metrics["query_ms_p50"] for o in runs])
    png = line_chart(series, "dimension", "mAP (95% band)", logx=True, bands=bands)
    section.charts.append(Chart("q4-map-dim", "mAP against dimension", png))
    png = line_chart(speed, "dimension", "exact query ms (p50)", logx=True)
    section.charts.append(Chart("q4-speed-dim", "Search time against dimension", png))
    return section
