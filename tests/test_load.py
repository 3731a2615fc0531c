"""Load test: 30 browser sessions upload images and query an hsv and a cnn index for a minute.

A real ``streamlit run app.py`` serves two indexes built from holidays-small (HOLIDAYS_DIR) in a
temporary SEARCH_LAB_INDEXES, on 127.0.0.1 only. One headless Chromium opens ``SESSIONS``
pages (each its own Streamlit session); half query the hsv index, half the cnn index. Each
session uploads a different holidays image in turn and waits until the result grid shows
that image ranked first, for ``DURATION_S`` seconds. Reported: queries done, p50/p95 latency
as the sessions saw it (upload to results drawn), errors, and the server's peak memory
(RSS of its process tree, sampled every 0.25 s with psutil). Run it with
``python -m pytest -m load tests/test_load.py -s``; the figures go to
``test-artifacts/load.json`` and one summary line is printed.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest

from search_lab import app_support as sup
from search_lab.engine import build_engine
from tests.test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    ROOT,
    _need_chromium,
    serve_app,
)

pytestmark = pytest.mark.load

SESSIONS = int(os.environ.get("LOAD_SESSIONS", "30"))
DURATION_S = float(os.environ.get("LOAD_DURATION_S", "60"))
QUERY_TIMEOUT_MS = 120_000
RAMP_PARALLEL = 3  # sessions opening at once before the measured minute starts
INDEXES = ("hsv-cosine-exact", "cnn-cosine-exact")
REPORT = ROOT / "test-artifacts" / "load.json"
TARGET_PEAK_MB = 2048
BROWSER_ARGS = [
    *CHROMIUM_ARGS,
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]


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
    _need_chromium()
    base = tmp_path_factory.mktemp("load")
    indexes, cache = base / "indexes", base / "cache"
    common = [f"dataset.root={holidays_dir}", f"cache_dir={cache}"]
    for name, feature in zip(INDEXES, ("hsv", "cnn"), strict=True):
        cfg = sup.default_build_config(indexes, [*common, f"feature={feature}"])
        build_engine(cfg).save(indexes / name)
    env = {
        **os.environ,
        sup.INDEXES_ENV: str(indexes),
        sup.OUTPUTS_ENV: str(base / "outputs"),
        "SEARCH_LAB_CACHE": str(cache),
        "HOLIDAYS_DIR": str(holidays_dir),
    }
    with serve_app(env, base / "streamlit.log") as (url, pid):
        yield url, pid


async def _open(browser, url: str, index: str, slots: asyncio.Semaphore) -> dict:
    """Open one session on the Search page in upload mode with ``index`` picked."""
    session: dict = {"index": index, "latencies": [], "server_ms": [], "errors": [], "page": None}
    async with slots:  # a few pages start at a time: 30 cold starts at once swamp 2 cores
        context = await browser.new_context(viewport={"width": 1100, "height": 1200})
        session["context"] = context
        try:
            page = await context.new_page()
            page.set_default_timeout(QUERY_TIMEOUT_MS)
            await page.goto(url, timeout=QUERY_TIMEOUT_MS)
            await page.get_by_text("Upload an image", exact=True).click()
            if index != INDEXES[1]:  # the select box starts on the first index (cnn, by name)
                await page.get_by_test_id("stSelectbox").first.click()
                await page.get_by_role("option", name=re.compile(f"^{index}")).click()
            words = "HSV colour histogram" if index.startswith("hsv") else "CNN embedding"
            await page.get_by_text(re.compile(words)).first.wait_for()
            await page.locator("input[type=file]").wait_for(state="attached")
            session["page"] = page
        except Exception as err:  # the session could not start: counted as an error
            session["errors"].append(f"open: {type(err).__name__}: {str(err).splitlines()[0]}")
    return session


async def _query_loop(session: dict, images: list[Path], stop_at: float) -> None:
    """Upload ``images`` in turn until ``stop_at``; each waits for its image ranked first."""
    page = session["page"]
    if page is None:
        return
    upload = page.locator("input[type=file]")
    for turn in range(10**6):
        if time.monotonic() >= stop_at:
            break
        image = images[turn % len(images)]
        start = time.monotonic()
        try:
            await upload.set_input_files(str(image))
            first = page.get_by_text(re.compile(rf"^#1 {re.escape(image.name)} · d="))
            await first.wait_for(timeout=QUERY_TIMEOUT_MS)
            session["latencies"].append(time.monotonic() - start)
            shown = await page.get_by_test_id("stMetricValue").first.inner_text()
            session["server_ms"].append(float(shown.split()[0]))  # "Query time": the engine's
        except Exception as err:  # a timeout or a broken page: counted, the session goes on
            session["errors"].append(f"{type(err).__name__}: {str(err).splitlines()[0]}")
        if await page.locator("[data-testid=stException]").count():
            session["errors"].append("exception shown on the page")
            break


async def _run_sessions(url: str, images: list[Path]) -> tuple[list[dict], float]:
    """Open every session, then let them all query for DURATION_S; returns them and the time."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=BROWSER_ARGS, headless=True
        )
        slots = asyncio.Semaphore(RAMP_PARALLEL)
        sessions = await asyncio.gather(
            *(_open(browser, url, INDEXES[i % 2], slots) for i in range(SESSIONS))
        )
        start = time.monotonic()
        await asyncio.gather(
            *(
                _query_loop(s, images[i::SESSIONS] or images, start + DURATION_S)
                for i, s in enumerate(sessions)
            )
        )
        seconds = time.monotonic() - start
        for session in sessions:
            await session["context"].close()
        await browser.close()
    return sessions, seconds


