"""Evaluation runs in the app: matching a run to an index, chart labels, pairs of runs."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from search_lab.app.run_table import EMPTY, column_label
from search_lab.core import METRICS_FILE, read_json_object
from search_lab.evaluation import (
    DIFF_PREFIX,
    common_items,
    diff_to_baseline,
    format_cell,
    name_items,
    paired_comparison,
    shared_values,
)

SETUP_KEYS = ("feature", "metric", "index", "post")


def same_setup(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two configs describe the same search (feature, metric, index, post-processing)."""
    return all(a.get(key) == b.get(key) for key in SETUP_KEYS)


def _plain_evaluation(config: Mapping[str, Any]) -> bool:
    """Whether a run ranked plain queries over the whole collection (as the app does).

    A run with distractors scored a larger collection than the index holds: it does not count.
    """
    evaluation = config.get("eval") or {}
    no_distractors = not (config.get("dataset") or {}).get("distractors")
    return not evaluation.get("rotations") and evaluation.get("depth") is None and no_distractors


def matching_run_map(runs: pd.DataFrame, config: Mapping[str, Any]) -> float | None:
    """mAP of the newest run in ``runs`` (a ``load_runs`` table) evaluating ``config``'s search.

    A run matches when its saved config has the same feature, metric, index and
    post-processing, the same dataset folder, and plain queries ranked over the whole
    collection. None when no run matches.
    """
    matches = []
    root = str((config.get("dataset") or {}).get("root"))
    for run, value in zip(runs.get("run", []), runs.get("map", []), strict=True):
        path = Path(run) / METRICS_FILE
        try:
            saved = read_json_object(path).get("config") or {}
            mtime = path.stat().st_mtime
        except (OSError, ValueError):  # UnreadableFileError too
            continue
        if not isinstance(saved, Mapping):
            continue
        same_data = str((saved.get("dataset") or {}).get("root")) == root
        if same_setup(saved, config) and same_data and _plain_evaluation(saved):
            matches.append((mtime, float(value)))
    return max(matches)[1] if matches else None


_PLAIN_VALUE = re.compile(r"(?i)true|false|null|none|[-+\d.\[\], ]+")


def _short_item(item: str) -> str:
    """``feature=hsv`` -> ``hsv``; a number or flag keeps its (last) key: ``whiten=true``."""
    key, sep, value = item.partition("=")
    if not sep:
        return item
    return f"{key.rsplit('.', 1)[-1]}={value}" if _PLAIN_VALUE.fullmatch(value) else value


def chart_labels(names: Sequence[str]) -> list[str]:
    """Short, unique chart labels that show only what differs between runs.

    Items every name shares are dropped; a named choice shows its value alone and a number or
    flag its last key too: ``feature=hsv,metric=cosine`` beside ``feature=lbp,metric=euclidean``
    reads ``hsv · cosine``, ``post.pca_dim=128,post.whiten=true`` reads
    ``pca_dim=128 · whiten=true``. Labels that would then read the same keep their full keys;
    runs with the very same overrides are numbered (``r1 #2``).
    """
    names = [str(n) for n in names]
    common = set(common_items(names))
    kept = [[i for i in name_items(n) if i not in common] for n in names]
    short = [" · ".join(map(_short_item, items)) or n for items, n in zip(kept, names, strict=True)]
    keyed = [" · ".join(items) or n for items, n in zip(kept, names, strict=True)]
    seen = Counter(short)
    labels = [s if seen[s] == 1 else k for s, k in zip(short, keyed, strict=True)]
    repeats, count = Counter(labels), Counter()
    out = []
    for label in labels:
        count[label] += 1
        out.append(label if repeats[label] == 1 else f"{label} #{count[label]}")
    return out


def run_label(row: Mapping[str, Any]) -> str:
    """How a run is offered in a picker: its name, its date when known, and its folder (names
    can repeat)."""
    date = f"{row['date']}, " if row.get("date") else ""
    return f"{row['name']}  ({date}{Path(str(row['run'])).name})"


def filter_table(
    runs: pd.DataFrame, text: str, choices: Mapping[str, Sequence[str]]
) -> pd.DataFrame:
    """Rows whose name contains ``text`` (any case) and whose columns take one of ``choices``.

    An empty choice list leaves that column unfiltered.
    """
    keep = runs["name"].astype(str).str.contains(text.strip(), case=False, regex=False)
    for column, allowed in choices.items():
        if allowed:
            keep &= runs[column].isin(list(allowed))
    return runs[keep]


