"""Near-duplicates: pairs and groups on hand-made vectors, every index's stored rows, the
calibrated default, the planted set, and ``python -m search_lab.duplicates`` end to end."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from search_lab import indexes
from search_lab.cli import duplicates as cli
from search_lab.core import ConfigError, DatasetError
from search_lab.data import EDITS, read_truth
from search_lab.data.planted import edited, make_planted
from search_lab.retrieval import (
    build_engine,
    close_pairs,
    components,
    default_threshold,
    find_duplicates,
    pair_scores,
    pairs_of,
)
from search_lab.retrieval.duplicates import CALIBRATED

REPO = Path(__file__).resolve().parents[2]
LINE = np.array([[0.0], [0.125], [0.3125], [5.0], [5.0625], [10.0]], np.float32)
"""Six points on a line (exact in binary): within 0.2, 0-1 (0.125), 1-2 (0.1875) and 3-4
(0.0625); 0-2 is 0.3125."""


def _exact(vectors: np.ndarray, metric: str = "euclidean") -> indexes.Index:
    index = indexes.create("exact", metric=metric)
    index.build(vectors)
    return index


def test_pairs_and_groups_on_a_line_worked_out_by_hand() -> None:
    pairs = close_pairs(_exact(LINE), 0.2, first_k=2)
    assert sorted(zip(pairs.left.tolist(), pairs.right.tolist(), strict=True)) == [
        (0, 1),
        (1, 2),
        (3, 4),
    ]
    assert pairs.distance[np.argsort(pairs.left)] == pytest.approx(
        [0.125, 0.1875, 0.0625], abs=1e-6
    )
    # k=2 is the item and one neighbour: 0, 1, 2, 3 and 4 have theirs within 0.2, so are
    # searched again at k=4, where every list ends beyond 0.2
    assert pairs.rounds == [(2, 6), (4, 5)] and pairs.queries == 11
    assert components(6, pairs.left, pairs.right) == [[0, 1, 2], [3, 4]]
    found = find_duplicates(_exact(LINE), 0.2)
    assert found.groups == [[0, 1, 2], [3, 4]] and found.pairs == 3
    assert "2 groups of 5 images from 3 pairs within 0.2; 6 queries (6 at k=6)" in found.cost()


def test_threshold_edges_and_bad_values() -> None:
    assert find_duplicates(_exact(LINE), 0.0625).groups == [[3, 4]]  # <= threshold counts
    assert find_duplicates(_exact(LINE), 0.0624).groups == []
    assert find_duplicates(_exact(LINE), 100.0).groups == [[0, 1, 2, 3, 4, 5]]
    with pytest.raises(ConfigError, match="threshold must be a finite number, got nan"):
        find_duplicates(_exact(LINE), math.nan)


def test_pair_scores_by_hand() -> None:
    truth = pairs_of([["a", "b", "c"]])  # ab, ac, bc
    found = pairs_of([["a", "b"], ["c", "d"]])  # ab, cd
    assert pair_scores(found, truth) == {
        "precision": 0.5,
        "recall": pytest.approx(1 / 3),
        "f1": pytest.approx(0.4),
        "pairs": 2,
        "hits": 1,
    }


@pytest.mark.parametrize(
    "kind", [pytest.param(k, marks=pytest.mark.long) if k == "nndescent" else k
             for k in indexes.available()]
)  # fmt: skip
def test_every_index_gives_its_vectors_back_and_finds_itself(kind: str) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(60, 8)).astype(np.float32)
    vectors[7] = vectors[3] * 1.001  # a near copy
    index = indexes.create(kind, metric="cosine")
    index.build(vectors)
    rows = index.stored_rows(0, 60)
    assert rows.shape == (60, 8) and rows.dtype == np.float32
    ids, dists = index.search(rows, 1)
    assert (ids[:, 0] == np.arange(60)).mean() >= 0.95  # approximate ones may miss a few
    assert dists[:, 0] == pytest.approx(np.zeros(60), abs=1e-4)
    assert index.stored_rows(58, 70).shape == (2, 8)
    assert find_duplicates(index, 1e-3).groups == [[3, 7]]


def test_default_threshold_per_feature_metric_and_chain() -> None:
    cfg = {"feature": {"name": "hsv"}, "metric": {"name": "cosine"}, "post": {"l2": True}}
    assert default_threshold(cfg) == CALIBRATED["hsv"]
    cfg["metric"]["name"] = "euclidean"  # unit rows: ||a - b|| = sqrt(2 (1 - cos))
    assert default_threshold(cfg) == pytest.approx(math.sqrt(2 * CALIBRATED["hsv"]))
    with pytest.raises(ConfigError, match=r"feature 'lbp' has no calibrated threshold.*--thresh"):
        default_threshold({**cfg, "feature": {"name": "lbp"}})
    with pytest.raises(ConfigError, match="post-processing"):
        default_threshold({**cfg, "post": {"l2": True, "pca_dim": 64}})
    with pytest.raises(ConfigError, match="metric 'euclidean' on these vectors"):
        default_threshold({**cfg, "post": {"l2": False}})


SOURCES = ["100000.jpg", "100100.jpg", "100200.jpg", "100300.jpg", "100400.jpg"]


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory, holidays_dir: Path) -> Path:
    """2 originals with 5 copies each and 3 unrelated Holidays photos, plus a byte copy of
    one original under a name holding a tab and an escape character."""
    out = tmp_path_factory.mktemp("planted") / "set"
    counts = make_planted([holidays_dir / n for n in SOURCES], out, originals=2, unrelated=3)
    assert counts == {"originals": 2, "copies": 10, "unrelated": 3, "images": 15}
    return out


def test_planted_set_files_and_truth(planted: Path, holidays_dir: Path) -> None:
    names = sorted(p.name for p in (planted / "images").iterdir())
    groups, edits = read_truth(planted / "labels.csv")
    assert len(names) == 15 and len(groups) == 2
    assert all(len(g) == 6 for g in groups) and len(edits) == 10
    stem = groups[0][0].split(".")[0]
    assert groups[0] == sorted([f"{stem}.jpg"] + [f"{stem}_{e}.jpg" for e in EDITS])
    original = Image.open(planted / "images" / f"{stem}.jpg")
    w, h = original.size
    assert Image.open(planted / "images" / f"{stem}_rot90.jpg").size == (h, w)
    assert Image.open(planted / "images" / f"{stem}_resize80.jpg").size == (
        round(w * 0.8),
        round(h * 0.8),
    )
    assert Image.open(planted / "images" / f"{stem}_crop5.jpg").size == (
        w - 2 * round(w * 0.025),
        h - 2 * round(h * 0.025),
    )
    assert (
        len(edited(holidays_dir / SOURCES[0], "jpeg70"))
        < (holidays_dir / SOURCES[0]).stat().st_size
    )
    with pytest.raises(DatasetError, match="3 originals and 3 unrelated photos asked for, 5"):
        make_planted([holidays_dir / n for n in SOURCES], planted.parent / "x", originals=3,
                     unrelated=3)  # fmt: skip


@pytest.fixture(scope="module")
def index(planted: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    """An hsv / cosine / exact index of the planted set plus an odd-named byte copy."""
    from tests.conftest import compose_config

    groups, _ = read_truth(planted / "labels.csv")
    odd = "odd\tname\x1b.jpg"
    shutil.copyfile(planted / "images" / groups[0][0], planted / "images" / odd)
    with (planted / "labels.csv").open("a", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerow([odd, "odd"])
    groups[0] = sorted([*groups[0], odd])
    base = tmp_path_factory.mktemp("dup-index")
    cfg = compose_config(
        [f"dataset.root={planted / 'images'}", f"dataset.labels={planted / 'labels.csv'}",
         "dataset.layout=labels", f"cache_dir={base / 'cache'}", "progress=false"]
    )  # fmt: skip
    return build_engine(cfg).save(base / "index"), groups


def test_cli_finds_the_planted_groups_by_default(index: tuple[Path, list], capsys) -> None:
    folder, groups = index
    assert cli.main(["--index", str(folder), "--json"]) == 0
    out, err = capsys.readouterr()
    record = json.loads(out)
    assert record["threshold"] == CALIBRATED["hsv"]
    assert sorted(record["groups"]) == sorted(groups)  # hand-checked: 7 and 6 names
    assert record["cost"]["queries"] >= 16 and record["cost"]["rounds"][0]["k"] == 8
    assert err.startswith("2 groups of 13 images from ") and "16 queries" in err


def test_cli_text_lines_escape_control_characters(index: tuple[Path, list]) -> None:
    folder, groups = index
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "search_lab.duplicates", "--index", str(folder)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    shown = [n.replace("\t", "\\t").replace("\x1b", "\\x1b") for n in groups[0]]
    assert lines[0].split("\t") == shown and "odd\\tname\\x1b.jpg" in lines[0]
    assert lines[1].split("\t") == groups[1]


def test_cli_bad_input_is_one_line(index: tuple[Path, list], tmp_path: Path, capsys) -> None:
    folder, _ = index
    assert cli.main(["--index", str(folder), "--threshold", "nan"]) == 2
    assert capsys.readouterr().err == "error: threshold must be a finite number, got nan\n"
    assert cli.main(["--index", str(tmp_path / "none")]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: ") and "none" in line
    assert cli.main(["--index", str(folder), "--threshold", "0"]) == 0  # byte copies only
    assert capsys.readouterr().out.count("\t") == 1


@settings(max_examples=40, deadline=None)
@given(
    points=st.lists(st.integers(0, 40), min_size=2, max_size=30),
    threshold=st.integers(0, 6),
    first_k=st.integers(2, 5),
)
def test_pairs_and_groups_equal_a_brute_force_on_integer_points(
    points: list[int], threshold: int, first_k: int
) -> None:
    """Every pair within the threshold is found, whatever k starts at (ties and crowds
    included: integer points repeat), and the groups are the union-find components."""
    vectors = np.array(points, np.float32)[:, None]
    pairs = close_pairs(_exact(vectors), threshold, first_k=first_k)
    n = len(points)
    expected = {(i, j) for i in range(n) for j in range(i + 1, n)
                if abs(points[i] - points[j]) <= threshold}  # fmt: skip
    assert set(zip(pairs.left.tolist(), pairs.right.tolist(), strict=True)) == expected
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i, j in expected:
        parent[root(i)] = root(j)
    members: dict[int, list[int]] = {}
    for i in range(n):
        members.setdefault(root(i), []).append(i)
    groups = sorted((g for g in members.values() if len(g) > 1), key=lambda g: (-len(g), g[0]))
    assert components(n, pairs.left, pairs.right) == groups
