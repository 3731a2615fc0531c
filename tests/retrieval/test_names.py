"""Odd file names: bytes that are not UTF-8 are skipped with one warning; names with spaces or
line breaks are carried through evaluation, the index and ``rankings.dat`` (percent-encoded)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import unquote

import pytest

from search_lab.core.results import rankings_lines, rankings_name
from search_lab.data import load_dataset
from search_lab.retrieval import SearchEngine

BAD = b"\xff\xfe bad.jpg"


@pytest.fixture
def odd_folder(tmp_path: Path, holidays_dir: Path) -> Path:
    """Two groups of Holidays images in the folder layout, named as people (and accidents) do."""
    root = tmp_path / "photos"
    files = {
        "alps": ["100000.jpg", "100001.jpg"],
        "at the beach": ["100300.jpg", "100301.jpg", "100302.jpg"],
    }
    names = {"alps": ["a 1.jpg", "line\nbreak.jpg"], "at the beach": ["x.jpg", "50%.jpg", "z.jpg"]}
    for group, sources in files.items():
        (root / group).mkdir(parents=True)
        for source, name in zip(sources, names[group], strict=True):
            shutil.copy(holidays_dir / source, root / group / name)
    shutil.copy(holidays_dir / "100002.jpg", os.fsencode(root / "alps") + b"/" + BAD)
    return root


def test_rankings_lines_escape_what_the_format_cannot_carry(caplog) -> None:
    with caplog.at_level("WARNING"):
        text = rankings_lines([("q 1.jpg", ["a\nb.jpg", "c%.jpg", "100001.jpg"]), ("q", [])])
    assert text == "q%201.jpg 0 a%0Ab.jpg 1 c%25.jpg 2 100001.jpg\nq\n"
    assert len(caplog.records) == 1 and "3 file names hold spaces" in caplog.text
    for name in ("a b\tc\r\n.jpg", "100%.jpg", "\u2028x", "plain.jpg"):
        assert unquote(rankings_name(name)) == name and len(rankings_name(name).split()) == 1
    assert rankings_name("\udcff.jpg") == "%FF.jpg"


def test_non_utf8_name_is_skipped_with_one_warning(odd_folder: Path, caplog) -> None:
    with caplog.at_level("WARNING"):
        data = load_dataset(odd_folder)
    assert len(data.names) == 5 and "line\nbreak.jpg" in data.names[1]
    [warning] = [r.getMessage() for r in caplog.records if "UTF-8" in r.getMessage()]
    assert "1 files skipped" in warning and repr(b"alps/" + BAD) in warning
    assert len(data.fingerprint()) == 20


def test_evaluate_and_build_index_on_odd_names(
    odd_folder: Path, make_config, tmp_path: Path
) -> None:
    from search_lab.cli import build_index
    from search_lab.cli.evaluate import run as evaluate

    cfg = make_config(f"dataset.root={odd_folder}", "workers=1")
    metrics = evaluate(cfg, tmp_path / "run")
    assert metrics["n_images"] == 5 and metrics["n_queries"] == 2
    lines = (tmp_path / "run" / "rankings.dat").read_text().splitlines()
    assert len(lines) == 2  # one line per query, whatever the names hold
    assert lines[0].split()[0] == "alps/a%201.jpg"
    assert lines[1].split()[0] == "at%20the%20beach/50%25.jpg"  # sorted first: the query
    assert {unquote(t) for t in lines[1].split()[2::2]} == {
        "at the beach/x.jpg",
        "at the beach/z.jpg",
        "alps/a 1.jpg",
        "alps/line\nbreak.jpg",
    }
    target = tmp_path / "index"
    index_cfg = make_config(
        f"dataset.root={odd_folder}", "workers=1", f"index_dir={target}", name="build_index"
    )
    build_index.run(index_cfg, tmp_path / "out")
    engine = SearchEngine.load(target)
    assert "alps/line\nbreak.jpg" in engine.names
    hits, _ = engine.query(odd_folder / "alps" / "line\nbreak.jpg", 1)
    assert hits[0].name == "alps/line\nbreak.jpg"
