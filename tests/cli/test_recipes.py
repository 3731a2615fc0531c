"""The recipe a plain photo folder gets by itself: which command lines get ``recommended``,
the fallback without a CNN, and ``build_index`` -> ``duplicates`` -> ``search`` end to end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from search_lab.cli import build_index, recipes
from search_lab.cli.recipes import RECOMMENDED, cnn_missing, folder_recipe, names_recipe
from search_lab.data.planted import edited
from search_lab.retrieval import SearchEngine
from search_lab.retrieval.duplicates import CALIBRATED

REPO = Path(__file__).resolve().parents[2]
PHOTOS = ["100000.jpg", "100100.jpg", "100200.jpg", "100300.jpg", "100400.jpg"]


@pytest.fixture
def folder(tmp_path: Path, holidays_dir: Path) -> Path:
    """A plain photo folder: five Holidays photos under camera names, nested by year and
    trip, and a JPEG-70 copy of the first at the top."""
    root = tmp_path / "Pictures"
    for i, name in enumerate(PHOTOS):
        (root / f"202{i % 2}" / "trip").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(holidays_dir / name, root / f"202{i % 2}" / "trip" / f"IMG_{i}.jpg")
    (root / "IMG_0 copy.jpg").write_bytes(edited(holidays_dir / PHOTOS[0], "jpeg70"))
    return root


def test_names_recipe_on_hand_made_command_lines() -> None:
    assert not names_recipe([])
    assert not names_recipe(["dataset.root=/p", "index=annoy", "metric=euclidean", "index_dir=x"])
    for named in (["feature=hsv"], ["feature.bins=[4,4,4]"], ["post.pca_dim=8"],
                  ["+experiment=best"], ["~post.expand"], ["++feature.size=224"]):  # fmt: skip
        assert names_recipe(named), named
    assert not names_recipe(["features_dir=x", "postfix=y"])  # a prefix is not the key
    assert not names_recipe(["rerank=none"])  # the recipe's global part


def test_a_plain_folder_named_without_a_recipe_gets_recommended(
    folder: Path, holidays_dir: Path, capsys
) -> None:
    argv = [f"dataset.root={folder}", "index_dir=x"]
    assert folder_recipe(argv) == [*argv, RECOMMENDED]
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("plain photo folder: indexed with the recommended recipe")
    for more in (["-m"], ["rerank=none"]):
        assert folder_recipe([*more, *argv]) == [*more, *argv, RECOMMENDED], more
    shown = [*argv, "--cfg", "job", "--resolve"]  # the recipe goes beside the other overrides
    assert folder_recipe(shown) == [*argv, RECOMMENDED, "--cfg", "job", "--resolve"]
    capsys.readouterr()
    unchanged = [
        [*argv, "feature=hsv"],  # a recipe named
        [*argv, "post.expand=0"],
        [*argv, "--help"],  # Hydra's own flags, other than a sweep or --cfg
        [f"dataset.root={holidays_dir}"],  # a benchmark layout
        [f"dataset.root={folder}", "dataset.layout=labels"],
        [f"dataset.root={folder / 'missing'}"],  # the build says what is wrong
        [f"dataset.root={folder}", "no_such_key=1"],
        [f"dataset.root={folder}/a=b"],  # Hydra's parse error, said by Hydra
        ["dataset.root=null"],  # the default root: $HOLIDAYS_DIR
    ]
    for args in unchanged:
        assert folder_recipe(args) == args, args
    assert capsys.readouterr().err == ""


def test_without_the_cnn_a_plain_folder_keeps_the_colour_histogram(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    missing = {"backbone": "efficientnet_lite0", "weights": str(tmp_path / "none.pth")}
    assert cnn_missing(missing) == f"the weights file {tmp_path / 'none.pth'} is not installed"
    assert cnn_missing() is None  # installed here (requirements.txt)
    monkeypatch.setattr(recipes, "cnn_missing", lambda cnn=None: cnn_missing(missing))
    argv = [f"dataset.root={folder}"]
    assert folder_recipe(argv) == argv
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"plain photo folder: the weights file {tmp_path / 'none.pth'}")
    assert line.endswith("so it is indexed by colour histogram")


def test_an_index_of_another_recipe_keeps_its_recipe(folder: Path, tmp_path: Path, capsys) -> None:
    """An index built by colour histogram before this default is still updated by the same
    command; ``overwrite=true`` (asked for) lets the recipe replace it."""
    from tests.conftest import compose_config

    index = tmp_path / "my-photos"
    overrides = [f"dataset.root={folder}", f"index_dir={index}", "feature=hsv",
                 f"cache_dir={tmp_path / 'cache'}", "progress=false"]  # fmt: skip
    cfg = compose_config(overrides, "build_index")
    build_index.run(cfg, tmp_path / "out")
    capsys.readouterr()
    argv = [f"dataset.root={folder}", f"index_dir={index}"]
    assert folder_recipe(argv) == argv
    [line] = capsys.readouterr().err.splitlines()
    assert line == (f"plain photo folder: {index} holds an index built with another recipe "
                    f"(feature=hsv), so none is chosen for it; add {RECOMMENDED} "
                    "overwrite=true to rebuild it with the recommended one")  # fmt: skip
    assert folder_recipe([*argv, "overwrite=true"]) == [*argv, "overwrite=true", RECOMMENDED]


def test_an_index_of_an_earlier_recommended_recipe_is_named_not_replaced(
    folder: Path, tmp_path: Path, capsys
) -> None:
    """An index built by the recipe before its fourth round (Lite0, 20 neighbours) gets the
    recipe, and the build refuses it naming what changed instead of indexing by histogram."""
    from search_lab.core import ConfigError
    from tests.conftest import compose_config

    index = tmp_path / "my-photos"
    argv = [f"dataset.root={folder}", f"index_dir={index}", f"cache_dir={tmp_path / 'cache'}",
            "progress=false", "rerank=none"]  # fmt: skip
    earlier = ["feature.cnn.backbone=efficientnet_lite0", "post.expand=20"]
    build_index.run(compose_config([*argv, RECOMMENDED, *earlier], "build_index"), tmp_path / "a")
    capsys.readouterr()
    assert folder_recipe(argv) == [*argv, RECOMMENDED]
    assert capsys.readouterr().err.startswith("plain photo folder: indexed with the recommended")
    with pytest.raises(ConfigError) as refused:
        build_index.run(compose_config([*argv, RECOMMENDED], "build_index"), tmp_path / "b")
    assert ("(feature.cnn.backbone efficientnet_lite0 → efficientnet_lite1; post.expand 20 → 10)"
            in str(refused.value))  # fmt: skip


def test_a_root_hydra_cannot_parse_is_still_one_line(folder: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [f"dataset.root={folder}/a=b", f"hydra.run.dir={tmp_path / 'out'}"]
    done = subprocess.run([sys.executable, "-m", "search_lab.build_index", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2 and done.stderr.startswith("error: "), done.stderr
    assert len(done.stderr.splitlines()) == 1


def _run(module: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done


def test_build_then_duplicates_then_search_a_plain_folder(folder: Path, tmp_path: Path) -> None:
    """The README's three commands on a photo folder, as a user types them."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "SEARCH_LAB_CACHE": str(tmp_path / "cache")}
    index = tmp_path / "my-photos"
    built = _run("search_lab.build_index", f"dataset.root={folder}", f"index_dir={index}",
                 f"hydra.run.dir={tmp_path / 'out'}", "progress=false", env=env)  # fmt: skip
    assert "plain photo folder: indexed with the recommended recipe" in built.stderr
    assert "local features (sift) of 6 images for rerank=sv" in built.stdout
    config = SearchEngine.load(index).config
    assert config["feature"]["parts"] == ["cnn", "hsv"] and config["post"]["expand"] == 10
    assert config["feature"]["cnn"]["backbone"] == "efficientnet_lite1"
    assert config["rerank"]["name"] == "sv"
    dups = _run("search_lab.duplicates", "--index", str(index), "--json", env=env)
    record = json.loads(dups.stdout)
    assert record["groups"] == [["2020/trip/IMG_0.jpg", "IMG_0 copy.jpg"]]
    assert record["threshold"] == CALIBRATED["hsv"]
    assert "(cosine distance of colour histograms)" in dups.stderr
    found = _run("search_lab.search", "--index", str(index), "--json", "--k", "2",
                 str(folder / "2020" / "trip" / "IMG_0.jpg"), env=env)  # fmt: skip
    names = [hit["name"] for hit in json.loads(found.stdout)["results"]]
    assert names == ["2020/trip/IMG_0.jpg", "IMG_0 copy.jpg"]