def _summary(results: list[dict], peak_bytes: int, seconds: float) -> dict:
    """Latency percentiles per index and overall, errors, and the server's peak memory."""
    out: dict = {"sessions": SESSIONS, "duration_s": round(seconds, 1)}
    for index in (*INDEXES, "all"):
        lat = [x for r in results if index in ("all", r["index"]) for x in r["latencies"]]
        engine = [x for r in results if index in ("all", r["index"]) for x in r["server_ms"]]
        out[index] = {
            "queries": len(lat),
            "p50_ms": round(float(np.percentile(lat, 50)) * 1e3) if lat else None,
            "p95_ms": round(float(np.percentile(lat, 95)) * 1e3) if lat else None,
            "engine_p50_ms": round(float(np.percentile(engine, 50)), 1) if engine else None,
        }
    out["errors"] = [e for r in results for e in r["errors"]]
    out["server_peak_mb"] = round(peak_bytes / 2**20)
    out["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return out


def test_thirty_sessions_for_a_minute(load_server: tuple[str, int], holidays_dir: Path) -> None:
    url, pid = load_server
    images = sorted(holidays_dir.glob("*.jpg"))
    sampler = MemorySampler(pid)
    sampler.start()
    results, seconds = asyncio.run(_run_sessions(url, images))
    sampler.done.set()
    sampler.join()
    summary = _summary(results, sampler.peak, seconds)
    summary["server_cpu_cores"] = round(sampler.cpu_seconds() / seconds, 2)
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps(summary, indent=2) + "\n")
    every = summary["all"]
    print(
        f"\nload: {SESSIONS} sessions, {every['queries']} queries in {summary['duration_s']} s, "
        f"p50 {every['p50_ms']} ms, p95 {every['p95_ms']} ms "
        f"(hsv p50 {summary[INDEXES[0]]['p50_ms']} / p95 {summary[INDEXES[0]]['p95_ms']} ms, "
        f"cnn p50 {summary[INDEXES[1]]['p50_ms']} / p95 {summary[INDEXES[1]]['p95_ms']} ms), "
        f"engine p50 {every['engine_p50_ms']} ms, {len(summary['errors'])} errors, "
        f"server peak {summary['server_peak_mb']} MB, server CPU {summary['server_cpu_cores']} "
        "cores, "
        f"load average {summary['load_average']}"
    )
    assert not summary["errors"], summary["errors"][:5]
    assert every["queries"] >= SESSIONS, "some sessions never got a result"
    assert summary["server_peak_mb"] < TARGET_PEAK_MB
