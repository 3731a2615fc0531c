"""File names and user strings are shown as plain text, never rendered as Markdown.

A folder-layout dataset whose group folders, image files, index folder and upload carry
Markdown, LaTeX, links, emoji codes and HTML in their names is served to the app: through
AppTest every heading, caption, message and table must hold the names escaped (Streamlit
renders them literally), and in a real Chromium the rendered page must show the names as
typed with no bold, link, formula or image element made from them.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from search_lab.app import indexes as app_indexes
from search_lab.app import paths as app_paths
from search_lab.app import text as app_text
from search_lab.evaluation import OUTPUTS_ENV
from search_lab.retrieval import build_engine

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app.py"
EVIL = "**bold** $x$ [a](http:x) <img src=x> :red[r] :smile:"
GROUPS = {f"{EVIL} g1": ["100000.jpg", "100001.jpg"], "g2 _i_": ["100100.jpg", "100101.jpg"]}
INDEX = "**idx** $y$"


def _evil_name(group: str, source: str) -> str:
    return f"{EVIL} {source}" if source.endswith("00.jpg") else source


@pytest.fixture(scope="module")
def evil_lab(tmp_path_factory: pytest.TempPathFactory, holidays_dir: Path) -> Path:
    """A two-group dataset with crafted names and one hsv index (folder name crafted too)."""
    base = tmp_path_factory.mktemp("evil")
    data = base / "data"
    for group, files in GROUPS.items():
        (data / group).mkdir(parents=True)
        for source in files:
            shutil.copy(holidays_dir / source, data / group / _evil_name(group, source))
    cfg = app_indexes.default_build_config(
        base / "indexes", [f"dataset.root={data}", f"cache_dir={base / 'cache'}", "workers=1"]
    )
    build_engine(cfg).save(base / "indexes" / INDEX)
    return base


@pytest.fixture
def evil_app(evil_lab: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv(app_paths.INDEXES_ENV, str(evil_lab / "indexes"))
    monkeypatch.setenv(OUTPUTS_ENV, str(evil_lab / "outputs"))
    monkeypatch.setenv("HOLIDAYS_DIR", str(evil_lab / "data"))
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    assert not at.exception
    return at


def _texts(at: AppTest) -> list[str]:
    """The Markdown source of every heading, caption, message and image caption shown."""
    parts = [*at.title, *at.subheader, *at.caption, *at.markdown, *at.error, *at.info]
    return [p.value for p in parts] + [c for image in at.image for c in image.captions]


def _assert_no_raw_markup(texts: list[str]) -> None:
    """Every markup character in a text showing a crafted name is backslash-escaped."""
    shown = [t for t in texts if "bold" in t]
    assert shown, "no crafted name is shown at all"
    for text in shown:
        if text.startswith("**") and text.endswith("**"):
            text = text[2:-2]  # the page's own bold around an escaped name
        bare = re.sub(r"\\.", "", text)  # drop every escaped character
        assert not re.search(r"[*$\[\]<>:_`#|~]", bare), f"unescaped markup in {text!r}"


def test_search_page_shows_names_escaped(evil_app: AppTest) -> None:
    query = f"{EVIL} g1/{EVIL} 100000.jpg"
    assert evil_app.selectbox(key="search_query").value == query
    texts = _texts(evil_app)
    assert f"Results for {app_text.plain(query)}" in texts
    assert app_text.plain(f"query: {query}") in texts
    assert any(t.startswith(app_text.plain(f"✓ #1 {EVIL} g1/100001.jpg")) for t in texts)
    _assert_no_raw_markup(texts)


def test_upload_name_is_shown_escaped(evil_app: AppTest, evil_lab: Path) -> None:
    evil_app.radio(key="search_source").set_value("Upload an image").run()
    content = next((evil_lab / "data").rglob("100101.jpg")).read_bytes()
    name = f"{EVIL} <b>up</b>.jpg"
    evil_app.file_uploader(key="search_upload").upload(name, content, "image/jpeg").run()
    assert not evil_app.exception and not evil_app.error
    texts = _texts(evil_app)
    assert f"Results for {app_text.plain(name)}" in texts
    _assert_no_raw_markup(texts)


def test_compare_and_dataset_pages_show_names_escaped(evil_app: AppTest) -> None:
    for page in ("compare_page", "dataset_page"):
        evil_app.switch_page(f"search_lab/app/pages/{page}.py").run()
        assert not evil_app.exception
        _assert_no_raw_markup(_texts(evil_app))
    assert app_text.plain(f"query {EVIL} g1/{EVIL} 100000.jpg") in _texts(evil_app)
