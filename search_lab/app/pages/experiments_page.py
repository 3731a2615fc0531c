"""Experiments: the evaluation tables of past runs and sweeps, filtered, charted and diffed."""

import streamlit as st

from search_lab.app import paths as app_paths
from search_lab.app import photos as app_photos
from search_lab.app import runs as app_runs
from search_lab.app import text as app_text
from search_lab.app import widgets as ui
from search_lab.app.distractor_view import show_distractors
from search_lab.comparison import filter_runs

st.title("Experiments")
st.caption(app_photos.EVALUATED_ONLY)
with ui.user_errors():
    root = app_paths.outputs_dir()
    runs = ui.runs_table()
    ui.skipped_runs_warning()
    if runs.empty:
        st.info(
            f"No evaluation run in {app_text.plain(root)} yet. "
            "Run one with `python -m search_lab.evaluate`, "
            "or a sweep with `python -m search_lab.evaluate -m feature=hsv,lbp`."
        )
        st.stop()

    st.caption(f"{len(runs)} runs read from {app_text.plain(root)}. Click a column header to sort.")
    cols = st.columns(4)
    text = cols[0].text_input("Name contains", key="exp_text")
    choices = {
        column: cols[i].multiselect(
            column.capitalize(), sorted(runs[column].dropna().unique()), key=f"exp_{column}"
        )
        for i, column in enumerate(("feature", "metric", "index"), start=1)
    }
    expression = st.text_input(
        "Filter expression (optional)",
        key="exp_filter",
        placeholder="e.g. map>=0.5 or index.n_trees=50",
    )
    shown = app_runs.filter_table(runs, text, choices)
    if expression.strip():
        shown = filter_runs(shown, [expression])
    shown = shown.reset_index(drop=True)
    st.dataframe(
        shown,
        hide_index=True,
        key="exp_table",
        # the figures first; the (long) run folder last and narrow, whole on hover
        column_order=[c for c in shown.columns if c != "run"] + ["run"],
        column_config={"run": st.column_config.TextColumn("run folder", width="small")},
    )
    if shown.empty:
        st.warning("No run passes these filters.")
        st.stop()

    st.subheader("mAP per configuration")
    st.altair_chart(ui.map_chart(shown), key="exp_map")
    st.caption("Error bars: 95% bootstrap interval of each mAP over its queries.")

    st.subheader("Precision at k")
    st.altair_chart(ui.precision_chart(shown), key="exp_precision")

    st.subheader("ANN recall against query latency")
    points = app_runs.ann_vs_latency(shown)
    if points is None:
        st.caption(
            "No run has both a query latency and an ANN recall yet (evaluate an "
            "approximate index, e.g. `+experiment=sweep_search_methods`, to see the trade-off)."
        )
    else:
        frame, recall = points
        st.scatter_chart(
            frame,
            x="query_ms_p50",
            y=recall,
            color="method",
            x_label="query latency p50 (ms)",
            y_label=f"ANN recall ({recall})",
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
    st.table(app_text.plain_table(app_runs.run_pair(shown, a, b)))
    st.markdown(app_runs.pair_verdict(shown, a, b, ui.run_scores()))
