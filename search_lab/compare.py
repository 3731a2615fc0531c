"""Compare finished runs: ``python -m search_lab.compare PATH [PATH ...] [options]``.

Every ``metrics.json`` at or under the given paths (sweep folders, single runs, or the whole
``outputs/``) becomes one row of a table. The public functions are pure and shared with the
Streamlit app:

- :func:`load_runs` reads the runs into a ``pandas.DataFrame``, best mAP first;
- :func:`filter_runs`, :func:`sort_runs` and :func:`diff_to_baseline` shape that table;
- :func:`table_markdown` renders it, :func:`write_chart` draws it (PNG or a small HTML page).

Every mAP comes with its 95% bootstrap interval (``map_ci_low``/``map_ci_high``), and a baseline
comparison pairs the runs query by query: the mean difference, its paired 95% interval and a
paired sign-flip p-value (:mod:`search_lab.stats`).

Filters are parsed by a tiny parser (``COLUMN OP VALUE`` with OP in ``== != < <= > >=``, or
``COLUMN=VALUE``); user strings are never evaluated.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import logging
import math
import numbers
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from search_lab.errors import SearchLabError
from search_lab.results import METRICS_FILE, read_json, write_bytes, write_text
from search_lab.run_scores import (
    ALPHA,
    CI_COLUMNS,
    PAIRED_COLUMNS,
    PER_QUERY_ATTR,
    RunScores,
    map_interval,
    paired_to_baseline,
    per_query,
)

log = logging.getLogger(__name__)

OVERRIDES_FILE = Path(".hydra") / "overrides.yaml"
"""Where Hydra saves a job's command-line overrides, relative to its output folder."""

NAME_EXCLUDED_KEYS = frozenset({"progress", "workers", "cache_dir", "dataset.root"})
"""Override keys left out of a run's name: they do not change its results (or are paths)."""

ID_COLUMNS = ("run", "name", "feature", "metric", "index")
TIME_COLUMNS = ("extract_s", "build_s", "search_s")
LATENCY_COLUMNS = ("query_ms_p50", "query_ms_p95")
COUNT_COLUMNS = ("n_images", "n_skipped", "dim")
_AT_PREFIXES = {"precision_at": "P@", "recall_at": "R@", "ann_recall_at": "ANN-R@"}
DIFF_PREFIX = "Δ"
"""Prefix of the difference columns :func:`diff_to_baseline` adds (``Δmap``, ``ΔP@1`` ...)."""


class CompareError(SearchLabError, ValueError):
    """A path, column, filter or baseline given to the comparison is unusable."""


# --------------------------------------------------------------------------- loading


def _metrics_files(paths: Sequence[str | Path]) -> list[Path]:
    """Every metrics.json at or under ``paths``, in a stable order, each file once."""
    found: list[Path] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            candidates = [path]
        elif path.is_dir():
            candidates = sorted(path.rglob(METRICS_FILE))
        else:
            raise CompareError(
                f"{path} does not exist; give sweep folders, run folders or metrics files"
            )
        for file in candidates:
            key = file.resolve()
            if key not in seen:
                seen.add(key)
                found.append(file)
    return found


def _read_overrides(run_dir: Path) -> list[tuple[str, str]]:
    """(key, value) of each ``key=value`` override Hydra saved for the run; [] if none."""
    path = run_dir / OVERRIDES_FILE
    if not path.is_file():
        return []
    try:
        lines = yaml.safe_load(path.read_text()) or []
    except (OSError, yaml.YAMLError) as err:
        log.warning("cannot read %s (%s): naming the run after its folder", path, err)
        return []
    pairs = []
    for line in lines:
        key, sep, value = str(line).partition("=")
        if sep and not key.startswith("~"):
            pairs.append((key.lstrip("+"), value))
    return pairs


