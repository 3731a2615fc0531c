"""The comparison chart of a runs table: mAP bars and latency against ANN recall (matplotlib)."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import pandas as pd

from search_lab.core import write_bytes, write_text
from search_lab.evaluation import (
    CI_COLUMNS,
    CompareError,
    common_items,
    display_frame,
    k_order,
    legend,
    short_labels,
)


def _map_bars(ax: Any, df: pd.DataFrame) -> None:
    """mAP per configuration as horizontal bars, with 95% intervals where the runs have them."""
    bars = df[df["map"].notna()].sort_values("map")
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


def _latency_scatter(ax: Any, df: pd.DataFrame, approx: pd.DataFrame, ann_col: str) -> None:
    """Query latency against ANN recall: approximate runs as points, exact runs at recall 1."""
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


def _chart_png(df: pd.DataFrame) -> bytes:
    """PNG: mAP per configuration (bars) and, for approximate runs, latency vs ANN recall."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ann_cols = sorted((c for c in df.columns if str(c).startswith("ANN-R@")), key=k_order)
    ann_col = ann_cols[-1] if ann_cols else None
    approx = (
        df[df[ann_col].notna() & df["query_ms_p50"].notna()]
        if ann_col and "query_ms_p50" in df.columns
        else df.iloc[0:0]
    )
    height = max(3.0, 0.3 * int(df["map"].notna().sum()) + 1.2)
    ncols = 2 if len(approx) else 1
    fig, axes = plt.subplots(1, ncols, figsize=(7 * ncols, height), squeeze=False)
    _map_bars(axes[0][0], df)
    if len(approx):
        _latency_scatter(axes[0][1], df, approx, str(ann_col))
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
