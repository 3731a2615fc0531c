"""The plain layout: any folder tree of photos, indexed and searched, never scored."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from search_lab.cli import compose_config
from search_lab.core import DatasetError
from search_lab.data import load_dataset
from search_lab.data.datasets import layouts
from search_lab.evaluation import evaluate


def touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def test_plain_reads_the_whole_tree_and_skips_hidden_ones(tmp_path: Path) -> None:
    touch(
        tmp_path,
        "b.jpg",
        "2023/paris/a.JPG",
        "2023/notes.txt",
        "2024/x y/ü.png",
        ".thumbs/t.jpg",
        "2024/.hidden.jpg",
        "2024/.cache/deep/z.jpg",
    )
    data = load_dataset(tmp_path, layout="plain")
    assert data.names == ("2023/paris/a.JPG", "2024/x y/ü.png", "b.jpg")
    assert (data.queries, data.relevant, data.protocol) == ((), {}, "none")
    assert layouts() == ("auto", "holidays", "folders", "plain", "labels")


def test_auto_picks_plain_when_no_benchmark_layout_fits(tmp_path: Path, caplog) -> None:
    touch(tmp_path, "loose.jpg", "trip/a.jpg", "trip/b.jpg")  # a loose photo: not groups
    with caplog.at_level(logging.INFO, logger="search_lab.data.datasets"):
        data = load_dataset(tmp_path)
    assert data.protocol == "none" and len(data.names) == 3
    lines = [r.getMessage() for r in caplog.records if "fits no benchmark" in r.getMessage()]
    assert lines == [
        f"{tmp_path} fits no benchmark layout (holidays, folders): read as a plain photo "
        "collection (no queries, no ground truth)"
    ]


@pytest.mark.parametrize(
    ("names", "layout"),
    [
        (("beach/a.jpg", "beach/b.jpg", "dogs/c.jpg"), "folders"),  # one folder per group
        (("2023/paris/a.jpg", "2023/paris/b.jpg", "2024/c.jpg", "2024/d.jpg"), "none"),  # nested
        (("beach/a.jpg", "dogs/c.jpg"), "none"),  # no group of two: nothing to score
        (("trip/a.jpg", "trip/b.jpg"), "none"),  # one folder is not a benchmark
        (("100000.jpg", "100001.jpg"), "instance"),  # Holidays names
    ],
)
def test_auto_takes_only_true_benchmarks_for_groups(
    tmp_path: Path, names: tuple[str, ...], layout: str
) -> None:
    touch(tmp_path, *names)
    assert load_dataset(tmp_path).protocol == ("instance" if layout == "folders" else layout)


def test_links_never_lead_out_of_the_root(tmp_path: Path) -> None:
    outside, root = tmp_path / "outside", tmp_path / "root"
    touch(outside, "secret.jpg", "dir/s2.jpg")
    touch(root, "real/a.jpg")
    (root / "out.jpg").symlink_to(outside / "secret.jpg")
    (root / "outdir").symlink_to(outside / "dir")
    (root / "in.jpg").symlink_to(root / "real/a.jpg")
    (root / "loop").symlink_to(root)
    (root / "dangling.jpg").symlink_to(root / "gone.jpg")
    assert load_dataset(root, layout="plain").names == ("in.jpg", "real/a.jpg")


def test_a_root_given_as_a_link_is_read_through_it(tmp_path: Path) -> None:
    touch(tmp_path / "real", "a.jpg", "sub/b.png")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    data = load_dataset(tmp_path / "link", layout="plain")
    assert data.names == ("a.jpg", "sub/b.png")
    assert all(p.is_file() for p in data.paths)


def test_odd_names_are_kept_or_skipped_with_a_warning(tmp_path: Path, caplog) -> None:
    touch(tmp_path, "new\nline.jpg", "Case.jpg", "case.jpg", "ok.jpg")
    (tmp_path / os.fsdecode(b"bad\xff.jpg")).write_bytes(b"x")
    with caplog.at_level(logging.WARNING):
        data = load_dataset(tmp_path, layout="plain")
    assert data.names == ("Case.jpg", "case.jpg", "new\nline.jpg", "ok.jpg")
    assert "1 files skipped: their names are not valid UTF-8" in caplog.text
    assert "differ only in case" in caplog.text and "'Case.jpg', 'case.jpg'" in caplog.text


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda root: None, "does not exist"),
        (lambda root: root.mkdir(), "holds no images in the 'plain' layout"),
        (lambda root: touch(root, ".hidden/a.jpg", "notes.txt"), "holds no images"),
    ],
)
def test_empty_or_missing_folders_are_one_line(tmp_path: Path, setup, message: str) -> None:
    root = tmp_path / "photos"
    setup(root)
    with pytest.raises(DatasetError, match=message):
        load_dataset(root, layout="plain")


def test_evaluate_refuses_a_plain_collection_before_extracting(
    tmp_path: Path, holidays_dir: Path
) -> None:
    for name in sorted(os.listdir(holidays_dir))[:3]:
        (tmp_path / "photos" / "trip").mkdir(parents=True, exist_ok=True)
        shutil.copy(holidays_dir / name, tmp_path / "photos" / "trip" / f"IMG_{name}")
    cache = tmp_path / "cache"
    cfg = compose_config([f"dataset.root={tmp_path / 'photos'}", f"cache_dir={cache}"])
    with pytest.raises(DatasetError, match="no ground truth to score; evaluate needs a labelled"):
        evaluate(cfg)
    assert not cache.exists() or not any(cache.glob("*.npz"))  # nothing was extracted
