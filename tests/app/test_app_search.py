"""The Search page's loop through AppTest (issue 24): the default index, "more like this", the
thumbnail picker and the calibrated weak-match mark, on the hsv lab of tests/app/test_app.py."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from search_lab.app import calibration
from search_lab.app import paths as app_paths
from search_lab.app import queries as app_queries
from search_lab.app.search_view import PICKER_PAGE
from search_lab.data import load_dataset
from search_lab.evaluation import OUTPUTS_ENV
from search_lab.retrieval import SearchEngine
from tests.app.test_app import APP, EASY_QUERY, Lab, _result_captions, _unescape
from tests.app.test_app import app as app  # the fixtures, used by name below
from tests.app.test_app import lab as lab


def _query_caption(at: AppTest) -> str:
    [caption] = [
        _unescape(c) for image in at.image for c in image.captions if c.startswith("query")
    ]
    return caption


def test_search_opens_on_the_default_index(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    indexes = tmp_path / "indexes"
    shutil.copytree(lab.indexes, indexes)  # plus a copy listed before the default one
    shutil.copytree(lab.indexes / "hsv-euclidean-exact", indexes / "aaa-first")
    for name, value in {
        app_paths.INDEXES_ENV: indexes,
        OUTPUTS_ENV: lab.outputs,
        "SEARCH_LAB_CACHE": lab.cache,
        "HOLIDAYS_DIR": lab.dataset,
    }.items():
        monkeypatch.setenv(name, str(value))
    monkeypatch.delenv(app_paths.DEFAULT_INDEX_ENV, raising=False)
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    assert not at.exception
    assert at.selectbox(key="search_index").value == app_paths.DEFAULT_INDEX_NAME
    assert len(_result_captions(at)) == 10  # first results without a click
    monkeypatch.setenv(app_paths.DEFAULT_INDEX_ENV, "hsv-euclidean-exact")
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    assert at.selectbox(key="search_index").value == "hsv-euclidean-exact"
    monkeypatch.setenv(app_paths.DEFAULT_INDEX_ENV, "no-such-index")
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    assert at.selectbox(key="search_index").value == "aaa-first"  # none: the first listed


def test_more_like_this_searches_with_a_result_then_goes_back(app: AppTest) -> None:
    first = _result_captions(app)
    second = re.match(r"(?:✓ )?#2 (\S+) ", first[1])[1]
    app.button(key="search_more_hit_2").click().run()
    assert not app.exception
    assert _query_caption(app) == f"query: {second}"
    assert any(f"More like {second}" in _unescape(i.value) for i in app.info)
    chained = _result_captions(app)
    assert len(chained) == 10 and chained != first
    assert all(f" {second} " not in c for c in chained)  # the image is not its own result
    app.button(key="search_more_hit_1").click().run()  # a chain goes on
    assert _query_caption(app) != f"query: {second}"
    app.button(key="search_like_back").click().run()
    assert _query_caption(app) == f"query: {EASY_QUERY}" and _result_captions(app) == first
    app.button(key="search_more_query").click().run()  # the query's own thumbnail
    assert _result_captions(app) == first  # the same image: the same results


def test_thumbnail_picker_pages_and_picks(app: AppTest, lab: Lab) -> None:
    app.toggle(key="search_grid").set_value(True).run()
    data = load_dataset(lab.dataset)
    queries = app_queries.dataset_queries(data, data.names)  # the select box's order
    picker = [c for c in (_unescape(i.captions[0]) for i in app.image) if c in queries]
    assert picker == queries[:PICKER_PAGE]
    app.number_input(key="search_grid_page").set_value(2).run()
    picker = [c for c in (_unescape(i.captions[0]) for i in app.image) if c in queries]
    assert picker == queries[PICKER_PAGE : 2 * PICKER_PAGE]
    chosen = picker[3]
    app.button(key=f"search_grid_pick_{chosen}").click().run()
    assert not app.exception
    assert app.selectbox(key="search_query").value == chosen
    assert _query_caption(app) == f"query: {chosen}"
    assert all(f" {chosen} " not in c for c in _result_captions(app))


def test_weak_match_mark_follows_the_tune_side_threshold(app: AppTest, lab: Lab) -> None:
    app.slider(key="search_k").set_value(20).run()
    engine = SearchEngine.load(lab.indexes / "hsv-cosine-exact")
    expected = calibration.calibrate(engine, load_dataset(lab.dataset))
    captions = [_unescape(c.value) for c in app.caption]
    [help_text] = [c for c in captions if "weak-match distance" in c]
    assert f"{expected.threshold:.4f}" in help_text and "tune-side queries" in help_text
    captions = _result_captions(app)
    weak = [float(re.search(r"d=([\d.]+)", c)[1]) > expected.threshold for c in captions]
    assert [c.endswith("weak match") for c in captions] == weak
    assert any(weak) and not all(weak)
    badges = [m.value for m in app.markdown if "weak match" in m.value]
    assert len(badges) == sum(weak)
