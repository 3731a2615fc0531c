"""The registries behind features, indexes, metrics and dataset layouts, and their metadata."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import yaml

from search_lab.core import ConfigError, Registry
from search_lab.data import DATASETS, load_dataset
from search_lab.data.datasets import layouts
from search_lab.data.layouts import Layout
from search_lab.features import FEATURES
from search_lab.features import available as features
from search_lab.indexes import DISTANCES, INDEXES
from search_lab.indexes import available as indexes
from search_lab.indexes.distances import pairwise
from tests.conftest import compose_config

ROOT = Path(__file__).resolve().parents[2]
CONF, GUIDE = ROOT / "conf", ROOT / "docs" / "guide.md"


def test_register_create_and_errors() -> None:
    things: Registry[object] = Registry("thing")

    @things.register("box")
    class Box:
        def __init__(self, *, size: int = 1) -> None:
            self.size = int(size)

    assert Box.name == "box" and things.available() == ["box"]
    assert things.create("box", size=3).size == 3
    with pytest.raises(ConfigError, match="unknown thing 'bag'; choose one of: box"):
        things.create("bag")
    with pytest.raises(ConfigError, match=r"thing 'box': .*colour"):
        things.create("box", colour="red")
    with pytest.raises(ConfigError, match="thing 'box'"):
        things.create("box", size="large")
    with pytest.raises(ValueError, match="registered twice"):
        things.register("box")(Box)


def test_builtins_are_registered() -> None:
    assert features() == ["cnn", "combo", "edges", "hog", "hsv", "lbp"]
    assert indexes() == ["annoy", "exact", "faiss", "hnsw", "kdtree", "nndescent"]
    assert DISTANCES.available() == ["chi2", "cosine", "dot", "euclidean", "manhattan"]
    assert DATASETS.available() == ["folders", "holidays", "labels", "plain"]


def test_describe_reads_the_metadata_on_the_class() -> None:
    things: Registry[object] = Registry("thing")

    @things.register("box")
    class Box:
        """A box of things: kept for later."""

        label = "a box"
        description = "a box: holds things until they are needed"
        shown: ClassVar[dict[str, str]] = {"size": "size {}", "lid": "lid={}"}

        def __init__(self, *, size: int = 1, lid: bool = True) -> None:
            self.size = size

    @things.register("bag", label="a bag")
    def bag() -> None:
        """Bag of things, soft."""

    about = things.describe("box")
    assert (about.name, about.label) == ("box", "a box")
    assert about.description == "a box: holds things until they are needed"
    assert about.values({"lid": False, "size": 3, "colour": "red"}) == ["size 3", "lid=False"]
    assert about.words({"size": 3}) == "a box, size 3"
    assert about.words({}) == "a box"
    plain = things.describe("bag")  # a function: the label given, its docstring's first line
    assert (plain.label, plain.description) == ("a bag", "Bag of things, soft.")
    assert dict(plain.shown) == {}
    assert "box" in things and "sack" not in things
    with pytest.raises(ConfigError, match="unknown thing 'sack'; choose one of: bag, box"):
        things.describe("sack")


REGISTRIES = {"feature": FEATURES, "index": INDEXES, "metric": DISTANCES, "dataset": DATASETS}
"""Every registry by its config group in ``conf/`` (a dataset layout is ``dataset.layout``)."""


@pytest.mark.parametrize(
    ("group", "name"), [(g, n) for g, reg in REGISTRIES.items() for n in reg.available()]
)
def test_every_registered_name_carries_its_metadata(group: str, name: str) -> None:
    registry = REGISTRIES[group]
    about = registry.describe(name)
    assert about.label and about.description, name
    assert len(about.description.splitlines()) == 1 and len(about.label) < 60
    cls = registry.get(name)
    if isinstance(cls, type):  # every shown parameter is a constructor keyword (or a default)
        accepted = {*inspect.signature(cls).parameters, *getattr(cls, "DEFAULTS", {})}
        assert set(about.shown) <= set(accepted), (name, set(about.shown) - set(accepted))
    if group in ("feature", "index"):  # ... and set in the option's YAML
        assert (CONF / group / f"{name}.yaml").is_file(), name
        params = yaml.safe_load((CONF / group / f"{name}.yaml").read_text())
        assert set(about.shown) <= set(params), (name, set(about.shown) - set(params))
    if group == "metric":
        assert (CONF / group / f"{name}.yaml").is_file(), name


def _readme_table(heading: str, first_column: str) -> dict[str, list[str]]:
    """Rows of the docs/guide.md table under ``heading``, header starting with ``first_column``."""
    section = GUIDE.read_text().split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]
    rows, inside = {}, False
    for line in section.splitlines():
        if line.startswith(f"| {first_column} |"):
            inside = True
        elif inside and line.startswith("|") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            rows[cells[0].strip("`")] = cells[1:]
        elif inside and not line.startswith("|"):
            break
    return rows


def _param_names(cell: str) -> set[str]:
    """``bins``, ``mode`` from a cell like "`bins=[8,12,3]`, `mode`" (placeholders left out)."""
    names = {code.split("=")[0] for code in re.findall(r"`([^`]+)`", cell)}
    return {name for name in names if not name.startswith("<")}


def test_readme_features_table_is_the_registry() -> None:
    rows = _readme_table("## Features", "feature")
    assert sorted(rows) == FEATURES.available()
    for name, (what, params) in rows.items():
        about = FEATURES.describe(name)
        assert what == about.description, name
        assert _param_names(params) == set(about.shown), name


def test_readme_metrics_table_is_the_registry() -> None:
    rows = _readme_table("## Features", "metric")
    assert sorted(rows) == DISTANCES.available()
    for name, (label, what) in rows.items():
        about = DISTANCES.describe(name)
        assert (label, what) == (about.label, about.description), name


def test_readme_search_methods_table_is_the_registry() -> None:
    rows = _readme_table("## Exact and approximate search", "`index=`")
    assert sorted(rows) == INDEXES.available()
    for name, cells in rows.items():
        assert set(INDEXES.describe(name).shown) <= _param_names(cells[-1]), name


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=[pytest.mark.slow] if n == "cnn" else []) for n in FEATURES.available()],
)
def test_every_feature_built_from_its_yaml_gives_one_vector_per_image(name: str) -> None:
    params = compose_config([f"feature={name}"])["feature"]
    extractor = FEATURES.create(params.pop("name"), **params)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(2)]
    images.append(np.zeros((80, 60, 3), np.uint8))  # another size, flat: still one vector
    vectors = [extractor.extract(image) for image in images]
    assert all(v.dtype == np.float32 and v.ndim == 1 for v in vectors), name
    assert len({v.shape for v in vectors}) == 1 and all(np.isfinite(v).all() for v in vectors)
    assert not np.array_equal(vectors[0], vectors[1]), name  # the descriptor sees the pixels


@pytest.mark.parametrize("name", DISTANCES.available())
def test_every_metric_gives_a_query_by_item_matrix(name: str) -> None:
    rng = np.random.default_rng(1)
    queries, items = rng.random((3, 5)), rng.random((4, 5))
    d = pairwise(name, queries, items)
    assert d.shape == (3, 4) and np.isfinite(d).all()
    assert np.allclose(d, DISTANCES.get(name)(queries, items))
    nearest = pairwise(name, items, items).argmin(axis=1)  # an item is (one of) its own nearest
    assert name == "dot" or (nearest == np.arange(4)).all()


def test_a_new_dataset_layout_plugs_in_beside_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class PairsLayout(Layout):
        """Images named ``<group>_<n>.jpg``; ``<group>_0`` is the query."""

        name = "pairs"
        label = "pairs by prefix"
        description = "images named <group>_<n>.jpg: <group>_0 is the query"

        def read(self, root: Path, labels: Path | None) -> tuple[list[str], list[str], set[str]]:
            names = sorted(p.name for p in root.glob("*_*.jpg"))
            return names, [n.split("_")[0] for n in names], {n for n in names if "_0." in n}

    monkeypatch.setitem(DATASETS._classes, "pairs", PairsLayout)  # as @DATASETS.register does
    for name in ("a_0.jpg", "a_1.jpg", "b_0.jpg", "b_1.jpg", "b_2.jpg"):
        (tmp_path / name).write_bytes(b"not decoded here")
    data = load_dataset(tmp_path, layout="pairs")
    assert data.names == ("a_0.jpg", "a_1.jpg", "b_0.jpg", "b_1.jpg", "b_2.jpg")
    assert data.relevant == {0: frozenset({1}), 2: frozenset({3, 4})}
    assert data.protocol == "instance"
    assert layouts() == ("auto", "holidays", "folders", "plain", "labels", "pairs")
    assert DATASETS.describe("pairs").label == "pairs by prefix"
    assert load_dataset(tmp_path).protocol == "none"  # auto only tries layouts with an auto_rank
