"""The Experiments page's section on distractors: mAP against collection size, per run."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from search_lab.app import runs as app_runs
from search_lab.cli import curves


def curve_chart(frame: pd.DataFrame) -> alt.LayerChart:
    """mAP against images indexed (log scale), one colour per run, 95% intervals as bars."""
    base = alt.Chart(frame).encode(
        x=alt.X("images:Q", title="images indexed", scale=alt.Scale(type="log")),
        color=alt.Color("run:N", title=None),
        tooltip=["run", "distractors", "images", alt.Tooltip("mAP:Q", format=".4f")],
    )
    lines = base.mark_line(point=True).encode(y=alt.Y("mAP:Q", title="mAP"))
    errors = base.mark_errorbar(ticks=True).encode(y="ci_low:Q", y2="ci_high:Q")
    return alt.layer(lines, errors)


def show_distractors(runs: pd.DataFrame) -> None:
    """Chart and table of the runs that measured ``eval.distractor_counts`` (nothing if none)."""
    frame = curves(runs, app_runs.run_label)
    if frame.empty:
        return
    st.subheader("mAP against collection size (distractors)")
    st.altair_chart(curve_chart(frame), key="exp_distractors")
    st.dataframe(frame, hide_index=True, key="exp_distractors_table")
    st.caption(
        "Each point adds the first N images of a distractor folder (in no group) to the "
        "collection; error bars: 95% bootstrap interval over the queries."
    )
