"""Your photos: index a folder on the server (within ``app.roots``), then find near-duplicates.

The index is built in the background (:mod:`search_lab.app.photos`): the progress bar shows
images per second, the page can be left and the job keeps going; the finished index is listed
on the Search page like any other. The duplicates view groups an index's near-duplicates with
a threshold slider, from one cached neighbour search per index.
"""

import streamlit as st

from search_lab.app import indexes as app_indexes
from search_lab.app import paths as app_paths
from search_lab.app import photos as app_photos
from search_lab.app import text as app_text
from search_lab.app import widgets as ui
from search_lab.app.duplicate_view import show_duplicates, show_job
from search_lab.core import ConfigError

RECIPE_WORDS = {
    "recommended": "CNN, colour and geometric re-ranking (best; slowest)",
    "hsv": "colour histogram (fast; best for near-duplicates)",
    "cnn": "CNN descriptor",
}


@st.fragment(run_every=1.0)
def progress_while_running() -> None:
    """Every job of this server; redrawn each second, the whole page once all have ended."""
    running = False
    for job in app_photos.jobs():
        show_job(job)
        running |= job.running
    if not running:
        st.rerun()  # the new index joins the lists below; the timer stops with this fragment


st.title("Your photos")
roots = app_photos.allowed_roots()
st.caption(
    "Index a folder of photos on this server (every image under it, sub-folders included), "
    "then search it on the Search page. Folders this app may read (app.roots): "
    + (", ".join(app_text.plain(r) for r in roots) or "none")
)
with ui.user_errors():
    folder_text = st.text_input(
        "Folder on the server", key="photos_folder", placeholder=str(roots[0]) if roots else ""
    )
    recipe = st.radio(
        "Recipe",
        app_photos.recipes(),
        format_func=lambda r: f"{r}: {RECIPE_WORDS[r]}",
        horizontal=True,
        key="photos_recipe",
    )
    if st.button("Index this folder", key="photos_index", type="primary"):
        try:
            app_photos.start(app_photos.confine(folder_text, roots), recipe)
        except ConfigError as err:
            st.error(app_text.plain(err), icon=":material/block:")
    if any(job.running for job in app_photos.jobs()):
        progress_while_running()
    else:
        for job in app_photos.jobs():
            show_job(job)

    st.subheader("Near-duplicates")
    choices = {c.path.name: c for c in app_indexes.index_choices(app_paths.indexes_dir())}
    if not choices:
        st.info("No index is built yet: index a folder above first.")
        st.stop()
    photos = [name for name in choices if name.startswith("photos-")]
    name = st.selectbox(
        "Index", list(choices), index=list(choices).index(photos[0]) if photos else 0,
        key="dup_index",
    )  # fmt: skip
    show_duplicates(choices[name], ui.engine_for(choices[name]))
