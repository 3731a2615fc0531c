"""Index folders trust nothing read from disk: checksums, manifest shape, confined paths, swaps.

Engines come from ``tests.retrieval.test_engine.make_engine`` (small seeded vectors, no images); the
kill tests run a child process that SIGKILLs itself at the dangerous moment of a replacement.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from search_lab.core import (
    MANIFEST,
    IndexMismatchError,
    integrity,
    read_json_object,
    swap,
    write_json,
)
from search_lab.retrieval import SearchEngine, list_engines, scan_engines
from tests.retrieval.test_engine import ANNOY, EXACT, make_engine, vectors

REPO = Path(__file__).resolve().parents[2]


def flip(path: Path, offset: int, n: int = 4096) -> None:
    """Invert ``n`` bytes of ``path`` from ``offset`` (clamped to the file): same size."""
    data = bytearray(path.read_bytes())
    start = min(offset, max(0, len(data) - n))
    data[start : start + n] = bytes(b ^ 0xFF for b in data[start : start + n])
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("index", "name"),
    [
        (EXACT, "vectors.npy"),
        (EXACT, "exact.json"),
        (ANNOY, "annoy.ann"),
        (ANNOY, "annoy.json"),
        (ANNOY, "post.npz"),
    ],
)
def test_flipped_bytes_of_a_same_size_file_are_caught(
    tmp_path: Path, index: dict[str, Any], name: str
) -> None:
    target = make_engine(vectors(400, 16), index).save(tmp_path / "engine")
    size = (target / name).stat().st_size
    flip(target / name, size // 2, n=min(4096, size // 4))
    assert (target / name).stat().st_size == size
    with pytest.raises(IndexMismatchError, match=rf"{name} is damaged: its xxh3_128 checksum"):
        SearchEngine.load(target)


@pytest.mark.parametrize("content", [b"", b"\x93NUMPY\x01\x00v\x00{'descr'"], ids=["empty", "cut"])
@pytest.mark.parametrize("verify", [True, False], ids=["full", "sizes-only"])
def test_truncated_or_empty_vectors_is_one_clear_line(
    tmp_path: Path, content: bytes, verify: bool
) -> None:
    target = make_engine(vectors(), EXACT).save(tmp_path / "engine")
    (target / "vectors.npy").write_bytes(content)
    with pytest.raises(IndexMismatchError, match=r"vectors.npy has \d+ bytes, \d+ were written"):
        SearchEngine.load(target, verify=verify)


@pytest.mark.parametrize("content", [b"", b"\x93NUMPY\x01\x00v\x00{'descr'"], ids=["empty", "cut"])
def test_exact_index_reports_an_unreadable_matrix(tmp_path: Path, content: bytes) -> None:
    from search_lab.indexes import ExactIndex

    index = ExactIndex(metric="cosine")
    index.build(vectors())
    index.save(tmp_path)
    (tmp_path / "vectors.npy").write_bytes(content)
    with pytest.raises(IndexMismatchError, match=r"vectors\.npy is truncated or not a numpy"):
        ExactIndex(metric="cosine").load(tmp_path)


@pytest.mark.parametrize("index", [EXACT, ANNOY], ids=["exact", "annoy"])
def test_edited_metric_is_checked_against_the_stored_data(
    tmp_path: Path, index: dict[str, Any]
) -> None:
    target = make_engine(vectors(), index).save(tmp_path / "engine")
    manifest = read_json_object(target / MANIFEST)
    manifest["config"]["metric"] = {"name": "euclidean"}
    write_json(target / MANIFEST, manifest)
    with pytest.raises(IndexMismatchError, match="was built for metric 'cosine'"):
        SearchEngine.load(target)


def test_sizes_only_verification_reads_no_byte(tmp_path: Path) -> None:
    target = make_engine(vectors(400, 16), EXACT).save(tmp_path / "engine")
    flip(target / "vectors.npy", 1000, 64)  # in the data, past the header
    assert len(SearchEngine.load(target, verify=False).names) == 400  # the cheap mode's limit
    with pytest.raises(IndexMismatchError, match="damaged"):
        SearchEngine.load(target)


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the files hashed from now on; files count as settled at once (no racy window)."""
    names: list[str] = []
    real = integrity.file_digest

    def counting(path: str | os.PathLike) -> str:
        names.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(integrity, "file_digest", counting)
    monkeypatch.setattr(integrity, "RACY_NS", 0)
    return names