def run_pair(runs: pd.DataFrame, a: int, b: int) -> pd.DataFrame:
    """Two runs (row positions ``a`` and ``b``) side by side, with B − A for every result.

    Every cell is text formatted like the comparison tables, each row under its column's human
    name; rows where both runs agree on a parameter are kept so the table shows the whole
    configuration.
    """
    diffed = diff_to_baseline(runs.iloc[[a, b]], 0)  # only the two rows: no test of the others
    label_a, label_b = f"A: {runs['name'].iloc[a]}", f"B: {runs['name'].iloc[b]}"
    if label_a == label_b:
        label_b += " "  # two runs of one configuration still need two columns
    rows = {}
    for column in runs.columns:
        delta = diffed[DIFF_PREFIX + column].iloc[1] if DIFF_PREFIX + column in diffed else None
        rows[column_label(str(column))] = {
            label_a: format_cell(str(column), runs[column].iloc[a]),
            label_b: format_cell(str(column), runs[column].iloc[b]),
            "B − A": format_cell(DIFF_PREFIX + str(column), delta),
        }
    return pd.DataFrame.from_dict(rows, orient="index").replace("", EMPTY)


def pair_verdict(
    runs: pd.DataFrame,
    a: int,
    b: int,
    scores: Mapping[str, Mapping[str, float]],
    *,
    alpha: float = 0.05,
) -> str:
    """Run B against run A (row positions) in words: paired Δ mAP, its 95% interval, p-value.

    ``scores`` maps a ``run`` folder to its per-query APs (``attrs["per_query_ap"]`` of a
    :func:`search_lab.evaluation.runs.load_runs` table). The runs are paired over the queries both
    have, as in :func:`search_lab.evaluation.stats.paired_comparison`: e.g. ``"B is better by 0.0310
    [+0.0120, +0.0500] (B − A, 95% interval over 240 shared queries), p = 0.002: significant
    at 5%."``
    """
    missing = [x for x, i in (("A", a), ("B", b)) if not scores.get(str(runs["run"].iloc[i]))]
    if missing:
        return f"No per-query APs saved for run {' and '.join(missing)}: no paired test."
    names, ap_a, ap_b = shared_values(
        scores[str(runs["run"].iloc[a])], scores[str(runs["run"].iloc[b])]
    )
    if not names:
        return "A and B share no query: they cannot be compared query by query."
    if (ap_a == ap_b).all():
        return f"A and B give the same AP on all {len(names)} shared queries: no difference."
    result = paired_comparison(ap_a, ap_b)
    if result.delta == 0.0:
        head = "B and A have the same mean AP"
    else:
        head = f"B is {'better' if result.delta > 0 else 'worse'} by {abs(result.delta):.4f}"
    verdict = "significant" if result.significant(alpha) else "not significant"
    p = "p < 0.001" if result.p_value < 1e-3 else f"p = {result.p_value:.3f}"
    return (
        f"{head} [{result.low:+.4f}, {result.high:+.4f}] (B − A, 95% interval over "
        f"{result.n} shared queries), {p}: {verdict} at {alpha:.0%}."
    )


def ann_vs_latency(runs: pd.DataFrame) -> tuple[pd.DataFrame, str] | None:
    """Points for the ANN-recall-against-latency chart, and the recall column used.

    Uses the largest-k ``ANN-R@k`` column. Runs without an ANN recall searched exactly
    (evaluate reports it for every approximate index) and are left out: at recall 1 and
    several times the latency they would squeeze the approximate methods into a corner. The
    ``method`` column is the index config option a run chose (from its name, e.g.
    ``faiss_ivf``), else the index type. None when no run has an ANN recall and a latency.
    """
    ann = [c for c in runs.columns if str(c).startswith("ANN-R@")]
    if not ann or "query_ms_p50" not in runs.columns:
        return None
    column = max(ann, key=lambda c: float(str(c).partition("@")[2]))
    points = runs[["name", "index", "query_ms_p50", column]].copy()
    option = points["name"].astype(str).str.extract(r"(?:^|,)index=([\w-]+)", expand=False)
    points["method"] = option.fillna(points["index"])  # e.g. faiss_ivf apart from faiss
    points = points.dropna(subset=["query_ms_p50", column])
    points = points[points["query_ms_p50"] > 0]  # a log axis cannot show 0 ms
    return (points, column) if len(points) else None


def runs_signature(root: Path) -> tuple[tuple[str, int], ...]:
    """(path, mtime) of every ``metrics.json`` under ``root``: changes when a run is added."""
    if not root.is_dir():
        return ()
    return tuple(sorted((str(p), p.stat().st_mtime_ns) for p in root.rglob("metrics.json")))
