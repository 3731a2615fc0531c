"""Widgets and cached loaders the app's pages share.

Engines are loaded once per index folder and manifest version (``st.cache_resource``) and
shared by every session; thumbnails are small JPEGs cached with ``st.cache_data``. Uploads stay
in memory: their bytes go straight to the engine.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from search_lab.app import calibration as app_calibration
from search_lab.app import datasets as app_datasets
from search_lab.app import indexes as app_indexes
from search_lab.app import paths as app_paths
from search_lab.app import queries as app_queries
from search_lab.app import runs as app_runs
from search_lab.app import text as app_text
from search_lab.app import uploads as app_uploads
from search_lab.core import DatasetError, ImageLoadError, SearchLabError
from search_lab.data import Dataset, default_root, load_dataset
from search_lab.evaluation import PER_QUERY_ATTR, SKIPPED_ATTR, RunScores, load_runs, outputs_dir
from search_lab.retrieval import SearchEngine

GRID_COLUMNS = 5
DATASET_QUERY = "Dataset query"
UPLOAD = "Upload an image"
COLLECTION_PHOTO = "Photo from the collection"
PHOTO_CHOICES = 200
"""Names a collection photo's select box lists at most (a filter narrows a large library)."""


@contextmanager
def user_errors() -> Iterator[None]:
    """Show a user-fixable error (any SearchLabError) as one message box, never a traceback."""
    try:
        yield
    except SearchLabError as err:
        st.error(app_text.plain(err), icon=":material/error:")


@st.cache_resource(max_entries=8, show_spinner="Loading the index…")
def _load_engine(path: str, mtime_ns: int, roots: tuple[str, ...]) -> SearchEngine:
    """The engine in ``path``, checked and warmed up; a new ``mtime_ns`` (of its manifest) reloads.

    Every data file is verified against its checksum (once per process: the engine is then
    shared), and the engine's images must lie in a dataset folder of ``roots`` the app serves
    or in the index folder. One query on an indexed image creates the extractor and its imports,
    so the query times shown to users measure queries, not start-up.
    """
    engine = SearchEngine.load(path, roots=list(roots))
    if engine.names:
        with suppress(SearchLabError):  # the collection's files are gone: uploads still work
            engine.query(engine.path_of(engine.names[0]), 1)
    return engine


def engine_for(choice: app_indexes.IndexChoice) -> SearchEngine:
    """The shared, cached engine of a listed index."""
    roots = tuple(str(folder) for folder in app_datasets.served_folders())
    return _load_engine(str(choice.path.resolve()), choice.mtime_ns, roots)


@st.cache_resource(max_entries=16, show_spinner=False)
def _calibration(
    path: str, mtime_ns: int, _engine: SearchEngine, _dataset: Dataset | None
) -> app_calibration.Calibration | None:
    return app_calibration.calibrate(_engine, _dataset)


def calibration_for(
    choice: app_indexes.IndexChoice, engine: SearchEngine, dataset: Dataset | None
) -> app_calibration.Calibration | None:
    """The weak-match calibration of a listed index, computed once per index version."""
    return _calibration(str(choice.path.resolve()), choice.mtime_ns, engine, dataset)


def engines_for(choices: Sequence[app_indexes.IndexChoice]) -> dict[str, SearchEngine]:
    """Engines of several listed indexes by name; one that fails to load is shown and left out."""
    engines = {}
    for choice in choices:
        try:
            engines[choice.path.name] = engine_for(choice)
        except SearchLabError as err:
            st.error(
                f"Index {app_text.plain(choice.path.name)} cannot be used: {app_text.plain(err)}",
                icon=":material/error:",
            )
    return engines


def show_broken(parent: Path) -> None:
    """One warning per index folder under ``parent`` that cannot be used, with its reason."""
    for name, problem in app_indexes.broken_indexes(parent).items():
        st.warning(
            f"Index {app_text.plain(name)} cannot be used: {app_text.plain(problem)}",
            icon=":material/warning:",
        )


@st.cache_resource(max_entries=4, show_spinner=False)
def _load_dataset(root: str, layout: str, labels: str | None, mtimes: tuple[int, int]) -> Dataset:
    """The dataset in ``root``; ``mtimes`` (folder, labels file) make changes show up."""
    return load_dataset(root, layout=layout, labels=labels)


def dataset_at(root: Path, layout: str = "auto", labels: Path | None = None) -> Dataset:
    """The cached dataset in ``root``; raises DatasetError if there is none."""
    mtime = root.stat().st_mtime_ns if root.is_dir() else 0
    labels_mtime = labels.stat().st_mtime_ns if labels and labels.is_file() else 0
    return _load_dataset(str(root), layout, str(labels) if labels else None, (mtime, labels_mtime))


def dataset_of(engine: SearchEngine) -> Dataset | None:
    """The dataset an engine was built on (for ground truth), or None if it is gone.

    A labels file outside the folders the app serves is not read (None: no ground truth).
    """
    if engine.labels is not None and not app_datasets.is_served(
        engine.labels, app_datasets.served_folders()
    ):
        return None
    try:
        layout = (engine.config.get("dataset") or {}).get("layout", "auto")
        return dataset_at(engine.root, layout, engine.labels)
    except DatasetError:
        return None


