"""The protocol client of the load test against a real ``streamlit run app.py``.

A copy of 12 holidays-small images is indexed (hsv) in a tmp folder and served; one
:class:`StreamlitSession` switches the Search page to upload mode, uploads two images in turn
and reads the result grid, the query time and the thumbnails from the server's messages.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from search_lab.app import indexes as app_indexes
from search_lab.app.widgets import UPLOAD
from search_lab.benchmarks.streamlit_client import ProtocolError, StreamlitSession
from search_lab.retrieval import build_engine
from tests.app.test_browser import app_env, serve_app

IMAGES = [f"1000{i:02d}.jpg" for i in range(3)] + [f"10{g}00.jpg" for g in range(10, 19)]


async def _scenario(url: str, data: Path) -> None:
    async with StreamlitSession(url, timeout_s=60) as client:
        run = client.last
        index = run.widget("selectbox", "Index")
        assert index.options == ("hsv-cosine-exact",)
        with pytest.raises(ProtocolError, match="not an option"):
            await client.choose(index, "no-such-index")
        run = await client.choose(run.widget("radio", "Query"), UPLOAD)
        uploader = run.widget("file_uploader", "Image to search")
        for query, second in (("100000.jpg", "#2 100001.jpg · d="), ("100001.jpg", "#2 100000")):
            run = await client.upload(uploader, data / query)
            captions = run.captions()
            assert captions[0] == f"query: {query}"
            assert captions[1] == f"#1 {query} · d=0.0000"  # the upload itself, at distance 0
            assert captions[2].startswith(second)  # the other photo of its scene (group 1000)
            assert len(captions) == 1 + 10 and run.exceptions() == []
            assert run.metric("Query time").endswith(" ms")
            assert await client.fetch_media(run) > 11 * 1000  # 11 JPEG thumbnails
        assert client.states[index.id].string_value == "hsv-cosine-exact"


def test_client_drives_the_search_page(tmp_path: Path, holidays_dir: Path) -> None:
    data, indexes, cache = tmp_path / "holidays", tmp_path / "indexes", tmp_path / "cache"
    data.mkdir()
    for name in IMAGES:
        shutil.copy(holidays_dir / name, data / name)
    cfg = app_indexes.default_build_config(
        indexes, [f"dataset.root={data}", f"cache_dir={cache}", "workers=1"]
    )
    build_engine(cfg).save(cfg["index_dir"])
    env = app_env(indexes, cache, tmp_path / "outputs", data)
    with serve_app(env, tmp_path / "streamlit.log") as (url, _):
        asyncio.run(_scenario(url, data))
