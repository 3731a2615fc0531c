"""Compare finished runs: ``python -m search_lab.compare PATH [PATH ...] [options]``.

Every ``metrics.json`` at or under the given paths (sweep folders, single runs, or the whole
``outputs/``) becomes one row of a table, printed as text, Markdown or CSV, optionally with a
chart. The work is done by library modules shared with sweeps and the app:
:mod:`search_lab.evaluation.runs` (loading), :mod:`search_lab.evaluation.comparison` (filters,
sorting, differences to a baseline), :mod:`search_lab.evaluation.run_tables` (text) and
:mod:`search_lab.cli.charts` (charts).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import pandas as pd

from search_lab.cli.charts import write_chart
from search_lab.core import METRICS_FILE, SearchLabError, install
from search_lab.core import shown as shown_text
from search_lab.evaluation import (
    CI_COLUMNS,
    DIFF_PREFIX,
    PAIRED_COLUMNS,
    CompareError,
    check_columns,
    diff_to_baseline,
    filter_runs,
    legend,
    load_runs,
    sort_runs,
    table_markdown,
    table_text,
)


def _split(values: Sequence[str] | None) -> list[str]:
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


def _companions(column: str) -> list[str]:
    """Columns shown after ``column``: its interval, its Δ column and the Δ's paired test."""
    if column == "map":
        return [*CI_COLUMNS, DIFF_PREFIX + "map", *PAIRED_COLUMNS]
    return [DIFF_PREFIX + column]


def _select(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Chosen columns; each one's companions (if any) follow it unless chosen explicitly."""
    check_columns(df, columns)
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
    install()
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
        print(f"error: {shown_text(err)}", file=sys.stderr)
        return 2
    if args.format != "csv":  # CSV quotes what it must; tables for people get one-line names
        shown = shown.map(lambda v: shown_text(v) if isinstance(v, str) else v)
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