def test_files_unchanged_since_verified_are_not_hashed_again(
    tmp_path: Path, hashed: list[str]
) -> None:
    target = make_engine(vectors(400, 16), ANNOY).save(tmp_path / "engine")
    hashed.clear()  # saving hashed the new files once to record them
    SearchEngine.load(target)
    assert sorted(hashed) == ["annoy.ann", "annoy.json", "post.npz"]
    assert integrity.MEMO not in read_json_object(target / MANIFEST)["files"]
    hashed.clear()
    assert len(SearchEngine.load(target).names) == 400
    assert hashed == []  # one stat per file
    SearchEngine.load(target, rehash=True)
    assert sorted(hashed) == ["annoy.ann", "annoy.json", "post.npz"]


def test_damage_after_verification_is_caught_even_with_the_old_mtime(
    tmp_path: Path, hashed: list[str]
) -> None:
    target = make_engine(vectors(400, 16), EXACT).save(tmp_path / "engine")
    SearchEngine.load(target)  # verified and remembered
    data = target / "vectors.npy"
    before = data.stat()
    flip(data, 1000, 64)
    os.utime(data, ns=(before.st_atime_ns, before.st_mtime_ns))  # hide the write's time
    assert (data.stat().st_mtime_ns, data.stat().st_size) == (before.st_mtime_ns, before.st_size)
    with pytest.raises(IndexMismatchError, match=r"vectors\.npy is damaged"):
        SearchEngine.load(target)  # ctime moved: the kernel sets it on every change


def test_a_copied_folder_is_verified_afresh(tmp_path: Path, hashed: list[str]) -> None:
    target = make_engine(vectors(400, 16), EXACT).save(tmp_path / "engine")
    SearchEngine.load(target)
    copy = Path(shutil.copytree(target, tmp_path / "copy", copy_function=shutil.copy2))
    hashed.clear()
    SearchEngine.load(copy)  # same names, sizes and mtimes; other inodes
    assert sorted(hashed) == ["exact.json", "post.npz", "vectors.npy"]


@pytest.mark.parametrize("memo", [b"{not json", b"[1, 2]", b'{"vectors.npy": [0, 0, 0, 0, 0, ""]}'])
def test_a_broken_memo_means_hashing_again(tmp_path: Path, hashed: list[str], memo: bytes) -> None:
    target = make_engine(vectors(400, 16), EXACT).save(tmp_path / "engine")
    (target / integrity.MEMO).write_bytes(memo)
    flip(target / "vectors.npy", 1000, 64)
    with pytest.raises(IndexMismatchError, match="damaged"):
        SearchEngine.load(target)


def test_files_written_within_the_racy_window_are_not_remembered(tmp_path: Path) -> None:
    target = make_engine(vectors(400, 16), EXACT).save(tmp_path / "engine")
    SearchEngine.load(target)  # just written: a same-tick change would not move their times
    memo = target / integrity.MEMO
    assert not memo.exists() or json.loads(memo.read_bytes()) == {}


def test_a_memo_that_cannot_be_written_only_costs_hashing(
    tmp_path: Path, hashed: list[str]
) -> None:
    target = make_engine(vectors(400, 16), EXACT).save(tmp_path / "engine")
    (target / integrity.MEMO).mkdir()  # a write over it fails even as root, unlike chmod
    hashed.clear()
    SearchEngine.load(target)
    SearchEngine.load(target)
    assert len(hashed) == 6 and (target / integrity.MEMO).is_dir()
    assert [p.name for p in target.iterdir() if p.name.endswith(".tmp")] == []


