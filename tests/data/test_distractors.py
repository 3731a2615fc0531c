"""Distractors: the synthetic generator, the seeded subsets, and mAP against collection size."""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from search_lab.cli import data as data_cli
from search_lab.cli.evaluate import run
from search_lab.core import ConfigError, DatasetError
from search_lab.data import Dataset, distractors, load_image, synth
from search_lab.evaluation import OUTPUTS_ENV
from search_lab.retrieval import distractor_features
from search_lab.retrieval.cache import Features
from search_lab.retrieval.distractor_features import with_distractors

ROOT = Path(__file__).resolve().parents[2]


def test_generator_is_reproducible_and_resumes(tmp_path: Path) -> None:
    assert data_cli.main(["distractors", "--count", "3", "--dest", str(tmp_path / "a")]) == 0
    first = {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir()}
    assert sorted(first) == ["s0_0000000.jpg", "s0_0000001.jpg", "s0_0000002.jpg"]
    assert synth.generate(5, tmp_path / "a") == (2, 3)  # the first three are kept, two added
    assert synth.generate(2, tmp_path / "b") == (2, 0)
    for name in ("s0_0000000.jpg", "s0_0000001.jpg"):  # image i depends on (seed, i) alone
        assert (tmp_path / "b" / name).read_bytes() == first[name]
    synth.generate(1, tmp_path / "c", seed=1)
    assert (tmp_path / "c" / "s1_0000000.jpg").read_bytes() != first["s0_0000000.jpg"]
    image = load_image(tmp_path / "a" / "s0_0000004.jpg")
    assert image.shape[2] == 3 and sorted(image.shape[:2]) == sorted(synth.SIZE)
    assert image.std() > 5  # not a flat frame


def test_generator_rejects_bad_arguments(tmp_path: Path, capsys) -> None:
    assert data_cli.main(["distractors", "--count", "0", "--dest", str(tmp_path)]) == 2
    assert "error: --count must be positive" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert data_cli.main(["distractors", "--count", "1", "--dest", str(tmp_path / "file")]) == 2


def test_seeded_order_keeps_its_order_when_files_are_added() -> None:
    names = [f"{i}.jpg" for i in range(50)]
    order = distractors.seeded_order(names, seed=3)
    assert sorted(order) == sorted(names) and order != sorted(names)
    grown = distractors.seeded_order([*names, "new1.jpg", "new2.jpg"], seed=3)
    assert [n for n in grown if n in set(names)] == order
    assert distractors.seeded_order(names, seed=4) != order


def _toy() -> tuple[Dataset, Features]:
    data = Dataset(Path("/x"), ("a0.jpg", "a1.jpg", "b0.jpg"), ("a", "a", "b"), (0,), {0: {1}})
    feats = Features(["a0.jpg", "a1.jpg", "b0.jpg"], np.eye(3, dtype=np.float32), {})
    return data, feats


def test_distractors_join_no_group_and_keep_the_ids() -> None:
    data, feats = _toy()
    extra = Features(["~distractors/d.jpg"], np.ones((1, 3), np.float32), {"~distractors/e": "x"})
    grown, merged = with_distractors(data, feats, extra)
    assert grown.names == ("a0.jpg", "a1.jpg", "b0.jpg", "~distractors/d.jpg")
    assert grown.groups == ("a", "a", "b", "")
    assert grown.queries == (0,) and grown.relevant == {0: {1}}
    assert merged.vectors.shape == (4, 3) and merged.skipped == {"~distractors/e": "x"}


def test_a_distractor_named_like_a_query_is_refused(tmp_path: Path) -> None:
    data, _ = _toy()
    with pytest.raises(DatasetError, match=r"holds sub/a0\.jpg, the file name of a query"):
        distractors.check_names(["z.jpg", "sub/a0.jpg"], data, tmp_path)
    distractors.check_names(["a1.jpg"], data, tmp_path)  # a relevant image's name is allowed
    with pytest.raises(DatasetError, match="does not exist"):
        distractors.list_images(tmp_path / "none")
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(DatasetError, match="holds no images"):
        distractors.list_images(tmp_path)


