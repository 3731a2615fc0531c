"""Issue 20, part A: never delete what search_lab did not write; handed-over index folders.

Each probe case of the issue is reproduced step by step: a folder with a foreign
``manifest.json`` given to ``build_index``, a data file replaced by garbage with every checksum
recomputed (as anyone handing a folder over can), a data file left out of the checksum list,
an Annoy index of a small collection, an NN-descent folder from before (a pickle).
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from search_lab.core import MANIFEST, ConfigError, IndexMismatchError, integrity, ownership
from search_lab.indexes import create
from search_lab.indexes.annoy_forest import leaf_capacity, loaded_trees
from search_lab.retrieval import SearchEngine
from tests.app.test_app import lab  # noqa: F401  (the app's lab fixture, for the app test)
from tests.retrieval.test_engine import ANNOY, EXACT, make_engine, vectors

REPO = Path(__file__).resolve().parents[2]
HNSW = {"name": "hnsw", "M": 8, "ef_construction": 40, "ef": 20, "seed": 1, "n_jobs": 1,
        "query_jobs": 1}  # fmt: skip
FAISS = {"name": "faiss", "factory": "HNSW8", "nprobe": 1, "ef": 16, "seed": 0, "threads": 1}
KDTREE = {"name": "kdtree", "leafsize": 16, "eps": 0.0, "n_jobs": 1}
NNDESCENT = {"name": "nndescent", "n_neighbors": 10, "epsilon": 0.1, "leaf_budget": 4,
             "seed": 1, "n_jobs": 1}  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


# --- 1. never delete what search_lab did not write ---------------------------------------------


def test_build_index_refuses_a_folder_with_a_foreign_manifest(tmp_path: Path) -> None:
    """The probe: ``mkdir -p u/src; echo '{"a":1}' > u/manifest.json; echo x > u/precious.txt``."""
    (tmp_path / "u" / "src").mkdir(parents=True)
    (tmp_path / "u" / "manifest.json").write_text('{"a":1}\n')
    (tmp_path / "u" / "precious.txt").write_text("x\n")
    done = subprocess.run(
        [sys.executable, "-m", "search_lab.build_index", "index_dir=u"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: u is not an index folder"), lines
    assert "'precious.txt'" in lines[0] and "manifest.json" in lines[0]
    assert "built" not in done.stdout
    assert (tmp_path / "u" / "precious.txt").read_text() == "x\n"
    assert (tmp_path / "u" / "src").is_dir()
    assert json.loads((tmp_path / "u" / "manifest.json").read_text()) == {"a": 1}


def test_an_index_holding_a_file_it_did_not_write_is_not_replaced(tmp_path: Path) -> None:
    target = make_engine(vectors(30), EXACT).save(tmp_path / "engine")
    (target / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"files its index did not write \('notes.txt'\)"):
        make_engine(vectors(20), ANNOY).save(target)
    assert (target / "notes.txt").read_text() == "mine"
    assert len(SearchEngine.load(target).names) == 30  # the old index is untouched


def test_replacing_an_index_removes_exactly_the_files_it_listed(tmp_path: Path) -> None:
    target = make_engine(vectors(30), ANNOY).save(tmp_path / "engine")
    manifest = json.loads((target / MANIFEST).read_text())
    assert manifest[ownership.MARKER_KEY] == "search_lab"
    assert set(manifest["files"]) == {"annoy.ann", "annoy.json", "post.npz"}
    make_engine(vectors(20), EXACT).save(target)
    assert sorted(p.name for p in target.iterdir() if p.name != integrity.MEMO) == [
        "exact.json", "manifest.json", "post.npz", "vectors.npy",
    ]  # fmt: skip
    assert [p.name for p in tmp_path.iterdir()] == ["engine"]  # no old copy left beside it


def test_a_file_added_after_the_check_survives_the_removal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = make_engine(vectors(30), EXACT).save(tmp_path / "old")
    allowed, _ = ownership.listed_files(old)
    (old / "late.txt").write_text("written meanwhile")
    with caplog.at_level(logging.WARNING):
        left = ownership.remove_listed(old, allowed)
    assert left == ["late.txt"] and (old / "late.txt").is_file()
    assert sorted(p.name for p in old.iterdir()) == ["late.txt"]
    assert "kept: it holds files no index listed ('late.txt')" in caplog.text


@pytest.mark.parametrize(
    ("files", "manifest", "expected"),
    [
        ({}, None, None),
        ({"a.txt": "x"}, None, "it holds no manifest.json of an index ('a.txt')"),
        ({"sub/a.txt": "x"}, {"format": 2}, "search_lab did not write (no 'written_by'"),
        ({}, [1, 2], "did not write (no index format 2)"),
        ({}, "not json", "a manifest.json that is not JSON"),
        ({}, {"format": 2, "written_by": "search_lab"}, "without its list of files"),
        (
            {"x.npy": "1", "y/z": "2"},
            {"format": 2, "written_by": "search_lab", "files": {"x.npy": {}}},
            "did not write ('y/')",
        ),
        ({"x.npy": "1"}, {"format": 2, "written_by": "search_lab", "files": {"x.npy": {}}}, None),
    ],
)
def test_folder_problem_names_what_it_found(
    tmp_path: Path, files: dict[str, str], manifest: Any, expected: str | None
) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    if manifest is not None:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        (folder / MANIFEST).write_text(text)
    problem = ownership.folder_problem(folder)
    assert problem is None if expected is None else expected in problem


def test_folders_saved_before_the_marker_are_still_recognised(tmp_path: Path) -> None:
    target = make_engine(vectors(30), EXACT).save(tmp_path / "engine")
    manifest = json.loads((target / MANIFEST).read_text())
    del manifest[ownership.MARKER_KEY]
    (target / MANIFEST).write_text(json.dumps(manifest))
    assert ownership.folder_problem(target) is None
    make_engine(vectors(20), EXACT).save(target)
    assert len(SearchEngine.load(target).names) == 20


def test_a_file_is_not_a_folder_to_replace(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="it is not a folder"):
        make_engine(vectors(20), EXACT).save(tmp_path / "f")
    assert (tmp_path / "f").read_text() == "x"


def test_an_empty_folder_is_replaced_without_leaving_anything_beside(tmp_path: Path) -> None:
    (tmp_path / "engine").mkdir()
    make_engine(vectors(20), EXACT).save(tmp_path / "engine")
    assert [p.name for p in tmp_path.iterdir()] == ["engine"]


def test_old_untagged_temporaries_beside_an_index_are_kept(tmp_path: Path) -> None:
    """Only staging folders named with a writer's tag (``@host-pid@``) are cleaned up."""
    mine = tmp_path / ".engine.backup.tmp"
    mine.mkdir()
    (mine / "a.txt").write_text("x")
    os.utime(mine / "a.txt", (1, 1))
    os.utime(mine, (1, 1))
    make_engine(vectors(20), EXACT).save(tmp_path / "engine")
    assert (mine / "a.txt").read_text() == "x"


