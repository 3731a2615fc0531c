"""Compare: one query against several built indexes side by side, with AP and result overlap."""

import pandas as pd
import streamlit as st

from search_lab.app import indexes as app_indexes
from search_lab.app import paths as app_paths
from search_lab.app import photos as app_photos
from search_lab.app import queries as app_queries
from search_lab.app import run_table
from search_lab.app import text as app_text
from search_lab.app import widgets as ui

st.title("Compare")
with ui.user_errors():
    choices = {c.path.name: c for c in app_indexes.index_choices(app_paths.indexes_dir())}
    ui.show_broken(app_paths.indexes_dir())
    if not choices:
        ui.offer_build(app_paths.indexes_dir())
        st.stop()
    picked = st.multiselect(
        "Configurations (built indexes)",
        list(choices),
        default=list(choices)[:3],
        key="compare_indexes",
    )
    if len(picked) < 2:
        st.info("Pick two or more indexes to compare them (build more with `feature=...`).")
    if not picked:
        st.stop()
    engines = ui.engines_for([choices[name] for name in picked])
    if not engines:
        st.stop()
    picked = list(engines)
    first = engines[picked[0]]
    dataset = ui.dataset_of(first)
    if app_photos.is_plain(dataset):
        st.caption(app_photos.NO_GROUND_TRUTH)
    left, right = st.columns([3, 1])
    with right:
        k = st.slider("Results shown", 1, 30, 8, key="compare_k")
    with left:
        query = ui.pick_query("compare", first, dataset)
    if query is None:
        st.stop()
    results = {
        name: app_queries.search(
            engine, query.source(engine), k, ui.dataset_of(engine), query.dataset_name
        )
        for name, engine in engines.items()
    }

    st.subheader(f"Results for {app_text.plain(query.label)}")
    with st.container(width=240):
        ui.show_image(ui.query_thumb(query, first), f"query: {query.label}")
    for column, (name, result) in zip(st.columns(len(results)), results.items(), strict=True):
        with column:
            st.markdown(f"**{app_text.plain(name)}**")
            st.caption(
                app_text.plain(app_text.describe(engines[name].config, len(engines[name].names)))
            )
            ui.result_metrics(result, stacked=len(results) >= 3)
    # one row per rank, the indexes side by side: it wraps on a phone instead of stacking
    # every index's whole list under the previous one
    for rank in range(k):
        st.markdown(f"**Rank {rank + 1}**")
        with st.container(horizontal=True, gap="small"):
            for name, result in results.items():
                ui.rank_cell(engines[name], name, result, rank)

    st.subheader(f"Overlap of the top {k}")
    names = {name: [hit.name for hit in r.hits] for name, r in results.items()}
    overlap = pd.DataFrame(app_queries.overlap_rows(names))
    if overlap.empty:
        st.caption("One index only: nothing to overlap with.")
    else:
        overlap[["A", "B"]] = overlap[["A", "B"]].map(app_text.breakable)  # wraps on a phone
        st.table(app_text.plain_table(overlap.astype(str)), hide_index=True)

    st.subheader("Overall figures")
    rows = [
        {**app_indexes.manifest_row(name, engine.manifest), "eval mAP": ui.run_map(engine.config)}
        for name, engine in engines.items()
    ]
    overall = pd.DataFrame(rows).set_index("index").T  # one column per index: fits a phone
    st.table(app_text.plain_table(overall.map(run_table.cell_text)))
    st.caption(
        "eval mAP: from the newest evaluation run in outputs/ with the same feature, "
        "metric, index and post-processing (empty when there is none)."
    )