def run_name(run_dir: Path, overrides: Sequence[tuple[str, str]]) -> str:
    """Short readable name of a run: its overrides (``feature=hsv,metric=cosine``) or folder name.

    Keys that do not change results (``progress``, ``workers``, ``cache_dir``, ``dataset.root``)
    are left out; so is ``experiment`` when other overrides remain.
    """
    kept = [(k, v) for k, v in overrides if k not in NAME_EXCLUDED_KEYS]
    if any(k != "experiment" for k, _ in kept):
        kept = [(k, v) for k, v in kept if k != "experiment"]
    return ",".join(sorted(f"{k}={v}" for k, v in kept)) or run_dir.name  # as Hydra's dirname


def name_items(name: str) -> list[str]:
    """The ``key=value`` items of a run name, split at commas outside brackets.

    ``"feature.bins=[2,2,2],metric=cosine"`` gives ``["feature.bins=[2,2,2]", "metric=cosine"]``.
    """
    items, depth, start = [], 0, 0
    for i, char in enumerate(name):
        depth += (char in "[{(") - (char in "]})")
        if char == "," and depth == 0:
            items.append(name[start:i])
            start = i + 1
    items.append(name[start:])
    return [item for item in items if item]


def common_items(names: Sequence[str]) -> list[str]:
    """The ``key=value`` items every one of several names has (none for fewer than two)."""
    if len(names) < 2:
        return []
    split = [name_items(str(n)) for n in names]
    return [i for i in split[0] if all(i in s for s in split[1:])]


def short_labels(names: Sequence[str]) -> list[str]:
    """Names without the items they all share (see :func:`common_items`), for chart labels."""
    common = set(common_items(names))
    return [",".join(i for i in name_items(str(n)) if i not in common) or str(n) for n in names]


