"""Search: one query image (a dataset query, a thumbnail, an upload or a result) against one index.

A progress bar runs from the first paint to the first results: loading the index (checksums,
warm-up), calibrating its weak-match distance, then the query itself.
"""

import streamlit as st

from search_lab.app import paths as app_paths
from search_lab.app import photos as app_photos
from search_lab.app import queries as app_queries
from search_lab.app import search_view as view
from search_lab.app import text as app_text
from search_lab.app import widgets as ui
from search_lab.retrieval import SV_DEFAULTS, EngineReranker, RerankOptions, SearchEngine


def own_rerank(engine: SearchEngine) -> RerankOptions:
    """The re-ranking the index was built with (``name: none`` when it was built without)."""
    return RerankOptions.from_config(engine.config.get("rerank"))


@st.cache_resource(show_spinner="Local features of the collection (once, then cached) ...")
def reranker_of(_engine: SearchEngine, index: str) -> EngineReranker:
    """Geometric re-ranking for the index ``index``: its own ``rerank`` settings when it was
    built with them (``+experiment=recommended``), else the ``rerank=sv`` defaults."""
    opts = own_rerank(_engine)
    reranker = EngineReranker(
        _engine, opts if opts.enabled else RerankOptions.from_config(SV_DEFAULTS)
    )
    _ = reranker.keypoints  # computed now, under the spinner
    return reranker


st.title("Search")
with ui.user_errors():
    choice = ui.pick_index("search_index", default=app_paths.default_index())
    if choice is None:
        st.stop()
    progress = st.progress(0.0, text="Loading the index…")
    engine = ui.engine_for(choice)
    dataset = ui.dataset_of(engine)
    if app_photos.is_plain(dataset):
        st.caption(app_photos.NO_GROUND_TRUTH)
    progress.progress(0.5, text="Calibrating the weak-match distance on the tune side…")
    calibration = ui.calibration_for(choice, engine, dataset)
    progress.progress(0.7, text="Searching…")
    left, right = st.columns([3, 1])
    with right:
        k_max = max(2, min(50, len(engine.names)))
        k = st.slider("Results shown", 1, k_max, min(10, k_max), key="search_k")
        rerank = st.checkbox(
            "Geometric re-ranking",
            value=own_rerank(engine).enabled,
            key=f"search_rerank:{choice.path.name}",  # each index starts at its own setting
            help="Re-score the top results by SIFT matches a RANSAC-fitted transform verifies "
            "(rerank=sv; the index's own settings when it was built with them): finds the same "
            "scene turned, cropped or seen from elsewhere.",
        )
    reranker = reranker_of(engine, str(choice)) if rerank else None
    with left:
        query = view.pick_query("search", engine, dataset)
    if query is None:
        progress.empty()
        st.stop()
    indexed = None if query.keep_self else query.dataset_name  # left out of its results
    result = app_queries.search(engine, query.source(engine), k, dataset, indexed, reranker)
    progress.empty()
    st.subheader(f"Results for {app_text.plain(query.label)}")
    image_col, metrics_col = st.columns([1, 3])
    with image_col:
        ui.show_image(ui.query_thumb(query, engine), f"query: {query.label}")
        view.more_like_this("search", query.dataset_name, "query")
    with metrics_col:
        ui.result_metrics(result)
        if result.relevant is not None:
            st.caption("✓ marks the images the ground truth calls relevant; the query is left out.")
        elif not app_photos.is_plain(dataset):
            st.caption(
                "No ground truth for this image: pick a dataset query to see relevance and AP."
            )
        if calibration is not None:
            st.caption(app_text.plain(calibration.help_text()))
        else:
            st.caption("No weak-match distance: this collection has no tune-side ground truth.")
    view.result_cells("search", engine, result.hits, result.relevant, calibration)
