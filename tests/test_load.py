"""Load test: 30 sessions upload images and query an hsv and a cnn index for a minute.

A real ``streamlit run app.py`` serves two indexes built from holidays-small (HOLIDAYS_DIR) in a
temporary SEARCH_LAB_INDEXES, on 127.0.0.1 only. ``SESSIONS`` clients speak Streamlit's own
browser protocol (tests/streamlit_client.py: a websocket each, protobuf messages, HTTP uploads),
so the measurement is of the server, not of 30 browser renderers sharing its CPU. Each session
opens the Search page, switches to upload mode and picks its index (half hsv, half cnn); then
for ``DURATION_S`` seconds it uploads a different holidays image in turn, waits until the script
run finishes with that image ranked first, and fetches the thumbnails shown, as a browser does.
Reported: queries done, p50/p95 latency as the sessions saw it (upload start to the finished
run carrying the results), the engine's own query time, errors, the server's peak memory (RSS of
its process tree, sampled every 0.25 s with psutil) and CPU use. Run it with
``python -m pytest -m load tests/test_load.py -s``; the figures go to
``test-artifacts/load.json`` and one summary line is printed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
import pytest
from requests import RequestException
from websockets.exceptions import ConnectionClosed

from search_lab import app_support as sup
from search_lab.app_pages.widgets import UPLOAD
from search_lab.engine import build_engine
from tests.streamlit_client import ProtocolError, StreamlitSession, Widget
from tests.test_browser import ROOT, serve_app

pytestmark = pytest.mark.load

SESSIONS = int(os.environ.get("LOAD_SESSIONS", "30"))
DURATION_S = float(os.environ.get("LOAD_DURATION_S", "60"))
QUERY_TIMEOUT_S = 120.0
RAMP_PARALLEL = 5  # sessions opening at once before the measured minute starts
INDEXES = ("hsv-cosine-exact", "cnn-cosine-exact")
REPORT = ROOT / "test-artifacts" / "load.json"
TARGET_PEAK_MB = 2048


@dataclass
class Session:
    """One protocol session's index, uploader widget and what it measured."""

    index: str
    client: StreamlitSession
    uploader: Widget | None = None
    latencies: list[float] = field(default_factory=list)
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
    if first.removeprefix("#1 ").split(" · d=")[0] not in twins[image.name]:
        raise ProtocolError(f"{image.name}: first result is {first!r}")
    shown = run.metric("Query time")
    if shown is None:
        raise ProtocolError(f"{image.name}: no query time shown")
    session.latencies.append(seconds)
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


async def _run_sessions(url: str, images: list[Path]) -> tuple[list[Session], float]:
    """Open every session, then let them all query for DURATION_S; returns them and the time."""
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(4 * SESSIONS))
    twins = _twins(images)
    slots = asyncio.Semaphore(RAMP_PARALLEL)
    sessions = await asyncio.gather(*(_open(url, INDEXES[i % 2], slots) for i in range(SESSIONS)))
    start = time.monotonic()
    try:
        await asyncio.gather(
            *(
                _query_loop(s, images[i::SESSIONS] or images, twins, start + DURATION_S)
                for i, s in enumerate(sessions)
            )
        )
        return sessions, time.monotonic() - start
    finally:
        await asyncio.gather(*(s.client.close() for s in sessions), return_exceptions=True)


def _summary(sessions: list[Session], peak_bytes: int, seconds: float) -> dict:
    """Latency percentiles per index and overall, errors, and the server's peak memory."""
    out: dict = {"sessions": SESSIONS, "duration_s": round(seconds, 1)}
    for index in (*INDEXES, "all"):
        mine = [s for s in sessions if index in ("all", s.index)]
        lat = [x for s in mine for x in s.latencies]
        engine = [x for s in mine for x in s.engine_ms]
        out[index] = {
            "queries": len(lat),
            "p50_ms": round(float(np.percentile(lat, 50)) * 1e3) if lat else None,
            "p95_ms": round(float(np.percentile(lat, 95)) * 1e3) if lat else None,
            "max_ms": round(max(lat) * 1e3) if lat else None,
            "engine_p50_ms": round(float(np.percentile(engine, 50)), 1) if engine else None,
        }
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
    print(
        f"\nload: {SESSIONS} sessions, {every['queries']} queries in {summary['duration_s']} s, "
        f"p50 {every['p50_ms']} ms, p95 {every['p95_ms']} ms, max {every['max_ms']} ms "
        f"(hsv p50 {hsv['p50_ms']} / p95 {hsv['p95_ms']} ms, "
        f"cnn p50 {cnn['p50_ms']} / p95 {cnn['p95_ms']} ms), "
        f"engine p50 {every['engine_p50_ms']} ms, {len(summary['errors'])} errors, "
        f"server peak {summary['server_peak_mb']} MB, server CPU {summary['server_cpu_cores']} "
        f"cores, client CPU {summary['client_cpu_cores']} cores, "
        f"load average {summary['load_average']}"
    )
    assert not summary["errors"], summary["errors"][:5]
    assert summary["sessions_without_results"] == 0, "some sessions never got a result"
    assert summary["server_peak_mb"] < TARGET_PEAK_MB