@pytest.mark.parametrize(
    ("counts", "message"),
    [([-1], "must be >= 0"), ([1.5], "list of integers"), ("5", "list of integers")],
)
def test_bad_counts_are_refused(counts: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        distractors.check_counts({"distractor_counts": counts}, "folder")


def test_counts_need_a_folder() -> None:
    with pytest.raises(ConfigError, match=r"needs dataset\.distractors"):
        distractors.check_counts({"distractor_counts": [0, 5]}, None)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("synthetic")
    synth.generate(60, folder, seed=0)
    return folder


@pytest.mark.slow
def test_map_against_distractor_count_on_holidays(
    make_config, holidays_dir: Path, synthetic: Path, tmp_path: Path, monkeypatch
) -> None:
    """Count 0 is the plain run; adding distractors can only push relevant images down."""
    plain = run(make_config(), tmp_path / "plain")
    monkeypatch.setattr(distractor_features, "SHARD", 20)  # the shard size extraction reads
    cfg = make_config(f"dataset.distractors={synthetic}", "eval.distractor_counts=[0,20,60]")
    metrics = run(cfg, tmp_path / "curve")
    rows = metrics["distractors"]["rows"]
    assert [r["count"] for r in rows] == [0, 20, 60]
    assert [r["n_images"] for r in rows] == [648, 668, 708]
    assert rows[0]["map"] == plain["map"] and rows[0]["map_ci95"] == plain["map_ci95"]
    assert metrics["map"] == rows[-1]["map"] and metrics["n_images"] == 708
    for small, large in itertools.pairwise(rows):  # hsv + l2: no chain to refit
        for query, ap in large["per_query_ap"].items():
            assert ap <= small["per_query_ap"][query] + 1e-12
    table = (tmp_path / "curve" / "distractors.md").read_text()
    assert f"| 60 | 708 | {rows[-1]['map']:.4f}" in table
    assert (tmp_path / "curve" / "distractors.png").stat().st_size > 1000
    cache = tmp_path / "cache"
    assert len(list(cache.glob("*.npz"))) == 4  # the dataset and three shards of 20
    cfg = make_config(f"dataset.distractors={synthetic}", "eval.distractor_counts=[0,40]")
    again = run(cfg, tmp_path / "again")
    assert len(list(cache.glob("*.npz"))) == 4  # every shard re-used from the cache
    assert again["distractors"]["rows"][0]["map"] == plain["map"]
    assert again["distractors"]["rows"][1]["n_images"] == 688


@pytest.mark.slow
def test_a_copy_of_a_query_among_distractors_costs_its_ap_by_hand(
    make_config, holidays_dir: Path, tmp_path: Path
) -> None:
    """A copy of query 100100 ranks first: its one relevant image moves from rank 1 to rank 2.

    Holidays trapezoid AP of one relevant image at 0-based rank 1: precision before it 0/1,
    after it 1/2, so AP = (0 + 1/2) / 2 = 0.25 (it was 1.0).
    """
    folder = tmp_path / "copies"
    folder.mkdir()
    shutil.copy(holidays_dir / "100100.jpg", folder / "copy.jpg")
    cfg = make_config(f"dataset.distractors={folder}", "eval.distractor_counts=[0,1]")
    rows = run(cfg, tmp_path / "run")["distractors"]["rows"]
    assert rows[0]["per_query_ap"]["100100.jpg"] == 1.0
    assert rows[1]["per_query_ap"]["100100.jpg"] == 0.25


@pytest.mark.slow
def test_split_and_corrupt_distractors(
    make_config, synthetic: Path, tmp_path: Path, caplog
) -> None:
    folder = tmp_path / "mixed"
    shutil.copytree(synthetic, folder)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    plain = run(make_config("dataset.split=test"), tmp_path / "plain")
    cfg = make_config(
        "dataset.split=test", f"dataset.distractors={folder}", "eval.distractor_counts=[0,61]"
    )
    with caplog.at_level(logging.WARNING):
        metrics = run(cfg, tmp_path / "run")
    rows = metrics["distractors"]["rows"]
    assert rows[0]["map"] == plain["map"] and rows[0]["n_images"] == plain["n_images"] == 342
    assert rows[1]["count"] == 60 and rows[1]["n_images"] == 402  # the broken file skipped
    assert "~distractors/broken.jpg" in metrics["skipped"]
    assert sum("broken.jpg" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.slow
def test_distractors_on_a_labelled_collection(
    wang_dir: Path, synthetic: Path, tmp_path: Path
) -> None:
    from tests.conftest import compose_config

    common = [
        "dataset=wang",
        f"dataset.root={wang_dir / 'images'}",
        f"dataset.labels={wang_dir / 'labels.csv'}",
        f"cache_dir={tmp_path / 'cache'}",
        "progress=false",
        "eval.max_queries=100",
    ]
    plain = run(compose_config(common), tmp_path / "plain")
    cfg = compose_config(
        [*common, f"dataset.distractors={synthetic}", "eval.distractor_counts=[0,30]"]
    )
    rows = run(cfg, tmp_path / "run")["distractors"]["rows"]
    assert rows[0]["map"] == plain["map"] and rows[1]["n_images"] == 1030
    assert rows[1]["map"] <= rows[0]["map"]


@pytest.mark.parametrize(
    ("make_folder", "message"),
    [
        ("clash", "holds 100000.jpg, the file name of a query"),
        ("empty", "holds no images"),
        ("missing", "does not exist"),
        ("too_few", "asks for 5 distractors, but"),
    ],
)
def test_bad_distractor_folders_fail_with_one_line(
    make_folder: str, message: str, holidays_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "d"
    if make_folder != "missing":
        folder.mkdir()
    if make_folder == "clash":
        shutil.copy(holidays_dir / "100001.jpg", folder / "100000.jpg")
    if make_folder == "too_few":
        synth.generate(2, folder)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "search_lab.evaluate",
            f"dataset.distractors={folder}",
            "eval.distractor_counts=[0,5]",
            f"hydra.run.dir={tmp_path / 'run'}",
            f"cache_dir={tmp_path / 'cache'}",
            "progress=false",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOLIDAYS_DIR": str(holidays_dir)},
    )
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: "), proc.stderr
    assert message in errors[0]
    assert not list((tmp_path / "cache").glob("*.npz"))  # nothing extracted before the check


@pytest.mark.slow
def test_experiments_page_charts_map_against_collection_size(
    make_config, holidays_dir: Path, synthetic: Path, tmp_path: Path, monkeypatch
) -> None:
    from streamlit.testing.v1 import AppTest

    from search_lab.app import paths as app_paths
    from tests.app.test_app import APP, PAGES

    outputs = tmp_path / "outputs"
    cfg = make_config(f"dataset.distractors={synthetic}", "eval.distractor_counts=[0,30,60]")
    rows = run(cfg, outputs / "runs" / "curve")["distractors"]["rows"]
    run(make_config(), outputs / "runs" / "plain")  # no distractors: not in the chart
    for name, value in {
        OUTPUTS_ENV: outputs,
        app_paths.INDEXES_ENV: tmp_path / "indexes",
        "HOLIDAYS_DIR": holidays_dir,
    }.items():
        monkeypatch.setenv(name, str(value))
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    at.switch_page(f"{PAGES}/experiments_page.py").run()
    assert not at.exception
    assert "mAP against collection size (distractors)" in [h.value for h in at.subheader]
    (table,) = [d.value for d in at.dataframe if "images" in d.value.columns]
    assert table["images"].tolist() == [648, 678, 708]
    assert table["mAP"].tolist() == [r["map"] for r in rows]
    assert table["run"].str.endswith(", curve)").all()  # "name  (date, folder)"
    specs = [c.proto.spec for c in at.get("vega_lite_chart")]
    assert any('"errorbar"' in s and '"images"' in s and '"log"' in s for s in specs)


def test_table_and_summary_by_hand(tmp_path: Path) -> None:
    from search_lab.cli import distractor_output as distractor_report

    section = {
        "folder": "d",
        "seed": 0,
        "indexed": 1000,
        "rows": [
            {"count": 0, "n_images": 648, "map": 0.5, "map_ci95": [0.4, 0.6],
             "precision_at": {"1": 0.75}},
            {"count": 1000, "n_images": 1648, "map": 0.25, "map_ci95": [0.2, 0.3],
             "precision_at": {"1": 0.5}},
        ],
    }  # fmt: skip
    table = distractor_report.table(section)
    assert "| 0 | 648 | 0.5000 [0.400, 0.600] | 0.7500 |" in table
    assert "| 1,000 | 1,648 | 0.2500 [0.200, 0.300] | 0.5000 |" in table
    lines = distractor_report.summary_lines(section)
    assert lines[1] == "distractors    1,000: mAP 0.2500 [0.200, 0.300]  (1,648 images)"
    path = distractor_report.chart([("a", section), ("b", section)], tmp_path / "c.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_a_run_with_distractors_is_not_the_index_evaluation() -> None:
    from search_lab.app.runs import _plain_evaluation

    assert _plain_evaluation({"eval": {}, "dataset": {"distractors": None}})
    assert not _plain_evaluation({"eval": {}, "dataset": {"distractors": "d"}})
