"""build_index keeps an index current: every update path, and the bad inputs around it."""

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
from search_lab.core import ConfigError, DatasetError
from search_lab.retrieval import SearchEngine
from search_lab.retrieval.update import index_lock

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def photos(tmp_path: Path, holidays_dir: Path) -> Path:
    """Ten real photos in a tree nested by year, named as a camera does (a plain collection)."""
    root = tmp_path / "photos"
    for i, name in enumerate(sorted(os.listdir(holidays_dir))[:10]):
        folder = root / ("2023/paris" if i < 4 else "2024")
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(holidays_dir / name, folder / f"IMG_{i:02d}.jpg")
    return root


def spare(holidays_dir: Path, n: int) -> list[Path]:
    """Photos of holidays-small that the ``photos`` fixture does not use."""
    return [holidays_dir / name for name in sorted(os.listdir(holidays_dir))[20 : 20 + n]]


def config(tmp_path: Path, root: Path, *extra: str) -> dict:
    return compose_config(
        [
            f"dataset.root={root}",
            f"index_dir={tmp_path / 'index'}",
            f"cache_dir={tmp_path / 'cache'}",
            "progress=false",
            "workers=1",
            *extra,
        ],
        "build_index",
    )


def build(tmp_path: Path, root: Path, capsys, *extra: str) -> str:
    """Run build_index; returns its summary line."""
    build_index.run(config(tmp_path, root, *extra), tmp_path / "out")
    return capsys.readouterr().out.splitlines()[0]


def rows_by_name(directory: Path) -> dict[str, np.ndarray]:
    engine = SearchEngine.load(directory)
    return {n: np.asarray(engine.index.vectors[i]) for i, n in enumerate(engine.names)}


def test_add_change_remove_rename_extract_only_what_is_new(
    tmp_path: Path, photos: Path, holidays_dir: Path, capsys
) -> None:
    first = build(tmp_path, photos, capsys)
    assert first.startswith("added 10, changed 0, removed 0, unchanged 0; extracted 10 images")
    new_a, new_b, other = spare(holidays_dir, 3)
    shutil.copy(new_a, photos / "2024/new_a.jpg")
    shutil.copy(new_b, photos / "new_b.jpg")
    shutil.copy(other, photos / "2024/IMG_05.jpg")  # edited in place: changed
    (photos / "2024/IMG_06.jpg").unlink()  # removed
    (photos / "2024/IMG_07.jpg").rename(photos / "2024/renamed.jpg")  # found by content
    line = build(tmp_path, photos, capsys)
    # added: new_a, new_b, renamed; removed: IMG_06, IMG_07; extracted: new_a, new_b, IMG_05
    assert line.startswith("added 3, changed 1, removed 2, unchanged 7; extracted 3 images in ")
    assert line.endswith(" s") and "; index updated in " in line
    updated = rows_by_name(tmp_path / "index")
    build(tmp_path, photos, capsys, "rebuild=true", f"index_dir={tmp_path / 'fresh'}")
    fresh = rows_by_name(tmp_path / "fresh")
    assert sorted(updated) == sorted(fresh) and len(fresh) == 11
    for name, row in fresh.items():
        np.testing.assert_allclose(updated[name], row, atol=1e-6)
    again = build(tmp_path, photos, capsys)
    assert again.startswith("added 0, changed 0, removed 0, unchanged 11; extracted 0 images")


def test_a_touched_photo_is_unchanged_and_rebuild_forces_a_full_build(
    tmp_path: Path, photos: Path, capsys
) -> None:
    build(tmp_path, photos, capsys)
    os.utime(photos / "2024/IMG_04.jpg", (1e9, 1e9))  # same bytes, another time
    assert build(tmp_path, photos, capsys).startswith("added 0, changed 0, removed 0, unchanged 10")
    catalog = json.loads((tmp_path / "index/catalog.json").read_text())
    assert catalog["indexed"]["2024/IMG_04.jpg"][1] == 10**18  # the new time is recorded
    line = build(tmp_path, photos, capsys, "rebuild=true")
    assert line.startswith("added 10, changed 0, removed 0, unchanged 0; extracted 0 images")


