"""Geometric re-ranking: a hand-made pair, the merge of scores, fall-backs and bad input."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from search_lab.cli import search
from search_lab.core import ConfigError, DatasetError
from search_lab.data import load_image
from search_lab.evaluation import evaluate
from search_lab.retrieval import (
    SV_DEFAULTS,
    RerankOptions,
    RerankStats,
    candidate_count,
    collection_keypoints,
    inliers,
    rerank_row,
)
from search_lab.retrieval.local_features import Keypoints, LocalSpec, check_on_disk
from tests.conftest import CONF, compose_config

PHOTO, UNRELATED = "100000.jpg", "100100.jpg"  # two scenes of holidays-small
OPTS = RerankOptions.from_config(SV_DEFAULTS)


def turned_crop(image: np.ndarray) -> np.ndarray:
    """The photo cropped to its central 3/4 x 7/10 and turned by 90 degrees."""
    h, w = image.shape[:2]
    return np.ascontiguousarray(np.rot90(image[h // 8 : h * 7 // 8, w // 10 : w * 8 // 10]))


@pytest.fixture(scope="module")
def pair(holidays_dir: Path) -> dict[str, Keypoints]:
    photo = load_image(holidays_dir / PHOTO, max_side=OPTS.local.max_side)
    return {
        "photo": OPTS.local.of_image(photo),
        "copy": OPTS.local.of_image(turned_crop(photo)),
        "unrelated": OPTS.local.of_file(holidays_dir / UNRELATED),
    }


def test_turned_cropped_copy_gains_inliers_and_an_unrelated_photo_does_not(pair) -> None:
    copy = inliers(pair["photo"], pair["copy"], OPTS)
    assert copy >= 5 * OPTS.min_inliers  # measured: 189 of 303 keypoints
    assert inliers(pair["photo"], pair["unrelated"], OPTS) < OPTS.min_inliers


def test_verified_candidate_moves_up_by_the_merged_score(pair) -> None:
    # rows: 0 query, 1 unrelated (closer globally), 2 the copy; distances in cosine units
    kps = [pair["photo"], pair["unrelated"], pair["copy"]]
    ids, dists = np.array([0, 1, 2, 5]), np.array([0.0, 0.10, 0.30, 0.40])
    stats = RerankStats()
    out, d, counts = rerank_row(ids, dists, kps[0], kps.__getitem__, OPTS, stats, count=3, skip=0)
    # query: -0 (not verified: skipped); copy: -0.3 + 0.25 * 50/50 = -0.05; unrelated: -0.1
    assert out.tolist() == [0, 2, 1, 5]  # row 3 (beyond the candidates) keeps its place
    assert d.tolist() == [0.0, 0.30, 0.10, 0.40]
    assert counts[1] >= OPTS.saturate and counts[0] == 0  # the query itself: not verified
    assert counts[2] < OPTS.min_inliers  # the unrelated photo: a few chance inliers at most
    assert (stats.pairs, stats.verified, stats.fallback_queries) == (2, 1, 0)


def test_an_image_too_small_for_local_features_keeps_the_global_order(pair) -> None:
    tiny = OPTS.local.of_image(np.full((12, 12, 3), 128, np.uint8))
    assert len(tiny) == 0
    kps = [pair["photo"], tiny]
    stats = RerankStats()
    ids, dists = np.array([1, 0]), np.array([0.2, 0.3])
    out, _, _ = rerank_row(ids, dists, tiny, kps.__getitem__, OPTS, stats, count=2)
    assert out.tolist() == [1, 0] and stats.fallback_queries == 1
    out, _, _ = rerank_row(
        ids, dists, pair["photo"], kps.__getitem__, OPTS, stats, count=2, skip=0
    )  # the query (row 0) is not verified against itself; the tiny image falls back
    assert out.tolist() == [1, 0] and stats.fallback_images == {1} and stats.pairs == 0


def test_candidates_above_the_collection_size_are_capped(caplog) -> None:
    with caplog.at_level(logging.WARNING):
        assert candidate_count(OPTS, 7) == 7
    assert "rerank.candidates=100 is above the collection's 7 images" in caplog.text
    assert candidate_count(OPTS, 700) == 100


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("local", "surf", "rerank: unknown local feature 'surf'; choose one of: orb, sift"),
        ("candidates", 0, "rerank.candidates must be an integer >= 1, got 0"),
        ("min_inliers", 2, "rerank.min_inliers must be an integer >= 3, got 2"),
        ("name", "deep", "unknown rerank 'deep'; choose one of: none, sv"),
    ],
)
def test_bad_settings_are_one_line(key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        RerankOptions.from_config({**SV_DEFAULTS, key: value})
    assert str(err.value) == message


def test_rerank_with_distractors_is_refused_before_work(tmp_path: Path) -> None:
    from search_lab.retrieval import build_pipeline

    cfg = compose_config(["rerank=sv", f"dataset.distractors={tmp_path}"])
    with pytest.raises(ConfigError, match=r"drop dataset\.distractors or rerank"):
        build_pipeline(cfg)


def test_the_config_group_matches_the_defaults() -> None:
    assert compose_config(["rerank=sv"])["rerank"] == SV_DEFAULTS
    assert compose_config([])["rerank"] == {"name": "none"}
    assert {p.stem for p in (CONF / "rerank").glob("*.yaml")} == {"none", "sv"}


@pytest.fixture
def folder(tmp_path: Path, holidays_dir: Path) -> Path:
    """Three two-image groups of holidays-small, one folder per group."""
    root = tmp_path / "photos"
    for group in ("1000", "1001", "1002"):
        (root / group).mkdir(parents=True)
        for last in ("00", "01"):
            shutil.copy(holidays_dir / f"{group}{last}.jpg", root / group / f"{group}{last}.jpg")
    return root


def test_local_features_are_cached_and_missing_files_named(folder: Path, tmp_path) -> None:
    from search_lab.retrieval import FeatureCache

    cache, names = FeatureCache(tmp_path / "cache"), ["1000/100000.jpg", "1001/100100.jpg"]
    spec = LocalSpec("sift", 256, 100)
    first = collection_keypoints(spec, folder, names, "fp", cache)
    assert len(list((tmp_path / "cache").glob("local-*.npz"))) == 1
    again = collection_keypoints(spec, folder, names, "fp", cache)
    assert all(
        np.array_equal(a.descriptors, b.descriptors) for a, b in zip(first, again, strict=True)
    )
    (folder / names[1]).unlink()
    with pytest.raises(DatasetError, match=f"rerank: {folder / names[1]} is no longer on disk"):
        check_on_disk(folder, names)


def test_evaluate_and_search_rerank_end_to_end(folder: Path, tmp_path: Path, capsys) -> None:
    from search_lab.retrieval import build_engine

    cfg = compose_config(
        [f"dataset.root={folder}", f"cache_dir={tmp_path / 'c'}", "progress=false", "rerank=sv"]
    )
    metrics = evaluate(cfg).metrics
    assert metrics["rerank"]["candidates"] == 100 and metrics["rerank"]["pairs"] == 3 * 5
    index = build_engine(cfg).save(tmp_path / "index")
    query = tmp_path / "turned.png"
    Image.fromarray(turned_crop(load_image(folder / "1001/100100.jpg"))).save(query)
    args = search.parse_args(["--index", str(index), str(query), "--k", "2", "--json"])
    assert search.run(args) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["results"][0]["name"] == "1001/100100.jpg"
    assert record["results"][0]["inliers"] >= OPTS.min_inliers
    (folder / "1000/100000.jpg").unlink()
    assert search.main(["--index", str(index), str(query)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"error: rerank: {folder / '1000/100000.jpg'} is no longer on disk (the index was "
        "built from it); restore the images or rebuild the index"
    )


def test_build_index_with_rerank_computes_local_features_at_indexing(
    folder: Path, tmp_path: Path, capsys, monkeypatch, caplog
) -> None:
    from search_lab.cli import build_index
    from search_lab.retrieval import EngineReranker, SearchEngine

    monkeypatch.delenv("SEARCH_LAB_CACHE", raising=False)  # the index's own cache_dir serves
    cache = tmp_path / "c"
    overrides = [f"dataset.root={folder}", f"cache_dir={cache}", "progress=false", "rerank=sv"]
    build_index.run(
        compose_config([*overrides, f"index_dir={tmp_path / 'ix'}"], "build_index"), tmp_path
    )
    assert "local features (sift) of 6 images for rerank=sv" in capsys.readouterr().out
    assert len(list(cache.glob("local-*.npz"))) == 1
    engine = SearchEngine.load(tmp_path / "ix")
    reranker = EngineReranker(engine, RerankOptions.from_config(engine.config["rerank"]))
    assert len(reranker.keypoints) == 6 and all(
        len(k) > OPTS.min_inliers for k in reranker.keypoints
    )
    # an update extracts the local features of the added photo only
    shutil.copy(folder / "1000/100000.jpg", folder / "1000/added.jpg")
    with caplog.at_level(logging.INFO):
        build_index.run(
            compose_config([*overrides, f"index_dir={tmp_path / 'ix'}"], "build_index"), tmp_path
        )
    assert "local features (sift) of 7 images for rerank=sv" in capsys.readouterr().out
    assert "of 1 images (6 reused from the previous collection)" in caplog.text


def test_a_changed_collection_reuses_the_keypoints_of_unchanged_photos(
    folder: Path, tmp_path: Path, caplog
) -> None:
    from search_lab.retrieval import FeatureCache

    cache, spec = FeatureCache(tmp_path / "cache"), LocalSpec("sift", 256, 100)
    names = ["1000/100000.jpg", "1001/100100.jpg"]
    with caplog.at_level(logging.INFO):
        first = collection_keypoints(spec, folder, names, "fp1", cache)
    assert "of 2 images (0 reused" in caplog.text
    shutil.copy(folder / "1000/100000.jpg", folder / "1000/copy.jpg")  # added
    edited = folder / "1001/100100.jpg"
    os.utime(edited, ns=(edited.stat().st_atime_ns, edited.stat().st_mtime_ns + 10**9))
    caplog.clear()
    with caplog.at_level(logging.INFO):
        again = collection_keypoints(spec, folder, [*names, "1000/copy.jpg"], "fp2", cache)
    # the untouched photo reused; the touched one and the new one extracted
    assert "of 2 images (1 reused from the previous collection)" in caplog.text
    assert np.array_equal(first[0].descriptors, again[0].descriptors)
    assert np.array_equal(first[1].descriptors, again[1].descriptors)  # same pixels
    assert np.array_equal(again[2].descriptors, first[0].descriptors)  # a copy of the first


def test_a_rerank_change_alone_rewrites_the_index_manifest(
    folder: Path, tmp_path: Path, monkeypatch
) -> None:
    from search_lab.cli import build_index
    from search_lab.retrieval import SearchEngine

    monkeypatch.delenv("SEARCH_LAB_CACHE", raising=False)
    base = [f"dataset.root={folder}", f"cache_dir={tmp_path / 'c'}", "progress=false"]
    base.append(f"index_dir={tmp_path / 'ix'}")
    build_index.run(compose_config(base, "build_index"), tmp_path)
    assert SearchEngine.load(tmp_path / "ix").config["rerank"] == {"name": "none"}
    build_index.run(compose_config([*base, "rerank=sv"], "build_index"), tmp_path)
    assert SearchEngine.load(tmp_path / "ix").config["rerank"] == SV_DEFAULTS  # search re-ranks
    build_index.run(compose_config(base, "build_index"), tmp_path)
    assert SearchEngine.load(tmp_path / "ix").config["rerank"] == {"name": "none"}


@pytest.mark.parametrize(
    "pointer",
    [b'{"file": "/etc/passwd"}', b'{"file": "../local-00.npz"}', b"[1]", b"\xff\xfe", b"{}"],
)
def test_a_damaged_pointer_means_extracting_again(
    folder: Path, tmp_path: Path, pointer: bytes, caplog
) -> None:
    from search_lab.retrieval import FeatureCache

    cache, spec = FeatureCache(tmp_path / "cache"), LocalSpec("sift", 256, 100)
    names = ["1000/100000.jpg", "1001/100100.jpg"]
    first = collection_keypoints(spec, folder, names, "fp1", cache)
    (latest,) = (tmp_path / "cache").glob("local-latest-*.json")
    latest.write_bytes(pointer)
    with caplog.at_level(logging.INFO):
        again = collection_keypoints(spec, folder, names[:1], "fp2", cache)
    assert "of 1 images (0 reused" in caplog.text
    assert np.array_equal(first[0].descriptors, again[0].descriptors)


def test_a_tampered_npz_meta_means_extracting_again(folder: Path, tmp_path: Path, caplog) -> None:
    from search_lab.retrieval import FeatureCache

    cache, spec = FeatureCache(tmp_path / "cache"), LocalSpec("sift", 256, 100)
    names = ["1000/100000.jpg"]
    collection_keypoints(spec, folder, names, "fp1", cache)
    (path,) = (tmp_path / "cache").glob("local-*.npz")
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    np.savez(path.with_suffix(""), **{**arrays, "meta": np.frombuffer(b"[]", np.uint8)})
    with caplog.at_level(logging.INFO):
        assert len(collection_keypoints(spec, folder, names, "fp1", cache)[0]) > 0  # same key
        collection_keypoints(spec, folder, [*names, "1001/100100.jpg"], "fp2", cache)
    assert "is corrupt (its metadata is not an object): extracting again" in caplog.text
    assert "of 1 images (1 reused" in caplog.text  # the rewritten file serves the next one


def test_a_photo_without_keypoints_is_not_tried_again(folder: Path, tmp_path: Path, caplog) -> None:
    from search_lab.retrieval import FeatureCache

    cache, spec = FeatureCache(tmp_path / "cache"), LocalSpec("sift", 256, 100)
    Image.new("RGB", (64, 48), (128, 128, 128)).save(folder / "1000/blank.png")
    names = ["1000/blank.png", "1000/100000.jpg"]
    assert len(collection_keypoints(spec, folder, names, "fp1", cache)[0]) == 0
    with caplog.at_level(logging.INFO):
        collection_keypoints(spec, folder, [*names, "1001/100100.jpg"], "fp2", cache)
    assert "of 1 images (2 reused from the previous collection)" in caplog.text


def test_the_worker_pool_gives_the_keypoints_of_one_process(
    holidays_dir: Path, monkeypatch
) -> None:
    from search_lab.retrieval import local_features

    names = sorted(p.name for p in holidays_dir.glob("*.jpg"))[: local_features.POOL_MIN + 2]
    spec = LocalSpec("sift", 256, 100)
    pooled = collection_keypoints(spec, holidays_dir, names, "fp", None)  # spawned workers
    monkeypatch.setattr(local_features, "POOL_MIN", 10**9)
    alone = collection_keypoints(spec, holidays_dir, names, "fp", None)
    assert len(pooled) == len(alone) == len(names)
    for a, b in zip(pooled, alone, strict=True):
        assert np.array_equal(a.points, b.points) and np.array_equal(a.descriptors, b.descriptors)
