"""A runs table as text: formatted cells, merged intervals, Markdown and terminal tables."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import pandas as pd

from search_lab.evaluation.comparison import DIFF_PREFIX
from search_lab.evaluation.run_scores import ALPHA, CI_COLUMNS, PAIRED_COLUMNS
from search_lab.evaluation.runs import LATENCY_COLUMNS, TIME_COLUMNS


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def p_text(p: float) -> str:
    """A p-value for a table: three decimals, or ``<0.001``."""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def format_cell(column: str, value: Any) -> str:
    """Text for one cell: scores with 4 decimals, seconds and ms with 3, differences signed."""
    if _is_missing(value):
        return ""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return str(value)
    if column == PAIRED_COLUMNS[2]:
        return p_text(float(value))
    if column == PAIRED_COLUMNS[3]:
        return str(int(value))  # a count of queries, not a difference
    diff = column.startswith(DIFF_PREFIX)
    base = column[len(DIFF_PREFIX) :] if diff else column
    if base in TIME_COLUMNS or base in LATENCY_COLUMNS:
        spec = ".3f"
    elif base == "map" or base.startswith("map_") or "@" in base:
        spec = ".4f"
    elif float(value).is_integer():
        return f"{int(value):+d}" if diff else str(int(value))
    else:
        spec = ".4g"
    if diff and format(abs(value), spec) == format(0.0, spec):
        value = 0.0  # no "-0.0000" for a rounding-level difference
    return format(value, ("+" if diff else "") + spec)


_HIGH_OF = {CI_COLUMNS[0]: CI_COLUMNS[1], PAIRED_COLUMNS[0]: PAIRED_COLUMNS[1]}
"""Lower end of an interval -> its upper end: printed together as one ``[low, high]`` cell."""


def _interval_text(column: str, low: Any, high: Any) -> str:
    """``[low, high]`` formatted as ``column``'s values; blank when either end is missing."""
    if _is_missing(low) or _is_missing(high):
        return ""
    return f"[{format_cell(column, low)}, {format_cell(column, high)}]"


def _get(df: pd.DataFrame, column: str) -> list[Any]:
    """Values of ``column``, or None for every row when ``df`` lacks it."""
    return list(df[column]) if column in df.columns else [None] * len(df)


def _paired_cells(df: pd.DataFrame, column: str) -> tuple[str, list[str]]:
    """Header and text of ``Δmap`` or a paired column: intervals, ``ns`` marks, the baseline."""
    low, high, p, shared = PAIRED_COLUMNS
    rows = zip(
        df.index, _get(df, column), _get(df, high), _get(df, p), _get(df, shared), strict=True
    )
    cells = []
    for row, value, upper, p_value, n in rows:
        baseline = row == df.attrs.get("baseline_row")
        if column == low:
            none_shared = not _is_missing(n) and n == 0
            cell = "baseline" if baseline else "no shared query" if none_shared else ""
            cells.append(cell or _interval_text(DIFF_PREFIX + "map", value, upper))
        elif column == p:
            cells.append("" if baseline else format_cell(p, value))
        else:
            ns = not baseline and not _is_missing(p_value) and p_value >= ALPHA
            cells.append(format_cell(column, value) + (" ns" if column != shared and ns else ""))
    headers = {low: "Δmap 95% CI", p: "p", shared: "shared"}
    return headers.get(column, column), cells


def display_frame(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every cell formatted as text by :func:`format_cell` (for printing).

    Interval columns are merged into one ``[low, high]`` column: ``map_ci_low``/``_high``
    become ``map 95% CI``, ``Δmap_low``/``_high`` become ``Δmap 95% CI`` (``baseline`` on the
    baseline row, ``no shared query`` where the run shares no query with it); ``Δmap_p`` is
    shown as ``p`` and ``Δmap_shared`` as ``shared``; a ``Δmap`` whose p-value is at least
    :data:`ALPHA` is marked `` ns`` (not significant).
    """
    cells: dict[str, list[str]] = {}
    lows = {high: low for low, high in _HIGH_OF.items() if low in df.columns}
    for column in map(str, df.columns):
        if column in lows:
            continue  # printed with its lower end
        if column == CI_COLUMNS[0] and CI_COLUMNS[1] in df.columns:
            pairs = zip(df[column], df[CI_COLUMNS[1]], strict=True)
            cells["map 95% CI"] = [_interval_text("map", lo, hi) for lo, hi in pairs]
        elif column in (DIFF_PREFIX + "map", *PAIRED_COLUMNS):
            header, values = _paired_cells(df, column)
            cells[header] = values
        else:
            cells[column] = [format_cell(column, v) for v in df[column]]
    return pd.DataFrame(cells, index=df.index)


def legend(df: pd.DataFrame) -> list[str]:
    """Lines explaining the interval and significance columns ``df`` has (empty if none)."""
    lines = []
    if CI_COLUMNS[0] in df.columns:
        lines.append(
            "map 95% CI: percentile bootstrap interval of the mAP (2000 resamples of the queries)"
        )
    if PAIRED_COLUMNS[0] in df.columns:
        lines.append(
            "Δmap 95% CI: paired bootstrap interval of the mean AP difference over the queries "
            "both runs share (shared); p: paired sign-flip randomisation test, two-sided; "
            f"ns: not significant at {ALPHA:.0%} (p >= {ALPHA})"
        )
    return lines


def _numeric(df: pd.DataFrame, column: Any) -> bool:
    return pd.api.types.is_numeric_dtype(df[column]) and not pd.api.types.is_bool_dtype(df[column])


def table_markdown(df: pd.DataFrame, *, index: bool = False) -> str:
    """GitHub-flavoured Markdown table of ``df`` (numbers right-aligned, formatted as printed).

    Parameters
    ----------
    df : pandas.DataFrame
        Any table, typically from :func:`load_runs` or :func:`diff_to_baseline`.
    index : bool
        Add a first column ``#`` with the row labels (the numbers ``--baseline`` accepts).

    Returns
    -------
    str
        The table, one line per row, ending with a newline; ``|`` in cells is escaped.
    """
    shown = display_frame(df)
    headers = [str(c) for c in shown.columns]
    aligns = ["---:" if c not in df.columns or _numeric(df, c) else "---" for c in shown.columns]
    rows = [list(r) for r in shown.itertuples(index=False, name=None)]
    if index:
        headers, aligns = ["#", *headers], ["---:", *aligns]
        rows = [[str(i), *r] for i, r in zip(df.index, rows, strict=True)]

    def line(cells: Iterable[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(headers), line(aligns), *(line(r) for r in rows)]) + "\n"


def table_text(df: pd.DataFrame) -> str:
    """Plain aligned table of ``df`` for a terminal, row labels on the left."""
    if df.empty:
        return "(no runs)\n"
    return display_frame(df).to_string() + "\n"
