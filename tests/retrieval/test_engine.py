"""Tests for search_lab.retrieval.engine: saved index folders load with checks and are written
atomically.

Engines are assembled from small seeded vectors (no images), except the end-to-end test that
runs ``build_index`` with Annoy on holidays-small.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from search_lab.core import FORMAT, MANIFEST, IndexMismatchError, read_json_object, write_json
from search_lab.indexes import AnnoyIndex
from search_lab.retrieval import SearchEngine, list_engines, make_index, make_post
from search_lab.retrieval import engine as engine_module

REPO = Path(__file__).resolve().parents[2]
HSV = {"name": "hsv", "bins": [8, 12, 3], "mode": "joint", "layout": "global", "sqrt": True}
EXACT = {"name": "exact", "block": 256}
ANNOY = {"name": "annoy", "n_trees": 5, "search_k": -1, "seed": 0, "n_jobs": 1}


def vectors(n: int = 40, dim: int = 12, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, dim)).astype(np.float32)


def make_engine(items: np.ndarray, index: dict[str, Any], metric: str = "cosine") -> SearchEngine:
    """An engine over ``items`` as ``build_engine`` would make it, without images."""
    cfg = {
        "feature": HSV,
        "metric": {"name": metric},
        "index": index,
        "post": {"power": 1.0, "l2": False, "pca_dim": None, "whiten": False},
    }
    post = make_post(cfg)
    built = make_index(cfg)
    built.build(post.fit_transform(items))
    manifest = {
        "format": FORMAT,
        "config": cfg,
        "root": "/nowhere",
        "names": [f"{i:03d}.jpg" for i in range(len(items))],
        "skipped": {},
        "dim": int(items.shape[1]),
    }
    return SearchEngine(manifest, built, post)


@pytest.mark.parametrize("index", [EXACT, ANNOY], ids=["exact", "annoy"])
def test_save_load_round_trip(tmp_path: Path, index: dict[str, Any]) -> None:
    items = vectors()
    engine = make_engine(items, index)
    target = engine.save(tmp_path / "engine")
    loaded = SearchEngine.load(target, expect={"feature": HSV, "metric": "cosine", "dim": 12})
    assert loaded.names == engine.names
    for q in items[:5]:
        assert loaded.search_vectors([q], 5) == engine.search_vectors([q], 5)
    assert [p.name for p in tmp_path.iterdir()] == ["engine"]  # no temporary folder left


def test_annoy_engine_is_memory_mapped(tmp_path: Path) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc/self/maps")
    target = make_engine(vectors(), ANNOY).save(tmp_path / "engine")
    loaded = SearchEngine.load(target)  # kept alive: the mapping lasts as long as the index
    assert str((target / AnnoyIndex.FOREST_FILE).resolve()) in Path("/proc/self/maps").read_text()
    assert loaded.index.size == 40


@pytest.mark.parametrize(
    ("expect", "message"),
    [
        ({"feature": {**HSV, "bins": [4, 4, 4]}}, "built with feature"),
        ({"metric": "euclidean"}, "built with metric 'cosine', but 'euclidean'"),
        ({"dim": 64}, "built with dim 12, but 64"),
    ],
)
def test_load_rejects_unexpected_feature_metric_dim(
    tmp_path: Path, expect: dict[str, Any], message: str
) -> None:
    target = make_engine(vectors(), ANNOY).save(tmp_path / "engine")
    with pytest.raises(IndexMismatchError, match=message):
        SearchEngine.load(target, expect=expect)


@pytest.mark.parametrize("index", [EXACT, ANNOY], ids=["exact", "annoy"])
def test_query_of_wrong_dimension(tmp_path: Path, index: dict[str, Any]) -> None:
    loaded = SearchEngine.load(make_engine(vectors(), index).save(tmp_path / "engine"))
    with pytest.raises(IndexMismatchError, match="dimension 5 but the index holds 12-d"):
        loaded.search_vectors([np.ones(5, np.float32)], 3)


def test_load_without_manifest(tmp_path: Path) -> None:
    with pytest.raises(IndexMismatchError, match="not a built index"):
        SearchEngine.load(tmp_path)


@pytest.mark.parametrize(
    ("index", "edit", "message"),
    [
        (EXACT, lambda m: m["config"].update(index=ANNOY), "holds no Annoy index"),
        (ANNOY, lambda m: m.update(dim=13), "manifest says 40 of dimension 13"),
        (
            ANNOY,
            lambda m: m["config"].update(metric={"name": "euclidean"}),
            "built for metric 'cosine'",
        ),
    ],
    ids=["another-index-type", "dimension-disagrees", "metric-changed"],
)
def test_manifest_edited_after_the_build(tmp_path: Path, index, edit, message: str) -> None:
    target = make_engine(vectors(), index).save(tmp_path / "engine")
    manifest = read_json_object(target / MANIFEST)
    edit(manifest)
    write_json(target / MANIFEST, manifest)
    with pytest.raises(IndexMismatchError, match=message):
        SearchEngine.load(target)


def _boom(*args: object, **kwargs: object) -> None:
    raise OSError("disk full (simulated)")


def test_crash_before_manifest_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(engine_module, "write_json", _boom)
    with pytest.raises(OSError, match="simulated"):
        make_engine(vectors(), ANNOY).save(tmp_path / "engine")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(IndexMismatchError):
        SearchEngine.load(tmp_path / "engine")


def test_crash_mid_index_write_keeps_previous_version(tmp_path: Path, monkeypatch) -> None:
    target = make_engine(vectors(40), ANNOY).save(tmp_path / "engine")
    newer = make_engine(vectors(90, seed=1), ANNOY)
    original_save = AnnoyIndex.save

    def half_save(self: AnnoyIndex, directory: Path) -> None:
        original_save(self, directory)
        path = Path(directory) / AnnoyIndex.FOREST_FILE
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        raise OSError("killed mid-write (simulated)")

    monkeypatch.setattr(AnnoyIndex, "save", half_save)
    with pytest.raises(OSError, match="simulated"):
        newer.save(target)
    assert [p.name for p in tmp_path.iterdir()] == ["engine"]
    assert len(SearchEngine.load(target).names) == 40


def test_hard_kill_mid_save_leaves_nothing_loadable(tmp_path: Path) -> None:
    """A process killed outright cannot clean up: its temporary folder stays but is never served."""
    script = textwrap.dedent(
        f"""
        import os
        import numpy as np
        from search_lab.indexes import AnnoyIndex
        from tests.retrieval.test_engine import ANNOY, make_engine, vectors

        def die(self, directory):
            (directory / "annoy.ann").write_bytes(b"partial")
            os._exit(9)

        AnnoyIndex.save = die
        make_engine(vectors(), ANNOY).save({str(tmp_path / "engine")!r})
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, timeout=120)
    assert done.returncode == 9
    assert not (tmp_path / "engine").exists()
    leftovers = list(tmp_path.iterdir())
    assert leftovers and all(p.name.startswith(".engine.") for p in leftovers)
    assert list_engines(tmp_path) == []
    with pytest.raises(IndexMismatchError):
        SearchEngine.load(tmp_path / "engine")


