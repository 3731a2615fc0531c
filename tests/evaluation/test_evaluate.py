"""End-to-end evaluation on holidays-small, scored again by an independent official-style scorer."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

import search_lab.retrieval.extract
from search_lab.cli.evaluate import run
from search_lab.evaluation import bootstrap_ci

ROOT = Path(__file__).resolve().parents[2]


def official_map(rankings_file: Path, image_dir: Path) -> float:
    """A port of INRIA's holidays_map.py: ground truth from file names, trapezoid AP per query."""
    groups = defaultdict(set)
    for name in os.listdir(image_dir):
        if name[:6].isdigit():
            groups[int(name[:6]) // 100].add(name)
    total, count = 0.0, 0
    for line in rankings_file.read_text().splitlines():
        fields = line.split()
        query = fields[0]
        gt = groups[int(query[:6]) // 100] - {query}
        tp_ranks, shift = [], 0
        for rank, name in zip((int(r) for r in fields[1::2]), fields[2::2], strict=True):
            if name == query:
                shift = -1
            elif name in gt:
                tp_ranks.append(rank + shift)
        ap = 0.0
        for ntp, rank in enumerate(tp_ranks):
            p0 = 1.0 if rank == 0 else ntp / float(rank)
            ap += (p0 + (ntp + 1) / float(rank + 1)) / (2.0 * len(gt))
        total += ap
        count += 1
    return total / count


@pytest.mark.slow
def test_default_config_reaches_the_map_bound(
    make_config, holidays_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    metrics = run(make_config(), out)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["map"] >= 0.55
    assert saved["n_queries"] == 240 and saved["n_images"] == 648 and saved["n_skipped"] == 0
    assert set(saved["precision_at"]) == set(saved["recall_at"]) == {"1", "5", "10", "20"}
    assert all(saved[key] >= 0 for key in ("extract_s", "build_s", "search_s"))
    assert saved["config"]["feature"]["name"] == "hsv"
    lines = (out / "rankings.dat").read_text().splitlines()
    assert len(lines) == 240
    first = lines[0].split()
    assert first[0] == "100000.jpg" and first[1:3] == [
        "0",
        "100001.jpg",
    ]  # easy query ranks its match first
    assert len(first) == 1 + 2 * 647  # every other image is ranked
    assert official_map(out / "rankings.dat", holidays_dir) == pytest.approx(
        metrics["map"], abs=5e-4
    )
    low, high = saved["map_ci95"]  # the seeded bootstrap of the saved per-query APs
    assert [low, high] == list(bootstrap_ci(list(saved["per_query_ap"].values())))
    assert low < saved["map"] < high and high - low < 0.15


def test_changing_only_the_metric_extracts_nothing(
    make_config, tmp_path: Path, monkeypatch
) -> None:
    first = run(make_config("feature.bins=[4,4,2]"), tmp_path / "a")
    assert first["features_cached"] is False

    def fail(*args, **kwargs):
        raise AssertionError("extraction ran although the features were cached")

    monkeypatch.setattr(search_lab.retrieval.extract, "extract_files", fail)
    second = run(make_config("feature.bins=[4,4,2]", "metric=euclidean"), tmp_path / "b")
    assert second["features_cached"] is True
    with pytest.raises(AssertionError, match="extraction ran"):
        run(make_config("feature.bins=[4,4,3]"), tmp_path / "c")  # a feature parameter re-extracts


def test_bad_images_are_skipped_counted_and_listed(holidays_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name in [
        "100000.jpg",
        "100001.jpg",
        "100100.jpg",
        "100101.jpg",
        "100200.jpg",
        "100201.jpg",
    ]:
        shutil.copy(holidays_dir / name, data / name)
    (data / "100101.jpg").write_bytes((holidays_dir / "100101.jpg").read_bytes()[:500])  # truncated
    (data / "100201.jpg").write_text("not an image")
    from tests.conftest import compose_config

    cfg = compose_config([f"dataset.root={data}", f"cache_dir={tmp_path / 'c'}", "progress=false"])
    metrics = run(cfg, tmp_path / "out")
    assert metrics["n_images"] == 4 and metrics["n_skipped"] == 2
    assert set(metrics["skipped"]) == {"100101.jpg", "100201.jpg"}
    assert (
        metrics["n_queries"] == 3
    )  # queries whose relevant image is unreadable still count (AP 0)
    assert metrics["per_query_ap"]["100100.jpg"] == 0.0


def test_combo_warns_once_per_bad_file(
    holidays_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name in ["100000.jpg", "100001.jpg", "100100.jpg", "100101.jpg"]:
        shutil.copy(holidays_dir / name, data / name)
    (data / "100101.jpg").write_text("not an image")
    from tests.conftest import compose_config

    overrides = [f"dataset.root={data}", f"cache_dir={tmp_path / 'c'}", "progress=false"]
    cfg = compose_config([*overrides, "feature=combo", "feature.parts=[hsv,lbp,hog]", "workers=1"])
    cfg["feature"]["weights"] = [1.0, 1.0, 1.0]
    with caplog.at_level("WARNING", logger="search_lab.retrieval.extract"):
        metrics = run(cfg, tmp_path / "out")
    assert metrics["skipped"] == {"100101.jpg": metrics["skipped"]["100101.jpg"]}
    warned = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipping")]
    assert len(warned) == 1 and "100101.jpg" in warned[0]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("feature=colour", "unknown feature 'colour'"),
        ("metric=cosinus", "unknown metric 'cosinus'"),
        ("feature.bins=[0,12,3]", "bins must be three positive integers"),
        ("eval.k=[0,5]", "eval.k must be a list of positive integers"),
        ("dataset.root=/nowhere/holidays", "dataset folder /nowhere/holidays does not exist"),
        ("feature.binz=[1,2,3]", "Could not override 'feature.binz'"),
        ("feature=hsv,lbp", "Ambiguous value"),
        ("feature.bins=[8.7,12,3]", "bins must be three positive integers"),
        ("feature.sqrt=maybe", "sqrt must be true or false"),
        ("eval.k=5", "eval.k must be a list of positive integers"),
        ("post.pca_dim=1.5", "post.pca_dim must be a positive integer"),
        ("workers=-1", "workers must be a positive integer"),
        ("metric=chi2 post.pca_dim=10", "chi2 needs non-negative"),
        ("feature=combo feature.weights=[a,b]", "weights must be numbers"),
        ("-m feature.binz=1", "Could not override 'feature.binz'"),
        ("-m feature=hsv,lbp metric=cosine feature.binz=1,2", "Could not override 'feature.binz'"),
        ("--multirun feature.bins=[8,12", "no viable alternative"),
        ("-m feature=hsv,colour", "unknown feature 'colour'"),
    ],
)
def test_bad_configuration_fails_with_one_line(override: str, message: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "search_lab.evaluate",
            *override.split(),
            f"hydra.run.dir={tmp_path}",
            "progress=false",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOLIDAYS_DIR": os.environ.get("HOLIDAYS_DIR", "/nowhere/holidays")},
    )
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, proc.stderr
    assert message in errors[0] and "Traceback" not in proc.stderr
