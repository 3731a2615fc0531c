"""The probe's cases of issue 20 on readers and names, each reproduced as the probe ran it.

Readers (point 4): an edited manifest, a 100,000-deep manifest, bad ``metrics.json`` in
Experiments and ``compare``, ``dataset.labels=/dev/zero`` and a FIFO, a header-less labels
CSV whose first name is 300 bytes, cache metadata without ``names`` or with fewer names.
Names (point 5): a full disk, non-UTF-8 / line-break / ANSI names in log lines and
``evaluate.log``, ``search --json`` keeping the image as given.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from search_lab.cli import compare, search
from search_lab.core import (
    MANIFEST,
    DatasetError,
    atomic_write_bytes,
    shown,
    write_error,
    write_json,
)
from search_lab.core.logs import ShownRecord
from search_lab.data import load_dataset
from search_lab.evaluation import OUTPUTS_ENV
from search_lab.retrieval import FeatureCache
from search_lab.retrieval.cache import Features
from tests.core.test_readers_total import GOOD_METRICS, tiny_index  # noqa: F401 (a fixture)

REPO = Path(__file__).resolve().parents[2]
IMAGE = "100000.jpg"


def _edited(index: Path, tmp_path: Path, edit) -> Path:
    target = tmp_path / "edited"
    shutil.copytree(index, target)
    manifest = json.loads((target / MANIFEST).read_text())
    edit(manifest)
    (target / MANIFEST).write_text(json.dumps(manifest))
    return target


def _one_error_line(capsys: pytest.CaptureFixture, status: int) -> str:
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    return err


# --- point 4: readers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("pca_dim", 5000, "does not match the saved post.npz"),
        ("expand", 3, "does not match the saved post.npz"),
        ("pca_dim", "64", "post.pca_dim must be a positive integer or null"),
        ("expand", [1], "post.expand must be an integer >= 0"),
    ],
)
def test_edited_post_settings_give_one_line(
    tiny_index: Path,  # noqa: F811
    holidays_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    key: str,
    value: object,
    words: str,
) -> None:
    edited = _edited(tiny_index, tmp_path, lambda m: m["config"]["post"].update({key: value}))
    status = search.main(["--index", str(edited), str(holidays_dir / IMAGE)])
    assert words in _one_error_line(capsys, status)


def test_a_100000_deep_manifest_gives_one_line(
    tiny_index: Path,  # noqa: F811
    holidays_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    edited = tmp_path / "deep"
    shutil.copytree(tiny_index, edited)
    (edited / MANIFEST).write_bytes(b"[" * 100_000 + b"]" * 100_000)
    status = search.main(["--index", str(edited), str(holidays_dir / IMAGE)])
    assert "is nested 100000 deep" in _one_error_line(capsys, status)


def _runs_with_two_bad(root: Path) -> tuple[Path, Path]:
    """Two good runs and two bad ones (100,000 deep; ``map`` a string) under ``root``."""
    for metric in ("cosine", "euclidean"):
        config = {**GOOD_METRICS["config"], "metric": {"name": metric}}
        write_json(root / metric / "metrics.json", {**GOOD_METRICS, "config": config})
    deep, typed = root / "deep", root / "typed"
    deep.mkdir()
    (deep / "metrics.json").write_bytes(b"[" * 100_000 + b"]" * 100_000)
    write_json(typed / "metrics.json", {**GOOD_METRICS, "map": "0.9", "precision_at": [1]})
    return deep, typed


def test_compare_skips_a_bad_run_folder_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    deep, typed = _runs_with_two_bad(tmp_path)
    with caplog.at_level(logging.WARNING):
        assert compare.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "cosine" in out and "euclidean" in out
    warned = [r.getMessage() for r in caplog.records]
    for folder in (deep, typed):
        assert any(m.startswith(f"skipping run folder {folder}: ") for m in warned), warned


def test_experiments_page_skips_a_bad_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlit.testing.v1 import AppTest

    from search_lab.app import paths as app_paths

    deep, typed = _runs_with_two_bad(tmp_path / "outputs")
    monkeypatch.setenv(app_paths.INDEXES_ENV, str(tmp_path / "indexes"))
    monkeypatch.setenv(OUTPUTS_ENV, str(tmp_path / "outputs"))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    at.switch_page("search_lab/app/pages/experiments_page.py").run()
    assert not at.exception and not at.error
    assert set(at.dataframe[0].value["Distance"]) == {"cosine", "euclidean"}
    [warning] = [w.value for w in at.warning if "skipped" in w.value]
    assert "2 run folders skipped" in warning
    assert deep.name in warning and typed.name in warning


@pytest.mark.timeout(20)
def test_labels_from_a_device_or_a_fifo_are_refused_before_reading(
    tmp_path: Path, holidays_dir: Path
) -> None:
    fifo = tmp_path / "labels.fifo"
    os.mkfifo(fifo)
    for labels, what in [("/dev/zero", "a character device"), (fifo, "a FIFO")]:
        with pytest.raises(DatasetError, match=f"is {what}, not a regular file"):
            load_dataset(holidays_dir, layout="labels", labels=labels)


def test_headerless_labels_whose_first_name_is_300_bytes(
    tmp_path: Path, holidays_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("x" * 300 + ".jpg,a\n" + f"{IMAGE},a\n100001.jpg,a\n")
    with caplog.at_level(logging.WARNING):
        data = load_dataset(holidays_dir, layout="labels", labels=labels)
    assert data.names == (IMAGE, "100001.jpg")  # long name read as a header: no "cannot write"
    assert any("read as `file,label`" in r.getMessage() for r in caplog.records)
    labels.write_text("y" * 300 + ".jpg,a\n")
    with pytest.raises(DatasetError, match=r"no row of labels file .* names an image"):
        load_dataset(holidays_dir, layout="labels", labels=labels)


def _rewrite_meta(cache: FeatureCache, meta: dict) -> None:
    with np.load(cache.path("k")) as saved:
        vectors = saved["vectors"]
    blob = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(cache.path("k"), vectors=vectors, meta=blob)


@pytest.mark.parametrize(
    ("meta", "reason"),
    [
        ({"skipped": {}, "seconds": 1.0}, "'names' must be a list, got None"),
        ({"names": ["a.jpg", "b.jpg"], "skipped": {}}, "2 names for 3 vectors"),
    ],
    ids=["no-names", "fewer-names"],
)
def test_cache_metadata_without_names_or_with_fewer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, meta: dict, reason: str
) -> None:
    cache = FeatureCache(tmp_path)
    cache.put("k", Features(["a.jpg", "b.jpg", "c.jpg"], np.eye(3, 4), {}, 1.0))
    _rewrite_meta(cache, meta)
    with caplog.at_level(logging.WARNING):
        assert cache.get("k") is None  # refused (extracted again), no image dropped silently
    [message] = [r.getMessage() for r in caplog.records]
    assert "is corrupt" in message and reason in message
    assert not cache.path("k").exists()


# --- point 5: names are data ------------------------------------------------------------


def test_log_records_escape_names() -> None:
    name = os.fsdecode(b"a\xffb\nINFO forged \x1b[31mred.jpg")
    record = ShownRecord("n", logging.WARNING, "f", 1, "cannot read %s (%s)", (name, "x"), None)
    assert record.getMessage() == "cannot read a\\xffb\\nINFO forged \\x1b[31mred.jpg (x)"
    assert shown("é/plain name.jpg") == "é/plain name.jpg"


def test_search_json_keeps_the_image_as_given(
    tiny_index: Path,  # noqa: F811
    holidays_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    odd = os.fsencode(tmp_path) + b"/line\nbreak \x1b[31m\xff.jpg"
    shutil.copy(holidays_dir / IMAGE, odd)
    given = [os.fsdecode(odd), str(tmp_path / "missing\tone.jpg")]
    assert search.main(["--index", str(tiny_index), "--json", "--k", "1", *given]) == 1
    out, err = capsys.readouterr()
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["image"] for r in records] == given  # exactly as given, both
    assert os.fsencode(records[0]["image"]) == odd  # surrogateescape: the bytes come back
    assert records[0]["results"][0]["name"] == IMAGE and "error" in records[1]
    assert search.main(["--index", str(tiny_index), given[1]]) == 1  # for people: escaped
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing\\tone.jpg" in err and "\t" not in err


def test_a_full_disk_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as write() reports it

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as err:
        atomic_write_bytes(tmp_path / "metrics.json", b"{}")
    message = write_error(err.value)
    assert message == f"cannot write {tmp_path / 'metrics.json'}: No space left on device"
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Path:
    """A 64 KB tmpfs (a real full disk); skipped where mounting is not allowed."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def _module(name: str, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", name, *args], cwd=cwd, env=env, capture_output=True, timeout=300
    )