def test_an_index_type_without_updates_is_rebuilt_from_vectors(
    tmp_path: Path, photos: Path, holidays_dir: Path, capsys
) -> None:
    build(tmp_path, photos, capsys, "index=kdtree")
    shutil.copy(spare(holidays_dir, 1)[0], photos / "added.jpg")
    line = build(tmp_path, photos, capsys, "index=kdtree")
    assert line.startswith("added 1, changed 0, removed 0, unchanged 10; extracted 1 images")
    engine = SearchEngine.load(tmp_path / "index")
    hits, _ = engine.query(photos / "added.jpg", k=1)
    assert hits[0].name == "added.jpg" and hits[0].distance < 1e-6


def test_pca_is_refitted_past_the_share(
    tmp_path: Path, photos: Path, holidays_dir: Path, capsys
) -> None:
    pca = ("post.pca_dim=4", "refit_share=0.2")
    build(tmp_path, photos, capsys, *pca)
    fit = json.loads((tmp_path / "index/manifest.json").read_text())["post_fit"]
    assert (fit["images"], fit["changed_since"]) == (10, 0)
    extra = spare(holidays_dir, 3)
    shutil.copy(extra[0], photos / "a.jpg")
    build(tmp_path, photos, capsys, *pca)  # 1 of 10 changed: 10% <= 20%, kept
    kept = json.loads((tmp_path / "index/manifest.json").read_text())["post_fit"]
    assert (kept["images"], kept["changed_since"], kept["fitted"]) == (10, 1, fit["fitted"])
    shutil.copy(extra[1], photos / "b.jpg")
    shutil.copy(extra[2], photos / "c.jpg")
    build(tmp_path, photos, capsys, *pca)  # 3 of 10: 30% > 20%, refitted on all 13
    refit = json.loads((tmp_path / "index/manifest.json").read_text())["post_fit"]
    assert (refit["images"], refit["changed_since"]) == (13, 0)


def test_another_configuration_is_refused_naming_the_difference(
    tmp_path: Path, photos: Path, capsys
) -> None:
    build(tmp_path, photos, capsys)
    with pytest.raises(
        ConfigError, match=r"feature\.bins \[8, 12, 3\] → \[4, 4, 4\].*overwrite=true"
    ):
        build(tmp_path, photos, capsys, "feature.bins=[4,4,4]")
    with pytest.raises(ConfigError, match=r"metric\.name cosine → euclidean"):
        build(tmp_path, photos, capsys, "metric=euclidean")
    line = build(tmp_path, photos, capsys, "feature.bins=[4,4,4]", "rebuild=true")
    assert line.startswith("added 10,")
    assert SearchEngine.load(tmp_path / "index").config["feature"]["bins"] == [4, 4, 4]


@pytest.mark.parametrize("gone", ["vanished", "emptied"])
def test_a_vanished_or_emptied_folder_leaves_the_index_as_it_was(
    tmp_path: Path, photos: Path, capsys, gone: str
) -> None:
    build(tmp_path, photos, capsys)
    if gone == "vanished":
        photos.rename(tmp_path / "elsewhere")
        message = "does not exist"
    else:
        shutil.rmtree(photos)
        photos.mkdir()
        message = "holds no images"
    with pytest.raises(DatasetError, match=f"{message}.*index is left as it was"):
        build(tmp_path, photos, capsys)
    assert len(SearchEngine.load(tmp_path / "index").names) == 10


def test_odd_files_and_names(tmp_path: Path, photos: Path, holidays_dir: Path, capsys) -> None:
    build(tmp_path, photos, capsys)
    (photos / "2024/IMG_04.jpg").unlink()
    (photos / "2024/IMG_04.jpg").mkdir()  # a file replaced by a folder (holding a photo)
    shutil.copy(spare(holidays_dir, 1)[0], photos / "2024/IMG_04.jpg/inside.jpg")
    shutil.copy(photos / "2024/IMG_05.jpg", photos / "2024/img_05.JPG")  # differs in case only
    shutil.copy(photos / "2024/IMG_08.jpg", photos / "new\nline.jpg")
    (photos / os.fsdecode(b"bad\xff.jpg")).write_bytes(b"x")  # not UTF-8: skipped, said once
    (photos / "broken.jpg").write_bytes(b"not a jpeg")  # skipped and counted
    (photos / "notes.txt").write_text("not an image")  # not even listed
    line = build(tmp_path, photos, capsys)
    assert line.startswith("added 4, changed 0, removed 1, unchanged 9; extracted 2 images")
    engine = SearchEngine.load(tmp_path / "index")
    assert {"2024/IMG_04.jpg/inside.jpg", "2024/img_05.JPG", "new\nline.jpg"} <= set(engine.names)
    assert list(engine.manifest["skipped"]) == ["broken.jpg"]
    again = build(tmp_path, photos, capsys)  # the broken file is not retried while unchanged
    assert again.startswith("added 0, changed 0, removed 0, unchanged 12; extracted 0 images")