@st.cache_data(max_entries=4096, show_spinner=False)
def _thumb(path: str, mtime_ns: int) -> bytes:
    return app_uploads.thumbnail_jpeg(path)


def thumb(root: Path, names: Sequence[str], name: str) -> bytes | None:
    """Cached thumbnail of a collection image (None if it can no longer be read)."""
    try:
        path = app_paths.collection_path(root, names, name)
        return _thumb(str(path), path.stat().st_mtime_ns)
    except (ImageLoadError, OSError):
        return None


def show_image(image: bytes | None, caption: str, width: int | str = "stretch") -> None:
    """A thumbnail with its caption (plain text), or the caption alone if it is unreadable."""
    if image is None:
        st.caption(app_text.plain(f"{caption} (image unavailable)"))
    else:
        st.image(image, caption=app_text.plain(caption), width=width)


def offer_build(parent: Path) -> None:
    """Say how to build an index (the exact command) and offer a button building the default one."""
    st.warning(f"No index is built in {app_text.plain(parent)} yet.", icon=":material/info:")
    st.markdown(
        "Build the default one (HSV colour histogram, cosine distance, exact search) "
        "in a terminal, in the project folder:"
    )
    st.code(
        app_indexes.build_command(parent, os.environ.get("HOLIDAYS_DIR")),
        language="bash",
        wrap_lines=True,
    )
    try:
        data = dataset_at(default_root())
    except DatasetError:
        st.error(
            f"No dataset at {app_text.plain(default_root())} either: "
            f"get one with `{app_paths.FETCH_COMMAND}` "
            "(or set HOLIDAYS_DIR)."
        )
        return
    label = f"Build the default index now ({len(data.names)} images)"
    if st.button(label, key="build_default", type="primary"):
        build_default(parent)


def build_default(parent: Path) -> None:
    """Build the default index into ``parent`` with a progress bar, then reload the page."""
    bar = st.progress(0.0, text="starting")

    def report(fraction: float, text: str) -> None:
        bar.progress(fraction, text=app_text.plain(text))

    message = app_indexes.build_with_progress(app_indexes.default_build_config(parent), report)
    st.session_state["built_message"] = message
    st.rerun()


def pick_index(key: str, default: str | None = None) -> app_indexes.IndexChoice | None:
    """A select box over the built indexes with the choice in plain words; None if there is none.

    It opens on the index folder named ``default`` when there is one (else the first listed).
    """
    parent = app_paths.indexes_dir()
    if message := st.session_state.pop("built_message", None):
        st.success(app_text.plain(message))
    choices = {c.path.name: c for c in app_indexes.index_choices(parent)}
    show_broken(parent)
    if not choices:
        offer_build(parent)
        return None
    where = f"built indexes in {app_text.plain(parent)}"
    names = list(choices)
    first = names.index(default) if default in choices else 0
    name = st.selectbox("Index", names, index=first, key=key, help=where)
    words = {
        key: app_text.plain(text)
        for key, text in app_text.plain_words(choices[name].config).items()
    }
    st.caption(
        f"**Feature:** {words['feature']} · **Metric:** {words['metric']} · "
        f"**Search:** {words['index']}"
    )
    st.caption(app_text.method_words(choices[name].config))
    return choices[name]


@dataclass(frozen=True)
class Query:
    """A chosen query: a dataset image (by name) or the bytes of an upload.

    ``keep_self``: the indexed image is shown among its own results (a photo picked from a
    plain collection is then found first, at distance 0, while its index is current).
    """

    label: str
    data: bytes | None = None
    dataset_name: str | None = None
    keep_self: bool = False

    def source(self, engine: SearchEngine) -> Path | bytes:
        """What to hand ``engine.query``: the upload's bytes or the indexed file's path."""
        if self.data is not None:
            return self.data
        return app_paths.collection_path(engine.root, engine.names, self.dataset_name or "")


def pick_query(prefix: str, engine: SearchEngine, dataset: Dataset | None) -> Query | None:
    """Radio between a dataset query (a collection photo when the collection has no queries)
    and an upload; None until an image is chosen."""
    queries = app_queries.dataset_queries(dataset, engine.names) if dataset is not None else []
    modes = [DATASET_QUERY, UPLOAD] if queries else [COLLECTION_PHOTO, UPLOAD]
    mode = st.radio("Query", modes, horizontal=True, key=f"{prefix}_source")
    if mode == DATASET_QUERY:
        name = st.selectbox("Dataset query", queries, key=f"{prefix}_query")
        return Query(name, dataset_name=name)
    if mode == COLLECTION_PHOTO:
        return collection_photo(prefix, engine)
    upload = st.file_uploader(
        "Image to search with (jpg, png or webp; drag and drop works)",
        type=list(app_uploads.UPLOAD_TYPES),
        key=f"{prefix}_upload",
        max_upload_size=app_uploads.MAX_UPLOAD_MB,
    )
    if upload is None:
        st.info("Upload an image to search the index with it.")
        return None
    return Query(app_text.safe_label(upload.name), data=upload.getvalue())


