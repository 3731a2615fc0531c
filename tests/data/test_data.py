"""Dataset parsing for both layouts, and its errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from search_lab.cli.data import main
from search_lab.core import DatasetError
from search_lab.data import load_dataset


def touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def test_holidays_layout(tmp_path: Path) -> None:
    touch(
        tmp_path,
        "100000.jpg",
        "100001.jpg",
        "100002.JPEG",
        "100100.png",
        "100101.jpg",
        "README.txt",
        "notes.jpg",
        "100200.jpg",
    )
    data = load_dataset(tmp_path)
    assert data.names == (
        "100000.jpg",
        "100001.jpg",
        "100002.JPEG",
        "100100.png",
        "100101.jpg",
        "100200.jpg",
    )
    assert [data.names[q] for q in data.queries] == ["100000.jpg", "100100.png"]
    assert data.relevant[0] == {1, 2}
    assert data.relevant[3] == {4}
    assert [data.names[q] for q in data.lonely] == ["100200.jpg"]  # no relevant image


def test_lonely_query_is_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    touch(tmp_path, "100000.jpg", "100001.jpg", "100100.jpg")
    with caplog.at_level(logging.WARNING):
        data = load_dataset(tmp_path)
    assert len(data.queries) == 1
    assert "100100.jpg" in caplog.text


def test_folder_layout_first_file_is_the_query(tmp_path: Path) -> None:
    touch(tmp_path, "beach/b.jpg", "beach/a.png", "beach/c.txt", "dogs/x.jpg", "dogs/y.webp")
    data = load_dataset(tmp_path)
    assert data.names == ("beach/a.png", "beach/b.jpg", "dogs/x.jpg", "dogs/y.webp")
    assert [data.names[q] for q in data.queries] == ["beach/a.png", "dogs/x.jpg"]
    assert data.relevant[2] == {3}


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda root: None, "does not exist"),
        (lambda root: root.mkdir(), "holds no images"),
        (lambda root: touch(root, "100001.jpg", "100002.jpg"), "no query"),
    ],
)
def test_errors_name_the_problem(tmp_path: Path, setup, message: str) -> None:
    root = tmp_path / "data"
    setup(root)
    with pytest.raises(DatasetError, match=message) as err:
        load_dataset(root)
    assert str(root) in str(err.value)


def test_root_defaults_to_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    touch(tmp_path, "100000.jpg", "100001.jpg")
    monkeypatch.setenv("HOLIDAYS_DIR", str(tmp_path))
    assert load_dataset().root == tmp_path


def test_fingerprint_follows_files(tmp_path: Path) -> None:
    touch(tmp_path, "100000.jpg", "100001.jpg")
    before = load_dataset(tmp_path).fingerprint()
    assert load_dataset(tmp_path).fingerprint() == before
    (tmp_path / "100001.jpg").write_bytes(b"longer")
    assert load_dataset(tmp_path).fingerprint() != before


def test_real_subset(holidays_dir: Path) -> None:
    data = load_dataset(holidays_dir)
    assert (len(data.names), len(data.queries), len(set(data.groups))) == (648, 240, 240)
    assert sum(len(r) for r in data.relevant.values()) == 648 - 240


def test_cli_reports_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["info", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "does not exist" in err