def _command(tmp_path: Path, root: Path, *extra: str) -> list[str]:
    """The build_index command line (feature named: a plain folder would get the recipe)."""
    args = [
        f"dataset.root={root}", f"index_dir={tmp_path / 'index'}",
        f"cache_dir={tmp_path / 'cache'}", "progress=false", "workers=1",
        f"hydra.run.dir={tmp_path / 'out'}", "feature=hsv", *extra,
    ]  # fmt: skip
    return [sys.executable, "-m", "search_lab.build_index", *args]


def test_a_second_build_waits_for_the_first(tmp_path: Path, photos: Path, capsys) -> None:
    build(tmp_path, photos, capsys)
    shutil.copy(photos / "2024/IMG_04.jpg", photos / "copy.jpg")
    with index_lock(tmp_path / "index"):  # another build holds the folder
        proc = subprocess.Popen(
            _command(tmp_path, photos), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "waiting" not in _text(tmp_path / "out"):
            time.sleep(0.2)
        assert "another build_index is updating" in _text(tmp_path / "out")
        assert proc.poll() is None and len(SearchEngine.load(tmp_path / "index").names) == 10
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    summary = [line for line in out.decode().splitlines() if line.startswith("added ")]
    assert summary[0].startswith("added 1, changed 0, removed 0, unchanged 10; extracted 0")


def _text(folder: Path) -> str:
    """The Hydra logs of a run folder so far."""
    return "".join(p.read_text(errors="replace") for p in folder.glob("*.log"))


def test_kill_9_during_an_update_then_rerun_finishes_the_job(
    tmp_path: Path, photos: Path, holidays_dir: Path, capsys
) -> None:
    build(tmp_path, photos, capsys)
    for path in spare(holidays_dir, 60):
        shutil.copy(path, photos / f"new_{path.name}")
    code = (
        "import sys; from search_lab.retrieval import vector_store; vector_store.CHUNK = 8; "
        "from search_lab.cli.glue import entry; from search_lab.cli.build_index import main; "
        "sys.argv = ['build_index', *sys.argv[1:]]; entry(main, 'build_index')"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, *_command(tmp_path, photos)[3:]], cwd=ROOT)
    store = tmp_path / "cache" / "content"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(store.rglob("*.npz"))) < 3:
        assert proc.poll() is None, "the update ended before it could be killed"
        time.sleep(0.05)
    proc.kill()  # SIGKILL: no clean-up of any kind
    proc.wait()
    engine = SearchEngine.load(tmp_path / "index")  # the previous index, whole
    assert len(engine.names) == 10
    done = 8 * (len(list(store.rglob("*.npz"))) - 1)  # chunks of 8 (the first: the full build)
    line = build(tmp_path, photos, capsys)
    assert line.startswith(f"added 60, changed 0, removed 0, unchanged 10; extracted {60 - done} ")
    assert len(SearchEngine.load(tmp_path / "index").names) == 70


def test_a_disk_that_fills_during_an_update_keeps_the_old_index(
    tmp_path: Path, photos: Path, holidays_dir: Path, capsys
) -> None:
    build(tmp_path, photos, capsys)
    for path in spare(holidays_dir, 30):
        shutil.copy(path, photos / f"new_{path.name}")
    row = ((tmp_path / "index" / "raw.npy").stat().st_size - 128) // 10  # bytes per image
    limit = 128 + 36 * row  # the 30 new vectors fit in the store, the 40 rows of raw.npy do not

    def small_disk() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run(
        _command(tmp_path, photos), cwd=ROOT, capture_output=True, preexec_fn=small_disk
    )
    assert proc.returncode == 2
    error = proc.stderr.decode().strip().splitlines()[-1]
    assert error.startswith(f"error: cannot write {tmp_path}/") and "raw.npy: " in error
    assert error.endswith("; the previous index is kept")
    assert len(SearchEngine.load(tmp_path / "index").names) == 10
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # staging removed
    line = build(tmp_path, photos, capsys)  # room again: the extracted vectors are kept
    assert line.startswith("added 30, changed 0, removed 0, unchanged 10; extracted 0 images")
