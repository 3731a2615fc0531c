"""Charts of the Experiments page, each at most one screen tall whatever the number of runs.

One bar per run for the metric the reader picks (mAP with its 95% interval by default) instead
of four bars per run, and ANN recall against query latency per method on a log axis, exact runs
left out (they sit at recall 1 and would squeeze every approximate point into a corner).
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from search_lab.app import run_table
from search_lab.app import runs as app_runs
from search_lab.evaluation import CI_COLUMNS

MAX_HEIGHT = 600
"""Largest chart height in pixels: less than one laptop screen."""
MAX_BARS = 25
"""Runs a bar chart shows at most (the best by the charted metric); the caption says so."""
BAR_PX = 22
LABEL_AXIS = alt.Axis(labelLimit=360, labelOverlap=False)
"""Chart labels are short (only what differs: app_runs.chart_labels); the full name on hover."""


def chart_metrics(runs: pd.DataFrame) -> list[str]:
    """Columns worth a bar chart, mAP first: mAP, precision/recall@k, ANN recall@k, latency."""
    scores = [c for c in runs.columns if str(c) == "map" or "@" in str(c)]
    scores += [c for c in ("query_ms_p50",) if c in runs.columns]
    return [c for c in scores if runs[c].notna().any()]


def best_runs(runs: pd.DataFrame, column: str, limit: int = MAX_BARS) -> pd.DataFrame:
    """The ``limit`` best runs by ``column`` (lowest for a latency, else highest), empty dropped."""
    frame = runs.dropna(subset=[column])
    return frame.sort_values(column, ascending=column.startswith("query_ms")).head(limit)


def bar_height(bars: int) -> int:
    """Height of a bar chart of ``bars`` runs: 22 px a bar, 120 px at least, MAX_HEIGHT at most."""
    return max(120, min(MAX_HEIGHT, BAR_PX * bars + 40))


def metric_chart(runs: pd.DataFrame, column: str = "map") -> alt.LayerChart | alt.Chart:
    """Horizontal bars of one metric, best first; mAP adds each run's 95% interval."""
    has_ci = column == "map" and set(CI_COLUMNS) <= set(runs.columns)
    frame = best_runs(runs, column)
    frame = frame[["name", column, *(CI_COLUMNS if has_ci else ())]].rename(
        columns={column: "value"}
    )
    frame = frame.assign(label=app_runs.chart_labels(list(frame["name"])))
    title = run_table.column_label(column)
    tooltip = ["name", alt.Tooltip("value:Q", title=title, format=".4f")]
    tooltip += [alt.Tooltip(f"{c}:Q", format=".4f") for c in CI_COLUMNS if has_ci]
    y = alt.Y("label:N", title=None, sort=list(frame["label"]), axis=LABEL_AXIS)
    base = alt.Chart(frame).encode(y=y, tooltip=tooltip)
    bounded = "@" in column or column == "map"
    scale = alt.Scale(domain=[0, 1]) if bounded else alt.Scale()
    bars = base.mark_bar().encode(x=alt.X("value:Q", title=title, scale=scale))
    chart = bars
    if has_ci:
        errors = base.mark_errorbar(ticks=True, color="black").encode(
            x=alt.X(f"{CI_COLUMNS[0]}:Q", title=title), x2=f"{CI_COLUMNS[1]}:Q"
        )
        chart = alt.layer(bars, errors)
    return chart.properties(height=bar_height(len(frame)))


def map_chart(runs: pd.DataFrame) -> alt.LayerChart | alt.Chart:
    """Horizontal mAP bars, best first, with each run's 95% interval as an error bar."""
    return metric_chart(runs, "map")


def ann_chart(points: pd.DataFrame, recall: str) -> alt.LayerChart:
    """ANN recall against median query latency, one line per method, latency on a log axis."""
    frame = points.rename(columns={recall: "recall", "query_ms_p50": "latency"})
    base = alt.Chart(frame).encode(
        x=alt.X(
            "latency:Q",
            title="median query latency (ms, log scale)",
            scale=alt.Scale(type="log"),
        ),
        y=alt.Y("recall:Q", title=run_table.column_label(recall), scale=alt.Scale(zero=False)),
        color=alt.Color("method:N", title="method"),
        tooltip=[
            "name",
            "method",
            alt.Tooltip("latency:Q", format=".3f"),
            alt.Tooltip("recall:Q", format=".4f"),
        ],
    )
    lines = base.mark_line(point=True).encode(order="latency:Q")
    return alt.layer(lines).properties(height=360)
