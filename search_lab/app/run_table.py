"""The Experiments table for readers: human column names with a legend, each run's date, "—"
for an empty cell, and a filter that ignores case ("mAP>0.6" reads like ``map>0.6``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import pandas as pd

from search_lab.core import METRICS_FILE
from search_lab.evaluation import CompareError, filter_runs, parse_filter

EMPTY = "—"
DATE = "date"

FIXED_LABELS: dict[str, tuple[str, str]] = {
    "name": ("Overrides", "what the run changed from the defaults (its Hydra overrides)"),
    DATE: ("Date", "when the run finished (its metrics.json was written), local time"),
    "feature": ("Feature", "descriptor of each image (feature=...)"),
    "metric": ("Distance", "how two descriptors are compared (metric=...)"),
    "index": ("Search", "the index type that ranked the collection (index=...)"),
    "map": ("mAP", "mean average precision over the queries, 0 to 1, higher is better"),
    "map_ci_low": ("mAP low", "lower end of the 95% bootstrap interval of mAP"),
    "map_ci_high": ("mAP high", "upper end of the 95% bootstrap interval of mAP"),
    "query_ms_p50": ("Query ms", "median time of one query, feature extraction included"),
    "query_ms_p95": ("Query ms p95", "95th percentile of the query time"),
    "extract_s": ("Extract s", "seconds spent extracting the collection's features"),
    "build_s": ("Build s", "seconds spent building the index"),
    "search_s": ("Search s", "seconds spent ranking every query"),
    "img_per_s": ("Images/s", "extraction throughput (runs that did not read cached features)"),
    "n_images": ("Images", "images in the collection"),
    "n_skipped": ("Skipped", "unreadable files left out"),
    "dim": ("Dim", "length of the descriptor after post-processing"),
    "run": ("Run folder", "where the run's metrics.json, config and log are"),
}
_AT_K = {
    "P": ("Precision@{k}", "share of relevant images among the first {k} results"),
    "R": ("Recall@{k}", "share of a query's relevant images found in the first {k} results"),
    "ANN-R": ("ANN recall@{k}", "share of the exact top {k} an approximate index also returns"),
}
_AT_K_COLUMN = re.compile(r"(?P<kind>P|R|ANN-R)@(?P<k>\d+)")


def column_label(column: str) -> str:
    """Human name of a runs-table column; a dotted parameter (``index.n_trees``) keeps its key."""
    if column in FIXED_LABELS:
        return FIXED_LABELS[column][0]
    if match := _AT_K_COLUMN.fullmatch(column):
        return _AT_K[match["kind"]][0].format(k=match["k"])
    return column


def legend(columns: list[str]) -> pd.DataFrame:
    """Column name, its key (as filters and ``compare`` write it) and its meaning, per column."""
    rows = []
    for column in columns:
        if column in FIXED_LABELS:
            meaning = FIXED_LABELS[column][1]
        elif match := _AT_K_COLUMN.fullmatch(column):
            meaning = _AT_K[match["kind"]][1].format(k=match["k"])
        else:
            meaning = "a parameter some run set on the command line"
        rows.append({"column": column_label(column), "key": column, "meaning": meaning})
    return pd.DataFrame(rows)


def cell_text(value: object) -> str:
    """A cell as text: "—" when empty, a float to 4 significant digits, the rest as is."""
    if value is None or (isinstance(value, float) and value != value) or value == "":
        return EMPTY
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def run_date(run: object) -> str:
    """``YYYY-MM-DD HH:MM:SS`` of a run folder's metrics.json (empty when it cannot be read)."""
    try:
        stamp = (Path(str(run)) / METRICS_FILE).stat().st_mtime
    except OSError:
        return ""
    return datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S")


def with_dates(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with a ``date`` column after ``name``, so runs of one configuration differ."""
    dates = [run_date(run) for run in runs.get("run", [])]
    out = runs.copy()
    out.insert(min(2, len(out.columns)), DATE, dates)
    return out


def _key_of(column: str, columns: list[str]) -> str:
    """The runs-table key a filter's column names, ignoring case; keys and labels both work."""
    wanted = column.strip().casefold()
    for key in columns:
        if wanted in (key.casefold(), column_label(key).casefold()):
            return key
    return column.strip()


def filter_expression(runs: pd.DataFrame, expression: str) -> pd.DataFrame:
    """Rows of ``runs`` passing ``expression``, case-insensitive in its column and text value.

    ``mAP>0.6``, ``map>0.6`` and ``Feature=HSV`` all work; the rest is
    :func:`search_lab.evaluation.comparison.filter_runs`. Raises CompareError for an unreadable one.
    """
    column, op, raw = parse_filter(expression)
    columns = [str(c) for c in runs.columns]
    key = _key_of(column, columns)
    folded = runs.copy()
    for name in folded.columns:
        if not pd.api.types.is_numeric_dtype(folded[name]):
            folded[name] = folded[name].map(lambda v: v.casefold() if isinstance(v, str) else v)
    try:
        kept = filter_runs(folded, [f"{key}{op}{raw.casefold()}"])
    except CompareError as err:
        raise CompareError(
            str(err).replace(repr(f"{key}{op}{raw.casefold()}"), repr(expression))
        ) from None
    return runs.loc[kept.index]


def _number_format(column: str) -> str | None:
    """Text format of a numeric column: scores 4 decimals, times 3, counts none."""
    if column.startswith("map") or "@" in column:
        return "{:.4f}"
    if column.endswith(("_s", "_ms_p50", "_ms_p95")):
        return "{:.3f}"
    if column in ("n_images", "n_skipped", "dim"):
        return "{:.0f}"
    return None


def display_table(runs: pd.DataFrame, order: list[str]) -> pd.io.formats.style.Styler:
    """The table as shown: columns in ``order`` under their human names, "—" where empty.

    The values stay numbers (a click on a header sorts them as numbers); only their text is
    formatted: scores to 4 decimals, seconds and milliseconds to 3.
    """
    frame = runs[order].rename(columns={c: column_label(str(c)) for c in order})
    formats: Mapping[str, str] = {
        column_label(c): spec
        for c in order
        if pd.api.types.is_numeric_dtype(runs[c]) and (spec := _number_format(str(c)))
    }
    return frame.style.format(na_rep=EMPTY).format(formats, na_rep=EMPTY)
