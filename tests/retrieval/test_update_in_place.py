"""Index types that can remove items are changed in place by an update, and then answer as a
fresh build of the same collection does: hnswlib (labels reused), Faiss code arrays (rows
closed up) and Faiss IVF (ids reused); the others are rebuilt from the cached vectors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from search_lab.cli import build_index, compose_config
from search_lab.indexes import create, plan_edit
from search_lab.indexes.editing import COMPACT, SLOTS
from search_lab.retrieval import SearchEngine

ROOT = Path(__file__).resolve().parents[2]
IN_PLACE = {  # overrides -> the edit mode an update uses
    "hnsw": (("index=hnsw",), SLOTS),
    "faiss-flat": (("index=faiss", "index.factory=Flat"), COMPACT),
    "faiss-ivf": (("index=faiss", "index.factory='IVF1,Flat'"), SLOTS),
}


def test_plan_edit_layouts_by_hand() -> None:
    # 6 old rows, rows 1 and 4 removed, one fresh vector: 5 rows after
    compact = plan_edit(COMPACT, 6, [0, 2, 3, 5], 1)
    assert compact.sources.tolist() == [0, 2, 3, 5, -1]  # kept close up, fresh appended
    assert (compact.drop.tolist(), compact.put.tolist(), compact.moved) == ([1, 4], [4], 0)
    slots = plan_edit(SLOTS, 6, [0, 2, 3, 5], 1)
    assert slots.sources.tolist() == [0, -1, 2, 3, 5]  # fresh into hole 1, row 5 moves to 4
    assert (slots.drop.tolist(), slots.put.tolist(), slots.moved) == ([1, 4, 5], [1, 4], 1)
    grown = plan_edit(SLOTS, 3, [0, 2], 3)  # row 1 removed, 3 fresh: label 1, then 3 and 4
    assert grown.sources.tolist() == [0, -1, 2, -2, -3]
    assert (grown.drop.tolist(), grown.put.tolist()) == ([1], [1, 3, 4])
    with pytest.raises(ValueError, match="unknown edit mode"):
        plan_edit("rebuild", 3, [0], 0)


def _apply(index, old: np.ndarray, keep: list[int], fresh: np.ndarray, mode: str) -> np.ndarray:
    """Edit ``index`` (built on ``old``) into keep + fresh; returns the vectors in row order."""
    edit = plan_edit(mode, len(old), keep, len(fresh))
    both = np.concatenate([old, fresh])
    rows = np.where(edit.sources >= 0, edit.sources, len(old) - 1 - edit.sources)
    index.edit(edit.drop, edit.put, both[rows[edit.put]])
    return both[rows]


@pytest.mark.parametrize(
    ("kind", "params", "mode"),
    [
        ("hnsw", {}, SLOTS),
        ("faiss", {"factory": "Flat"}, COMPACT),
        ("faiss", {"factory": "PQ4x4"}, COMPACT),
        ("faiss", {"factory": "IVF2,Flat", "nprobe": 2}, SLOTS),
    ],
)
def test_an_edited_index_answers_as_a_fresh_build(
    kind: str, params: dict, mode: str, tmp_path: Path
) -> None:
    rng = np.random.default_rng(7)
    old, fresh = rng.random((120, 8), np.float32), rng.random((3, 8), np.float32)
    index = create(kind, metric="euclidean", **params)
    index.build(old)
    assert index.edit_mode(121) == mode
    removed = [5, 119]
    keep = [i for i in range(120) if i not in removed]
    now = _apply(index, old, keep, fresh, mode)
    index.save(tmp_path)  # and back: the record holds what the edited index holds
    again = create(kind, metric="euclidean", **params)
    again.load(tmp_path)
    assert again.size == 121
    fresh_build = create(kind, metric="euclidean", **params)
    fresh_build.build(now)
    if kind == "faiss" and "PQ" in params["factory"]:  # other codebooks: compare to the exact
        fresh_build = create("exact", metric="euclidean")
        fresh_build.build(again.stored_rows(0, 121))
    ids, dists = again.search(now, 10)
    want_ids, want_d = fresh_build.search(now, 10)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(dists, want_d, rtol=1e-4, atol=1e-4)
    # a removed vector is never found again: its nearest item is another one
    gone, _ = again.search(old[removed], 121)
    assert set(gone.ravel().tolist()) <= set(range(121))
    if kind != "faiss" or "PQ" not in params["factory"]:
        assert not np.isin(now, old[removed]).all(axis=1).any()


def test_shrinking_an_hnsw_index_moves_the_last_items_down() -> None:
    rng = np.random.default_rng(3)
    old = rng.random((20, 6), np.float32)
    index = create("hnsw", metric="euclidean")
    index.build(old)
    keep = [i for i in range(20) if i not in (2, 7, 11)]  # 3 removed, 1 added: 18 rows
    now = _apply(index, old, keep, rng.random((1, 6), np.float32), SLOTS)
    assert (index.size, index.slots) == (18, 20)  # labels 18, 19 stay in the graph, deleted
    ids, dists = index.search(now, 18)
    assert np.array_equal(ids[:, 0], np.arange(18)) and np.allclose(dists[:, 0], 0, atol=1e-3)
    assert set(ids.ravel().tolist()) == set(range(18))  # deleted labels are never answered


def test_graphs_and_adapted_ivf_lists_cannot_be_edited() -> None:
    vectors = np.random.default_rng(1).random((200, 8), np.float32)
    graph = create("faiss", metric="euclidean", factory="HNSW16")
    graph.build(vectors)
    assert graph.edit_mode(200) is None  # Faiss cannot remove from its HNSW graph
    ivf = create("faiss", metric="euclidean", factory="IVF8,Flat")
    ivf.build(vectors)  # 200 < 8 * 39 vectors: lists lowered to 200 // 39 = 5
    assert ivf.built_factory == "IVF5,Flat"
    assert ivf.edit_mode(195) == SLOTS  # 195 // 39 = 5 lists still
    assert ivf.edit_mode(234) is None  # 234 // 39 = 6 lists: the record would not match
    assert (
        ivf.why_not_in_place(234) == "it was built as IVF5,Flat, at 234 items it would be IVF6,Flat"
    )
    assert graph.why_not_in_place(200) == "Faiss cannot remove items from HNSW16"
    assert create("kdtree", metric="euclidean").edit_mode(10) is None


# --- through build_index, on real photos -------------------------------------------------------


@pytest.fixture
def photos(tmp_path: Path, holidays_dir: Path) -> Path:
    """Ten real photos in two folders (a plain collection)."""
    root = tmp_path / "photos"
    for i, name in enumerate(sorted(os.listdir(holidays_dir))[:10]):
        folder = root / ("2023" if i < 5 else "2024")
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(holidays_dir / name, folder / f"IMG_{i:02d}.jpg")
    return root


def build(tmp_path: Path, root: Path, capsys, target: str, *extra: str) -> str:
    """build_index into ``tmp_path/target``; returns its summary line."""
    overrides = [
        f"dataset.root={root}", f"index_dir={tmp_path / target}", f"cache_dir={tmp_path / 'cache'}",
        "progress=false", "workers=1", "refit_share=1.0", *extra,
    ]  # fmt: skip
    build_index.run(compose_config(overrides, "build_index"), tmp_path / "out")
    return capsys.readouterr().out.splitlines()[0]


def answers(directory: Path, root: Path) -> dict[str, list[tuple[str, float]]]:
    """Every photo of ``root`` as a query: the ranked (name, distance) of the whole index."""
    engine = SearchEngine.load(directory)
    return {
        str(p.relative_to(root)): [
            (h.name, round(h.distance, 4)) for h in engine.query(p, k=len(engine.names))[0]
        ]
        for p in sorted(root.rglob("*.jpg"))
    }


def _update_of(directory: Path) -> dict:
    return json.loads((directory / "manifest.json").read_text())["update"]


@pytest.mark.parametrize("case", sorted(IN_PLACE))
def test_add_3_remove_2_in_place_equals_a_fresh_build(
    case: str, tmp_path: Path, photos: Path, holidays_dir: Path, capsys
) -> None:
    extra, mode = IN_PLACE[case]
    build(tmp_path, photos, capsys, "index", *extra)
    for i, name in enumerate(sorted(os.listdir(holidays_dir))[20:23]):
        shutil.copy(holidays_dir / name, photos / f"new_{i}.jpg")
    gone = [photos / "2023/IMG_01.jpg", photos / "2024/IMG_07.jpg"]
    kept_aside = tmp_path / "aside"
    kept_aside.mkdir()
    for path in gone:
        shutil.move(path, kept_aside / path.name)
    line = build(tmp_path, photos, capsys, "index", *extra)
    assert line.startswith("added 3, changed 0, removed 2, unchanged 8; extracted 3 images")
    update = _update_of(tmp_path / "index")
    assert update["in_place"] is True  # compact: 3 appended; slots: 2 labels reused, 1 new
    assert update["index"] == {"in_place": True, "mode": mode, "dropped": 2, "put": 3, "moved": 0}
    build(tmp_path, photos, capsys, "fresh", *extra, "rebuild=true")
    assert answers(tmp_path / "index", photos) == answers(tmp_path / "fresh", photos)
    engine = SearchEngine.load(tmp_path / "index")
    for path in kept_aside.iterdir():  # a removed photo never comes back as a result
        hits, _ = engine.query(path, k=len(engine.names))
        assert len(hits) == 11 and path.name not in {Path(h.name).name for h in hits}
    # then 3 removed, 1 added: kept items past the new size move into the holes
    for path in (photos / "2023/IMG_00.jpg", photos / "2023/IMG_02.jpg", photos / "new_0.jpg"):
        path.unlink()
    shutil.copy(kept_aside / "IMG_01.jpg", photos / "back.jpg")  # known content: not extracted
    line = build(tmp_path, photos, capsys, "index", *extra)
    assert line.startswith("added 1, changed 0, removed 3, unchanged 8; extracted 0 images")
    # by hand: labels 0, 1 (new_0), 2 go; slots: back.jpg takes 0, labels 9 and 10 move to 1, 2
    dropped, put, moved = (5, 3, 2) if mode == SLOTS else (3, 1, 0)
    how = _update_of(tmp_path / "index")["index"]
    assert (how["mode"], how["dropped"], how["put"], how["moved"]) == (mode, dropped, put, moved)
    if case == "hnsw":  # 11 items in the graph, 2 of them deleted waypoints; 9 answered
        record = json.loads((tmp_path / "index/hnsw.json").read_text())
        assert (record["size"], record["slots"]) == (9, 11)
    build(tmp_path, photos, capsys, "fresh", *extra, "rebuild=true")
    assert answers(tmp_path / "index", photos) == answers(tmp_path / "fresh", photos)
    fit = json.loads((tmp_path / "index/manifest.json").read_text())["index_fit"]
    assert (fit["images"], fit["changed_since"]) == (10, 9)  # built on 10; 5 + 4 changes since


def test_an_index_that_cannot_remove_or_changed_too_much_is_rebuilt_saying_why(
    tmp_path: Path, photos: Path, holidays_dir: Path, capsys
) -> None:
    graph = ("index=faiss", "index.factory=HNSW16")
    build(tmp_path, photos, capsys, "index", *graph)
    (photos / "2024/IMG_09.jpg").unlink()
    build(tmp_path, photos, capsys, "index", *graph)
    update = _update_of(tmp_path / "index")
    assert update["in_place"] is False
    assert (
        update["index"]["why"]
        == "faiss index not changed in place: Faiss cannot remove items from HNSW16"
    )
    build(tmp_path, photos, capsys, "h", "index=hnsw", "refit_share=0.2")
    for i in range(3):
        (photos / f"2023/IMG_0{i}.jpg").unlink()  # 3 of the 9 left: 33% > 20%
    build(tmp_path, photos, capsys, "h", "index=hnsw", "refit_share=0.2")
    why = _update_of(tmp_path / "h")["index"]["why"]
    assert why == "3 images changed since it was built on 9 (over 0.2)"
    fit = json.loads((tmp_path / "h/manifest.json").read_text())["index_fit"]
    assert (fit["images"], fit["changed_since"]) == (6, 0)


def _kept_then_finished(tmp_path: Path, photos: Path, capsys, before: dict, removed: str) -> str:
    """Check that the failed update left the previous index whole (``removed`` still in it, the
    same answers), then rerun it in place; returns the rerun's summary line."""
    old = SearchEngine.load(tmp_path / "index")
    assert len(old.names) == 10 and removed in old.names
    now = answers(tmp_path / "index", photos)
    assert {k: v for k, v in now.items() if k in before} == {
        k: v for k, v in before.items() if k in now
    }
    line = build(tmp_path, photos, capsys, "index", "index=hnsw")  # the next run does the job
    assert _update_of(tmp_path / "index")["in_place"] is True
    return line


