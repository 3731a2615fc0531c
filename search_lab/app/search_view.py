"""The Search page's query loop: pick a query (by name, from thumbnails, or an upload), see the
results with their similarity and weak-match mark, and use any of them as the next query.

"More like this" stores ``(image name, the picked query's label)`` in the session: while the
picked query stays the same the page searches with that image; picking another query (by name,
thumbnail or upload) ends the chain.
"""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from search_lab.app import queries as app_queries
from search_lab.app import text as app_text
from search_lab.app import widgets as ui
from search_lab.app.calibration import Calibration
from search_lab.data import Dataset
from search_lab.retrieval import Hit, SearchEngine

PICKER_PAGE = 12
"""Thumbnails per page of the query picker."""
PICKER_PX = 120
"""Width of a picker cell: six in a row on a wide screen, two on a phone."""
RESULT_PX = 170
"""Width of a result cell: five in a row on a wide screen, two on a phone (390 px)."""


def _like_key(prefix: str) -> str:
    return f"{prefix}_like"


def _set_like(prefix: str, name: str, base: str) -> None:
    """Button callback: search with the indexed image ``name`` while ``base`` stays picked."""
    st.session_state[_like_key(prefix)] = (name, base)


def _clear_like(prefix: str) -> None:
    st.session_state.pop(_like_key(prefix), None)


def _pick(prefix: str, name: str) -> None:
    """Thumbnail callback: make ``name`` the picked dataset query and end any chain."""
    st.session_state[f"{prefix}_query"] = name
    _clear_like(prefix)


def thumbnail_picker(prefix: str, engine: SearchEngine, queries: Sequence[str]) -> None:
    """A paged grid of the dataset queries' thumbnails; a click picks one (behind a toggle).

    Thumbnails are drawn only while the toggle is on, so the first visit loads no more of them
    than the results need.
    """
    if not st.toggle("Pick a query from thumbnails", key=f"{prefix}_grid"):
        return
    pages = max(1, -(-len(queries) // PICKER_PAGE))
    page = st.number_input(
        f"Page (of {pages}, {PICKER_PAGE} queries each)",
        1,
        pages,
        1,
        key=f"{prefix}_grid_page",
    )
    start = (int(page) - 1) * PICKER_PAGE
    shown = list(queries[start : start + PICKER_PAGE])
    with st.container(horizontal=True, gap="small"):
        for name in shown:
            with st.container(width=PICKER_PX):
                ui.show_image(ui.thumb(engine.root, engine.names, name), name)
                st.button(
                    "Search with this",
                    key=f"{prefix}_grid_pick_{name}",
                    on_click=_pick,
                    args=(prefix, name),
                    width="stretch",
                )


def pick_query(prefix: str, engine: SearchEngine, dataset: Dataset | None) -> ui.Query | None:
    """The query to search with: the image of a "more like this" chain, else the picked one.

    Below the usual choice (dataset query by name, or an upload) a dataset query can also be
    picked from a paged thumbnail grid.
    """
    base = ui.pick_query(prefix, engine, dataset)
    if st.session_state.get(f"{prefix}_source") == ui.DATASET_QUERY and dataset is not None:
        thumbnail_picker(prefix, engine, app_queries.dataset_queries(dataset, engine.names))
    if base is None:
        _clear_like(prefix)
        return None
    st.session_state[f"{prefix}_base"] = base.label
    like = st.session_state.get(_like_key(prefix))
    if not like or like[1] != base.label or like[0] not in engine.names:
        _clear_like(prefix)
        return base
    st.info(
        f"More like {app_text.plain(like[0])} (picked query: {app_text.plain(base.label)}).",
        icon=":material/image_search:",
    )
    st.button(
        "Back to the picked query", key=f"{prefix}_like_back", on_click=_clear_like, args=(prefix,)
    )
    return ui.Query(like[0], dataset_name=like[0])


def more_like_this(prefix: str, name: str | None, key: str) -> None:
    """The "More like this" button under a thumbnail: search next with the indexed ``name``.

    An upload (``name`` None) is already the query: its button runs the search again.
    """
    base = st.session_state.get(f"{prefix}_base", "")
    st.button(
        "More like this",
        key=f"{prefix}_more_{key}",
        icon=":material/image_search:",
        on_click=_set_like if name else None,
        args=(prefix, name, base) if name else None,
        width="stretch",
    )


def badges(similarity: float | None, weak: bool, relevant: bool | None) -> str:
    """One line of badges under a result, the same height in every cell: its similarity
    (orange and marked when it is a weak match) and, for a dataset query, its relevance."""
    parts = []
    if similarity is not None:
        color, icon = ("orange", ":material/warning: ") if weak else ("blue", "")
        parts.append(f":{color}-badge[{icon}{similarity:.0%}{' weak match' if weak else ''}]")
    if relevant:
        parts.append(":green-badge[:material/check: relevant]")
    return " ".join(parts) or ":gray-badge[no calibration]"


def result_cells(
    prefix: str,
    engine: SearchEngine,
    hits: Sequence[Hit],
    relevant: frozenset[str] | None,
    calibration: Calibration | None,
    cell_px: int = RESULT_PX,
) -> None:
    """Result thumbnails in rows that wrap (cells ``cell_px`` wide): caption with similarity,
    relevance and weak-match badges, and a "More like this" button under each."""
    with st.container(horizontal=True, gap="small"):  # wraps: 5 a row wide, 2 on a phone
        for hit in hits:
            with st.container(width=cell_px):
                mark = None if relevant is None else hit.name in relevant
                similarity = calibration.similarity(hit.distance) if calibration else None
                weak = bool(calibration and calibration.weak(hit.distance))
                text = app_text.caption(hit, mark, similarity, weak)
                ui.show_image(ui.thumb(engine.root, engine.names, hit.name), text)
                st.markdown(badges(similarity, weak, mark))
                more_like_this(prefix, hit.name, f"hit_{hit.rank}")