def test_record_and_problem_known_answers(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"abc")
    recorded = integrity.record(tmp_path)
    assert recorded == {"a.bin": {"bytes": 3, "xxh3_128": "06b05ab6733a618578af5f94892f3950"}}
    assert integrity.problem(tmp_path, recorded) is None
    assert "records no checksums" in str(integrity.problem(tmp_path, {}))
    escape = {"../a.bin": {"bytes": 3, "xxh3_128": "x"}}
    assert "not a file name" in str(integrity.problem(tmp_path, escape))


# --- manifest shape and confinement -------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: [m], "holds list instead of an object"),
        (lambda m: {k: v for k, v in m.items() if k != "config"}, "'config' must be an object"),
        (lambda m: {**m, "names": "001.jpg"}, "'names' must be a list"),
        (lambda m: {**m, "names": [1, 2]}, "'names' must hold file names"),
        (lambda m: {**m, "dim": "12"}, "'dim' must be a positive integer"),
        (lambda m: {**m, "config": {**m["config"], "metric": "cosine"}}, "'config.metric'"),
        (lambda m: {**m, "config": {**m["config"], "dataset": [1]}}, "'config.dataset' must"),
        (lambda m: {**m, "format": 1}, "has index format 1, expected 2"),
    ],
    ids=[
        "list",
        "no-config",
        "names-str",
        "names-ints",
        "dim-str",
        "metric-str",
        "dataset-list",
        "old-format",
    ],
)
def test_wrong_shape_manifest_is_one_broken_index(tmp_path: Path, edit, message: str) -> None:
    make_engine(vectors(), EXACT).save(tmp_path / "good")
    broken = make_engine(vectors(), EXACT).save(tmp_path / "broken")
    (broken / MANIFEST).write_text(
        __import__("json").dumps(edit(read_json_object(broken / MANIFEST)))
    )
    with pytest.raises(IndexMismatchError, match=message):
        SearchEngine.load(broken)
    good, problems = scan_engines(tmp_path)
    assert [p.name for p in good] == ["good"]
    assert list(problems) == [broken] and message.split("'")[0] in problems[broken]
    assert [p.name for p in list_engines(tmp_path)] == ["good"]


def _save_with_root(tmp_path: Path, root: Path, names: list[str] | None = None) -> Path:
    engine = make_engine(vectors(3), EXACT)
    engine.manifest.update(root=str(root), names=names or ["a.jpg", "b.jpg", "c.jpg"])
    return engine.save(tmp_path / "index")


def test_names_leading_outside_the_dataset_are_refused(tmp_path: Path) -> None:
    target = _save_with_root(tmp_path, tmp_path / "data", ["a.jpg", "../../../../tmp/x.jpg", "c"])
    with pytest.raises(IndexMismatchError, match=r"'../../../../tmp/x.jpg' leads outside"):
        SearchEngine.load(target)
    target = _save_with_root(tmp_path, tmp_path / "data", ["a.jpg", "/etc/passwd", "c"])
    with pytest.raises(IndexMismatchError, match="'/etc/passwd' leads outside"):
        SearchEngine.load(target)


def test_root_outside_the_served_folders_is_refused(tmp_path: Path) -> None:
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    target = _save_with_root(tmp_path, elsewhere)
    with pytest.raises(IndexMismatchError, match="is outside the folders this program serves"):
        SearchEngine.load(target, roots=[data])
    assert SearchEngine.load(target, roots=[elsewhere]).path_of("b.jpg") == elsewhere / "b.jpg"
    inside = _save_with_root(tmp_path, tmp_path / "index" / "images")  # the index folder is fine
    assert SearchEngine.load(inside, roots=[data]).names == ["a.jpg", "b.jpg", "c.jpg"]


# --- replacement never leaves the folder missing ----------------------------------------------


