"""Shaping a runs table: filters, sorting, and differences to a baseline run.

Filters are parsed by a tiny parser (``COLUMN OP VALUE`` with OP in ``== != < <= > >=``, or
``COLUMN=VALUE``); user strings are never evaluated. A baseline comparison pairs the runs
query by query: the mean difference, its paired 95% interval and a paired sign-flip p-value
(:mod:`search_lab.evaluation.stats`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from search_lab.evaluation.run_scores import PAIRED_COLUMNS, paired_to_baseline
from search_lab.evaluation.runs import LATENCY_COLUMNS, TIME_COLUMNS, CompareError, name_items

DIFF_PREFIX = "Δ"
"""Prefix of the difference columns :func:`diff_to_baseline` adds (``Δmap``, ``ΔP@1`` ...)."""

_FILTER = re.compile(
    r"^\s*(?P<col>[^\s=!<>]+)\s*(?P<op>==|!=|<=|>=|<|>|=)\s*(?P<value>(?![=<>!]).*?)\s*$"
)


_OPS = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def parse_filter(expression: str) -> tuple[str, str, str]:
    """Split ``"COLUMN OP VALUE"`` into its parts; ``COLUMN=VALUE`` means ``==``.

    Parameters
    ----------
    expression : str
        E.g. ``"feature==hsv"``, ``"map >= 0.5"``, ``"index.n_trees=50"``. Quotes around the
        value are removed.

    Returns
    -------
    column, op, value : str
        ``op`` is one of ``== != < <= > >=``.

    Raises
    ------
    CompareError
        If the expression does not have that form.
    """
    match = _FILTER.match(expression)
    if not match or not match["value"]:
        raise CompareError(
            f"cannot read filter {expression!r}; write COLUMN OP VALUE with OP one of "
            "==, !=, <, <=, >, >= (or COLUMN=VALUE), e.g. 'feature==hsv' or 'map>=0.5'"
        )
    value = match["value"]
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]
    op = "==" if match["op"] == "=" else match["op"]
    return match["col"], op, value


def check_columns(df: pd.DataFrame, columns: Iterable[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise CompareError(
            f"unknown column(s) {', '.join(missing)}; available: {', '.join(map(str, df.columns))}"
        )


def filter_runs(df: pd.DataFrame, expressions: Sequence[str]) -> pd.DataFrame:
    """Rows of ``df`` that satisfy every filter expression (see :func:`parse_filter`).

    A numeric value compares numerically with the column (rows without a value fail, except
    for ``!=``); any other value compares as text, where only ``==`` and ``!=`` are allowed.
    The index is kept, so row numbers still refer to ``df``.

    Raises
    ------
    CompareError
        For an unreadable expression, an unknown column, or ``<``-like ops on text.
    """
    keep = pd.Series(True, index=df.index)
    for expression in expressions:
        column, op, raw = parse_filter(expression)
        check_columns(df, [column])
        try:
            value: Any = float(raw)
        except ValueError:
            value = None
        if value is not None:
            series = pd.to_numeric(df[column], errors="coerce")
            result = _OPS[op](series, value)
            if op == "!=":
                result = result | series.isna()
        elif op in ("==", "!="):
            text = df[column].map(
                lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
            )
            result = _OPS[op](text, raw)
        else:
            raise CompareError(f"filter {expression!r}: {op} needs a number, got {raw!r}")
        keep &= result.fillna(False).astype(bool)
    return df[keep]


def sort_runs(df: pd.DataFrame, columns: Sequence[str], *, ascending: bool = False) -> pd.DataFrame:
    """``df`` sorted by ``columns`` (missing values last), index renumbered 0..n-1.

    Raises
    ------
    CompareError
        If a column is unknown.
    """
    check_columns(df, columns)
    out = df.sort_values(list(columns), ascending=ascending, na_position="last", kind="stable")
    return out.reset_index(drop=True)


def result_columns(df: pd.DataFrame) -> list[str]:
    """The columns of ``df`` that hold results worth a difference: scores, latency, timings."""
    return [
        c
        for c in df.columns
        if c == "map"
        or (isinstance(c, str) and "@" in c and not c.startswith(DIFF_PREFIX))
        or c in LATENCY_COLUMNS
        or c in TIME_COLUMNS
    ]


def baseline_position(df: pd.DataFrame, baseline: int | str) -> int:
    """Position (0-based row number) in ``df`` of a baseline given by position, name or run.

    Parameters
    ----------
    df : pandas.DataFrame
        A table from :func:`load_runs` (possibly filtered or sorted).
    baseline : int or str
        A row number, a ``name`` (its ``key=value`` items in any order), or a ``run`` folder
        (digits mean a row number).

    Raises
    ------
    CompareError
        If no row, or more than one row, matches.
    """
    if isinstance(baseline, str) and baseline.strip().isdigit():
        baseline = int(baseline)
    if isinstance(baseline, int):
        if not 0 <= baseline < len(df):
            raise CompareError(
                f"baseline row {baseline} does not exist; the table has rows 0..{len(df) - 1}"
            )
        return baseline
    for column in ("name", "run"):
        hits = [i for i, v in enumerate(df[column]) if v == baseline]
        if len(hits) > 1:
            raise CompareError(
                f"baseline {baseline!r} names {len(hits)} rows; give its run folder or row number"
            )
        if hits:
            return hits[0]
    wanted = sorted(name_items(baseline))  # the same overrides in another order
    hits = [i for i, v in enumerate(df["name"]) if sorted(name_items(str(v))) == wanted]
    if len(hits) == 1:
        return hits[0]
    target = Path(baseline).resolve()
    hits = [i for i, v in enumerate(df["run"]) if Path(v).resolve() == target]
    if len(hits) == 1:
        return hits[0]
    names = ", ".join(map(str, df["name"][:10])) + (" ..." if len(df) > 10 else "")
    raise CompareError(
        f"no row is named {baseline!r}; give a row number, a run folder or one of: {names}"
    )


def diff_to_baseline(df: pd.DataFrame, baseline: int | str) -> pd.DataFrame:
    """Copy of ``df`` with a ``Δ<column>`` after each result column: row value minus baseline.

    Parameters
    ----------
    df : pandas.DataFrame
        A table from :func:`load_runs`.
    baseline : int or str
        The reference row: its position in ``df``, its ``name`` or its ``run`` folder (as for
        :func:`baseline_position`).

    Returns
    -------
    pandas.DataFrame
        Same rows and index; after ``map``, every ``P@k``/``R@k``/``ANN-R@k``, the latencies and
        the timings comes its difference column (``Δmap`` ...), 0 on the baseline row and NaN
        where either value is missing. When the runs have per-query APs, ``Δmap`` is followed
        by the paired comparison over the queries both runs share (see
        :func:`~search_lab.evaluation.run_scores.paired_to_baseline`): ``Δmap_low``, ``Δmap_high``
        (its 95% interval), ``Δmap_p`` (paired p-value) and ``Δmap_shared``. ``attrs["baseline"]``
        holds the baseline's name, ``attrs["baseline_row"]`` its index label.

    Raises
    ------
    CompareError
        If the baseline matches no row or several.
    """
    pos = baseline_position(df, baseline)
    out = df.copy()
    for column in result_columns(df):
        values = pd.to_numeric(df[column], errors="coerce")
        diff = values - values.iloc[pos]
        out.insert(out.columns.get_loc(column) + 1, DIFF_PREFIX + column, diff)
    paired = paired_to_baseline(df, pos)
    if paired is not None:
        at = out.columns.get_loc(DIFF_PREFIX + "map") + 1
        for offset, column in enumerate(PAIRED_COLUMNS):
            out.insert(at + offset, column, paired[column])
    out.attrs["baseline"] = str(df["name"].iloc[pos])
    label = df.index[pos]
    out.attrs["baseline_row"] = label.item() if hasattr(label, "item") else label  # JSON-safe
    return out
