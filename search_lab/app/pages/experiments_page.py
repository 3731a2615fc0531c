"""Experiments: the evaluation tables of past runs and sweeps, filtered, charted and diffed.

Every chart draws only the runs the filters keep and stays within one screen: one bar per run
for the metric picked, and ANN recall against latency per approximate method.
"""

import streamlit as st

from search_lab.app import charts, run_table
from search_lab.app import photos as app_photos
from search_lab.app import runs as app_runs
from search_lab.app import text as app_text
from search_lab.app import widgets as ui
from search_lab.app.distractor_view import show_distractors
from search_lab.evaluation import outputs_dir

st.title("Experiments")
st.caption(app_photos.EVALUATED_ONLY)
with ui.user_errors():
    root = outputs_dir()
    runs = ui.runs_table()
    ui.skipped_runs_warning()
    if runs.empty:
        st.info(
            f"No evaluation run in {app_text.plain(root)} yet. "
            "Run one with `python -m search_lab.evaluate`, "
            "or a sweep with `python -m search_lab.evaluate -m feature=hsv,lbp`."
        )
        st.stop()
    runs = run_table.with_dates(runs)

    cols = st.columns(4)
    text = cols[0].text_input("Name contains", key="exp_text")
    choices = {
        column: cols[i].multiselect(
            run_table.column_label(column),
            sorted(runs[column].dropna().unique()),
            key=f"exp_{column}",
        )
        for i, column in enumerate(("feature", "metric", "index"), start=1)
    }
    expression = st.text_input(
        "Filter expression (optional, any case)",
        key="exp_filter",
        placeholder="e.g. mAP>=0.5 or index.n_trees=50",
        help="COLUMN OP VALUE with OP one of ==, !=, <, <=, >, >= (or COLUMN=VALUE); the "
        "column by its key or its name in the table (see the legend).",
    )
    shown = app_runs.filter_table(runs, text, choices)
    if expression.strip():
        shown = run_table.filter_expression(shown, expression)
    shown = shown.reset_index(drop=True)
    st.caption(
        f"Showing {len(shown)} of {len(runs)} runs read from {app_text.plain(root)}. "
        "Click a column header to sort."
    )
    order = [c for c in shown.columns if c != "run"] + ["run"]  # the long folder last
    st.dataframe(
        run_table.display_table(shown, order),
        hide_index=True,
        key="exp_table",
        column_config={"Run folder": st.column_config.TextColumn(width="small")},
    )
    with st.expander("What the columns mean"):
        st.table(app_text.plain_table(run_table.legend(order).set_index("column")))
    if shown.empty:
        st.warning("No run passes these filters.")
        st.stop()

    st.subheader("Runs by metric")
    metrics = charts.chart_metrics(shown)
    metric = st.selectbox(
        "Metric", metrics, format_func=run_table.column_label, key="exp_chart_metric"
    )
    st.altair_chart(charts.metric_chart(shown, metric), key="exp_metric_chart")
    charted = len(charts.best_runs(shown, metric))
    note = "" if charted == len(shown) else f" (the best {charted} of the {len(shown)} shown)"
    ci = " Error bars: 95% bootstrap interval over the queries." if metric == "map" else ""
    st.caption(f"{charted} run{'s' * (charted != 1)} charted{note}.{ci}")

    st.subheader("ANN recall against query latency")
    points = app_runs.ann_vs_latency(shown)
    if points is None:
        st.caption(
            "No shown run has both a query latency and an ANN recall (evaluate an "
            "approximate index, e.g. `+experiment=sweep_search_methods`, to see the trade-off)."
        )
    else:
        frame, recall = points
        st.altair_chart(charts.ann_chart(frame, recall), key="exp_ann")
        st.caption(
            f"{len(frame)} run(s) of approximate methods; exact runs (recall 1 by definition) "
            "are left out. Latency on a log scale."
        )

    show_distractors(shown)

    st.subheader("Two runs side by side")
    labels = [app_runs.run_label(row) for row in shown.to_dict("records")]
    left, right = st.columns(2)
    a = left.selectbox(
        "Run A (baseline)", range(len(shown)), format_func=labels.__getitem__, key="exp_a"
    )
    b = right.selectbox(
        "Run B",
        range(len(shown)),
        index=min(1, len(shown) - 1),
        format_func=labels.__getitem__,
        key="exp_b",
    )
    pair = app_runs.run_pair(shown, a, b)
    pair = pair.map(app_text.breakable).rename(columns=app_text.breakable)  # wraps, never cut
    st.table(app_text.plain_table(pair))
    st.markdown(app_runs.pair_verdict(shown, a, b, ui.run_scores()))
