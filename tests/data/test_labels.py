"""The labels layout (a folder of images plus a ``file,label`` CSV) and its bad inputs."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from search_lab.cli.evaluate import run
from search_lab.core import DatasetError
from search_lab.data import load_dataset
from tests.conftest import compose_config

ROOT = Path(__file__).resolve().parents[2]


def collection(tmp_path: Path, csv_text: str | bytes, *names: str) -> tuple[Path, Path]:
    """An images folder holding ``names`` (dummy bytes) and a labels file beside it."""
    images = tmp_path / "images"
    for name in names:
        (images / name).parent.mkdir(parents=True, exist_ok=True)
        (images / name).write_bytes(b"x")
    labels = tmp_path / "labels.csv"
    labels.write_bytes(csv_text.encode() if isinstance(csv_text, str) else csv_text)
    return images, labels


def test_every_image_is_a_query_relevant_is_the_rest_of_its_label(tmp_path: Path) -> None:
    csv_text = "file,label\na.jpg,cat\nb.jpg,dog\nc.png,cat\nsub/d.jpg,dog\ne.jpg,cat\n"
    images, labels = collection(tmp_path, csv_text, "a.jpg", "b.jpg", "c.png", "sub/d.jpg", "e.jpg")
    data = load_dataset(images, layout="labels", labels=labels)
    assert data.names == ("a.jpg", "b.jpg", "c.png", "e.jpg", "sub/d.jpg")
    assert data.groups == ("cat", "dog", "cat", "cat", "dog")
    assert data.queries == (0, 1, 2, 3, 4)
    assert data.relevant[0] == {2, 3} and data.relevant[1] == {4} and data.relevant[4] == {1}
    assert data.protocol == "category" and data.labels == labels and data.lonely == ()


def warnings_about(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


@pytest.mark.parametrize(
    ("csv_text", "files", "warning", "kept"),
    [  # each bad input is counted and warned about once; the rest is read
        (
            "file,label\na.jpg,x\nb.jpg,x\n",
            ("a.jpg", "b.jpg", "c.jpg", "d.jpg"),
            "2 images of",
            ("a.jpg", "b.jpg"),
        ),
        (
            "file,label\na.jpg,x\nb.jpg,x\ngone.jpg,x\n../up.jpg,x\n",
            ("a.jpg", "b.jpg"),
            "2 rows naming images missing",
            ("a.jpg", "b.jpg"),
        ),
        (
            "file,label\na.jpg,x\nb.jpg,x\na.jpg,x\n",
            ("a.jpg", "b.jpg"),
            "1 duplicate rows (same label",
            ("a.jpg", "b.jpg"),
        ),
        (
            "file,label\na.jpg,x\nb.jpg,x\nb.jpg,y\n",
            ("a.jpg", "b.jpg"),
            "1 duplicate rows (a different label",
            ("a.jpg", "b.jpg"),
        ),
        (
            "file,label\na.jpg,x\nb.jpg\n,y\nc.jpg,x\n",
            ("a.jpg", "c.jpg"),
            "2 malformed rows",
            ("a.jpg", "c.jpg"),
        ),
        ("a.jpg,x\nb.jpg,x\n", ("a.jpg", "b.jpg"), "no `file,label` header", ("a.jpg", "b.jpg")),
        (
            "image,class\na.jpg,x\nb.jpg,x\n",
            ("a.jpg", "b.jpg"),
            "header 'image,class' read as",
            ("a.jpg", "b.jpg"),
        ),
    ],
    ids=[
        "unlabelled",
        "missing-files",
        "duplicate",
        "conflict",
        "malformed",
        "no-header",
        "other-header",
    ],
)
def test_bad_rows_are_counted_and_warned_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, csv_text, files, warning, kept
) -> None:
    images, labels = collection(tmp_path, csv_text, *files)
    with caplog.at_level(logging.WARNING):
        data = load_dataset(images, layout="labels", labels=labels)
    assert data.names == kept
    assert len(warnings_about(caplog, warning)) == 1, caplog.text
    assert len(caplog.records) == 1  # nothing else is warned about


def test_a_label_with_one_image_is_indexed_but_not_a_query(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    images, labels = collection(
        tmp_path, "file,label\na.jpg,x\nb.jpg,x\nc.jpg,alone\n", "a.jpg", "b.jpg", "c.jpg"
    )
    with caplog.at_level(logging.WARNING):
        data = load_dataset(images, layout="labels", labels=labels)
    assert data.names == ("a.jpg", "b.jpg", "c.jpg") and data.queries == (0, 1)
    assert data.lonely == (2,)
    assert len(warnings_about(caplog, "c.jpg (alone)")) == 1


@pytest.mark.parametrize(
    ("csv_text", "message"),
    [
        (None, "does not exist"),
        ("", "is empty"),
        ("\n \n", "is empty"),
        (b"\xff\xfe\x00garbage\x89PNG", "is not a text"),
        ("file,label\nnothing.jpg,x\n", "names an image"),
        ("a garbled line\nanother; no columns\n", "names an image"),
    ],
    ids=["missing", "empty", "blank", "binary", "no-match", "garbled"],
)
def test_fatal_labels_files_raise_one_clear_error(tmp_path: Path, csv_text, message) -> None:
    images, labels = collection(tmp_path, csv_text or "", "a.jpg")
    if csv_text is None:
        labels.unlink()
    with pytest.raises(DatasetError, match=message) as err:
        load_dataset(images, layout="labels", labels=labels)
    assert str(labels) in str(err.value) and "\n" not in str(err.value)


def test_labels_layout_needs_a_labels_file(tmp_path: Path) -> None:
    images, _ = collection(tmp_path, "", "a.jpg")
    with pytest.raises(DatasetError, match=r"needs dataset\.labels"):
        load_dataset(images, layout="labels")


def test_cli_exits_2_with_one_line_before_extraction(tmp_path: Path) -> None:
    images, labels = collection(tmp_path, "", "a.jpg")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "search_lab.evaluate",
            "dataset=wang",
            f"dataset.root={images}",
            f"dataset.labels={labels}",
            f"cache_dir={tmp_path / 'cache'}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: labels file")
    assert "is empty" in done.stderr and not (tmp_path / "cache").exists()


def test_wang_config_points_at_the_shared_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANG_DIR", raising=False)
    cfg = compose_config(["dataset=wang"])["dataset"]
    assert (cfg["root"], cfg["labels"], cfg["layout"]) == (
        "../shared/datasets/wang-corel1k/images",
        "../shared/datasets/wang-corel1k/labels.csv",
        "labels",
    )
    assert (ROOT / cfg["root"]).is_dir() == (ROOT / cfg["labels"]).is_file()  # both or neither
    monkeypatch.setenv("WANG_DIR", "/data/wang")
    cfg = compose_config(["dataset=wang"])["dataset"]
    assert (cfg["root"], cfg["labels"]) == ("/data/wang/images", "/data/wang/labels.csv")


def two_colour_png(path: Path, red_rows: int, rows: int = 100) -> None:
    """A 40-pixel-wide PNG: ``red_rows`` pure red rows over pure blue ones."""
    pixels = np.zeros((rows, 40, 3), dtype=np.uint8)
    pixels[:red_rows, :, 0] = 255
    pixels[red_rows:, :, 2] = 255
    Image.fromarray(pixels).save(path)


def test_hand_computed_map_on_a_tiny_labelled_set(tmp_path: Path) -> None:
    """Four images, two labels, hsv square-root histograms and cosine: AP worked out by hand.

    Square-rooted red/blue shares are unit vectors: a = (1, 0), b = (.77, .63) [60% red],
    c = (0, 1), d = (.55, .84) [30% red]. Rankings: a -> b c... AP 1; b -> d, a: AP 1/2;
    c -> d: AP 1; d -> b, c: AP 1/2. Standard AP, so mAP 0.75 (the trapezoid rule gives less).
    """
    images = tmp_path / "images"
    images.mkdir()
    for name, red in (("a.png", 100), ("b.png", 60), ("c.png", 0), ("d.png", 30)):
        two_colour_png(images / name, red)
    labels = tmp_path / "labels.csv"
    labels.write_text("file,label\na.png,red\nb.png,red\nc.png,blue\nd.png,blue\n")
    cfg = compose_config(
        [
            "dataset=wang",
            f"dataset.root={images}",
            f"dataset.labels={labels}",
            f"cache_dir={tmp_path / 'cache'}",
            "progress=false",
            "workers=1",
            "eval.k=[1,2]",
        ]
    )
    metrics = run(cfg, tmp_path / "run")
    assert metrics["ap_protocol"] == "standard_noninterpolated"
    assert metrics["per_query_ap"] == pytest.approx(
        {"a.png": 1.0, "b.png": 0.5, "c.png": 1.0, "d.png": 0.5}
    )
    assert metrics["map"] == pytest.approx(0.75)
    assert metrics["precision_at"] == pytest.approx({"1": 0.5, "2": 0.5})
    lines = (tmp_path / "run" / "rankings.dat").read_text().splitlines()
    assert lines[1] == "b.png 0 d.png 1 a.png 2 c.png"  # one line per query, itself left out


def independent_scores(vectors: np.ndarray, labels: list[str], k: int) -> tuple[float, float]:
    """mAP and P@k by the textbook: argsort of cosine similarities, every image a query."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)  # the query itself is not a result
    order = np.argsort(-similarity, axis=1, kind="stable")[:, :-1]
    labels_arr = np.asarray(labels)
    aps, precisions = [], []
    for q in range(len(labels)):
        hits = labels_arr[order[q]] == labels_arr[q]
        positions = np.flatnonzero(hits) + 1
        aps.append(np.mean(np.arange(1, len(positions) + 1) / positions))
        precisions.append(hits[:k].mean())
    return float(np.mean(aps)), float(np.mean(precisions))