# --- 3. Annoy at any size ----------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "manhattan", "dot"])
def test_annoy_loads_and_searches_every_small_collection(tmp_path: Path, metric: str) -> None:
    dim, n_trees = 4, 3
    capacity = dim + (3 if metric == "dot" else 2)
    assert leaf_capacity(dim, "dot" if metric == "dot" else "angular") == capacity
    for n in range(1, dim + 4):
        items = np.random.default_rng(n).normal(size=(n, dim)).astype(np.float32)
        built = create("annoy", metric=metric, n_trees=n_trees, seed=0)
        built.build(items)
        (tmp_path / f"{n}").mkdir()
        built.save(tmp_path / f"{n}")
        loaded = create("annoy", metric=metric, n_trees=n_trees, seed=0)
        loaded.load(tmp_path / f"{n}")  # refused before: "holds 5 trees, but ... says 3"
        reported = loaded._forest.get_n_trees()
        if n <= capacity:
            assert reported == (2 * n_trees - 1 if n > 1 else reported) and reported > n_trees
        else:
            assert reported == n_trees
        ids, _ = loaded.search(items, n)
        assert sorted(ids[0]) == list(range(n))


def test_loaded_tree_counts_by_hand() -> None:
    assert loaded_trees(1, 4, "angular", 3) == {6, 7}
    assert loaded_trees(2, 4, "angular", 3) == {5}
    assert loaded_trees(6, 4, "euclidean", 3) == {5}  # 6 = 4 + 2 items fit in one node
    assert loaded_trees(7, 4, "euclidean", 3) == {3}
    assert loaded_trees(7, 4, "dot", 3) == {5}  # dot nodes hold one float more
    assert loaded_trees(8, 4, "dot", 3) == {3}


