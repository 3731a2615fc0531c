"""The "Your photos" page in Chromium: a folder outside app.roots refused in one line, a folder
inside indexed with its progress, its near-duplicates shown, and the index then searchable.

The page is saved to ``test-artifacts/browser-photos.png``.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from search_lab.app import photos as app_photos
from search_lab.data.planted import edited
from tests.app.test_browser import CHROMIUM, ROOT, _need_chromium, app_env, serve_app

pytestmark = pytest.mark.browser

SCREENSHOT = ROOT / "test-artifacts" / "browser-photos.png"
ORIGINAL = "100000.jpg"


@pytest.fixture
def served(tmp_path: Path, holidays_dir: Path) -> Iterator[tuple[str, Path]]:
    """The app with roots = one photo folder (an album: a photo, its JPEG-70 copy, two others)."""
    _need_chromium()
    album = tmp_path / "photos" / "album"
    album.mkdir(parents=True)
    for name in (ORIGINAL, "100100.jpg", "100200.jpg"):
        shutil.copyfile(holidays_dir / name, album / name)
    (album / "copy70.jpg").write_bytes(edited(holidays_dir / ORIGINAL, "jpeg70"))
    (tmp_path / "elsewhere").mkdir()
    env = app_env(tmp_path / "indexes", tmp_path / "cache", tmp_path / "outputs", holidays_dir)
    env[app_photos.ROOTS_ENV] = str(tmp_path / "photos")
    with serve_app(env, tmp_path / "streamlit.log") as (url, _):
        yield url, tmp_path


def test_index_a_folder_and_see_its_duplicates(served: tuple[str, Path], browser) -> None:
    from playwright.sync_api import expect

    url, base = served
    page = browser.new_page(viewport={"width": 1280, "height": 1600})
    try:
        page.goto(f"{url}/photos")
        folder = page.get_by_label("Folder on the server")
        folder.fill(str(base / "elsewhere"))
        folder.press("Enter")
        page.get_by_role("button", name="Index this folder").click()
        expect(page.get_by_text("is outside the folders this app may read")).to_be_visible(
            timeout=30_000
        )
        folder.fill(f"{base}/photos/album")
        folder.press("Enter")
        page.get_by_role("button", name="Index this folder").click()
        expect(page.get_by_text(re.compile(r"4 images indexed .*images/s"))).to_be_visible(
            timeout=90_000
        )
        expect(page.get_by_text(re.compile(r"^1 group of 2 images from 1 pair"))).to_be_visible(
            timeout=30_000
        )
        expect(page.get_by_text("Group 1 · 2 images")).to_be_visible()
        expect(page.get_by_text("copy70.jpg", exact=True)).to_be_visible()
        assert page.get_by_text("Traceback").count() == 0
        SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        page.goto(f"{url}/search")
        expect(page.get_by_text(app_photos.NO_GROUND_TRUTH)).to_be_visible(timeout=30_000)
    finally:
        page.close()
    assert CHROMIUM.exists()