def check_against_independent(cfg: dict, out: Path) -> dict:
    """Run ``evaluate`` on ``cfg`` and compare with the independent scorer to 3 decimals."""
    from search_lab.retrieval import index_collection

    metrics = run(cfg, out)
    col = index_collection(cfg)  # the same cached features
    labels = [col.data.groups[col.data.names.index(n)] for n in col.features.names]
    expected_map, expected_p10 = independent_scores(col.vectors, labels, 10)
    assert round(metrics["map"], 3) == round(expected_map, 3)
    assert metrics["precision_at"]["10"] == pytest.approx(expected_p10, abs=5e-4)
    return metrics


def random_collection(tmp_path: Path, n: int = 36) -> dict:
    """``n`` noisy images in three colour labels, and the config that reads them."""
    rng = np.random.default_rng(7)
    images = tmp_path / "images"
    images.mkdir()
    rows = ["file,label"]
    for i in range(n):
        label = ("warm", "cold", "grey")[i % 3]
        base = {"warm": (150, 110, 95), "cold": (95, 110, 150), "grey": (120, 120, 120)}[label]
        noise = rng.normal(0, 90, size=(24, 32, 3))
        Image.fromarray(np.clip(np.add(base, noise), 0, 255).astype(np.uint8)).save(
            images / f"{i}.png"
        )
        rows.append(f"{i}.png,{label}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    return compose_config(
        [
            "dataset=wang",
            f"dataset.root={images}",
            f"dataset.labels={tmp_path / 'labels.csv'}",
            f"cache_dir={tmp_path / 'cache'}",
            "progress=false",
            "workers=1",
        ]
    )