def test_build_index_on_a_full_disk_names_the_file(
    tiny_disk: Path, tmp_path: Path, holidays_dir: Path
) -> None:
    """The probe's case: Faiss on a full disk (a traceback before); every index's write goes
    through the same ``library_write``."""
    done = _module(
        "search_lab.build_index",
        "index=faiss",
        f"index_dir={tiny_disk / 'idx'}",
        f"dataset.root={holidays_dir}",
        f"hydra.run.dir={tmp_path / 'out'}",
        "progress=false",
    )
    err = done.stderr.decode()
    assert done.returncode == 2 and "Traceback" not in err, err
    [line] = [x for x in err.splitlines() if x.startswith("error: ")]
    assert line.startswith(f"error: cannot write {tiny_disk}/") and ".tmp/" in line
    assert ": No space left on device" in line


def _labels_collection(root: Path, holidays_dir: Path) -> Path:
    """Four images in two labels, two unreadable files with forging names, one non-UTF-8."""
    root.mkdir()
    for name in ("a.jpg", "b.jpg"):
        shutil.copy(holidays_dir / "100000.jpg", root / name)
    for name in ("c.jpg", "d.jpg"):
        shutil.copy(holidays_dir / "100100.jpg", root / name)
    (root / "bad\nINFO forged.jpg").write_bytes(b"not an image")
    (root / "\x1b[31mred.jpg").write_bytes(b"not an image either")
    shutil.copy(holidays_dir / "100200.jpg", os.fsencode(root) + b"/\xff\xfe.jpg")
    labels = root.parent / "labels.csv"
    labels.write_text(
        'file,label\na.jpg,x\nb.jpg,x\nc.jpg,y\nd.jpg,y\n"bad\nINFO forged.jpg",y\n'
        "\x1b[31mred.jpg,x\n"
    )
    return labels


