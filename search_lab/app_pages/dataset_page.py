"""Dataset: counts, groups (a query with its relevant images) and files the indexes skipped."""

import pandas as pd
import streamlit as st

from search_lab import app_support as sup
from search_lab.app_pages import widgets as ui
from search_lab.data import default_root
from search_lab.engine import list_engines, manifest_of
from search_lab.errors import DatasetError

st.title("Dataset")
with ui.user_errors():
    try:
        dataset = ui.dataset_at(default_root())
    except DatasetError as err:
        st.error(sup.plain(err))
        st.markdown(f"Get the dataset with `{sup.FETCH_COMMAND}` (or set HOLIDAYS_DIR).")
        st.stop()
    sizes = sup.group_sizes(dataset)
    st.caption(sup.plain(dataset.root))
    cols = st.columns(4)
    cols[0].metric("Images", len(dataset.names))
    cols[1].metric("Groups", len(sizes))
    cols[2].metric("Queries", len(dataset.queries))
    cols[3].metric("Queries without relevant images", len(dataset.lonely))

    st.subheader("Group sizes")
    histogram = pd.Series(list(sizes.values())).value_counts().sort_index()
    st.bar_chart(
        pd.DataFrame({"images in the group": histogram.index, "groups": histogram.values}),
        x="images in the group",
        y="groups",
        height=250,
    )

    st.subheader("Browse the groups")
    queries = [dataset.names[q] for q in dataset.queries]
    query = st.selectbox("Query", queries, key="dataset_query")
    relevant = sorted(sup.relevant_names(dataset, query))
    st.caption(
        f"Query {sup.plain(query)} and its {len(relevant)} relevant images (the rest of its group)."
    )
    cells = [query, *relevant]
    for row in sup.chunked(cells, ui.GRID_COLUMNS):
        for cell, name in zip(st.columns(ui.GRID_COLUMNS), row, strict=False):
            with cell:
                label = f"query {name}" if name == query else name
                ui.show_image(ui.thumb(dataset.root, dataset.names, name), label)

    st.subheader("Files skipped as unreadable")
    manifests = {p.name: manifest_of(p) for p in list_engines(sup.indexes_dir())}
    skipped = sup.skipped_rows(manifests)
    if skipped:
        st.dataframe(pd.DataFrame(skipped), hide_index=True, key="dataset_skipped")
    elif manifests:
        st.success(f"The {len(manifests)} built indexes skipped no file.")
    else:
        st.info("No index is built yet, so no file has been checked.")
