"""The real app in Chromium: the Findings page shows a real ``--quick`` report with its charts,
and the Compare page's metric labels and values are never cut at 1400 px with three indexes.

One module fixture makes a quick report on holidays-small (runs and features in a tmp folder),
builds three exact indexes from the same feature cache and serves the app on them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from search_lab.app import indexes as app_indexes
from search_lab.app import paths as app_paths
from search_lab.evaluation import OUTPUTS_ENV
from search_lab.report.sections import HEADINGS
from search_lab.retrieval import build_engine
from tests.app.test_browser import ROOT, _need_chromium, serve_app

pytestmark = [pytest.mark.browser, pytest.mark.long]  # a report is made first: CI runs `-m long`

INDEXES = (("hsv", "cosine"), ("hsv", "euclidean"), ("lbp", "cosine"))
CUT_TEXT = """() => [...document.querySelectorAll(
    '[data-testid="stMetricLabel"], [data-testid="stMetricLabel"] *,'
    + '[data-testid="stMetricValue"], [data-testid="stMetricValue"] *')]
  .filter(e => e.scrollWidth > e.clientWidth + 1 || e.scrollHeight > e.clientHeight + 1)
  .map(e => e.textContent)"""


@pytest.fixture(scope="module")
def findings_server(tmp_path_factory: pytest.TempPathFactory, holidays_dir: Path) -> Iterator[str]:
    """URL of the app serving a quick findings report and three indexes."""
    _need_chromium()
    base = tmp_path_factory.mktemp("findings")
    cache, outputs, indexes = base / "cache", base / "outputs", base / "indexes"
    env = {
        **os.environ,
        "SEARCH_LAB_CACHE": str(cache),
        OUTPUTS_ENV: str(outputs),
        app_paths.INDEXES_ENV: str(indexes),
        "HOLIDAYS_DIR": str(holidays_dir),
    }
    made = subprocess.run(
        [sys.executable, "-m", "search_lab.report", "--quick"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    for feature, metric in INDEXES:
        overrides = [f"dataset.root={holidays_dir}", f"cache_dir={cache}", "workers=1"]
        cfg = app_indexes.default_build_config(
            indexes, [*overrides, f"feature={feature}", f"metric={metric}"]
        )
        build_engine(cfg).save(indexes / f"{feature}-{metric}-exact")
    with serve_app(env, base / "streamlit.log") as (url, _):
        yield url


def test_findings_page_shows_the_report(findings_server: str, browser) -> None:
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    page.goto(f"{findings_server}/findings")
    for heading in HEADINGS:
        expect(page.get_by_role("heading", name=heading)).to_be_visible(timeout=30_000)
    chart = page.locator('[data-testid="stImageContainer"]').filter(
        has_text="mAP of every feature configuration"
    )
    chart.scroll_into_view_if_needed()
    expect(chart).to_be_visible()
    image = chart.locator("img").element_handle()
    page.wait_for_function("i => i.complete && i.naturalWidth > 300", arg=image)
    assert page.get_by_text("Traceback").count() == 0
    page.close()


def test_compare_metrics_never_cut(findings_server: str, browser) -> None:
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    page.goto(f"{findings_server}/compare")
    labels = page.locator('[data-testid="stMetricLabel"]')
    expect(labels.filter(has_text="Average precision")).to_have_count(3, timeout=60_000)
    expect(labels.filter(has_text="Relevant shown")).to_have_count(3)
    expect(labels.filter(has_text="Query time")).to_have_count(3)
    page.wait_for_load_state("networkidle")
    assert page.evaluate(CUT_TEXT) == []
    texts = page.locator('[data-testid="stMetricValue"]').all_inner_texts()
    assert len(texts) == 9 and all(t.strip() and "…" not in t for t in texts)
    page.close()
