"""The "Your photos" page in Chromium: a folder outside app.roots refused in one line, a folder
inside indexed with its progress, its near-duplicates shown, and the index then searchable.

The page is saved to ``test-artifacts/browser-photos.png``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
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


@pytest.fixture
def served_many(tmp_path: Path, holidays_dir: Path) -> Iterator[tuple[str, Path, int]]:
    """The app with roots = a folder of 70 Holidays photos: enough for the CNN's worker pool."""
    _need_chromium()
    album = tmp_path / "photos" / "many"
    album.mkdir(parents=True)
    for path in sorted(holidays_dir.glob("*.jpg"))[:70]:
        shutil.copyfile(path, album / path.name)
    env = app_env(tmp_path / "indexes", tmp_path / "cache", tmp_path / "outputs", holidays_dir)
    env[app_photos.ROOTS_ENV] = str(tmp_path / "photos")
    with serve_app(env, tmp_path / "streamlit.log") as (url, pid):
        yield url, tmp_path, pid


def _workers(pid: int) -> int:
    """Spawned worker processes of the server ``pid`` now."""
    found = 0
    for child in psutil.Process(pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):  # a process that ended meanwhile
            found += "spawn_main" in " ".join(child.cmdline())
    return found


def test_index_with_the_cnn_worker_pool_from_the_page(
    served_many: tuple[str, Path, int], browser
) -> None:
    """70 photos with the CNN: the server spawns its extraction workers (which import app.py
    as their main module, running nothing of it) and the folder is indexed."""
    from playwright.sync_api import expect

    url, base, pid = served_many
    page = browser.new_page(viewport={"width": 1280, "height": 1200})
    try:
        page.goto(f"{url}/photos")
        folder = page.get_by_label("Folder on the server")
        folder.fill(f"{base}/photos/many")
        folder.press("Enter")
        page.get_by_text("cnn: CNN descriptor").click()
        page.get_by_role("button", name="Index this folder").click()
        done, most = page.get_by_text(re.compile(r"70 images indexed .*images/s")), 0
        deadline = time.monotonic() + 180
        while not done.is_visible() and time.monotonic() < deadline:
            most = max(most, _workers(pid))
            page.wait_for_timeout(200)
        expect(done).to_be_visible()
        assert page.get_by_text("Traceback").count() == 0
    finally:
        page.close()
    assert most == min(2, os.cpu_count() or 1) or (os.cpu_count() or 1) < 2  # the pool ran
    assert _workers(pid) == 0  # and ended with the indexing
    assert "ScriptRunContext" not in (base / "streamlit.log").read_text()  # no app in them