def test_evaluate_log_keeps_every_warning_escaped(tmp_path: Path, holidays_dir: Path) -> None:
    labels = _labels_collection(tmp_path / "photos", holidays_dir)
    out = tmp_path / "run"
    done = _module(
        "search_lab.evaluate",
        f"dataset.root={tmp_path / 'photos'}",
        "dataset.layout=labels",
        f"dataset.labels={labels}",
        f"hydra.run.dir={out}",
        f"cache_dir={tmp_path / 'cache'}",
        "progress=false",
        "workers=1",
    )
    err, text = done.stderr.decode(), done.stdout.decode()
    assert done.returncode == 0, err
    log = (out / "evaluate.log").read_text(encoding="utf-8")
    for stream in (err, text, log):
        assert "Logging error" not in stream and "\x1b" not in stream
        assert not any(line.startswith("INFO forged") for line in stream.splitlines())
    assert "\\xff\\xfe.jpg" in log  # the non-UTF-8 name's warning is in evaluate.log
    assert "bad\\nINFO forged.jpg" in log and "\\x1b[31mred.jpg" in log


def test_shown_returns_plain_text_itself() -> None:
    """The logging hook leaves the usual printable message alone (one check in C)."""
    plain = "skipping 1,000 files of /data/photos " * 100
    assert shown(plain) is plain


def test_compare_table_shows_names_escaped(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    write_json(run / "metrics.json", GOOD_METRICS)
    (run / ".hydra").mkdir()
    (run / ".hydra" / "overrides.yaml").write_text('- "note=x\\e[2J\\nforged"\n')
    assert compare.main([str(tmp_path), "--columns", "name,map"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "note=x\\x1b[2J\\nforged" in out
