"""Load test: 30 sessions upload images and query an hsv and a cnn index for a minute.

A real ``streamlit run app.py`` serves two indexes built from holidays-small (HOLIDAYS_DIR) in a
temporary SEARCH_LAB_INDEXES, on 127.0.0.1 only. ``SESSIONS`` clients speak Streamlit's own
browser protocol (search_lab/benchmarks/streamlit_client.py: a websocket each, protobuf
messages, HTTP uploads), so the measurement is of the server, not of 30 browser renderers
sharing its CPU. Each session
opens the Search page, switches to upload mode and picks its index (half hsv, half cnn); then
for ``DURATION_S`` seconds it uploads a different holidays image in turn, waits until the script
run finishes with that image ranked first, and fetches the thumbnails shown, as a browser does.
``BROWSER_PAGES`` headless Chromium pages do the same on the hsv index alongside (the real UI
under the same load), reported apart.
Reported: queries done, p50/p95 latency as the sessions saw it (upload start to the finished
run carrying the results), the engine's own query time, errors, the server's peak memory (RSS of
its process tree, sampled every 0.25 s with psutil) and CPU use. Run it with
``python -m pytest -m load tests/app/test_load.py -s``; the figures go to
``test-artifacts/load.json`` and one summary line is printed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
import pytest
from playwright.async_api import Browser, Page
from playwright.async_api import Error as PlaywrightError
from requests import RequestException
from websockets.exceptions import ConnectionClosed

from search_lab.app import indexes as app_indexes
from search_lab.app.widgets import UPLOAD
from search_lab.benchmarks.streamlit_client import ProtocolError, StreamlitSession, Widget
from search_lab.retrieval import build_engine
from tests.app.test_browser import CHROMIUM, CHROMIUM_ARGS, ROOT, _need_chromium, app_env, serve_app

pytestmark = pytest.mark.load

SESSIONS = int(os.environ.get("LOAD_SESSIONS", "30"))
DURATION_S = float(os.environ.get("LOAD_DURATION_S", "60"))
BROWSER_PAGES = int(os.environ.get("LOAD_BROWSER_PAGES", "1"))  # Chromium pages beside them
QUERY_TIMEOUT_S = 120.0
RAMP_PARALLEL = 5  # sessions opening at once before the measured minute starts
INDEXES = ("hsv-cosine-exact", "cnn-cosine-exact")
REPORT = ROOT / "test-artifacts" / "load.json"
TARGET_PEAK_MB = 2048
BROWSER_ARGS = [
    *CHROMIUM_ARGS,
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]


@dataclass
class Session:
    """One session (a protocol client, or a Chromium page): its index and what it measured."""

    index: str
    client: StreamlitSession | None = None  # None: a Chromium page
    uploader: Widget | None = None
    latencies: list[float] = field(default_factory=list)
    started: list[float] = field(default_factory=list)  # time.monotonic() at each query's start
    engine_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class MemorySampler(threading.Thread):
    """Samples the summed RSS of a process and its children until stopped; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.root, self.interval, self.peak = psutil.Process(pid), interval, 0
        self.done = threading.Event()
        self.cpu_start = sum(self.root.cpu_times()[:2])

    def cpu_seconds(self) -> float:
        """CPU time the server process used since the sampler was made."""
        return sum(self.root.cpu_times()[:2]) - self.cpu_start

    def run(self) -> None:
        while not self.done.wait(self.interval):
            try:
                procs = [self.root, *self.root.children(recursive=True)]
                rss = sum(p.memory_info().rss for p in procs if p.is_running())
            except psutil.Error:
                continue
            self.peak = max(self.peak, rss)


@pytest.fixture(scope="module")
def load_server(
    holidays_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int]]:
    """(URL, pid) of the app serving an hsv and a cnn index built from holidays-small."""
    if BROWSER_PAGES:
        _need_chromium()
    base = tmp_path_factory.mktemp("load")
    indexes, cache = base / "indexes", base / "cache"
    common = [f"dataset.root={holidays_dir}", f"cache_dir={cache}"]
    for name, feature in zip(INDEXES, ("hsv", "cnn"), strict=True):
        cfg = app_indexes.default_build_config(indexes, [*common, f"feature={feature}"])
        build_engine(cfg).save(indexes / name)
    env = app_env(indexes, cache, base / "outputs", holidays_dir)
    with serve_app(env, base / "streamlit.log") as (url, pid):
        yield url, pid


def _twins(images: list[Path]) -> dict[str, frozenset[str]]:
    """Names of the images with the same bytes as each image (itself included).

    holidays-small holds byte-identical copies (103102.jpg = 103902.jpg): either may rank first.
    """
    digests = {path.name: hashlib.sha256(path.read_bytes()).digest() for path in images}
    groups: dict[bytes, set[str]] = {}
    for name, digest in digests.items():
        groups.setdefault(digest, set()).add(name)
    return {name: frozenset(groups[digest]) for name, digest in digests.items()}


