"""Search: one query image (a dataset query or an upload) against one built index."""

import streamlit as st

from search_lab.app import photos as app_photos
from search_lab.app import queries as app_queries
from search_lab.app import text as app_text
from search_lab.app import widgets as ui

st.title("Search")
with ui.user_errors():
    choice = ui.pick_index("search_index")
    if choice is None:
        st.stop()
    engine = ui.engine_for(choice)
    dataset = ui.dataset_of(engine)
    if app_photos.is_plain(dataset):
        st.caption(app_photos.NO_GROUND_TRUTH)
    left, right = st.columns([3, 1])
    with right:
        k_max = max(2, min(50, len(engine.names)))
        k = st.slider("Results shown", 1, k_max, min(10, k_max), key="search_k")
    with left:
        query = ui.pick_query("search", engine, dataset)
    if query is None:
        st.stop()
    result = app_queries.search(engine, query.source(engine), k, dataset, query.dataset_name)
    st.subheader(f"Results for {app_text.plain(query.label)}")
    image_col, metrics_col = st.columns([1, 4])
    with image_col:
        ui.show_image(ui.query_thumb(query, engine), f"query: {query.label}", width=200)
    with metrics_col:
        ui.result_metrics(result)
        if result.relevant is not None:
            st.caption("✓ marks the images the ground truth calls relevant; the query is left out.")
        else:
            st.caption(
                "An upload has no ground truth: pick a dataset query to see relevance and AP."
            )
    ui.result_grid(engine, result.hits, result.relevant)
