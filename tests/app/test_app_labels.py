"""The app on a labelled collection (labels layout, category protocol), through AppTest.

A small collection of generated images in three colour categories is indexed (hsv, cosine) and
evaluated; the Search page must mark same-category results and show evaluate's standard AP, an
upload must work, and the Dataset page must show the categories.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from search_lab.app import datasets as app_datasets
from search_lab.app import indexes as app_indexes
from search_lab.app import paths as app_paths
from search_lab.cli.evaluate import run as evaluate
from search_lab.evaluation import OUTPUTS_ENV
from search_lab.retrieval import build_engine
from tests.app.test_app import _result_captions, _unescape

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app.py"
BASES = {"warm": (190, 100, 60), "cold": (60, 100, 190), "grey": (120, 120, 120)}


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A built index over 24 generated images with labels, and its evaluation metrics."""
    base = tmp_path_factory.mktemp("labelled")
    images = base / "images"
    images.mkdir()
    rng = np.random.default_rng(5)
    rows = ["file,label"]
    for i in range(24):
        label = list(BASES)[i % 3]
        noise = rng.normal(0, 50, size=(30, 40, 3))
        pixels = np.clip(np.add(BASES[label], noise), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(images / f"img{i:02d}.png")
        rows.append(f"img{i:02d}.png,{label}")
    (base / "labels.csv").write_text("\n".join(rows) + "\n")
    overrides = [
        "dataset=wang",
        f"dataset.root={images}",
        f"dataset.labels={base / 'labels.csv'}",
        f"cache_dir={base / 'cache'}",
        "workers=1",
    ]
    cfg = app_indexes.default_build_config(base / "indexes", overrides)
    assert cfg["dataset"]["root"] == str(images)
    build_engine(cfg).save(base / "indexes" / "labelled-hsv")
    return base, evaluate(cfg, base / "outputs" / "runs" / "r1")


@pytest.fixture
def app(labelled: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch) -> AppTest:
    base, _ = labelled
    monkeypatch.setenv(app_paths.INDEXES_ENV, str(base / "indexes"))
    monkeypatch.setenv(OUTPUTS_ENV, str(base / "outputs"))
    monkeypatch.setenv("HOLIDAYS_DIR", str(base / "no-holidays-here"))
    monkeypatch.setenv("WANG_DIR", str(base))  # the app serves conf/dataset/wang.yaml's folders
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    assert not at.exception
    return at


def _metric(at: AppTest, label: str) -> list[str]:
    return [m.value for m in at.metric if m.label == label]


def test_search_marks_same_category_and_shows_standard_ap(
    app: AppTest, labelled: tuple[Path, dict]
) -> None:
    _, metrics = labelled
    app.selectbox(key="search_query").set_value("img04.png").run()  # a "cold" image
    assert not app.exception
    captions = _result_captions(app)
    cold = {f"img{i:02d}.png" for i in range(1, 24, 3)} - {"img04.png"}
    for caption in captions:
        name = caption.split(" ")[2] if caption.startswith("✓") else caption.split(" ")[1]
        assert caption.startswith("✓") == (name in cold), caption
    assert _metric(app, "Average precision") == [f"{metrics['per_query_ap']['img04.png']:.3f}"]
    assert metrics["ap_protocol"] == "standard_noninterpolated"


def test_upload_searches_the_labelled_index(app: AppTest, labelled: tuple[Path, dict]) -> None:
    base, _ = labelled
    app.radio(key="search_source").set_value("Upload an image").run()
    content = (base / "images" / "img07.png").read_bytes()
    app.file_uploader(key="search_upload").upload("mine.png", content, "image/png").run()
    assert not app.exception and not app.error
    captions = _result_captions(app)
    assert captions[0].startswith("#1 img07.png · ") and "d=0.0000" in captions[0]
    assert _metric(app, "Average precision") == []


def test_dataset_page_shows_categories(app: AppTest, labelled: tuple[Path, dict]) -> None:
    base, _ = labelled
    app.switch_page("search_lab/app/pages/dataset_page.py").run()
    source = next(s for s in app.selectbox(key="dataset_source").options if "labels.csv" in s)
    app.selectbox(key="dataset_source").set_value(
        app_datasets.DatasetSource(base / "images", "labels", base / "labels.csv")
    ).run()
    assert not app.exception and source
    assert _metric(app, "Categories") == ["3"]
    assert _metric(app, "Queries") == ["24"]
    app.selectbox(key="dataset_query").set_value("img02.png").run()
    captions = [_unescape(c) for image in app.image for c in image.captions]
    assert captions[0] == "query img02.png"
    assert sorted(captions[1:]) == [f"img{i:02d}.png" for i in range(5, 24, 3)]  # other greys


def test_dataset_sources_ignore_folders_the_app_does_not_serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOLIDAYS_DIR", str(tmp_path / "holidays"))
    monkeypatch.setenv("WANG_DIR", str(tmp_path / "wang"))
    images, labels = tmp_path / "wang" / "images", tmp_path / "wang" / "labels.csv"
    layout = {"config": {"dataset": {"layout": "labels"}}}
    manifests = {
        "ok": {"root": str(images), "labels": str(labels), **layout},
        "labels elsewhere": {"root": str(images), "labels": "/etc/passwd", **layout},
        "root elsewhere": {"root": "/etc", "labels": str(labels), **layout},
    }
    sources = app_datasets.dataset_sources(manifests, tmp_path / "holidays")
    assert sources == [
        app_datasets.DatasetSource(tmp_path / "holidays"),
        app_datasets.DatasetSource(images, "labels", labels),
    ]