async def _open(url: str, index: str, slots: asyncio.Semaphore) -> Session:
    """Open one session on the Search page in upload mode with ``index`` picked."""
    session = Session(index, StreamlitSession(url, timeout_s=QUERY_TIMEOUT_S))
    assert session.client is not None
    async with slots:  # a few sessions start at a time, as users arriving would
        try:
            run = await session.client.open()
            run = await session.client.choose(run.widget("radio", "Query"), UPLOAD)
            run = await session.client.choose(run.widget("selectbox", "Index"), index)
            words = "HSV colour histogram" if index.startswith("hsv") else "CNN embedding"
            if not any(words in e.markdown.body for e in run.of_kind("markdown")):
                raise ProtocolError(f"the page does not describe {index} after picking it")
            session.uploader = run.widget("file_uploader", "Image to search")
        except (ProtocolError, TimeoutError, OSError, ConnectionClosed, RequestException) as err:
            session.errors.append(f"open: {type(err).__name__}: {err}")
    return session


async def _query(session: Session, image: Path, twins: dict[str, frozenset[str]]) -> None:
    """Upload ``image``, check it (or a byte-identical twin) ranks first, fetch the thumbnails."""
    start = time.monotonic()
    run = await session.client.upload(session.uploader, image)
    seconds = time.monotonic() - start
    if run.exceptions():
        raise ProtocolError(f"exception shown: {run.exceptions()[0]}")
    first = next((c for c in run.captions() if c.startswith("#1 ")), "#1 (no results) · ")
    if first.removeprefix("#1 ").split(" · ")[0] not in twins[image.name]:
        raise ProtocolError(f"{image.name}: first result is {first!r}")
    shown = run.metric("Query time")
    if shown is None:
        raise ProtocolError(f"{image.name}: no query time shown")
    session.latencies.append(seconds)
    session.started.append(start)
    session.engine_ms.append(float(shown.split()[0]))  # "Query time": the engine's own
    await session.client.fetch_media(run)


async def _query_loop(
    session: Session, images: list[Path], twins: dict[str, frozenset[str]], stop_at: float
) -> None:
    """Upload ``images`` in turn until ``stop_at``; a dropped connection ends the session."""
    if session.uploader is None:
        return
    for turn in range(10**6):
        if time.monotonic() >= stop_at:
            break
        try:
            await _query(session, images[turn % len(images)], twins)
        except ConnectionClosed as err:
            session.errors.append(f"connection dropped: {err}")
            break
        except (ProtocolError, TimeoutError, OSError, RequestException) as err:
            session.errors.append(f"{type(err).__name__}: {err}")


async def _page_loop(
    page: Page, session: Session, images: list[Path], twins: dict, stop_at: float
) -> None:
    """What :func:`_query_loop` does, in a real page: upload, wait for the image ranked first."""
    for turn in range(10**6):
        if time.monotonic() >= stop_at:
            break
        image = images[turn % len(images)]
        start = time.monotonic()
        try:
            await page.locator("input[type=file]").set_input_files(str(image))
            names = "|".join(re.escape(name) for name in twins[image.name])
            await page.get_by_text(re.compile(rf"^#1 ({names}) · ")).wait_for()
            session.latencies.append(time.monotonic() - start)
            session.started.append(start)
            shown = await page.get_by_test_id("stMetricValue").first.inner_text()
            session.engine_ms.append(float(shown.split()[0]))
        except PlaywrightError as err:  # a timeout or a broken page: counted, the page goes on
            session.errors.append(f"browser: {type(err).__name__}: {str(err).splitlines()[0]}")
        if await page.locator("[data-testid=stException]").count():
            session.errors.append("browser: exception shown on the page")
            break


async def _browser_pages(
    url: str, images: list[Path], twins: dict, clock: asyncio.Future[float]
) -> list[Session]:
    """BROWSER_PAGES Chromium pages on the hsv index, querying from ``await clock`` until then."""
    from playwright.async_api import async_playwright

    sessions = [Session(f"browser {INDEXES[0]}") for _ in range(BROWSER_PAGES)]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=BROWSER_ARGS, headless=True
        )
        try:
            pages = [await _open_page(browser, url, s) for s in sessions]
            stop_at = await clock
            await asyncio.gather(
                *(
                    _page_loop(page, s, images[-1 - i :: -SESSIONS], twins, stop_at)
                    for i, (page, s) in enumerate(zip(pages, sessions, strict=True))
                    if page is not None
                )
            )
        finally:
            await browser.close()
    return sessions


async def _open_page(browser: Browser, url: str, session: Session) -> Page | None:
    """A page on the Search page in upload mode with the hsv index picked (None if it failed)."""
    try:
        page = await browser.new_page(viewport={"width": 1100, "height": 1200})
        page.set_default_timeout(QUERY_TIMEOUT_S * 1e3)
        await page.goto(url)
        await page.get_by_text(UPLOAD, exact=True).click()
        await page.get_by_test_id("stSelectbox").first.click()  # it starts on the cnn index
        await page.get_by_role("option", name=re.compile(f"^{INDEXES[0]}")).click()
        await page.get_by_text(re.compile("HSV colour histogram")).first.wait_for()
        await page.locator("input[type=file]").wait_for(state="attached")
        return page
    except PlaywrightError as err:
        session.errors.append(f"browser open: {type(err).__name__}: {str(err).splitlines()[0]}")
        return None


