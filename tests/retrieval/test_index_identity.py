"""Index folders never collide: names encode every parameter, a build never replaces an index
of another configuration unasked, and summaries show the parameters the built index has."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from search_lab.cli import build_index, compose_config
from search_lab.cli.glue import group_defaults
from search_lab.core import ConfigError
from search_lab.retrieval import SearchEngine, index_folder_name
from search_lab.retrieval.index_identity import config_difference, summary_params

NAMES = ("100000.jpg", "100001.jpg", "100100.jpg", "100101.jpg", "100200.jpg", "100201.jpg")


def folder(*overrides: str) -> str:
    return Path(compose_config(list(overrides), "build_index")["index_dir"]).name


def test_default_names_by_hand() -> None:
    assert folder() == "hsv-cosine-exact"  # the app's and README's default stays as it was
    assert folder("index=hnsw") == "hsv-cosine-hnsw"
    assert folder("index=faiss") == "hsv-cosine-faiss-HNSW32"
    assert folder("index=faiss_ivf") == "hsv-cosine-faiss-IVF1024_Flat"
    assert folder("index=faiss_flat") == "hsv-cosine-faiss-Flat"
    assert folder("dataset=wang") == "wang-hsv-cosine-exact"
    assert folder("feature.bins=[16,8,4]").startswith("hsv-cosine-exact+bins16x8x4-")


def test_different_configurations_never_share_a_folder() -> None:
    configs = [
        (),
        ("index=faiss",),
        ("index=faiss_ivf",),
        ("index=faiss_ivf", "index.nprobe=8"),
        ("index=faiss_flat",),
        ("index=hnsw",),
        ("index=hnsw", "index.M=32"),
        ("feature.bins=[16,8,4]",),
        ("feature.bins=[16,8,2]",),
        ("post.pca_dim=64",),
        ("metric=euclidean",),
        ("feature=combo",),
        ("feature=combo", "feature.weights=[1.0,1.0]"),
        ("+experiment=best_handcrafted",),
    ]
    names = [folder(*c) for c in configs]
    assert len(set(names)) == len(names), names


def test_same_configuration_same_folder_whatever_the_spelling() -> None:
    assert folder("index=faiss", "index.factory='IVF1024,Flat'") == folder("index=faiss_ivf")
    assert folder("index=hnsw", "index.n_jobs=2") == folder("index=hnsw")  # speed only


def test_group_defaults_follow_the_defaults_list() -> None:
    ivf = group_defaults("index", "faiss_ivf")
    assert ivf["name"] == "faiss" and ivf["factory"] == "IVF1024,Flat"
    combo = group_defaults("feature", "combo")
    assert combo["parts"] == ["hsv", "lbp"] and combo["hsv"]["bins"] == [8, 12, 3]
    assert group_defaults("index", "no_such_index") == {}


def test_folder_name_by_hand_and_config_difference() -> None:
    ref = {
        "feature": {"name": "hsv", "bins": [8, 12, 3]},
        "post": {"pca_dim": None},
        "metric": {"name": "cosine"},
        "index": {"name": "exact"},
    }
    assert index_folder_name(ref, ref) == "hsv-cosine-exact"
    other = {**ref, "post": {"pca_dim": 64}}
    name = index_folder_name(other, ref)
    assert name.startswith("hsv-cosine-exact+pca_dim64-") and len(name.rsplit("-", 1)[1]) == 6
    assert config_difference(ref, ref) is None
    faiss = {**ref, "index": {"name": "faiss", "factory": "HNSW32", "threads": 1}}
    ivf = {**ref, "index": {"name": "faiss", "factory": "IVF1024,Flat", "threads": 4}}
    assert config_difference(faiss, ivf) == "index.factory HNSW32 → IVF1024,Flat"
    moved = {**ref, "dataset": {"root": "/b"}}
    assert config_difference({**ref, "dataset": {"root": "/a"}}, moved) == "dataset.root /a → /b"


def test_summary_shows_only_what_applies_and_what_was_built() -> None:
    hnsw = {"name": "faiss", "factory": "HNSW32", "nprobe": 16, "ef": 64}
    assert "nprobe" not in summary_params(hnsw, None) and summary_params(hnsw, None)["ef"] == 64
    ivf = {**hnsw, "factory": "IVF1024,Flat"}
    shown = summary_params(ivf, {"factory": "IVF16,Flat"})
    assert shown["factory"] == "IVF16,Flat" and "ef" not in shown and shown["nprobe"] == 16
    assert summary_params({"name": "annoy", "n_trees": 50}, {}) == {"name": "annoy", "n_trees": 50}


@pytest.fixture
def images(tmp_path: Path, holidays_dir: Path) -> Path:
    root = tmp_path / "images"
    root.mkdir()
    for name in NAMES:
        shutil.copy(holidays_dir / name, root / name)
    return root


def build(images: Path, target: Path, *overrides: str) -> Path:
    cfg = compose_config(
        [
            f"dataset.root={images}",
            f"cache_dir={images.parent / 'cache'}",
            f"index_dir={target}",
            "progress=false",
            "workers=1",
            *overrides,
        ],
        "build_index",
    )
    return build_index.run(cfg, images.parent)


def test_build_refuses_a_folder_of_another_configuration(images: Path, tmp_path: Path) -> None:
    target = tmp_path / "idx"
    build(images, target, "index=faiss")
    before = (target / "manifest.json").read_bytes()
    with pytest.raises(ConfigError) as err:
        build(images, target, "index=faiss_ivf")
    message = str(err.value)
    assert "\n" not in message and "index.factory HNSW32 → IVF1024,Flat" in message
    assert "overwrite=true" in message and (target / "manifest.json").read_bytes() == before
    build(images, target, "index=faiss")  # the same configuration: rebuilt in place
    build(images, target, "index=faiss_ivf", "overwrite=true")
    engine = SearchEngine.load(target)
    assert engine.manifest["built"] == {"factory": "IVF1,Flat"}  # 6 vectors: one list
    assert "IVF1,Flat, nprobe=16" in engine.describe() and "ef=" not in engine.describe()


def test_hnsw_summary_has_no_nprobe(images: Path, tmp_path: Path, capsys) -> None:
    build(images, tmp_path / "hnsw", "index=faiss")
    line = capsys.readouterr().out
    assert "HNSW32, ef=64" in line and "nprobe" not in line


def test_summary_config_for_the_app() -> None:
    from search_lab.retrieval import summary_config

    manifest = {
        "config": {"feature": {"name": "hsv"}, "index": {"name": "faiss", "factory": "HNSW32"}},
        "built": {"factory": "HNSW32"},
    }
    manifest["config"]["index"]["nprobe"] = 16
    shown = summary_config(manifest)
    assert shown["index"] == {"name": "faiss", "factory": "HNSW32"}
    assert manifest["config"]["index"]["nprobe"] == 16  # the manifest itself is left alone
