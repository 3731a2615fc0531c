"""The app with indexes of different search methods: Compare runs one query through each, the
Experiments chart tells the methods apart, and each method is described in words.

Builds hnsw, kdtree and faiss (HNSW32) indexes of hsv/cosine on holidays-small with
``build_index``'s config, and evaluates annoy, hnsw and kdtree into a private outputs folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from search_lab.app import indexes as app_indexes
from search_lab.app import paths as app_paths
from search_lab.app import runs as app_runs
from search_lab.cli.evaluate import run as evaluate
from search_lab.evaluation import OUTPUTS_ENV, load_runs, outputs_dir
from search_lab.retrieval import build_engine
from tests.app.test_app import APP, EASY_MATCH, EASY_QUERY, PAGES, _result_captions, _unescape

METHODS = ("faiss", "hnsw", "kdtree")


@pytest.fixture(scope="module")
def app(
    tmp_path_factory: pytest.TempPathFactory, holidays_dir: Path
) -> tuple[AppTest, pytest.MonkeyPatch]:
    """The app on three indexes of different types and three evaluation runs."""
    base = tmp_path_factory.mktemp("methods")
    cache, indexes, outputs = base / "cache", base / "indexes", base / "outputs"
    common = [f"dataset.root={holidays_dir}", f"cache_dir={cache}", "workers=1"]
    for kind in METHODS:
        cfg = app_indexes.default_build_config(indexes, [*common, f"index={kind}"])
        build_engine(cfg).save(indexes / f"hsv-cosine-{kind}")
    for kind in ("annoy", "hnsw", "kdtree"):
        cfg = app_indexes.default_build_config(indexes, [*common, f"index={kind}"])
        evaluate(cfg, outputs / "sweeps" / "s" / f"index={kind}")
    patch = pytest.MonkeyPatch()
    for name, value in {
        app_paths.INDEXES_ENV: indexes,
        OUTPUTS_ENV: outputs,
        "SEARCH_LAB_CACHE": cache,
        "HOLIDAYS_DIR": holidays_dir,
    }.items():
        patch.setenv(name, str(value))
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    assert not at.exception
    yield at, patch
    patch.undo()


@pytest.mark.slow
def test_compare_puts_one_query_through_every_method(app: tuple[AppTest, object]) -> None:
    at, _ = app
    at.switch_page(f"{PAGES}/compare_page.py").run()
    assert not at.exception
    names = [f"hsv-cosine-{kind}" for kind in METHODS]
    assert at.multiselect(key="compare_indexes").value == names
    at.selectbox(key="compare_query").set_value(EASY_QUERY).run()
    assert not at.exception
    captions = " ".join(_unescape(c.value) for c in at.caption)
    for words in ("Faiss (faiss-cpu), HNSW32", "HNSW graph (hnswlib", "kd-tree (SciPy cKDTree)"):
        assert words in captions
    results = _result_captions(at)
    firsts = [c for c in results if ": ✓ #1 " in c]  # "<index>: ✓ #1 ..." in the rank-1 row
    assert len(firsts) == 3 and all(EASY_MATCH in c for c in firsts)  # same top-1 everywhere
    overall = at.table[-1].value  # one column per index
    assert overall.loc["search"].str.contains("HNSW").sum() == 2


@pytest.mark.slow
def test_search_page_describes_the_method(app: tuple[AppTest, object]) -> None:
    at, _ = app
    at.switch_page(f"{PAGES}/search_page.py").run()
    at.selectbox(key="search_index").set_value("hsv-cosine-kdtree").run()
    assert not at.exception
    assert any("branch-and-bound" in c.value for c in at.caption)


@pytest.mark.slow
def test_experiments_chart_has_one_colour_per_method(app: tuple[AppTest, object]) -> None:
    at, _ = app
    at.switch_page(f"{PAGES}/experiments_page.py").run()
    assert not at.exception
    frame, column = app_runs.ann_vs_latency(load_runs([outputs_dir()]))
    assert set(frame["method"]) == {"annoy", "hnsw"}  # the exact kd-tree run is left out
    assert frame[column].between(0, 1).all()
    specs = [chart.proto.spec for chart in at.get("vega_lite_chart")]
    assert any('"field":"method"' in spec.replace(" ", "") for spec in specs)  # colour = method