def _lookup(config: Mapping[str, Any], dotted: str) -> Any:
    """``config["a"]["b"]`` for ``"a.b"``; None when a key is missing."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _cell(value: Any) -> Any:
    """A table cell: lists and dicts become compact strings like the overrides that set them."""
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    return value


def _at_columns(metrics: Mapping[str, Any]) -> dict[str, float]:
    """``P@k``, ``R@k`` and ``ANN-R@k`` cells from the ``*_at`` dicts of a metrics file."""
    cells = {}
    for key, prefix in _AT_PREFIXES.items():
        values = metrics.get(key) or {}
        if not isinstance(values, Mapping):
            raise ValueError(f"{key} is not an object keyed by k")
        for k, value in values.items():
            cells[f"{prefix}{k}"] = value
    return cells


def _row(
    metrics_file: Path, metrics: Mapping[str, Any], aps: Mapping[str, float]
) -> tuple[dict[str, Any], list[str]]:
    """One table row for a run (``aps``: its per-query APs) and the parameter keys it set."""
    run_dir = metrics_file.parent
    overrides = _read_overrides(run_dir)
    config = metrics.get("config") or {}
    row: dict[str, Any] = {
        "run": str(run_dir),
        "name": run_name(run_dir, overrides),
        "feature": _lookup(config, "feature.name"),
        "metric": _lookup(config, "metric.name"),
        "index": _lookup(config, "index.name"),
        "map": metrics.get("map"),
        **_at_columns(metrics),
    }
    interval = map_interval(metrics, aps)
    if interval[0] is not None:
        row.update(zip(CI_COLUMNS, interval, strict=True))
    for key in (*LATENCY_COLUMNS, *TIME_COLUMNS, *COUNT_COLUMNS):
        if key in metrics:
            row[key] = metrics[key]
    if metrics.get("features_cached") is False and metrics.get("extract_s"):
        row["img_per_s"] = metrics.get("n_images", 0) / metrics["extract_s"]  # cold extraction only
    params = []
    for key, value in overrides:
        if "." in key and key not in NAME_EXCLUDED_KEYS and not key.startswith("hydra."):
            found = _lookup(config, key)
            row[key] = _cell(found if found is not None else value)
            params.append(key)
    return row, params


def _k_order(column: str) -> tuple[int, float, str]:
    """Sort key of an ``@k`` column: by family (P, R, ANN-R) then numerically by k."""
    prefix, _, k = column.partition("@")
    family = list(_AT_PREFIXES.values()).index(prefix + "@")
    try:
        return family, float(k), ""
    except ValueError:
        return family, math.inf, k


def _ordered_columns(present: set[str], params: Iterable[str]) -> list[str]:
    """Column order: identity, parameters, mAP, @k scores, latency, timings, counts."""
    prefixes = set(_AT_PREFIXES.values())
    at_cols = sorted((c for c in present if c.partition("@")[0] + "@" in prefixes), key=_k_order)
    ci = [c for c in CI_COLUMNS if c in present]
    order = [*ID_COLUMNS, *dict.fromkeys(params), "map", *ci, *at_cols]
    order += [c for c in LATENCY_COLUMNS if c in present]
    order += [
        *TIME_COLUMNS,
        *(["img_per_s"] if "img_per_s" in present else []),
        "n_images",
        "n_skipped",
    ]
    order += [c for c in ("dim",) if c in present]
    return order


def load_runs(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Read every ``metrics.json`` at or under ``paths`` into one table, best mAP first.

    Parameters
    ----------
    paths : sequence of str or Path
        Sweep folders, run folders, any folder above them (searched recursively) or
        ``metrics.json`` files. A file found twice is read once.

    Returns
    -------
    pandas.DataFrame
        One row per run, index 0..n-1, sorted by ``map`` descending (ties by ``name``).
        Columns: ``run`` (the run folder), ``name`` (its overrides such as
        ``feature=hsv,metric=cosine``, else the folder name), ``feature``, ``metric``, ``index``
        (names from the saved config), one column per dotted parameter any run overrode
        (e.g. ``index.n_trees``; lists as ``"[4,4,4]"``), ``map``, ``map_ci_low`` and
        ``map_ci_high`` when any run has them (the 95% interval: the run's ``map_ci95``, or
        for older runs the same seeded bootstrap over its ``per_query_ap``), ``P@k`` and ``R@k`` for
        every k found, ``ANN-R@k`` and ``query_ms_p50``/``query_ms_p95`` when any run has
        them, ``extract_s``, ``build_s``, ``search_s``, ``img_per_s`` (extraction throughput,
        for runs that did not read cached features), ``n_images``, ``n_skipped``, ``dim``.
        Missing values are NaN/None. With no run found the frame is empty but has the
        always-present columns. ``attrs["per_query_ap"]`` holds a :class:`RunScores` with
        every run's per-query APs (by ``run``), for :func:`diff_to_baseline`'s paired tests.

    Raises
    ------
    CompareError
        If a path does not exist.

    Notes
    -----
    A metrics file that cannot be parsed, or has no ``map``, is skipped with a warning.
    """
    rows, params, scores = [], [], {}
    for file in _metrics_files(paths):
        try:
            metrics = read_json(file)
        except (OSError, ValueError) as err:
            log.warning("skipping %s: not readable JSON (%s)", file, err)
            continue
        if not isinstance(metrics, Mapping) or "map" not in metrics:
            log.warning("skipping %s: no 'map' in it, not a search_lab metrics file", file)
            continue
        aps = per_query(file, metrics)
        try:
            row, row_params = _row(file, metrics, aps)
        except ValueError as err:
            log.warning("skipping %s: %s", file, err)
            continue
        rows.append(row)
        params += row_params
        scores[row["run"]] = aps
    present = {key for row in rows for key in row}
    columns = _ordered_columns(present, params)
    frame = pd.DataFrame(rows, columns=columns)
    frame = frame.sort_values(["map", "name"], ascending=[False, True], na_position="last")
    frame = frame.reset_index(drop=True)
    frame.attrs[PER_QUERY_ATTR] = RunScores(scores)
    return frame


# --------------------------------------------------------------------------- shaping

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


def _check_columns(df: pd.DataFrame, columns: Iterable[str]) -> None:
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
        _check_columns(df, [column])
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
    _check_columns(df, columns)
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
        :func:`~search_lab.run_scores.paired_to_baseline`): ``Δmap_low``, ``Δmap_high`` (its
        95% interval), ``Δmap_p`` (paired p-value) and ``Δmap_shared``. ``attrs["baseline"]``
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


