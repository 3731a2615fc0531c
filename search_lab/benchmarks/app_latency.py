"""Search latency as a user of the app sees it, on a built index of a plain collection.

A real ``streamlit run app.py`` serves the index (its parent folder as the app's index list,
its collection as ``app.roots``, on 127.0.0.1 only). One session speaks the browser's own
protocol (:mod:`search_lab.benchmarks.streamlit_client`: a websocket, protobuf messages, HTTP
for the thumbnails), opens the Search page on the index, and for each query photo types its
name into the name filter, which picks it (the Search page's "Photo from the collection"): the
script run that follows extracts, searches and sends the results. Measured per query, from
the keystroke message to:

- **results**: the finished script run carrying the results (the photo itself ranked first,
  at distance 0, is checked: a query that does not find itself counts as an error);
- **shown**: those results plus every thumbnail fetched, as a browser does before it paints.

The page's own "Query time" (the engine's extraction and search) is recorded beside them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import requests

from search_lab.benchmarks.common import REPO, load_avg
from search_lab.core import CACHE_ENV, SearchLabError
from search_lab.evaluation import OUTPUTS_ENV

START_TIMEOUT_S = 180.0
QUERY_TIMEOUT_S = 300.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve(env: dict[str, str], log: Path) -> Iterator[str]:
    """``streamlit run app.py`` on a free loopback port; yields its URL, then stops it."""
    port = _free_port()
    command = [
        sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
        "--server.port", str(port), "--server.headless", "true",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-400:]
                raise SearchLabError(f"the app server did not start (log {log}): {tail}")
            time.sleep(0.5)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the server we started, and its children
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/_stcore/health", timeout=5).text.strip() == "ok"
    except requests.RequestException:
        return False


def app_env(index: Path, roots: Path, cache: Path) -> dict[str, str]:
    """The environment of a server listing ``index`` (opened first) with ``roots`` readable."""
    from search_lab.app import paths as app_paths
    from search_lab.app import photos as app_photos

    return {
        **os.environ,
        app_paths.INDEXES_ENV: str(index.parent),
        app_paths.DEFAULT_INDEX_ENV: index.name,
        OUTPUTS_ENV: str(index.parent / "app-outputs"),
        app_photos.ROOTS_ENV: str(roots),
        CACHE_ENV: str(cache),
    }


async def _session(url: str, names: Sequence[str]) -> dict[str, Any]:
    """Open the Search page, then query each of ``names`` through the name filter."""
    from search_lab.benchmarks.streamlit_client import ProtocolError, StreamlitSession

    results, shown, engine, errors = [], [], [], []
    client = StreamlitSession(url, timeout_s=QUERY_TIMEOUT_S)
    opened = time.perf_counter()
    run = await client.open()  # the first page: the index is loaded and checked
    first_page_s = time.perf_counter() - opened
    try:
        if run.exceptions():
            raise SearchLabError(f"the Search page failed: {run.exceptions()[0]}")
        box = run.widget("text_input", "Filter the names")
        for name in names:
            start = time.perf_counter()
            run = await client.type_text(box, name)
            ran = time.perf_counter() - start
            await client.fetch_media(run)
            seen = time.perf_counter() - start
            first = next((c for c in run.captions() if c.startswith("#1 ")), "")
            if run.exceptions() or not first.startswith(f"#1 {name} · ") or "d=0.0000" not in first:
                errors.append(f"{name}: {run.exceptions()[:1] or first or 'no results'}")
                continue
            results.append(ran * 1e3)
            shown.append(seen * 1e3)
            engine.append(float((run.metric("Query time") or "nan").split()[0]))
    finally:
        await client.close()
    if not results:
        raise ProtocolError(f"no query was answered: {errors[:3]}")
    return {"first_page_s": round(first_page_s, 2), "results": results, "shown": shown,
            "engine": engine, "errors": errors}  # fmt: skip


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(float(np.percentile(values, 50)), 1),
        "p95": round(float(np.percentile(values, 95)), 1),
    }


def measure(index: Path, roots: Path, cache: Path, names: Sequence[str]) -> dict[str, Any]:
    """Latency figures of ``names`` (paths relative to the collection) queried in the app."""
    log = index.parent / "app-server.log"
    load_before = load_avg()
    started = time.perf_counter()
    with serve(app_env(index, roots, cache), log) as url:
        server_s = time.perf_counter() - started
        figures = asyncio.run(_session(url, names))
    return {
        "queries": len(figures["results"]),
        "errors": figures["errors"],
        "server_start_s": round(server_s, 2),
        "first_page_s": figures["first_page_s"],
        "results_ms": _summary(figures["results"]),
        "shown_ms": _summary(figures["shown"]),
        "engine_ms": _summary(figures["engine"]),
        "load_avg": {"before": load_before, "after": load_avg()},
    }  # fmt: skip
