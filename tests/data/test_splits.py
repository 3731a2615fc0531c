"""Tune/test splits, group subsets, post.fit_on and their config checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from search_lab.cli.evaluate import run
from search_lab.core import ConfigError, DatasetError
from search_lab.data import Dataset, group_subsets, split_dataset
from search_lab.data.splits import on_tune_side, restrict
from search_lab.retrieval import index_collection
from search_lab.retrieval.collection import fit_on_source


def toy(protocol: str = "instance") -> Dataset:
    """Six groups of three images: ``gG_0`` is each group's query, the rest relevant."""
    names = tuple(f"g{g}_{i}.jpg" for g in range(6) for i in range(3))
    groups = tuple(f"g{g}" for g in range(6) for _ in range(3))
    queries = tuple(range(0, 18, 3))
    relevant = {q: frozenset({q + 1, q + 2}) for q in queries}
    return Dataset(Path("/toy"), names, groups, queries, relevant, (), protocol)


def test_restrict_renumbers_ids_and_relevance() -> None:
    sub = restrict(toy(), [3, 4, 5, 12, 14])
    assert sub.names == ("g1_0.jpg", "g1_1.jpg", "g1_2.jpg", "g4_0.jpg", "g4_2.jpg")
    assert sub.queries == (0, 3)
    assert sub.relevant == {0: frozenset({1, 2}), 3: frozenset({4})}


def test_restrict_moves_a_query_without_relevant_images_to_lonely() -> None:
    sub = restrict(toy(), [0, 3, 4])
    assert sub.queries == (1,)
    assert sub.lonely == (0,)


def test_split_is_deterministic_disjoint_and_complete() -> None:
    data = toy()
    tune = split_dataset(data, "tune", fraction=0.5, seed=3)
    test = split_dataset(data, "test", fraction=0.5, seed=3)
    assert set(tune.groups).isdisjoint(test.groups)
    assert set(tune.groups) | set(test.groups) == set(data.groups)
    assert split_dataset(data, "tune", fraction=0.5, seed=3) == tune
    assert split_dataset(data, "all") is data
    expected = {g for g in set(data.groups) if on_tune_side(g, fraction=0.5, seed=3)}
    assert set(tune.groups) == expected


def test_split_side_of_a_group_does_not_depend_on_the_others() -> None:
    # A group's side is a hash of its id: a bigger collection never moves it.
    assert all(on_tune_side(g, fraction=0.5, seed=0) in (True, False) for g in ("g1", "x"))
    small = split_dataset(restrict(toy(), range(9)), "tune", fraction=0.5, seed=1)
    large = split_dataset(toy(), "tune", fraction=0.5, seed=1)
    assert set(small.groups) == set(large.groups) & {"g0", "g1", "g2"}


def test_category_split_keeps_the_whole_collection() -> None:
    data = toy("category")
    tune = split_dataset(data, "tune", fraction=0.5, seed=0)
    test = split_dataset(data, "test", fraction=0.5, seed=0)
    assert tune.names == data.names == test.names
    assert set(tune.queries).isdisjoint(test.queries)
    assert set(tune.queries) | set(test.queries) == set(data.queries)
    assert all(tune.relevant[q] == data.relevant[q] for q in tune.queries)


def test_split_errors() -> None:
    with pytest.raises(ConfigError, match=r"dataset.split 'train'"):
        split_dataset(toy(), "train")
    with pytest.raises(ConfigError, match="split_fraction"):
        split_dataset(toy(), "tune", fraction=1.5)
    with pytest.raises(DatasetError, match="leaves no query"):
        split_dataset(toy(), "test", fraction=0.999999, seed=0)


def test_group_subsets() -> None:
    subsets = group_subsets(toy(), 4, 2, seed=0)
    assert len(subsets) == 4
    assert all(len(set(s.groups)) == 2 and len(s.names) == 6 for s in subsets)
    assert [s.names for s in subsets] == [s.names for s in group_subsets(toy(), 4, 2, seed=0)]
    with pytest.raises(ConfigError, match="more than the 6 groups"):
        group_subsets(toy(), 1, 7)


@pytest.mark.slow
def test_split_runs_index_one_side_each(make_config, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    tune = run(make_config("dataset.split=tune", cache=cache), tmp_path / "tune")
    test = run(make_config("dataset.split=test", cache=cache), tmp_path / "test")
    assert tune["n_queries"] + test["n_queries"] == 240
    assert tune["n_images"] + test["n_images"] == 648
    assert set(tune["per_query_ap"]).isdisjoint(test["per_query_ap"])
    assert test["features_cached"]  # the whole dataset was extracted once, for both sides


@pytest.mark.slow
def test_subsets_report_every_value(make_config, tmp_path: Path) -> None:
    metrics = run(make_config("eval.subsets=3", "eval.subset_groups=20"), tmp_path)
    sub = metrics["subsets"]
    assert len(sub["map"]) == 3 and sub["groups"] == 20
    assert sub["map_min"] == min(sub["map"]) and 0 < sub["map_min"] <= sub["map_mean"] <= 1
    assert sub["map_mean"] == pytest.approx(np.mean(sub["map"]))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["dataset.split=train"], "dataset.split 'train'"),
        (["eval.subsets=2", "eval.subset_groups=241"], "more than the 240 groups"),
        (["eval.subsets=-1"], "eval.subsets"),
        (["post.fit_on=/nonexistent/folder"], "not a folder"),
    ],
)
def test_bad_protocol_options_fail_before_extraction(
    overrides: list[str], message: str, make_config, tmp_path: Path
) -> None:
    with pytest.raises((ConfigError, DatasetError), match=message):
        index_collection(make_config(*overrides))
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").glob("*.npz"))


@pytest.mark.slow
def test_fit_on_another_collection_or_index(make_config, tmp_path: Path, holidays_dir) -> None:
    from search_lab.retrieval import build_engine

    cache = tmp_path / "cache"
    overrides = ("post.pca_dim=32", "post.whiten=true")
    tune = build_engine(make_config(*overrides, "dataset.split=tune", cache=cache))
    tune.save(tmp_path / "tune-index")
    by_index = index_collection(
        make_config(
            *overrides, "dataset.split=test", f"post.fit_on={tmp_path / 'tune-index'}", cache=cache
        )
    )
    np.testing.assert_array_equal(by_index.post.state["components"], tune.post.state["components"])
    by_folder = index_collection(
        make_config(*overrides, f"post.fit_on={holidays_dir}", cache=cache)
    )
    assert by_folder.vectors.shape == (648, 32)
    with pytest.raises(ConfigError, match="other features"):
        fit_on_source(make_config("feature=lbp", f"post.fit_on={tmp_path / 'tune-index'}"))
    with pytest.raises(ConfigError, match="another post-processing chain"):
        fit_on_source(make_config(f"post.fit_on={tmp_path / 'tune-index'}"))