# --------------------------------------------------------------------------- rendering


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


def _chart_png(df: pd.DataFrame) -> bytes:
    """PNG: mAP per configuration (bars) and, for approximate runs, latency vs ANN recall."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ann_cols = sorted((c for c in df.columns if str(c).startswith("ANN-R@")), key=_k_order)
    ann_col = ann_cols[-1] if ann_cols else None
    approx = (
        df[df[ann_col].notna() & df["query_ms_p50"].notna()]
        if ann_col and "query_ms_p50" in df.columns
        else df.iloc[0:0]
    )
    bars = df[df["map"].notna()].sort_values("map")
    height = max(3.0, 0.3 * len(bars) + 1.2)
    ncols = 2 if len(approx) else 1
    fig, axes = plt.subplots(1, ncols, figsize=(7 * ncols, height), squeeze=False)
    ax = axes[0][0]
    xerr = None
    if CI_COLUMNS[0] in bars.columns:  # 95% intervals as error bars (none where missing)
        below = (bars["map"] - bars[CI_COLUMNS[0]]).fillna(0.0).clip(lower=0.0)
        above = (bars[CI_COLUMNS[1]] - bars["map"]).fillna(0.0).clip(lower=0.0)
        xerr = [below.to_numpy(float), above.to_numpy(float)]
    ax.barh(range(len(bars)), bars["map"], color="tab:blue", xerr=xerr, ecolor="black", capsize=2)
    ax.set_yticks(range(len(bars)), short_labels(list(bars["name"])), fontsize=8)
    ax.set_xlabel("mAP")
    ax.set_xlim(0, 1)
    shared = common_items(list(bars["name"]))
    title = "mAP per configuration" + (" (95% intervals)" if xerr is not None else "")
    ax.set_title(title + (f"\n(all: {', '.join(shared)})" if shared else ""))
    for i, value in enumerate(bars["map"]):
        ax.text(value + 0.01, i, f"{value:.3f}", va="center", fontsize=7)
    if len(approx):
        ax = axes[0][1]
        ax.scatter(approx[ann_col], approx["query_ms_p50"], color="tab:orange", label="approximate")
        labels = short_labels(list(approx["name"]))
        for label, (_, row) in zip(labels, approx.iterrows(), strict=True):
            ax.annotate(
                label,
                (row[ann_col], row["query_ms_p50"]),
                fontsize=6,
                xytext=(3, 3),
                textcoords="offset points",
            )
        exact = df[(df["index"] == "exact") & df["query_ms_p50"].notna()]
        if len(exact):
            ax.scatter(
                [1.0] * len(exact), exact["query_ms_p50"], marker="x", color="black", label="exact"
            )
        ax.set_xlabel(f"ANN recall ({ann_col})")
        ax.set_ylabel("query latency p50 (ms)")
        ax.set_title("latency against ANN recall")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def chart_html(
    df: pd.DataFrame, *, table: pd.DataFrame | None = None, title: str = "search_lab comparison"
) -> str:
    """A self-contained HTML page: the chart of ``df`` as an embedded PNG, then a table.

    ``table`` (default ``df``) is the table shown, e.g. a selection of ``df``'s columns.
    """
    image = base64.b64encode(_chart_png(df)).decode()
    shown = df if table is None else table
    table_html = display_frame(shown).to_html(escape=True, border=0, classes="runs")
    baseline = df.attrs.get("baseline")
    note = f"<p>Δ columns: difference to <b>{html.escape(baseline)}</b></p>" if baseline else ""
    note += "".join(f"<p>{html.escape(line)}</p>" for line in legend(shown))
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif;margin:2em}"
        "table.runs{border-collapse:collapse;font-size:13px}"
        "table.runs td,table.runs th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}"
        "</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f'<img alt="chart" src="data:image/png;base64,{image}">{note}{table_html}'
        "</body></html>\n"
    )


def write_chart(df: pd.DataFrame, path: str | Path, *, table: pd.DataFrame | None = None) -> Path:
    """Write the comparison chart of ``df`` to ``path``: ``.png`` (matplotlib, Agg) or ``.html``.

    The HTML page embeds the PNG and shows ``table`` (default ``df``) below it.

    Raises
    ------
    CompareError
        If the suffix is neither, or ``df`` has no run with an mAP.
    """
    path = Path(path)
    if df.empty or df["map"].notna().sum() == 0:
        raise CompareError("nothing to chart: no run with an mAP")
    suffix = path.suffix.lower()
    if suffix not in (".png", ".html", ".htm"):
        raise CompareError(f"chart {path}: use a .png or .html file name")
    try:
        if suffix == ".png":
            write_bytes(path, _chart_png(df))
        else:
            write_text(path, chart_html(df, table=table))
    except OSError as err:
        raise CompareError(f"cannot write chart {path}: {err.strerror or err}") from err
    return path


# --------------------------------------------------------------------------- command line


def _split(values: Sequence[str] | None) -> list[str]:
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


def _companions(column: str) -> list[str]:
    """Columns shown after ``column``: its interval, its Δ column and the Δ's paired test."""
    if column == "map":
        return [*CI_COLUMNS, DIFF_PREFIX + "map", *PAIRED_COLUMNS]
    return [DIFF_PREFIX + column]


