"""The report's four sections: each question's answer in words, generated from the numbers.

Each builder takes the :class:`~search_lab.report.runs.Outcome` of every run its question
needed (see :mod:`search_lab.report.plan`) and returns a
:class:`~search_lab.report.render.Section`. Q2 and Q4 also read the search-method benchmark
(``bench/ann.json``, written by ``python -m search_lab.bench_ann``) for collection sizes and
dimensions the 648 Holidays images cannot show.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from search_lab.report import rerank
from search_lab.report.cells import (
    MAP_COLUMN,
    RUN_COLUMN,
    best,
    delta_text,
    find,
    interval,
    map_cell,
    metric,
    not_run,
    paired,
    run_cell,
    short,
    verdict,
    winner,
)
from search_lab.report.render import Chart, Section, Table, bar_chart, line_chart
from search_lab.report.runs import Outcome

HEADINGS = (
    "1. What features are important?",
    "2. How to search efficiently and effectively?",
    "3. When to use Euclidean distance vs cosine similarity?",
    "4. How to handle huge dimension?",
)


def commands(outcomes: Sequence[Outcome], dataset: tuple[str, ...]) -> list[str]:
    """One reproducing command per run (each once)."""
    return list(dict.fromkeys(o.run.command(dataset) for o in outcomes))


def _map_bars(outcomes: Sequence[Outcome], labels: Sequence[str]) -> bytes:
    """mAP bars with 95% whiskers of the finished runs, coloured by group."""
    done = [(o, lab) for o, lab in zip(outcomes, labels, strict=True) if o.ok]
    return bar_chart(
        [lab for _, lab in done],
        [o.metrics["map"] for o, _ in done],
        [interval(o) for o, _ in done],
        [o.run.group for o, _ in done],
        "mAP (95% bootstrap interval)",
    )


def _group_sentence(outcomes: Sequence[Outcome], group: str, ref: Outcome | None) -> str:
    """Whether one of ``group`` (with its reference ``ref``) is measurably best, and its Δ."""
    members = [o for o in outcomes if o.ok and o.run.group == group and o is not ref]
    if not members or ref is None:
        return ""
    pool = [ref, *members]
    text = winner(pool, f"{group} (with plain {ref.run.label})")
    top = best(pool)
    if top is not ref:
        pc = paired(ref, top)
        text += f" {top.run.label} against {ref.run.label}: {delta_text(pc)} ({verdict(pc)})."
    return text


def _cost_sentence(fams: list[Outcome], costs: dict[str, float | None]) -> str:
    """The cheapest and dearest family to extract, per image, with where the figures come from."""
    names = {o.run.label for o in fams}
    priced = sorted((c, lab) for lab, c in costs.items() if c is not None and lab in names)
    if not priced:
        return ""
    (lo, cheap), (hi, dear) = priced[0], priced[-1]
    return (
        f"Cost: extraction takes from {lo:.2f} ms per image ({cheap}) to {hi:.2f} ms ({dear}) "
        "(each timed apart, in one process, on the collection's first images; the CNN on "
        "the engine feature.engine picks, on every core; saved as extract_cost.json in each "
        "run's folder)."
    )


def _features_answer(outcomes: Sequence[Outcome], costs: dict[str, float | None]) -> list[str]:
    """Q1 in words: families ranked, whether any run is best of all, each group, the cost."""
    fams = sorted(
        (o for o in outcomes if o.ok and o.run.group == "families"),
        key=lambda o: -o.metrics["map"],
    )
    hsv, cnn, top = find(outcomes, "hsv"), find(outcomes, "cnn"), best(outcomes)
    answer = [
        "Feature families by mAP, highest first: "
        + ", ".join(f"{o.run.label} {short(o)}" for o in fams)
        + ". "
        + winner(fams, "the feature families")
    ]
    if cnn is None:
        answer.append(
            "The CNN is not among these runs (`--quick` leaves it out), so this ranks the "
            "hand-crafted features only."
        )
    overall = winner(outcomes, "all the configurations run")
    if top is not None and top is not hsv:
        pc = paired(hsv, top) if hsv else None
        overall += f" {top.run.label} against plain hsv: {delta_text(pc)} ({verdict(pc)})."
    answer += [
        overall,
        _group_sentence(outcomes, "hsv bins", hsv),
        _group_sentence(outcomes, "hsv layouts", hsv),
        _group_sentence(outcomes, "combinations", hsv),
        _group_sentence(outcomes, "cnn", cnn),
        _cost_sentence(fams, costs),
        not_run(outcomes),
    ]
    return [a for a in answer if a]


def features(
    outcomes: Sequence[Outcome], costs: dict[str, float | None], dataset: tuple[str, ...]
) -> Section:
    """Q1: which feature families, bins, layouts, combinations and CNN settings matter."""
    groups = list(dict.fromkeys(o.run.group for o in outcomes))
    outcomes = sorted(outcomes, key=lambda o: groups.index(o.run.group))  # stable: plan order
    rows = [
        [
            o.run.group,
            o.run.label,
            metric(o, "dim", fmt="{:d}"),
            map_cell(o),
            metric(o, "precision_at", "1"),
            "" if costs.get(o.run.label) is None else f"{costs[o.run.label]:.2f}",
            run_cell(o),
        ]
        for o in outcomes
    ]
    columns = ["group", "configuration", "dim", MAP_COLUMN, "P@1", "extract ms/image", RUN_COLUMN]
    section = Section(
        HEADINGS[0], _features_answer(outcomes, costs), commands=commands(outcomes, dataset)
    )
    note = (
        "extract ms/image: one process (the CNN on its engine's threads), the collection's first "
        "images, timed once when the run was first made; on a shared machine these vary with "
        "its load."
    )
    section.tables.append(
        Table("Features on the collection (exact search, cosine)", columns, rows, note)
    )
    png = _map_bars(outcomes, [o.run.label for o in outcomes])
    section.charts.append(Chart("q1-map", "mAP of every feature configuration", png))
    return section


def _bench_best(bench: dict[str, Any], k: int = 10, min_recall: float = 0.9) -> Table | None:
    """Best single-query queries/s at recall@k >= min_recall per method and benchmark set."""
    from search_lab.evaluation import best_at

    runs = bench.get("runs") or []
    if not runs:
        return None
    methods = list(dict.fromkeys(m["method"] for r in runs for m in r["methods"]))
    bests = [best_at(r, k, min_recall) for r in runs]
    rows = []
    for name in methods:
        cells = [f"{b[name]['qps']:,.0f}" if name in b else "—" for b in bests]
        rows.append([name, *cells])
    cols = ["method", *[f"{r['name']} ({r['n_items']:,} items)" for r in runs]]
    note = (
        f"queries/s, one query per call, best setting with recall@{k} ≥ {min_recall}; — = never "
        f"reached or not run. From `{bench.get('command', 'python -m search_lab.bench_ann')}` "
        f"(bench/ann.json, {bench.get('elapsed_s', 0):.0f} s, "
        f"{bench.get('machine', {}).get('cpu', '')})."
    )
    return Table("Scaling: collection size (benchmark)", cols, rows, note)


def _methods_table(outcomes: Sequence[Outcome], feature: str, dim: int) -> Table:
    """Every search method on the collection: mAP, recall of exact search, latency, build."""
    rows = [
        [
            o.run.label,
            map_cell(o),
            "1 (exact)"
            if o.ok and "ann_recall_at" not in o.metrics
            else metric(o, "ann_recall_at", "10"),
            metric(o, "query_ms_p50", fmt="{:.3f}"),
            metric(o, "query_ms_p95", fmt="{:.3f}"),
            metric(o, "build_s", fmt="{:.3f}"),
            run_cell(o),
        ]
        for o in outcomes
    ]
    cols = ["index", MAP_COLUMN, "recall@10 of exact", "query ms p50", "query ms p95"]
    title = f"Every search method on the collection ({feature}, {dim}-d, cosine)"
    return Table(title, [*cols, "build s", RUN_COLUMN], rows)


def search(
    outcomes: Sequence[Outcome],
    bench: dict[str, Any] | None,
    dataset: tuple[str, ...],
    reranked: Sequence[Outcome] = (),
) -> Section:
    """Q2: exhaustive vs approximate search, recall vs latency, collection size, and geometric
    re-ranking (``reranked``: one recipe without and with it, :func:`plan.rerank`)."""
    done = [o for o in outcomes if o.ok]
    exact = find(outcomes, "exact")
    first = done[0].metrics
    feature = first["config"]["feature"]["name"]
    answer = [_search_answer(done, exact, first, feature)]
    cited = [*outcomes, *(o for o in reranked if o.ok)]
    section = Section(HEADINGS[1], answer, commands=commands(cited, dataset))
    section.tables.append(_methods_table(outcomes, feature, first["dim"]))
    two = rerank.pair(reranked)
    if two is not None:
        section.answer.append(rerank.answer(*two))
        section.tables.append(rerank.table(*two))
    series = {
        o.run.label: (
            [o.metrics["query_ms_p50"]],
            [o.metrics.get("ann_recall_at", {}).get("10", 1.0)],
        )
        for o in done
    }
    png = line_chart(series, "query ms (p50, one query)", "recall@10 of exact search", logx=True)
    section.charts.append(
        Chart("q2-recall-latency", "Recall against latency on the collection", png)
    )
    table = _bench_best(bench) if bench else None
    if table is None:
        section.answer.append(
            "No benchmark file: `python -m search_lab.bench_ann` writes bench/ann.json."
        )
        return section
    section.tables.append(table)
    section.answer.append(_scaling_answer(bench))
    section.commands.append(bench.get("command", "python -m search_lab.bench_ann"))
    section.charts.append(
        Chart("q2-scaling", "Queries/s against collection size", _scaling_chart(bench))
    )
    return section


def _search_answer(done: list[Outcome], exact: Outcome | None, first: dict, feature: str) -> str:
    """Words for the collection's method table."""
    fast = min(done, key=lambda o: o.metrics["query_ms_p50"])
    good = [o for o in done if o.metrics.get("ann_recall_at", {}).get("10", 1.0) >= 0.95]
    spread = max(o.metrics["map"] for o in done) - min(o.metrics["map"] for o in done)
    text = (
        f"On this collection ({first['n_images']} images, {feature} {first['dim']}-d) every method "
        f"keeps mAP within {spread:.4f} of the others"
    )
    if exact:
        text += f"; exhaustive search takes {exact.metrics['query_ms_p50']:.3f} ms per query (p50)"
    text += (
        f", the fastest is {fast.run.label} at {fast.metrics['query_ms_p50']:.3f} ms. "
        f"{len(good)} of {len(done)} methods keep recall@10 ≥ 0.95 of exact search. At this size "
        "exhaustive search is exact and fast enough; approximate methods pay off as the "
        "collection grows."
    )
    return text


