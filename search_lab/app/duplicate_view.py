"""The Your photos page's views: an indexing job's progress, and an index's near-duplicate
groups side by side, with a threshold slider.

The neighbour search runs once per index (and index version) up to the slider's largest value
and is cached for every session; moving the slider only regroups the pairs found, in
milliseconds.
"""

from __future__ import annotations

import time

import streamlit as st

from search_lab.app import indexes as app_indexes
from search_lab.app import photos as app_photos
from search_lab.app import text as app_text
from search_lab.app import widgets as ui
from search_lab.retrieval import (
    DuplicateSpace,
    Pairs,
    SearchEngine,
    close_pairs,
    components,
    counted,
    duplicate_space,
)

GROUPS_SHOWN = 30
PER_ROW = 6
FALLBACK_MAX = {"cosine": 0.3, "euclidean": 1.0, "manhattan": 4.0, "chi2": 1.0}
"""Slider's largest value where no calibrated threshold exists, per metric."""


@st.cache_resource(max_entries=4, show_spinner="Preparing the near-duplicate search…")
def _space(path: str, mtime_ns: int, _engine: SearchEngine) -> DuplicateSpace:
    """Where the index at ``path`` (version ``mtime_ns``) finds its near-duplicates (for an
    index fitted on its collection, its photos' colour histograms: extracted once)."""
    return duplicate_space(_engine)


@st.cache_resource(max_entries=4, show_spinner="Searching the index for near-duplicates…")
def _pairs(path: str, mtime_ns: int, cap: float, _where: DuplicateSpace) -> tuple[Pairs, float]:
    """Every pair within ``cap`` of the index at ``path`` (version ``mtime_ns``), and seconds."""
    start = time.perf_counter()
    pairs = close_pairs(_where.index, cap)
    return pairs, time.perf_counter() - start


def slider_range(space: DuplicateSpace, metric: str) -> tuple[float, float]:
    """(default, largest) threshold of the slider: the calibrated default and 3 times it."""
    if space.threshold is None:
        top = FALLBACK_MAX.get(metric, 1.0)
        return top / 6, top
    return space.threshold, 3 * space.threshold


def show_duplicates(choice: app_indexes.IndexChoice, engine: SearchEngine) -> None:
    """The slider, the cost line and the first groups as rows of thumbnails."""
    version = (str(choice.path.resolve()), choice.mtime_ns)
    space = _space(*version, engine)
    default, top = slider_range(space, engine.config["metric"]["name"])
    threshold = st.slider(
        f"Threshold ({space.distance})", 0.0, top, default, step=top / 300, format="%.4f",
        key=f"dup_threshold_{choice.path.name}",
        help="two images closer than this are near-duplicates; "
        + ("the default is the value calibrated on a planted set" if space.threshold is not None
           else "no value is calibrated for this index: the default is a sixth of the range")
        + " (docs/guide.md, Near-duplicates)",
    )  # fmt: skip
    pairs, seconds = _pairs(*version, top, space)
    keep = pairs.distance <= threshold
    groups = components(len(space.names), pairs.left[keep], pairs.right[keep])
    st.caption(
        f"{counted(len(groups), 'group')} of {sum(map(len, groups))} images from "
        f"{counted(int(keep.sum()), 'pair')} within {threshold:.4f}. "
        f"Cost: {pairs.queries} queries of the index "
        f"({', '.join(f'{n} at k={k}' for k, n in pairs.rounds)}) in {seconds:.2f} s, "
        f"once for every threshold up to {top:.4f}."
    )
    if not groups:
        st.info("No near-duplicates at this threshold.")
    for number, group in enumerate(groups[:GROUPS_SHOWN], start=1):
        names = sorted(space.names[i] for i in group)
        st.markdown(f"**Group {number}** · {len(names)} images")
        for row in app_text.chunked(names, PER_ROW):
            for cell, name in zip(st.columns(PER_ROW), row, strict=False):
                with cell:
                    ui.show_image(ui.thumb(engine.root, engine.names, name), name)
    if len(groups) > GROUPS_SHOWN:
        st.caption(
            f"{len(groups) - GROUPS_SHOWN} more groups: lower the threshold, or list them all "
            f"with `python -m search_lab.duplicates --index {app_text.plain(choice.path)}`."
        )


def show_job(job: app_photos.Job) -> None:
    """One job: a progress bar with images per second while it runs, then its outcome."""
    where = app_text.plain(f"{job.folder} ({job.recipe})")
    rate = f"{job.rate():.1f} images/s"
    if job.state == "starting":
        st.progress(0.0, text=app_text.plain(f"{job.folder}: reading the folder (sizes, hashes)"))
    elif job.state == "local":
        text = f"{job.folder}: local features for re-ranking (once per photo, then cached)"
        st.progress(1.0, text=app_text.plain(text))
    elif job.running:
        text = f"{job.folder}: {job.done}/{job.total} images extracted, {rate}"
        st.progress(job.fraction(), text=app_text.plain(text))
    elif job.state == "done":
        st.success(
            f"{where}: {app_text.plain(job.message)}, {rate}. Search it on the Search page: "
            f"index {app_text.plain(job.index_dir.name)}."
        )
    else:
        st.error(f"{where}: {app_text.plain(job.message)}")
