"""The app in a real browser (issue 24): no request leaves the machine, the Search loop works
("more like this", the thumbnail picker, weak-match marks, the default index), and no element
overflows its column at 1400 px and 390 px, charts staying within one screen.

One server for the module over the two hsv indexes and runs of tests/app/test_app.py's lab, plus a
copy listed before the default index. Screenshots go to ``test-artifacts/app-<page>-<width>.png``.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest

from search_lab.app import paths as app_paths
from tests.app.test_app import Lab
from tests.app.test_app import lab as lab  # the session's hsv lab (shared with the AppTests)
from tests.app.test_browser import CHROMIUM, CHROMIUM_ARGS, ROOT, _need_chromium, app_env, serve_app

pytestmark = pytest.mark.browser

PAGES = ("", "compare", "experiments", "findings", "dataset", "search")
WIDTHS = (1400, 390)
SCREEN_PX = 900
SHOTS = ROOT / "test-artifacts"

# Every drawn element within its column (or the page), no table scrolling sideways, no two
# images overlapping, no sideways scrolling of the page.
OVERFLOWS = """() => {
  const main = document.querySelector('[data-testid="stMainBlockContainer"]');
  const bad = [];
  const what = 'img, canvas, table, button, [data-testid="stMetric"], '
    + '[data-testid="stMarkdownContainer"]';
  for (const el of main.querySelectorAll(what)) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    const column = el.closest('[data-testid="stColumn"]') || main;
    const c = column.getBoundingClientRect();
    if (r.left < c.left - 1 || r.right > c.right + 1)
      bad.push(`${el.tagName} ${(el.innerText || el.alt || '').slice(0, 40)} `
        + `[${r.left|0}, ${r.right|0}] outside [${c.left|0}, ${c.right|0}]`);
  }
  for (const table of main.querySelectorAll('[data-testid="stTable"]'))
    for (const el of [table, ...table.querySelectorAll('div')])
      if (el.scrollWidth > el.clientWidth + 1)
        bad.push(`table cut: ${table.innerText.slice(0, 40)}`);
  const images = [...main.querySelectorAll('img')].map(i => i.getBoundingClientRect());
  images.forEach((a, i) => images.slice(i + 1).forEach(b => {
    const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
    const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
    if (w > 1 && h > 1) bad.push(`images overlap at ${a.left|0},${a.top|0}`);
  }));
  if (document.documentElement.scrollWidth > window.innerWidth + 1)
    bad.push('page scrolls sideways');
  return bad;
}"""
CHART_HEIGHTS = """() => [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')]
  .map(c => c.getBoundingClientRect().height)"""


@pytest.fixture(scope="module")
def served(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of the app over the lab's two hsv indexes and runs, plus a copy listed first."""
    _need_chromium()
    base = tmp_path_factory.mktemp("browser_app")
    indexes = base / "indexes"
    shutil.copytree(lab.indexes, indexes)
    shutil.copytree(lab.indexes / "hsv-euclidean-exact", indexes / "aaa-listed-first")
    env = app_env(indexes, lab.cache, lab.outputs, lab.dataset)
    env.pop(app_paths.DEFAULT_INDEX_ENV, None)
    with serve_app(env, base / "streamlit.log") as (url, _):
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


def _settled(page: object) -> None:
    """Wait until the script has finished and the page stops growing (charts drawn)."""
    page.wait_for_selector(
        '[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=120_000
    )
    last, stable = -1.0, 0
    while stable < 2:
        time.sleep(0.5)
        height = page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollHeight")
        stable, last = (stable + 1 if height == last else 0), height


def test_search_loop_in_the_browser(served: str, browser: object) -> None:
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1400, "height": SCREEN_PX})
    page.goto(served)
    expect(page.get_by_text(re.compile(r"^✓ #1 100001\.jpg · \d+% similar"))).to_be_visible(
        timeout=60_000
    )
    index = page.get_by_role("combobox", name="Index")
    expect(index).to_have_value(app_paths.DEFAULT_INDEX_NAME)  # not "aaa-listed-first"
    expect(page.get_by_text("weak match").first).to_be_visible()  # badge of a far result
    second = page.get_by_text(re.compile(r"^#2 \S+ ")).inner_text().split()[1]
    _settled(page)
    page.get_by_role("button", name="More like this").nth(2).click()  # [0]: the query's own
    expect(page.get_by_text(f"query: {second}", exact=True).first).to_be_visible(timeout=30_000)
    expect(page.get_by_text(f"More like {second}", exact=False)).to_be_visible()
    _settled(page)
    page.get_by_role("button", name="Back to the picked query").click()
    expect(page.get_by_text("query: 100000.jpg", exact=True).first).to_be_visible(timeout=30_000)
    _settled(page)
    page.get_by_text("Pick a query from thumbnails").click()
    picks = page.get_by_role("button", name="Search with this")
    expect(picks).to_have_count(12, timeout=30_000)
    _settled(page)
    picks.nth(1).click()
    expect(page.get_by_text("query: 100100.jpg", exact=True).first).to_be_visible(timeout=30_000)
    page.close()


def _guard(page: object) -> list[str]:
    """Abort every request that leaves 127.0.0.1; returns the list they are recorded in."""
    outside: list[str] = []

    def route(request_route: object) -> None:
        url = request_route.request.url
        if url.startswith(("data:", "blob:")) or urlparse(url).hostname == "127.0.0.1":
            request_route.continue_()
        else:
            outside.append(url)
            request_route.abort()

    page.route("**/*", route)
    return outside


@pytest.mark.slow
@pytest.mark.parametrize("width", WIDTHS)
def test_every_page_stays_local_and_fits(served: str, browser: object, width: int) -> None:
    """Every page at 1400 and 390 px: no request off the machine, nothing overflowing its
    column, no table cut, no chart taller than a screen."""
    page = browser.new_page(viewport={"width": width, "height": SCREEN_PX})
    outside = _guard(page)
    SHOTS.mkdir(exist_ok=True)
    for path in PAGES:
        page.goto(f"{served}/{path}")
        _settled(page)
        assert page.get_by_text("Traceback").count() == 0
        assert page.evaluate(OVERFLOWS) == [], f"/{path} at {width} px"
        assert all(0 < h <= SCREEN_PX - 100 for h in page.evaluate(CHART_HEIGHTS)), path
        page.screenshot(path=str(SHOTS / f"app-{path or 'home'}-{width}.png"))
    page.close()
    assert outside == []
