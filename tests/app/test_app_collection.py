"""The Search page on a plain collection: a query picked from the collection itself, by name.

A small plain index of real Wang photos in a nested folder tree is built in a tmp folder; the
page must offer its photos by name (filtered), search with the one picked and show it first at
distance 0, followed by the hits the engine itself gives for that file.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from search_lab.app import paths as app_paths
from search_lab.app import photos as app_photos
from search_lab.app import queries as app_queries
from search_lab.app import widgets
from search_lab.cli import build_index, compose_config
from search_lab.evaluation import OUTPUTS_ENV
from search_lab.retrieval import SearchEngine
from tests.app.test_app import APP, _result_captions, _unescape

PICKED = {  # Wang image -> its place in the collection (africa, beach, buildings, buses)
    "0.jpg": "2023/africa/0.jpg",
    "1.jpg": "2023/africa/1.jpg",
    "100.jpg": "2023/beach/100.jpg",
    "101.jpg": "2024/beach 101.jpg",
    "200.jpg": "2024/200.jpg",
    "300.jpg": "bus.jpg",
}
INDEX = "album-hsv"


@pytest.fixture
def album(tmp_path: Path, wang_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The plain index ``INDEX`` of six Wang photos, and the app pointed at it alone."""
    root = tmp_path / "photos"
    for source, name in PICKED.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(wang_dir / "images" / source, root / name)
    overrides = [
        f"dataset.root={root}", "dataset.layout=plain", f"index_dir={tmp_path / 'indexes' / INDEX}",
        f"cache_dir={tmp_path / 'cache'}", "progress=false", "workers=1",
    ]  # fmt: skip
    build_index.run(compose_config(overrides, "build_index"), tmp_path / "out")
    for name, value in {
        app_paths.INDEXES_ENV: tmp_path / "indexes",
        OUTPUTS_ENV: tmp_path / "outputs",
        app_paths.DEFAULT_INDEX_ENV: INDEX,
        app_photos.ROOTS_ENV: root,
        "SEARCH_LAB_CACHE": tmp_path / "cache",
    }.items():
        monkeypatch.setenv(name, str(value))
    return tmp_path / "indexes" / INDEX


def _hits(at: AppTest) -> list[tuple[int, str, float]]:
    """(rank, name, distance) of every result caption shown."""
    found = []
    for caption in _result_captions(at):
        match = re.match(r"#(\d+) (.+?)(?: · \d+% similar)? · d=([\d.]+)", caption)
        assert match, caption
        found.append((int(match[1]), match[2], float(match[3])))
    return found


def test_a_photo_picked_by_name_is_found_first_then_its_neighbours(album: Path) -> None:
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    assert not at.exception and not at.error
    assert at.selectbox(key="search_index").value == INDEX
    assert at.radio(key="search_source").options == [widgets.COLLECTION_PHOTO, widgets.UPLOAD]
    photo = at.selectbox(key="search_photo")
    assert photo.options == sorted(PICKED.values()) and photo.value == "2023/africa/0.jpg"
    engine = SearchEngine.load(album)
    for name in ("2023/africa/0.jpg", "2024/beach 101.jpg"):
        at.selectbox(key="search_photo").set_value(name).run()
        assert not at.exception
        shown = _hits(at)
        assert shown[0][:2] == (1, name) and shown[0][2] == 0.0  # the picked image itself
        expected, _ = engine.query(album.parent.parent / "photos" / name, k=len(PICKED))
        assert [(h, n) for h, n, _ in shown] == [(h.rank, h.name) for h in expected]
        assert [d for *_, d in shown] == pytest.approx([h.distance for h in expected], abs=1e-4)
        queried = [_unescape(c) for i in at.image for c in i.captions if c.startswith("query")]
        assert queried == [f"query: {name}"]  # the picked image is shown


def test_the_name_filter_narrows_the_list_and_says_when_nothing_matches(
    album: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    at.text_input(key="search_filter").input("BEACH").run()  # any case, any part of the path
    assert at.selectbox(key="search_photo").options == ["2023/beach/100.jpg", "2024/beach 101.jpg"]
    assert _hits(at)[0][1] == "2023/beach/100.jpg"
    at.text_input(key="search_filter").input("2023 africa").run()  # every word must match
    assert at.selectbox(key="search_photo").options == ["2023/africa/0.jpg", "2023/africa/1.jpg"]
    at.text_input(key="search_filter").input("zebra").run()
    assert not at.exception
    assert [i.value for i in at.info] == ["No indexed photo's name contains zebra."]
    assert not _hits(at)
    monkeypatch.setattr(widgets, "PHOTO_CHOICES", 2)  # a large library: the list is cut
    at.text_input(key="search_filter").input("").run()
    assert at.selectbox(key="search_photo").options == ["2023/africa/0.jpg", "2023/africa/1.jpg"]
    assert "6 names match; the first 2 are listed: type more." in [c.value for c in at.caption]


def test_matching_names_sorts_filters_and_counts() -> None:
    names = ["b/x.jpg", "A/y.JPG", "a/z.png", "c/Y.jpg"]
    assert app_queries.matching_names(names, "", 10) == (sorted(names), 4)
    assert app_queries.matching_names(names, " y ", 10) == (["A/y.JPG", "c/Y.jpg"], 2)
    assert app_queries.matching_names(names, "a jpg", 1) == (["A/y.JPG"], 1)
    assert app_queries.matching_names(names, "jpg", 2) == (["A/y.JPG", "b/x.jpg"], 3)
    assert app_queries.matching_names(names, "q", 5) == ([], 0)
    nested = ["a/1.jpg", "a/10.jpg", "ba/1.jpg", "a/1.jpg.bak"]
    assert app_queries.matching_names(nested, "ba/1.jpg ", 5) == (["ba/1.jpg"], 1)
    assert app_queries.matching_names(nested, "A/1.jpg", 5) == (  # typed whole: first
        ["a/1.jpg", "a/1.jpg.bak", "ba/1.jpg"],
        3,
    )


def test_re_ranking_starts_at_each_index_own_setting(album: Path, tmp_path: Path) -> None:
    """An index built with ``rerank=sv`` (as ``+experiment=recommended`` is) opens with the
    Search page's re-ranking ticked; one built without it, unticked; switching follows."""
    manifest = SearchEngine.load(album).manifest
    overrides = [
        f"dataset.root={manifest['root']}", "dataset.layout=plain", "rerank=sv",
        f"index_dir={tmp_path / 'indexes' / 'album-sv'}", f"cache_dir={tmp_path / 'cache'}",
        "progress=false", "workers=1",
    ]  # fmt: skip
    build_index.run(compose_config(overrides, "build_index"), tmp_path / "out")
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    assert not at.exception and at.checkbox(key=f"search_rerank:{INDEX}").value is False
    at.selectbox(key="search_index").set_value("album-sv").run()
    assert not at.exception and not at.error
    assert at.checkbox(key="search_rerank:album-sv").value is True
    assert _hits(at)[0][1:] == ("2023/africa/0.jpg", 0.0)  # re-ranked: the photo itself first