def test_annoy_cnn_sized_index_of_200_items_builds_loads_and_searches(tmp_path: Path) -> None:
    """1,280-d like the CNN features, 200 images: refused on load before ("holds 99 trees")."""
    items = np.random.default_rng(0).normal(size=(200, 1280)).astype(np.float32)
    target = make_engine(items, {**ANNOY, "n_trees": 50}).save(tmp_path / "cnn")
    engine = SearchEngine.load(target)
    assert engine.index._forest.get_n_trees() == 99
    ids, dist = engine.index.search(items[:5], 3)
    assert list(ids[:, 0]) == [0, 1, 2, 3, 4] and np.allclose(dist[:, 0], 0, atol=1e-5)


def test_annoy_with_another_tree_count_is_still_refused(tmp_path: Path) -> None:
    target = make_engine(vectors(300, 8), {**ANNOY, "n_trees": 5}).save(tmp_path / "e")
    manifest = json.loads((target / MANIFEST).read_text())
    manifest["config"]["index"]["n_trees"] = 7
    (target / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatchError, match="holds 5 trees, but the configuration says 7"):
        SearchEngine.load(target)


# --- 4. damaged data files, checksum list ------------------------------------------------------


def recompute_checksums(folder: Path, data: str, record: str | None) -> None:
    """What a hostile hand-over does: the record's size and digest, then the manifest's list."""
    if record:
        meta = json.loads((folder / record).read_text())
        meta["bytes"] = (folder / data).stat().st_size
        if integrity.HASH in meta:
            meta[integrity.HASH] = integrity.file_digest(folder / data)
        (folder / record).write_text(json.dumps(meta))
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"] = integrity.record(folder, skip=frozenset({MANIFEST}))
    (folder / MANIFEST).write_text(json.dumps(manifest))


GARBAGE_CASES = [
    (HNSW, "hnsw.bin", "hnsw.json", "cannot be read as a hnsw index"),
    (FAISS, "faiss.index", "faiss.json", "cannot be read as a faiss index"),
    (KDTREE, "kdtree.npy", "kdtree.json", "kdtree.npy is not a numpy array file"),
    (ANNOY, "annoy.ann", "annoy.json", "annoy.ann (holds|cannot be read by Annoy)"),
]


@pytest.mark.parametrize("size", ["same", "other"])
@pytest.mark.parametrize(("index", "data", "record", "message"), GARBAGE_CASES,
                         ids=[c[0]["name"] for c in GARBAGE_CASES])  # fmt: skip
def test_a_data_file_replaced_by_garbage_is_one_line(
    tmp_path: Path, index: dict, data: str, record: str, message: str, size: str
) -> None:
    target = make_engine(vectors(300, 16), index, metric="euclidean").save(tmp_path / "e")
    length = (target / data).stat().st_size if size == "same" else 1000
    (target / data).write_bytes(np.random.default_rng(0).bytes(length))
    recompute_checksums(target, data, record)
    with pytest.raises(IndexMismatchError, match=message) as err:
        SearchEngine.load(target)
    assert "\n" not in str(err.value) and str(target / data) in str(err.value)


LEFT_OUT = [(EXACT, "vectors.npy"), (ANNOY, "annoy.json"), (KDTREE, "kdtree.npy"),
            (EXACT, "post.npz")]  # fmt: skip


