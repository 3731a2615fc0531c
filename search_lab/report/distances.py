"""Q3 of the report: Euclidean vs cosine (and Manhattan, chi2, Hellinger), measured.

On unit-length vectors ``||a - b||^2 = 2 - 2 cos(a, b)``: the Euclidean distance is an
increasing function of the cosine distance, so both rank every collection the same way. The
section shows it on the default (L2-normalised) descriptors, and where they part: histograms
that are not unit length (``feature.sqrt=false post.l2=false``).
"""

from __future__ import annotations

from collections.abc import Sequence

from search_lab.report.cells import (
    MAP_COLUMN,
    RUN_COLUMN,
    best,
    delta_text,
    find,
    interval,
    map_cell,
    not_run,
    paired,
    run_cell,
    same_top,
    short,
    verdict,
)
from search_lab.report.render import Chart, Section, Table, bar_chart
from search_lab.report.runs import Outcome
from search_lab.report.sections import HEADINGS, commands

FORMS = ("unit length (default)", "raw histograms", "square root, no L2")
FORM_ARGS = {
    "unit length (default)": "defaults: `feature.sqrt=true post.l2=true`",
    "raw histograms": "`feature.sqrt=false post.l2=false`: L1-normalised, not unit length",
    "square root, no L2": "`feature.sqrt=true post.l2=false`: unit length by construction",
}
TOP_K = 10


def _same(o: Outcome, ref: Outcome | None) -> str:
    """Share of queries with the same top-10 as ``ref``, as a cell."""
    share = same_top(ref, o, TOP_K) if ref is not None and o is not ref else None
    return "" if share is None else f"{100 * share:.1f}%"


def _hsv_table(outcomes: Sequence[Outcome]) -> Table:
    """hsv: every metric on each vector form, with the share of top-10 lists equal to cosine's."""
    rows = []
    for form in FORMS:
        ref = find(outcomes, "cosine", form)
        for o in (x for x in outcomes if x.run.group == form):
            rows.append([form, o.run.label, map_cell(o), _same(o, ref), run_cell(o)])
    cols = ["hsv vectors", "metric", MAP_COLUMN, f"same top-{TOP_K} as cosine", RUN_COLUMN]
    note = (
        "; ".join(f"{k}: {v}" for k, v in FORM_ARGS.items())
        + ". hellinger = euclidean on square-rooted histograms."
    )
    return Table("Metrics on hsv histograms (exact search)", cols, rows, note)


def _feature_table(outcomes: Sequence[Outcome], features: list[str]) -> Table:
    """Per feature: each metric's mAP and its paired difference with cosine."""
    rows = []
    for feat in features:
        ref = find(outcomes, "cosine", feat)
        for o in (x for x in outcomes if x.run.group == feat):
            diff = "" if o is ref or not o.ok else delta_text(paired(ref, o))
            rows.append([feat, o.run.label, map_cell(o), diff, run_cell(o)])
    cols = ["feature", "metric", MAP_COLUMN, "Δ mAP vs cosine [95% CI]", RUN_COLUMN]
    return Table(
        "Metrics per feature (euclidean here with post.l2=false: the feature's own lengths)",
        cols,
        rows,
    )


def _identity_sentence(outcomes: Sequence[Outcome]) -> str:
    """Unit length: euclidean == cosine, and why."""
    cos, euc = find(outcomes, "cosine", FORMS[0]), find(outcomes, "euclidean", FORMS[0])
    if not (cos and euc):
        return ""
    share = same_top(cos, euc, TOP_K)
    return (
        f"On unit-length vectors (the default: every descriptor is L2-normalised) euclidean and "
        f"cosine give mAP {euc.metrics['map']:.4f} and {cos.metrics['map']:.4f}, and the same "
        f"top-{TOP_K} for {100 * share:.1f}% of the queries. That is no coincidence: for unit "
        "vectors ||a − b||² = 2 − 2·cos(a, b), so the Euclidean distance grows exactly as the "
        "cosine similarity falls and both rank every image in the same order (a difference "
        "could only come from float rounding between near-ties)."
    )