def test_an_in_place_update_that_fails_before_the_swap_leaves_the_old_index(
    tmp_path: Path, photos: Path, holidays_dir: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    build(tmp_path, photos, capsys, "index", "index=hnsw")
    before = answers(tmp_path / "index", photos)
    (photos / "2024/IMG_08.jpg").unlink()
    shutil.copy(holidays_dir / sorted(os.listdir(holidays_dir))[30], photos / "new.jpg")

    def full_disk(*args, **kwargs) -> None:
        raise OSError(28, "No space left on device", "hnsw.bin")

    monkeypatch.setattr(SearchEngine, "save", full_disk)
    with pytest.raises(OSError, match="the previous index is kept"):
        build(tmp_path, photos, capsys, "index", "index=hnsw")
    monkeypatch.undo()
    line = _kept_then_finished(tmp_path, photos, capsys, before, "2024/IMG_08.jpg")
    assert line.startswith("added 1, changed 0, removed 1, unchanged 9")


def test_kill_9_of_an_in_place_update_before_its_swap_then_rerun(
    tmp_path: Path, photos: Path, holidays_dir: Path, capsys
) -> None:
    build(tmp_path, photos, capsys, "index", "index=hnsw")
    before = answers(tmp_path / "index", photos)
    (photos / "2023/IMG_03.jpg").unlink()
    shutil.copy(holidays_dir / sorted(os.listdir(holidays_dir))[31], photos / "new.jpg")
    staged = tmp_path / "staged"
    code = f"""
import sys, time, pathlib
from search_lab.core import swap
def held(new, directory):  # the changed index is written whole: stop right before the swap
    pathlib.Path({str(staged)!r}).write_text(str(new))
    time.sleep(300)
swap.replace_dir = held
from search_lab.cli.glue import entry
from search_lab.cli.build_index import main
sys.argv = ['build_index', *sys.argv[1:]]
entry(main, 'build_index')
"""
    args = [
        f"dataset.root={photos}", f"index_dir={tmp_path / 'index'}", "index=hnsw",
        f"cache_dir={tmp_path / 'cache'}", "progress=false", "workers=1", "refit_share=1.0",
        f"hydra.run.dir={tmp_path / 'out'}",
    ]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not staged.exists():
        assert proc.poll() is None, "the update ended before it could be killed"
        time.sleep(0.05)
    proc.kill()  # SIGKILL, the new folder staged beside the old one
    proc.wait()
    assert Path(staged.read_text()).is_dir()  # left behind by the kill
    line = _kept_then_finished(tmp_path, photos, capsys, before, "2023/IMG_03.jpg")
    assert line.startswith("added 1, changed 0, removed 1, unchanged 9; extracted 0 images")
    assert not Path(staged.read_text()).exists()  # the killed run's staging folder is gone
    build(tmp_path, photos, capsys, "fresh", "index=hnsw", "rebuild=true")
    assert answers(tmp_path / "index", photos) == answers(tmp_path / "fresh", photos)