@pytest.mark.parametrize(("index", "left_out"), LEFT_OUT)
def test_a_data_file_left_out_of_the_checksum_list_is_refused(
    tmp_path: Path, index: dict, left_out: str
) -> None:
    """Before: the file was served unverified (NaN rows from a damaged matrix, exit 0)."""
    target = make_engine(vectors(40), index, metric="euclidean").save(tmp_path / "e")
    manifest = json.loads((target / MANIFEST).read_text())
    del manifest["files"][left_out]
    (target / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatchError, match=rf"{left_out} is not in the checksum list"):
        SearchEngine.load(target)


def test_garbage_npy_of_the_right_shape_is_refused_by_the_kdtree(tmp_path: Path) -> None:
    target = make_engine(vectors(50, 6), KDTREE, metric="euclidean").save(tmp_path / "e")
    np.save(target / "kdtree.npy", np.full((50, 6), np.nan, np.float32))
    recompute_checksums(target, "kdtree.npy", "kdtree.json")
    with pytest.raises(IndexMismatchError, match=r"kdtree\.npy holds float32 values that are not"):
        SearchEngine.load(target)


# --- 2. NN-descent without pickle --------------------------------------------------------------


@pytest.fixture(scope="module")
def nndescent_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One NN-descent engine folder (pynndescent compiles once per process)."""
    items = vectors(300, 16)
    return make_engine(items, NNDESCENT, metric="euclidean").save(
        tmp_path_factory.mktemp("nnd") / "e"
    )


@pytest.mark.slow  # pynndescent compiles with numba: 30 s to minutes under load
def test_nndescent_folder_holds_plain_arrays_and_answers_as_built(
    nndescent_folder: Path, tmp_path: Path
) -> None:
    names = sorted(p.name for p in nndescent_folder.iterdir() if p.name != integrity.MEMO)
    assert names == ["manifest.json", "nndescent.json", "nndescent.npz", "post.npz"]
    with np.load(nndescent_folder / "nndescent.npz", allow_pickle=False) as npz:
        assert all(npz[name].dtype != object for name in npz.files)
    built = create("nndescent", metric="euclidean", n_neighbors=10, leaf_budget=4, seed=1)
    built.build(vectors(300, 16))
    loaded = SearchEngine.load(nndescent_folder).index
    queries = vectors(20, 16, seed=7)
    (ids_a, d_a), (ids_b, d_b) = built.search(queries, 10), loaded.search(queries, 10)
    assert (ids_a == ids_b).all() and np.array_equal(d_a, d_b)
    exact = np.argsort(((queries[:, None] - vectors(300, 16)[None]) ** 2).sum(-1), axis=1)[:, :10]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids_b, exact, strict=True)])
    assert recall >= 0.95


@pytest.mark.slow
@pytest.mark.parametrize("size", ["same", "other"])
def test_nndescent_garbage_is_one_line(nndescent_folder: Path, tmp_path: Path, size: str) -> None:
    """Before: pickle.load on the garbage (UnpicklingError traceback, or code run if crafted)."""
    import shutil

    target = Path(shutil.copytree(nndescent_folder, tmp_path / "e"))
    length = (target / "nndescent.npz").stat().st_size if size == "same" else 1000
    (target / "nndescent.npz").write_bytes(np.random.default_rng(0).bytes(length))
    recompute_checksums(target, "nndescent.npz", "nndescent.json")
    with pytest.raises(IndexMismatchError, match=r"nndescent\.npz is not an NN-descent index"):
        SearchEngine.load(target)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("graph_indices", lambda a: a + 10_000, "search graph names items it does not hold"),
        ("knn_indices", lambda a: a * 0 + 300, "k-NN graph names items outside 0..299"),
        ("tree0_children", lambda a: np.where(a > 0, 0 * a + 1, a), "a node loop"),
        ("_vertex_order", lambda a: a * 0, "order"),
        ("_raw_data", lambda a: a * np.nan, "NaN or infinity"),
    ],
)
def test_nndescent_arrays_that_would_mislead_the_search_are_refused(
    nndescent_folder: Path, tmp_path: Path, name: str, change: Any, message: str
) -> None:
    import shutil

    target = Path(shutil.copytree(nndescent_folder, tmp_path / "e"))
    with np.load(target / "nndescent.npz", allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    arrays[name] = change(arrays[name]).astype(arrays[name].dtype)
    np.savez(target / "nndescent.npz", **arrays)
    recompute_checksums(target, "nndescent.npz", "nndescent.json")
    with pytest.raises(IndexMismatchError, match=message):
        SearchEngine.load(target)


@pytest.mark.slow  # pynndescent compiles with numba: 30 s to minutes under load
def test_an_old_pickled_nndescent_folder_is_refused_with_the_rebuild_command(
    nndescent_folder: Path, tmp_path: Path
) -> None:
    import shutil

    target = Path(shutil.copytree(nndescent_folder, tmp_path / "old one"))
    (target / "nndescent.npz").rename(target / "nndescent.pkl")  # never unpickled
    (target / "nndescent.pkl").write_bytes(b"cos\nsystem\n(S'touch pwned'\ntR.")
    recompute_checksums(target, "nndescent.pkl", None)
    with pytest.raises(IndexMismatchError) as err:
        SearchEngine.load(target)
    assert "saved as a pickle, which search_lab no longer reads" in str(err.value)
    assert f"index=nndescent metric=euclidean index_dir='{target}'" in str(err.value)
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
    make_engine(vectors(20), EXACT).save(target)  # the rebuild may replace it: it is an index
    assert len(SearchEngine.load(target).names) == 20


def _hnsw_garbage(folder: Path) -> None:
    """Turn the copied exact index into an hnsw one whose data file is garbage, re-checksummed."""
    from search_lab.indexes.hnsw import HNSWIndex

    manifest = json.loads((folder / MANIFEST).read_text())
    index = HNSWIndex(metric=manifest["config"]["metric"]["name"], M=8, ef_construction=40)
    index.build(vectors(len(manifest["names"]), manifest["dim"]))
    for name in ("vectors.npy", "exact.json"):
        (folder / name).unlink()
    index.save(folder)
    manifest["config"]["index"] = {**HNSW, "M": 8, "ef_construction": 40}
    (folder / MANIFEST).write_text(json.dumps(manifest))
    size = (folder / "hnsw.bin").stat().st_size
    (folder / "hnsw.bin").write_bytes(np.random.default_rng(0).bytes(size))
    recompute_checksums(folder, "hnsw.bin", "hnsw.json")


@pytest.mark.slow  # the app's lab (two indexes, two runs) and an AppTest session
def test_app_lists_a_garbage_index_as_unusable_and_compares_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """Before: hnswlib's RuntimeError replaced the Compare page for every index."""
    from tests.app.test_app import EASY_QUERY, PAGES, _result_captions, _unescape
    from tests.app.test_app_integrity import GOOD, _app, _lab_with

    the_lab = request.getfixturevalue("lab")
    indexes = _lab_with(the_lab, tmp_path, _hnsw_garbage)
    at = _app(the_lab, indexes, monkeypatch).run()
    at.switch_page(f"{PAGES}/compare_page.py").run()
    at.multiselect(key="compare_indexes").set_value(["broken", *GOOD]).run()
    at.selectbox(key="compare_query").set_value(EASY_QUERY).run()
    assert not at.exception
    errors = [_unescape(e.value) for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("Index broken cannot be used:")
    assert "hnsw.bin cannot be read as a hnsw index" in errors[0]
    assert len(_result_captions(at)) == 2 * 8  # the two good indexes still compared


# --- the same rule for run folders, the cache and data distractors --dest -----------------------


def test_evaluate_refuses_to_overwrite_result_files_it_did_not_write(
    tmp_path: Path, make_config: Any
) -> None:
    from search_lab.cli.evaluate import run

    out = tmp_path / "mine"
    out.mkdir()
    (out / "rankings.dat").write_text("my own notes\n")
    with pytest.raises(ConfigError, match=r"holds 'rankings.dat', which no evaluation"):
        run(make_config(), out)
    assert (out / "rankings.dat").read_text() == "my own notes\n"
    (out / "metrics.json").write_text('{"map": 1}')  # not the whole signature either
    with pytest.raises(ConfigError, match="is not a run folder search_lab wrote"):
        run(make_config(), out)


@pytest.mark.slow  # two evaluations of holidays-small
def test_evaluate_reruns_into_its_own_run_folder(tmp_path: Path, make_config: Any) -> None:
    from search_lab.cli.evaluate import run

    out = tmp_path / "run"
    first = run(make_config(), out, quiet=True)
    (out / "notes.txt").write_text("kept")
    assert run(make_config(), out, quiet=True)["map"] == first["map"]
    assert (out / "notes.txt").read_text() == "kept"
    (out / "metrics.json").unlink()  # killed between its rankings and its metrics: resumed
    assert run(make_config(), out, quiet=True)["map"] == first["map"]


def test_only_rankings_in_the_format_an_evaluation_writes_count_as_ours(tmp_path: Path) -> None:
    from search_lab.core.ownership import run_folder_problem

    out = tmp_path / "run"
    out.mkdir()
    ours = ("rankings.dat", "metrics.json")
    for text, problem in [
        ("100000.jpg 0 100001.jpg 1 a%20b.jpg\n100100.jpg 0 100101.jpg\n", None),
        ("100000.jpg 0 100001.jpg 2 100002.jpg\n", "holds 'rankings.dat'"),  # ranks skip
        ("word\nanother\n", "holds 'rankings.dat'"),  # no ranked names
        ("", "holds 'rankings.dat'"),
    ]:
        (out / "rankings.dat").write_text(text)
        found = run_folder_problem(out, ours, "metrics.json")
        assert found == problem if problem is None else problem in found


def test_distractors_dest_with_other_files_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from search_lab.cli.data import main

    dest = tmp_path / "photos"
    dest.mkdir()
    (dest / "holiday.jpg").write_bytes(b"not ours")
    assert main(["distractors", "--count", "2", "--dest", str(dest)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds files that are not synthetic distractors" in err[0]
    assert "'holiday.jpg'" in err[0] and sorted(p.name for p in dest.iterdir()) == ["holiday.jpg"]
    own = tmp_path / "own"
    assert main(["distractors", "--count", "2", "--dest", str(own)]) == 0
    assert main(["distractors", "--count", "3", "--dest", str(own)]) == 0  # its own files: resumes
    assert "1 distractors written, 2 already there" in capsys.readouterr().out


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "manhattan", "dot"])
@pytest.mark.parametrize(("field", "value", "message"), [
    ("child", 10**8, "a tree node links to itself, to a later node or outside the file"),
    ("count", 0, "a tree node has no descendants"),
    ("leaf", -5, "a leaf names items outside 0..299"),
])  # fmt: skip
def test_a_crafted_annoy_forest_is_refused_before_annoy_walks_it(
    tmp_path: Path, metric: str, field: str, value: int, message: str
) -> None:
    """Annoy follows ids without checking them: a valid-looking file could crash or hang it."""
    from search_lab.indexes.annoy_forest import ANNOY_METRICS, leaf_capacity, node_layout

    target = make_engine(vectors(300, 8), ANNOY, metric=metric).save(tmp_path / "e")
    annoy_metric = ANNOY_METRICS[metric][0]
    words, first = node_layout(8, annoy_metric)
    nodes = np.fromfile(target / "annoy.ann", np.int32).reshape(-1, words)
    inner = nodes[300:, 0] > leaf_capacity(8, annoy_metric)
    row = 300 + int(np.flatnonzero(inner if field == "child" else ~inner)[0])
    nodes[row, 0 if field == "count" else first] = value
    nodes.tofile(target / "annoy.ann")
    recompute_checksums(target, "annoy.ann", "annoy.json")
    with pytest.raises(IndexMismatchError, match=rf"annoy\.ann is damaged: {re.escape(message)}"):
        SearchEngine.load(target)
