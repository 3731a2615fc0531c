"""Where near-duplicates are judged: an index's own vectors, or for a chain fitted on its
collection the colour histograms of its photos (the same vectors as an hsv index's)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from search_lab.cli import duplicates as cli
from search_lab.core import DatasetError
from search_lab.data.planted import edited
from search_lab.retrieval import build_engine, duplicate_space, find_duplicates
from search_lab.retrieval.duplicates import CALIBRATED
from tests.conftest import compose_config

PHOTOS = ["100000.jpg", "100100.jpg", "100200.jpg", "100300.jpg"]
ORIGINAL = f"photo_{PHOTOS[0]}"


@pytest.fixture(scope="module")
def album(tmp_path_factory: pytest.TempPathFactory, holidays_dir: Path) -> Path:
    """Four unrelated photos and a JPEG-70 copy of the first, in a plain folder."""
    root = tmp_path_factory.mktemp("album") / "photos"
    (root / "edits").mkdir(parents=True)
    for name in PHOTOS:
        shutil.copyfile(holidays_dir / name, root / f"photo_{name}")
    (root / "edits" / "copy70.jpg").write_bytes(edited(holidays_dir / PHOTOS[0], "jpeg70"))
    return root


def _engine(album: Path, cache: Path, *overrides: str):
    common = [f"dataset.root={album}", "dataset.layout=plain", f"cache_dir={cache}"]
    return build_engine(compose_config([*common, "progress=false", *overrides]))


def test_a_recipe_fitted_on_its_collection_is_judged_on_colour_histograms(
    album: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a five-photo folder the recipe's own vectors live in four PCA dimensions and are
    expanded over the whole folder (the copy is 0.024 from its original there, missed at the
    0.0136 of a 540-photo set); it is found on the photos' histograms, which are exactly an
    hsv index's vectors."""
    monkeypatch.setenv("SEARCH_LAB_CACHE", str(tmp_path / "cache"))
    engine = _engine(album, tmp_path / "cache", "+experiment=recommended", "rerank=none")
    assert engine.index.dim == 4  # the PCA of five photos
    own = engine.index.stored_rows(0, 5)
    copy, original = engine.names.index("edits/copy70.jpg"), engine.names.index(ORIGINAL)
    assert 1 - own[copy] @ own[original] == pytest.approx(0.024, abs=1e-3)
    space = duplicate_space(engine)
    assert space.distance == "cosine distance of colour histograms"
    assert space.threshold == CALIBRATED["hsv"] and space.names == engine.names
    hsv = _engine(album, tmp_path / "cache", "feature=hsv")
    assert hsv.names == space.names
    np.testing.assert_allclose(space.index.stored_rows(0, 5), hsv.index.stored_rows(0, 5),
                               atol=1e-6)  # fmt: skip
    found = find_duplicates(space.index, space.threshold)
    assert [[space.names[i] for i in g] for g in found.groups] == [["edits/copy70.jpg", ORIGINAL]]


def test_other_indexes_are_judged_on_their_own_vectors(album: Path, tmp_path: Path) -> None:
    hsv = _engine(album, tmp_path / "cache", "feature=hsv")
    space = duplicate_space(hsv)
    assert space.index is hsv.index and space.threshold == CALIBRATED["hsv"]
    assert space.distance == "cosine distance" and space.no_default == ""
    powered = duplicate_space(_engine(album, tmp_path / "cache", "feature=hsv", "post.power=0.5"))
    assert powered.threshold is None and "post-processing" in powered.no_default


def test_the_cli_says_in_one_line_when_there_is_no_default(
    album: Path, tmp_path: Path, capsys
) -> None:
    folder = _engine(album, tmp_path / "cache", "feature=lbp").save(tmp_path / "lbp")
    assert cli.main(["--index", str(folder)]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: feature 'lbp' has no calibrated threshold")
    assert line.endswith("give the distance with --threshold")
    assert cli.main(["--index", str(folder), "--threshold", "0.5"]) == 0


def test_histograms_follow_the_photos_on_disk(
    album: Path, tmp_path: Path, holidays_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing photo is one line naming it; histograms are keyed by the files as they are
    now, so a copy replaced by another photo is no longer its original's duplicate."""
    photos = tmp_path / "photos"
    shutil.copytree(album, photos)
    monkeypatch.setenv("SEARCH_LAB_CACHE", str(tmp_path / "cache"))
    engine = _engine(photos, tmp_path / "cache", "feature=hsv", "post.expand=2")
    assert len(duplicate_space(engine).names) == 5
    copy = photos / "edits" / "copy70.jpg"
    kept = copy.read_bytes()
    copy.unlink()
    with pytest.raises(DatasetError, match=r"^duplicates: .*copy70.jpg is no longer on disk"):
        duplicate_space(engine)
    copy.write_bytes(kept)
    space = duplicate_space(engine)
    assert find_duplicates(space.index, space.threshold).groups != []
    shutil.copyfile(holidays_dir / "100500.jpg", copy)  # the same name, another photo
    space = duplicate_space(engine)
    assert find_duplicates(space.index, space.threshold).groups == []