def _replace_and_die(target: Path, *, renameat2: bool) -> subprocess.CompletedProcess:
    """In a child: replace ``target`` by a 90-item engine, SIGKILLed at the dangerous moment.

    The moment is right after the first rename (the two-rename fallback has moved the old
    folder aside, the new one is not in place yet) or, with renameat2, right after the swap
    (before the old copy is deleted).
    """
    script = textwrap.dedent(
        f"""
        import os, shutil, signal
        from search_lab.retrieval import engine
        from search_lab.core import swap
        from tests.retrieval.test_engine import ANNOY, make_engine, vectors

        real_replace = os.replace
        def replace_then_die(src, dst):
            real_replace(src, dst)
            if os.path.isdir(dst):  # a folder moved, not one of the files written inside
                os.kill(os.getpid(), signal.SIGKILL)
        os.replace = replace_then_die
        shutil.rmtree = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
        swap.discard_index = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
        if not {renameat2!r}:
            swap.exchange = lambda a, b: False
        make_engine(vectors(90, seed=1), ANNOY).save({str(target)!r})
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, timeout=120)


@pytest.mark.parametrize("renameat2", [True, False], ids=["renameat2", "two-renames"])
def test_kill_during_replacement_never_loses_the_index(tmp_path: Path, renameat2: bool) -> None:
    if renameat2 and swap._RENAMEAT2 is None:
        pytest.skip("no renameat2 on this system")
    target = make_engine(vectors(40), ANNOY).save(tmp_path / "engine")
    done = _replace_and_die(target, renameat2=renameat2)
    assert done.returncode == -signal.SIGKILL
    assert target.exists() == renameat2  # the fallback's dangerous moment: folder missing
    expected = 90 if renameat2 else 40  # swapped in one step, or the old copy put back
    assert [p.name for p in list_engines(tmp_path)] == ["engine"]
    assert len(SearchEngine.load(target).names) == expected
    make_engine(vectors(7), EXACT).save(target)  # the next build works and cleans up
    assert len(SearchEngine.load(target).names) == 7


def test_load_recovers_the_folder_left_aside(tmp_path: Path) -> None:
    target = make_engine(vectors(40), EXACT).save(tmp_path / "engine")
    os.replace(target, swap.aside_name(target))  # the state a kill between the renames leaves
    assert not target.exists()
    assert len(SearchEngine.load(target).names) == 40
    assert sorted(p.name for p in tmp_path.iterdir()) == ["engine"]


def test_next_build_deletes_old_copies_left_aside(tmp_path: Path) -> None:
    target = make_engine(vectors(40), EXACT).save(tmp_path / "engine")
    shutil.copytree(target, swap.aside_name(target))  # killed after its second rename
    make_engine(vectors(9), EXACT).save(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["engine"]
    assert len(SearchEngine.load(target).names) == 9


def test_exchange_swaps_two_folders(tmp_path: Path) -> None:
    if swap._RENAMEAT2 is None:
        pytest.skip("no renameat2 on this system")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "from_a").write_text("a")
    assert swap.exchange(tmp_path / "a", tmp_path / "b")
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["from_a"]
    assert not list((tmp_path / "a").iterdir())
    np.testing.assert_equal(sorted(p.name for p in tmp_path.iterdir()), ["a", "b"])


@pytest.mark.parametrize(
    ("names", "bad"),
    [
        (["a.jpg", "b/c.jpg", "a..b.jpg", "x\n/y.jpg"], None),
        ([], None),
        (["a.jpg", ""], ""),
        (["", "a.jpg"], ""),
        (["a.jpg", "b/../../x.jpg"], "b/../../x.jpg"),
        (["/etc/passwd"], "/etc/passwd"),
        (["a.jpg", "x\0.jpg"], "x\0.jpg"),
    ],
)
def test_names_problem_known_answers(names: list[str], bad: str | None) -> None:
    from search_lab.core import names_problem

    problem = names_problem(names)
    assert (problem is None) if bad is None else f"{bad!r} leads outside" in str(problem)
