"""The registry behind features and indexes."""

from __future__ import annotations

import pytest

from search_lab.errors import ConfigError
from search_lab.features import available as features
from search_lab.indexes import available as indexes
from search_lab.registry import Registry


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