# --- end to end -----------------------------------------------------------------------------


@pytest.mark.slow
def test_build_index_with_annoy_on_holidays(
    make_config, holidays_dir: Path, tmp_path: Path, capsys
) -> None:
    from search_lab.cli import build_index

    target = tmp_path / "indexes" / "hsv-annoy"
    cfg = make_config("index=annoy", f"index_dir={target}", name="build_index")
    assert build_index.run(cfg, tmp_path / "out") == target
    assert "annoy search (50 trees)" in capsys.readouterr().out

    engine = SearchEngine.load(target, expect={"metric": "cosine", "feature": cfg["feature"]})
    query = next(n for n in engine.names if n.endswith("00.jpg"))
    hits, _ = engine.query(holidays_dir / query, k=5)
    assert hits[0].name == query and hits[0].distance < 1e-4
    assert len({h.id for h in hits}) == 5
    with pytest.raises(IndexMismatchError, match="metric"):
        SearchEngine.load(target, expect={"metric": "euclidean"})


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "post.npz").unlink(), "post.npz is missing"),
        (lambda d: (d / "post.npz").write_bytes(b"PK\x03\x04 cut"), r"post.npz has 8 bytes"),
        (lambda d: (d / MANIFEST).write_text('{"format": 1,'), "manifest.json is unreadable"),
    ],
    ids=["post-missing", "post-truncated", "manifest-corrupt"],
)
def test_damaged_folder_is_a_mismatch(tmp_path: Path, damage, message: str) -> None:
    target = make_engine(vectors(), ANNOY).save(tmp_path / "engine")
    damage(target)
    with pytest.raises(IndexMismatchError, match=message):
        SearchEngine.load(target)


def test_save_refuses_to_replace_a_folder_that_is_not_an_index(tmp_path: Path) -> None:
    precious = tmp_path / "photos"
    precious.mkdir()
    (precious / "thesis.txt").write_text("keep me")
    from search_lab.core import ConfigError

    with pytest.raises(ConfigError, match="not an index folder"):
        make_engine(vectors(), EXACT).save(precious)
    assert (precious / "thesis.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]


def test_list_engines_skips_an_unreadable_manifest(tmp_path: Path) -> None:
    make_engine(vectors(), EXACT).save(tmp_path / "good")
    broken = make_engine(vectors(), EXACT).save(tmp_path / "broken")
    (broken / MANIFEST).write_text("{ not json")
    assert [p.name for p in list_engines(tmp_path)] == ["good"]
    with pytest.raises(IndexMismatchError, match="cannot be read"):
        engine_module.manifest_of(broken)


def test_load_warns_when_the_dataset_changed(tmp_path: Path, caplog) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name in ("100000.jpg", "100001.jpg"):
        (data / name).write_bytes(b"x")
    from search_lab.data import load_dataset

    engine = make_engine(vectors(2), EXACT)
    engine.manifest.update(root=str(data), fingerprint=load_dataset(data).fingerprint())
    target = engine.save(tmp_path / "index")
    assert not SearchEngine.load(target).dataset_changed()
    (data / "100002.jpg").write_bytes(b"new")
    with caplog.at_level("WARNING"):
        assert SearchEngine.load(target).dataset_changed()
    assert "have changed since" in caplog.text