async def _run_sessions(url: str, images: list[Path]) -> tuple[list[Session], float]:
    """Open every session, then let them all query for DURATION_S; returns them and the time."""
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(4 * SESSIONS))
    twins = _twins(images)
    clock: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    pages = (
        asyncio.create_task(_browser_pages(url, images, twins, clock)) if BROWSER_PAGES else None
    )
    slots = asyncio.Semaphore(RAMP_PARALLEL)
    sessions = await asyncio.gather(*(_open(url, INDEXES[i % 2], slots) for i in range(SESSIONS)))
    start = time.monotonic()
    clock.set_result(start + DURATION_S)
    try:
        await asyncio.gather(
            *(
                _query_loop(s, images[i::SESSIONS] or images, twins, start + DURATION_S)
                for i, s in enumerate(sessions)
            )
        )
        browser = await pages if pages is not None else []
        return [*sessions, *browser], time.monotonic() - start
    finally:
        await asyncio.gather(*(s.client.close() for s in sessions), return_exceptions=True)


def _figures(sessions: list[Session]) -> dict:
    """Queries, latency p50/p95/max (ms) and the engine's median query time of ``sessions``."""
    lat = [x for s in sessions for x in s.latencies]
    engine = [x for s in sessions for x in s.engine_ms]
    return {
        "queries": len(lat),
        "p50_ms": round(float(np.percentile(lat, 50)) * 1e3) if lat else None,
        "p95_ms": round(float(np.percentile(lat, 95)) * 1e3) if lat else None,
        "max_ms": round(max(lat) * 1e3) if lat else None,
        "engine_p50_ms": round(float(np.percentile(engine, 50)), 1) if engine else None,
    }


def _slowest(sessions: list[Session], count: int = 5) -> list[dict]:
    """The ``count`` slowest queries: when they started (s into the run), where, how long."""
    first = min((t for s in sessions for t in s.started), default=0.0)
    queries = [
        (seconds, start - first, s.index)
        for s in sessions
        for start, seconds in zip(s.started, s.latencies, strict=True)
    ]
    return [
        {"at_s": round(at, 1), "index": index, "seconds": round(seconds, 1)}
        for seconds, at, index in sorted(queries, reverse=True)[:count]
    ]


def _summary(sessions: list[Session], peak_bytes: int, seconds: float) -> dict:
    """Latency figures per index, overall and in Chromium, errors, the server's peak memory."""
    protocol = [s for s in sessions if s.client is not None]
    out: dict = {"sessions": SESSIONS, "duration_s": round(seconds, 1)}
    for index in INDEXES:
        out[index] = _figures([s for s in protocol if s.index == index])
    out["all"] = _figures(protocol)
    out["browser_pages"] = BROWSER_PAGES
    out["browser"] = _figures([s for s in sessions if s.client is None])
    out["slowest"] = _slowest(sessions)
    out["errors"] = [e for s in sessions for e in s.errors]
    out["sessions_without_results"] = sum(not s.latencies for s in sessions)
    out["server_peak_mb"] = round(peak_bytes / 2**20)
    out["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return out


def test_thirty_sessions_for_a_minute(load_server: tuple[str, int], holidays_dir: Path) -> None:
    url, pid = load_server
    images = sorted(holidays_dir.glob("*.jpg"))
    sampler, client_cpu = MemorySampler(pid), time.process_time()
    sampler.start()
    sessions, seconds = asyncio.run(_run_sessions(url, images))
    sampler.done.set()
    sampler.join()
    summary = _summary(sessions, sampler.peak, seconds)
    summary["server_cpu_cores"] = round(sampler.cpu_seconds() / seconds, 2)
    summary["client_cpu_cores"] = round((time.process_time() - client_cpu) / seconds, 2)
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps(summary, indent=2) + "\n")
    every, hsv, cnn = summary["all"], summary[INDEXES[0]], summary[INDEXES[1]]
    browser = summary["browser"]
    print(
        f"\nload: {SESSIONS} sessions, {every['queries']} queries in {summary['duration_s']} s, "
        f"p50 {every['p50_ms']} ms, p95 {every['p95_ms']} ms, max {every['max_ms']} ms "
        f"(hsv p50 {hsv['p50_ms']} / p95 {hsv['p95_ms']} ms, "
        f"cnn p50 {cnn['p50_ms']} / p95 {cnn['p95_ms']} ms), "
        f"engine p50 {every['engine_p50_ms']} ms; Chromium pages ({BROWSER_PAGES}, hsv): "
        f"{browser['queries']} queries, p50 {browser['p50_ms']} / p95 {browser['p95_ms']} ms; "
        f"{len(summary['errors'])} errors, "
        f"server peak {summary['server_peak_mb']} MB, server CPU {summary['server_cpu_cores']} "
        f"cores, client CPU {summary['client_cpu_cores']} cores, "
        f"load average {summary['load_average']}"
    )
    assert not summary["errors"], summary["errors"][:5]
    assert summary["sessions_without_results"] == 0, "some sessions never got a result"
    assert summary["server_peak_mb"] < TARGET_PEAK_MB