def test_map_equals_an_independent_scorer_on_random_images(tmp_path: Path) -> None:
    cfg = random_collection(tmp_path)
    metrics = check_against_independent(cfg, tmp_path / "run")
    assert metrics["n_queries"] == 36 and 0.3 < metrics["map"] < 1.0


def test_expansion_cannot_be_learned_elsewhere(tmp_path: Path) -> None:
    from search_lab.core import ConfigError
    from search_lab.retrieval.collection import fit_on_source

    cfg = compose_config(["post.expand=5", f"post.fit_on={tmp_path}"])
    with pytest.raises(ConfigError, match=r"post\.expand"):
        fit_on_source(cfg)


def test_max_queries_scores_a_seeded_sample(tmp_path: Path) -> None:
    from search_lab.core import ConfigError

    cfg = random_collection(tmp_path)
    cfg["eval"]["max_queries"] = 10
    first = run(cfg, tmp_path / "a")
    again = run(cfg, tmp_path / "b")
    assert first["n_queries"] == 10 and first["n_images"] == 36
    assert first["per_query_ap"] == again["per_query_ap"]  # the same sample every run
    assert len((tmp_path / "a" / "rankings.dat").read_text().splitlines()) == 10
    cfg["eval"]["max_queries"] = 0
    with pytest.raises(ConfigError, match="max_queries"):
        run(cfg, tmp_path / "c")
