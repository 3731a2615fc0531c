"""The real app in Chromium: crafted file names render as plain text, and /search opens Search.

Serves a two-group dataset whose names carry Markdown, LaTeX, links and HTML (as in
``test_app_display``) and checks the rendered page: the names appear exactly as typed and no
bold, link, formula or image element is made from them. Then opens the app at ``/search``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from search_lab.app import paths as app_paths
from search_lab.evaluation import OUTPUTS_ENV
from tests.app.test_app_display import EVIL, evil_lab  # noqa: F401 - the fixture is used below
from tests.app.test_browser import (
    _need_chromium,
    serve_app,
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def evil_server(evil_lab: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:  # noqa: F811
    """URL of the app serving the crafted-names lab."""
    _need_chromium()
    env = {
        **os.environ,
        app_paths.INDEXES_ENV: str(evil_lab / "indexes"),
        OUTPUTS_ENV: str(evil_lab / "outputs"),
        "HOLIDAYS_DIR": str(evil_lab / "data"),
    }
    with serve_app(env, tmp_path_factory.mktemp("log") / "streamlit.log") as (url, _):
        yield url


MARKUP = "strong, em, a[href^='http'], .katex, del, code, img[src='x']"
PAGE_OWN = {"Feature:", "Metric:", "Search:"}  # the page's own bold labels


def test_crafted_names_render_as_typed(evil_server: str, browser) -> None:
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 1700})
    query = f"{EVIL} g1/{EVIL} 100000.jpg"
    page.goto(evil_server)
    heading = page.get_by_role("heading", name=f"Results for {query}")
    expect(heading).to_be_visible(timeout=60_000)
    expect(page.get_by_text(f"query: {query}", exact=True)).to_be_visible()
    expect(page.get_by_text(f"✓ #1 {EVIL} g1/100001.jpg · ", exact=False)).to_be_visible()
    made = page.locator("[data-testid=stMain]").locator(MARKUP).all_inner_texts()
    assert set(made) <= PAGE_OWN, f"markup made from names: {set(made) - PAGE_OWN}"
    page.close()


def test_search_url_opens_the_search_page(evil_server: str, browser) -> None:
    from playwright.sync_api import expect

    page = browser.new_page()
    page.goto(f"{evil_server}/search")
    expect(page.get_by_role("heading", name="Search", exact=True)).to_be_visible(timeout=60_000)
    expect(page.get_by_text("Results for", exact=False)).to_be_visible(timeout=60_000)
    assert page.get_by_text("Page not found").count() == 0
    page.close()
