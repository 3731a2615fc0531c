"""``python -m search_lab.search`` end to end on an index built from holidays-small."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import pytest

from search_lab.cli import search
from search_lab.retrieval import SearchEngine, build_engine
from tests.core.test_integrity import flip

REPO = Path(__file__).resolve().parents[2]
QUERY, MATCH = "100000.jpg", "100001.jpg"  # hsv ranks the match first


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, holidays_dir: Path) -> Path:
    """An hsv / cosine / exact index of holidays-small."""
    from tests.conftest import compose_config

    base = tmp_path_factory.mktemp("search")
    cfg = compose_config(
        [f"dataset.root={holidays_dir}", f"cache_dir={base / 'cache'}", "progress=false"]
    )
    return build_engine(cfg).save(base / "index")


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "search_lab.search", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_text_output_and_a_bad_image_among_good_ones(
    index: Path, holidays_dir: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    query, other = holidays_dir / QUERY, holidays_dir / "100100.jpg"
    done = _cli("--index", str(index), str(query), str(bad), str(other), "--k", "3")
    assert done.returncode == 1  # one image failed, the others were answered
    [error] = done.stderr.strip().splitlines()
    assert error.startswith(f"error: Cannot load image {bad}: not a recognised image format")
    lines = done.stdout.splitlines()
    assert len(lines) == 2 * 4
    assert lines[0].startswith(f"{query}  (") and lines[0].endswith("ms, cosine distance)")
    assert lines[1].split() == ["1", "0.000000", QUERY]
    assert lines[2].split()[::2] == ["2", MATCH]
    assert lines[4].startswith(str(other))


def test_json_lines_match_the_engine(index: Path, holidays_dir: Path, capsys) -> None:
    missing = holidays_dir / "nothing-here.jpg"
    status = search.main(
        ["--index", str(index), "--json", "--k", "5", str(holidays_dir / QUERY), str(missing)]
    )
    assert status == 1
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    engine = SearchEngine.load(index)
    hits, _ = engine.query(holidays_dir / QUERY, 5)
    assert first["image"] == str(holidays_dir / QUERY) and first["metric"] == "cosine"
    assert [(r["rank"], r["name"]) for r in first["results"]] == [(h.rank, h.name) for h in hits]
    assert [r["distance"] for r in first["results"]] == pytest.approx([h.distance for h in hits])
    assert second == {
        "image": str(missing),
        "error": f"Cannot load image {missing}: no such file",
        "metric": "cosine",
    }


def test_all_answered_exits_0(index: Path, holidays_dir: Path, capsys) -> None:
    assert search.main(["--index", str(index), str(holidays_dir / QUERY), "--k", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--index", "{missing}", "{query}"], "is not a built index"),
        (["--index", "{damaged}", "{query}"], "vectors.npy is damaged"),
        (["--index", "{index}", "--k", "0", "{query}"], "--k: must be a positive integer"),
        (["--index", "{index}"], "the following arguments are required: IMAGE"),
    ],
    ids=["no-index", "damaged-index", "bad-k", "no-image"],
)
def test_bad_index_or_arguments_exit_2(
    index: Path, holidays_dir: Path, tmp_path: Path, capsys, args: list[str], message: str
) -> None:
    import shutil

    damaged = tmp_path / "damaged"
    shutil.copytree(index, damaged)
    flip(damaged / "vectors.npy", 50_000)
    paths = {
        "missing": tmp_path / "none",
        "damaged": damaged,
        "index": index,
        "query": holidays_dir / QUERY,
    }
    argv = [a.format(**paths) for a in args]
    with pytest.raises(SystemExit) if "required" in message or "--k" in message else nullcontext():
        status = search.main(argv)
        assert status == 2
    err = capsys.readouterr().err
    assert message in err and err.strip().splitlines()[-1].count("error") == 1
    assert not capsys.readouterr().out


def test_shown_keeps_one_line_per_name() -> None:
    assert search.shown("a b/é.jpg") == "a b/é.jpg"
    assert search.shown("line\nbreak\t.jpg") == "line\\nbreak\\t.jpg"
    assert search.shown(os.fsdecode(b"\xff\xfe bad.jpg")) == "\\xff\\xfe bad.jpg"