def collection_photo(prefix: str, engine: SearchEngine) -> Query | None:
    """An indexed photo picked by name: a filter box, then a select box of what it matches
    (at most ``PHOTO_CHOICES``, so a library of 25,000 photos sends no 25,000 options)."""
    typed = st.text_input("Filter the names", key=f"{prefix}_filter", placeholder="e.g. 2024/")
    shown, total = app_queries.matching_names(engine.names, typed, PHOTO_CHOICES)
    if not shown:
        st.info(f"No indexed photo's name contains {app_text.plain(typed.strip())}.")
        return None
    if total > len(shown):
        st.caption(f"{total:,} names match; the first {len(shown)} are listed: type more.")
    name = st.selectbox("Photo", shown, key=f"{prefix}_photo")
    return Query(name, dataset_name=name, keep_self=True)


def query_thumb(query: Query, engine: SearchEngine) -> bytes | None:
    """Thumbnail of the query image (from the upload's bytes or the collection)."""
    if query.data is not None:
        return app_uploads.thumbnail_jpeg(query.data)
    return thumb(engine.root, engine.names, query.dataset_name or "")


def result_metrics(result: app_queries.Result, *, stacked: bool = False) -> None:
    """Query time and, for a dataset query, its average precision and relevant images found.

    ``stacked`` puts the three figures one under the other, at the full width of a narrow
    column (three or more indexes side by side), so no label or value is cut.
    """
    cols = [st.container() for _ in range(3)] if stacked else st.columns(3)
    cols[0].metric(
        "Query time",
        f"{result.seconds * 1e3:.1f} ms",
        help=f"feature extraction and ranking of {result.ranked} images",
    )
    if result.ap is not None and result.relevant is not None:
        rule = app_text.AP_WORDS.get(result.ap_rule or "", "AP")
        cols[1].metric("Average precision", f"{result.ap:.3f}", help=f"{rule}, whole index ranked")
        found = sum(hit.name in result.relevant for hit in result.hits)
        cols[2].metric("Relevant shown", f"{found} of {len(result.relevant)}")


def rank_cell(engine: SearchEngine, index: str, result: app_queries.Result, rank: int) -> None:
    """One index's hit at ``rank`` (from 0), captioned with the index's name.

    Cells of one rank share their row's width equally (so a phone keeps them side by side);
    a thumbnail is shown at most at its own size.
    """
    with st.container(width="stretch"):
        if rank >= len(result.hits):
            st.caption(f"{app_text.plain(index)}: no result")
            return
        hit = result.hits[rank]
        mark = None if result.relevant is None else hit.name in result.relevant
        text = f"{index}: {app_text.caption(hit, mark)}"
        show_image(thumb(engine.root, engine.names, hit.name), text, width="content")


@st.cache_data(max_entries=4, show_spinner="Reading runs…")
def _runs(
    root: str, signature: tuple[tuple[str, int], ...]
) -> tuple[pd.DataFrame, RunScores, dict[str, str]]:
    """The runs table, its per-query APs and the unusable run folders (folder -> reason).

    ``signature`` makes a new run show up.

    The per-query APs leave the table's ``attrs``: Arrow would try to serialise them along
    with every table and chart sent to the browser.
    """
    frame = load_runs([root] if signature else [])
    scores = frame.attrs.pop(PER_QUERY_ATTR, RunScores({}))
    return frame, scores, frame.attrs.pop(SKIPPED_ATTR, {})


def runs_table() -> pd.DataFrame:
    """Evaluation runs and sweeps under the outputs folder, best mAP first (maybe empty)."""
    root = outputs_dir()
    return _runs(str(root), app_runs.runs_signature(root))[0]


def run_scores() -> RunScores:
    """Per-query APs of the runs in :func:`runs_table`, keyed by run folder."""
    root = outputs_dir()
    return _runs(str(root), app_runs.runs_signature(root))[1]


def skipped_runs_warning() -> None:
    """One warning naming the run folders under the outputs folder that could not be read."""
    root = outputs_dir()
    skipped = _runs(str(root), app_runs.runs_signature(root))[2]
    if skipped:
        shown = "; ".join(f"{app_text.plain(k)}: {app_text.plain(v)}" for k, v in skipped.items())
        st.warning(f"{len(skipped)} run folders skipped (unusable metrics.json): {shown}")


@st.cache_data(max_entries=64, show_spinner=False)
def _run_map(signature: tuple[tuple[str, int], ...], config_json: str) -> float | None:
    return app_runs.matching_run_map(runs_table(), json.loads(config_json))


def run_map(config: dict) -> float | None:
    """mAP of the newest evaluation run with the same search setup as ``config``, if any."""
    signature = app_runs.runs_signature(outputs_dir())
    return _run_map(signature, json.dumps(config, sort_keys=True)) if signature else None
