"""Dataset: counts, groups or categories (a query with its relevant images), skipped files.

The default dataset (``$HOLIDAYS_DIR``) and every dataset a built index was built on (e.g. a
labelled collection such as Wang) can be browsed.
"""

import pandas as pd
import streamlit as st

from search_lab.app import datasets as app_datasets
from search_lab.app import indexes as app_indexes
from search_lab.app import paths as app_paths
from search_lab.app import photos as app_photos
from search_lab.app import queries as app_queries
from search_lab.app import text as app_text
from search_lab.app import widgets as ui
from search_lab.core import DatasetError, manifest_of
from search_lab.data import default_root
from search_lab.retrieval import list_engines

st.title("Dataset")
with ui.user_errors():
    manifests = {p.name: manifest_of(p) for p in list_engines(app_paths.indexes_dir())}
    sources = app_datasets.dataset_sources(manifests, default_root())
    source = st.selectbox(
        "Dataset",
        sources,
        format_func=lambda s: s.label,
        key="dataset_source",
        help="the default dataset and those the built indexes were built on",
    )
    try:
        dataset = ui.dataset_at(source.root, source.layout, source.labels)
    except DatasetError as err:
        st.error(app_text.plain(err))
        st.markdown(f"Get the dataset with `{app_paths.FETCH_COMMAND}` (or set HOLIDAYS_DIR).")
        st.stop()
    if app_photos.is_plain(dataset):
        st.info(f"{len(dataset.names)} images. {app_photos.NO_GROUND_TRUTH}")
        st.stop()
    category = dataset.protocol == "category"
    sizes = app_datasets.group_sizes(dataset)
    st.caption(
        app_text.plain(dataset.root)
        + (f" · labels {app_text.plain(dataset.labels)}" if dataset.labels else "")
    )
    cols = st.columns(4)
    cols[0].metric("Images", len(dataset.names))
    cols[1].metric("Categories" if category else "Groups", len(sizes))
    cols[2].metric("Queries", len(dataset.queries))
    cols[3].metric("Queries without relevant images", len(dataset.lonely))
    st.caption(
        "Category protocol: every image is a query and the other images of its category are "
        "relevant; scored with standard non-interpolated AP."
        if category
        else "Instance protocol: one query per group, the rest of the group is relevant; "
        "scored with the Holidays trapezoid AP."
    )

    if category:
        st.subheader("Images per category")
        st.bar_chart(
            pd.DataFrame({"category": list(sizes), "images": list(sizes.values())}),
            x="category",
            y="images",
            height=250,
        )
    else:
        st.subheader("Group sizes")
        histogram = pd.Series(list(sizes.values())).value_counts().sort_index()
        st.bar_chart(
            pd.DataFrame({"images in the group": histogram.index, "groups": histogram.values}),
            x="images in the group",
            y="groups",
            height=250,
        )

    st.subheader("Browse the categories" if category else "Browse the groups")
    queries = [dataset.names[q] for q in dataset.queries]
    query = st.selectbox("Query", queries, key="dataset_query")
    relevant = sorted(app_queries.relevant_names(dataset, query))
    if category:
        label = dataset.groups[dataset.names.index(query)]
        relevant = relevant[: ui.GRID_COLUMNS * 4]  # a category holds many: show the first
        st.caption(
            f"Query {app_text.plain(query)} (category {app_text.plain(label)}) and the first "
            f"{len(relevant)} other images of its category ({sizes[label] - 1} in all)."
        )
    else:
        st.caption(
            f"Query {app_text.plain(query)} and its {len(relevant)} relevant images "
            "(the rest of its group)."
        )
    cells = [query, *relevant]
    for row in app_text.chunked(cells, ui.GRID_COLUMNS):
        for cell, name in zip(st.columns(ui.GRID_COLUMNS), row, strict=False):
            with cell:
                label = f"query {name}" if name == query else name
                ui.show_image(ui.thumb(dataset.root, dataset.names, name), label)

    st.subheader("Files skipped as unreadable")
    skipped = app_indexes.skipped_rows(manifests)
    if skipped:
        st.dataframe(pd.DataFrame(skipped), hide_index=True, key="dataset_skipped")
    elif manifests:
        st.success(f"The {len(manifests)} built indexes skipped no file.")
    else:
        st.info("No index is built yet, so no file has been checked.")
