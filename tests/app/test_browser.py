"""The real app in a real browser: ``streamlit run app.py`` driven by Debian's Chromium.

Builds a small hsv index in a tmp folder, serves the app on a free local port, uploads a
holidays-small image through the page's file input and checks the result grid shows its
relevant match. The page is saved to ``test-artifacts/browser-search.png``.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from search_lab.app import indexes as app_indexes
from search_lab.app import paths as app_paths
from search_lab.evaluation import OUTPUTS_ENV
from search_lab.retrieval import build_engine

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = ROOT / "test-artifacts" / "browser-search.png"
QUERY, MATCH = "100000.jpg", "100001.jpg"
START_TIMEOUT_S = 60


def _need_chromium() -> None:
    """Skip without Chromium (install it with apt-get install chromium); in CI, fail instead."""
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} not found; install it with `apt-get install -y chromium`"
    if os.environ.get("CI"):
        pytest.fail(f"CI needs the browser: {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path) -> None:
    """Poll the server's health endpoint until it answers ``ok``; fail with its log otherwise."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                if reply.read().strip() == b"ok":
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    pytest.fail(f"streamlit did not answer within {START_TIMEOUT_S}s:\n{log.read_text()}")


def _stop(proc: subprocess.Popen) -> None:
    """Terminate the server (and its process group), killing it if it lingers."""
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


def app_env(indexes: Path, cache: Path, outputs: Path, dataset: Path) -> dict[str, str]:
    """The environment of an app server over ``indexes``, its cache, outputs and dataset."""
    return {
        **os.environ,
        app_paths.INDEXES_ENV: str(indexes),
        OUTPUTS_ENV: str(outputs),
        "SEARCH_LAB_CACHE": str(cache),
        "HOLIDAYS_DIR": str(dataset),
    }


@contextmanager
def serve_app(env: dict[str, str], log: Path) -> Iterator[tuple[str, int]]:
    """Run ``streamlit run app.py`` on a free loopback port; yields (URL, pid), then stops it."""
    port = _free_port()
    command = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.address", "127.0.0.1", "--server.port", str(port), "--server.headless", "true",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, proc, log)
        yield url, proc.pid
    finally:
        _stop(proc)


@pytest.fixture
def served_app(tmp_path: Path, holidays_dir: Path) -> Iterator[str]:
    """URL of the app serving a freshly built hsv index; the server is killed afterwards."""
    _need_chromium()
    indexes, cache = tmp_path / "indexes", tmp_path / "cache"
    cfg = app_indexes.default_build_config(
        indexes, [f"dataset.root={holidays_dir}", f"cache_dir={cache}", "workers=1"]
    )
    build_engine(cfg).save(cfg["index_dir"])
    env = app_env(indexes, cache, tmp_path / "outputs", holidays_dir)
    with serve_app(env, tmp_path / "streamlit.log") as (url, _):
        yield url


def test_upload_finds_relevant_match(served_app: str, holidays_dir: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1700})
            page.goto(served_app)
            page.get_by_text("Upload an image", exact=True).click()
            page.locator("input[type=file]").set_input_files(str(holidays_dir / QUERY))
            # "#1 100000.jpg" only shows for the upload: a dataset query leaves itself out.
            expect(page.get_by_text(re.compile(rf"^#1 {re.escape(QUERY)} "))).to_be_visible(
                timeout=30_000
            )
            expect(page.get_by_text(re.compile(rf"^#2 {re.escape(MATCH)} "))).to_be_visible()
            expect(page.get_by_text("Query time")).to_be_visible()
            # the run has finished: all 10 results drawn, the "upload an image" prompt gone
            expect(page.get_by_text(re.compile(r"^#10 \d+\.jpg "))).to_be_visible()
            expect(page.get_by_text("Upload an image to search the index with it.")).to_have_count(
                0
            )
            assert page.get_by_text("Traceback").count() == 0
            page.wait_for_load_state("networkidle")
            SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