def _exhaustive(run: dict[str, Any]) -> dict[str, float]:
    """Queries/s of the run's exhaustive methods (no knob: every item compared), by name."""
    return {
        m["method"]: max(st["qps"] for st in m["settings"])
        for m in run["methods"]
        if m.get("knob") is None and m["settings"]
    }


def _scaling_answer(bench: dict[str, Any]) -> str:
    """Words for the benchmark's largest set: exhaustive against the fastest method at recall
    ≥ 0.9, the ratio taken between figures of that one file (named beside it)."""
    from search_lab.evaluation import best_at

    runs = sorted(bench.get("runs") or [], key=lambda r: r["n_items"])
    if not runs:
        return ""
    big = runs[-1]
    exhaustive = _exhaustive(big)
    fast = best_at(big, 10, 0.9)
    if not exhaustive or not fast:
        return ""
    slow_name, slow = min(exhaustive.items(), key=lambda kv: kv[1])
    quick_name, quick = max(exhaustive.items(), key=lambda kv: kv[1])
    name, top = max(fast.items(), key=lambda kv: kv[1]["qps"])
    spread = (
        f"{quick:,.1f} queries/s ({quick_name})"
        if slow_name == quick_name
        else f"{slow:,.1f} ({slow_name}) to {quick:,.1f} ({quick_name}) queries/s"
    )
    command = bench.get("command", "python -m search_lab.bench_ann")
    source = bench.get("source", "bench/ann.json")
    return (
        f"With {big['n_items']:,} items of {big['dim']} dimensions (synthetic, the benchmark), "
        f"exhaustive search answers {spread} while **{name}** answers {top['qps']:,.0f} at "
        f"recall@10 {top['recall_at_10']:.3f}: {top['qps'] / quick:,.0f}× the faster "
        f"exhaustive method, one query per call, all figures from {source} (`{command}`, one "
        "run). Use an approximate index (a graph index such as HNSW, or IVF) once the "
        "collection reaches hundreds of thousands of images."
    )


def _scaling_chart(bench: dict[str, Any]) -> bytes:
    """Best queries/s at recall@10 ≥ 0.9 against collection size, per method (synthetic sets)."""
    from search_lab.evaluation import best_at

    runs = sorted(
        (r for r in bench["runs"] if r["dim"] == 128 and "clustered" in r["name"]),
        key=lambda r: r["n_items"],
    )
    series: dict[str, tuple[list[float], list[float]]] = {}
    for r in runs:
        for name, s in best_at(r, 10, 0.9).items():
            xs, ys = series.setdefault(name, ([], []))
            xs.append(r["n_items"])
            ys.append(s["qps"])
    return line_chart(
        series, "items in the collection", "queries/s at recall@10 ≥ 0.9", logx=True, logy=True
    )