def _raw_sentence(outcomes: Sequence[Outcome]) -> str:
    """Where they differ: histograms that are not unit length."""
    form = FORMS[1]
    cos, euc = find(outcomes, "cosine", form), find(outcomes, "euclidean", form)
    if not (cos and euc):
        return ""
    share, pc = same_top(cos, euc, TOP_K), paired(cos, euc)
    text = (
        f"They part when the vectors are not unit length: on raw hsv histograms "
        f"(`feature.sqrt=false post.l2=false`: each is divided by its pixel count, so an image's "
        f"size never changes it, but its L2 length still varies with how peaked it is) "
        f"euclidean scores {short(euc)} against cosine's {short(cos)} "
        f"({delta_text(pc)}, {verdict(pc)}), and only {100 * share:.1f}% of the queries keep "
        f"the same top-{TOP_K}."
    )
    hel, sq = find(outcomes, "hellinger", FORMS[2]), find(outcomes, "cosine", FORMS[2])
    if hel and sq:
        text += (
            f" Square-rooted histograms are unit length by construction (Σ√p·√p = Σp = 1), so "
            f"euclidean on them — the Hellinger distance — again ranks like cosine: mAP "
            f"{hel.metrics['map']:.4f} vs {sq.metrics['map']:.4f}, same top-{TOP_K} for "
            f"{100 * same_top(sq, hel, TOP_K):.1f}% of the queries."
        )
    return text


def _ties(group: Sequence[Outcome], top: Outcome) -> list[str]:
    """Labels of the metrics ``top`` does not measurably beat (itself first)."""
    rest = [o for o in group if o.ok and o is not top]
    return [top.run.label] + [o.run.label for o in rest if verdict(paired(o, top)) != "better"]


def _advice(outcomes: Sequence[Outcome], features: list[str]) -> str:
    """Which metric to use for which feature, measured: a metric is named the best only when
    it measurably beats every other one; each is paired against cosine."""
    parts = []
    for feat in ["hsv", *features]:
        group = [o for o in outcomes if o.run.group == (FORMS[0] if feat == "hsv" else feat)]
        ref, top = find(group, "cosine"), best(group)
        if ref is None or top is None:
            continue
        ties = _ties(group, top)
        lead = f"{top.run.label} best" if len(ties) == 1 else "no clear winner among "
        lead += "" if len(ties) == 1 else ", ".join(ties)
        if top is ref:
            parts.append(f"{feat}: {lead}; cosine (= euclidean on unit vectors) is the highest")
            continue
        pc = paired(ref, top)
        word = "measurably better" if verdict(pc) == "better" else "within noise of cosine"
        parts.append(
            f"{feat}: {lead}; the highest, {top.run.label} {top.metrics['map']:.3f}, vs cosine "
            f"{ref.metrics['map']:.3f} ({word})"
        )
    return (
        "Which to use, measured (a metric is called best only when it measurably beats every "
        "other one on that feature; the highest is paired against cosine): "
        + "; ".join(parts)
        + "."
    )


def distances(outcomes: Sequence[Outcome], dataset: tuple[str, ...]) -> Section:
    """Q3 section: identity on unit vectors, differences on raw histograms, per-feature advice."""
    features = list(dict.fromkeys(o.run.group for o in outcomes if o.run.group not in FORMS))
    answer = [_identity_sentence(outcomes), _raw_sentence(outcomes), _advice(outcomes, features)]
    answer.append(not_run(outcomes))
    section = Section(HEADINGS[2], [a for a in answer if a], commands=commands(outcomes, dataset))
    section.tables += [_hsv_table(outcomes), _feature_table(outcomes, features)]
    done = [o for o in outcomes if o.ok]
    png = bar_chart(
        [
            f"{o.run.group if o.run.group in features else 'hsv ' + o.run.group.split(' (')[0]}"
            f" · {o.run.label}"
            for o in done
        ],
        [o.metrics["map"] for o in done],
        [interval(o) for o in done],
        [o.run.group for o in done],
        "mAP (95% bootstrap interval)",
    )
    section.charts.append(Chart("q3-metrics", "mAP per metric and vector form", png))
    return section
