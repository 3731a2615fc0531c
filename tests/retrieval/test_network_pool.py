"""The CNN's network pool: one-thread worker processes give the vectors one process gives,
in order, with unreadable files skipped, and the engine they chose reported."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from search_lab.retrieval import build_extractor, extract, extract_files

pytest.importorskip("torch")


@pytest.fixture
def photos(holidays_dir: Path, tmp_path: Path) -> tuple[Path, list[str]]:
    """Eight Holidays photos of both orientations and one file that is not an image."""
    names = sorted(p.name for p in holidays_dir.glob("*.jpg"))[:8]
    for name in names:
        shutil.copy(holidays_dir / name, tmp_path / name)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    return tmp_path, [*names[:3], "broken.jpg", *names[3:]]


def test_pool_vectors_equal_one_process_vectors(
    photos: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    root, names = photos
    cfg = {"name": "cnn", "engine": "torch", "size": 160}
    alone = extract_files(root, names, {**cfg, "threads": 1}, progress=False, warn=False)
    monkeypatch.setattr(extract, "NETWORK_POOL_MIN", 4)  # the parent's choice only
    feature = build_extractor(cfg)
    with caplog.at_level(logging.INFO, logger="search_lab.retrieval.extract"):
        pooled = extract_files(root, names, feature, workers=2, progress=False, warn=False)
    assert "cnn: 9 images in 2 worker processes, one thread each" in caplog.text
    assert pooled.names == alone.names == [n for n in names if n != "broken.jpg"]
    assert list(pooled.skipped) == ["broken.jpg"]
    np.testing.assert_allclose(pooled.vectors, alone.vectors, rtol=0, atol=1e-6)
    assert feature.engine_used == "torch" and feature._forward is None  # ran in the workers


def test_pool_reports_the_engine_auto_chose(
    photos: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnxruntime")
    root, names = photos
    monkeypatch.setattr(extract, "NETWORK_POOL_MIN", 4)
    feature = build_extractor({"name": "cnn", "engine": "auto", "size": 160})
    extract_files(root, names, feature, workers=2, progress=False, warn=False)
    assert feature.engine_used == "onnxruntime"  # what metrics.json then names


@pytest.mark.parametrize(
    ("params", "workers", "images"),
    [
        ({"threads": 2}, 2, 100),  # a thread count set by hand keeps one process
        ({}, 1, 100),  # one worker
        ({}, 2, 63),  # too few images for the workers' start-up
    ],
)
def test_pool_is_used_only_when_it_pays(params: dict, workers: int, images: int) -> None:
    feature = build_extractor({"name": "cnn", **params})
    assert not extract._network_pays(feature, images, workers)
    assert extract._network_pays(build_extractor({"name": "cnn"}), 64, 2)
    assert not extract._network_pays(build_extractor({"name": "hsv"}), 1000, 2)


def test_workers_are_started_once_inside_workers_kept(
    photos: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, names = photos
    good = [n for n in names if n != "broken.jpg"]
    monkeypatch.setattr(extract, "NETWORK_POOL_MIN", 3)
    cfg = {"name": "cnn", "engine": "torch", "size": 160}
    alone = extract_files(root, good, {**cfg, "threads": 1}, progress=False)
    with extract.workers_kept():
        first = extract_files(root, good[:4], cfg, workers=2, progress=False)
        pool = extract._KEPT.pool
        pids = set(pool._processes)
        second = extract_files(root, good[4:], cfg, workers=2, progress=False)
        assert extract._KEPT.pool is pool and set(pool._processes) == pids  # the same workers
        extract_files(root, good[:3], {**cfg, "size": 128}, workers=2, progress=False)
        assert extract._KEPT.pool is not pool  # another feature: other workers
    assert extract._KEPT.pool is None  # ended with the block
    got = np.concatenate([first.vectors, second.vectors])
    np.testing.assert_allclose(got, alone.vectors, rtol=0, atol=1e-6)


def test_one_core_runs_a_network_on_one_thread_one_image_at_a_time() -> None:
    cnn = extract.one_core({"name": "cnn", "size": 160})
    assert (cnn.threads, cnn.batch_size, cnn.size) == (1, 1, 160)
    assert extract.one_core({"name": "cnn", "threads": 2}).threads == 2  # set by hand: kept
    assert extract.one_core({"name": "hsv"}).spec == {"name": "hsv"}