def _select(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Chosen columns; each one's companions (if any) follow it unless chosen explicitly."""
    _check_columns(df, columns)
    chosen: list[str] = []
    for column in columns:
        if column not in chosen:
            chosen.append(column)
        for extra in _companions(column):
            if extra in df.columns and extra not in columns and extra not in chosen:
                chosen.append(extra)
    return df[chosen]


DEFAULT_HIDDEN = ("run", "n_images", "n_skipped", "dim")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m search_lab.compare",
        description="Compare runs: one row per metrics.json found at or under PATH.",
    )
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="sweep folder, run folder or metrics.json"
    )
    parser.add_argument(
        "--columns",
        action="append",
        metavar="A,B,...",
        help="columns to show, in order (default: all but run, n_images, n_skipped, dim)",
    )
    parser.add_argument(
        "--sort", action="append", metavar="A,B,...", help="sort by these columns (default: map)"
    )
    parser.add_argument(
        "--ascending", action="store_true", help="sort ascending (default: descending)"
    )
    parser.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="EXPR",
        help="keep rows where 'COLUMN OP VALUE' holds (OP: == != < <= > >=, or =); repeatable",
    )
    parser.add_argument(
        "--baseline",
        metavar="NAME_OR_ROW",
        help="add Δ columns: difference to this row (its name, run folder or row number)",
    )
    parser.add_argument("--format", choices=["text", "markdown", "csv"], default="text")
    parser.add_argument("--chart", metavar="FILE", help="also write a chart (.png or .html)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2 for a usage problem)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    try:
        df = load_runs(args.paths)
        if df.empty:
            raise CompareError(f"no {METRICS_FILE} found under {', '.join(args.paths)}")
        df = filter_runs(df, args.filter)
        df = sort_runs(df, _split(args.sort) or ["map"], ascending=args.ascending)
        if df.empty:
            raise CompareError("no run passes the filter(s)")
        if args.baseline is not None:
            df = diff_to_baseline(df, args.baseline)
        columns = _split(args.columns) or [
            c
            for c in df.columns
            if c not in DEFAULT_HIDDEN
            and c not in CI_COLUMNS
            and not str(c).startswith(DIFF_PREFIX)
        ]
        shown = _select(df, columns)
        if args.chart:
            write_chart(df, args.chart, table=shown)
    except SearchLabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.format == "markdown":
        print(table_markdown(shown, index=True), end="")
    elif args.format == "csv":
        print(shown.to_csv(index=False), end="")
    else:
        print(table_text(shown), end="")
    if args.baseline is not None:
        print(f"Δ = row minus baseline {df.attrs['baseline']!r}")
    if args.format != "csv":
        print("\n".join(legend(shown)), end="\n" if legend(shown) else "")
    if args.chart:
        print(f"chart written to {args.chart}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
