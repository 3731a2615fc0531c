"""Tests for search_lab.core.files: the one atomic write and the clean-up of dead writers'
leftovers."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from search_lab.core import files, owner_tag


class Crash(Exception):
    """Stands for a kill between writing the temporary file and renaming it."""


def test_write_replaces_content_and_leaves_nothing_else(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.json"
    assert files.atomic_write_json(target, {"x": 1}) == target
    assert target.read_text() == '{"x": 1}\n'
    files.atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["a.json"]


def test_crash_before_rename_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "a.txt"
    files.atomic_write_text(target, "old")
    written: list[bytes] = []

    def crash(src: str, dst: Path) -> None:
        written.append(Path(src).read_bytes())  # the new bytes were complete on disk
        raise Crash

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(Crash):
        files.atomic_write_text(target, "new content")
    assert written == [b"new content"]
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # the temporary file is gone


def test_failing_writer_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "a.bin"
    files.atomic_write_bytes(target, b"old")

    def half_then_fail(handle: object) -> None:
        handle.write(b"half")  # type: ignore[attr-defined]
        raise Crash

    with pytest.raises(Crash):
        files.atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_leftovers_of_dead_writers_are_removed_not_live_ones(tmp_path: Path) -> None:
    code = "import os; print(os.getpid())"
    dead = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    dead_tag = owner_tag().replace(f"-{os.getpid()}@", f"-{int(dead.stdout)}@")
    dead_tmp = tmp_path / f".a.npz.{dead_tag}xyz{files.TMP_SUFFIX}"
    live_tmp = tmp_path / f".b.npz.{owner_tag()}xyz{files.TMP_SUFFIX}"
    other = tmp_path / "c.npz"
    users = tmp_path / f".notes{files.TMP_SUFFIX}"  # not ours (no tag): kept, even when old
    for path in (dead_tmp, live_tmp, other, users):
        path.write_bytes(b"x")
    os.utime(users, (1, 1))
    assert files.remove_leftovers(tmp_path) == [dead_tmp]
    kept = sorted([live_tmp.name, "c.npz", users.name])
    assert sorted(p.name for p in tmp_path.iterdir()) == kept
    assert files.remove_leftovers(tmp_path / "missing") == []


def test_json_indent(tmp_path: Path) -> None:
    target = files.atomic_write_json(tmp_path / "b.json", {"a": [1]}, indent=1)
    assert target.read_text() == '{\n "a": [\n  1\n ]\n}\n'
    assert json.loads(target.read_text()) == {"a": [1]}


def test_temporary_dir_is_renamed_or_removed(tmp_path: Path) -> None:
    final = tmp_path / "out" / "set"
    with files.temporary_dir(final) as tmp:
        assert tmp.parent == final.parent and tmp.name.startswith(".set.")
        assert owner_tag() in tmp.name and tmp.name.endswith(files.TMP_SUFFIX)
        assert stat.S_IMODE(tmp.stat().st_mode) == 0o755
        (tmp / "a.jpg").write_bytes(b"x")
        os.replace(tmp, final)
    assert [p.name for p in final.iterdir()] == ["a.jpg"]
    with pytest.raises(Crash), files.temporary_dir(final) as tmp:
        (tmp / "b.jpg").write_bytes(b"x")
        raise Crash
    assert sorted(p.name for p in final.parent.iterdir()) == ["set"]  # the failed one is gone
