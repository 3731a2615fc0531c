"""A run's components are built once, and a query's vector is its collection row.

The construction count wraps ``__init__`` of every extractor class, every index class and
the post-processing chain, then runs a cold ``evaluate`` (an empty feature cache) in this
process (``workers=1``): each component the config names is constructed exactly once.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from search_lab.cli.evaluate import run
from search_lab.features import Extractor, PostProcessor
from search_lab.indexes import Index
from search_lab.retrieval import build_extractor, cached_features
from search_lab.retrieval.extract import vectors_of
from tests.conftest import compose_config

NAMES = ["100000.jpg", "100001.jpg", "100100.jpg", "100101.jpg", "100200.jpg", "100201.jpg"]


def _classes(base: type) -> Iterator[type]:
    for cls in base.__subclasses__():
        yield cls
        yield from _classes(cls)


@pytest.fixture
def constructions(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Counts of ``__init__`` calls by concrete class name (a copy is not a construction)."""
    counts: Counter = Counter()
    for cls in {*_classes(Extractor), *_classes(Index), PostProcessor}:
        if "__init__" not in vars(cls):
            continue
        original = vars(cls)["__init__"]

        def counting(self, *args, __cls=cls, __init=original, **kwargs) -> None:
            if type(self) is __cls:
                counts[__cls.__name__] += 1
            __init(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", counting)
    return counts


@pytest.fixture
def small_holidays(holidays_dir: Path, tmp_path: Path) -> Path:
    """Three Holidays groups of two images (a real, cold collection)."""
    data = tmp_path / "data"
    data.mkdir()
    for name in NAMES:
        shutil.copy(holidays_dir / name, data / name)
    return data


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["index=annoy"], {"HSVHistogram": 1, "AnnoyIndex": 1, "PostProcessor": 1}),
        (
            ["feature=combo", "index=annoy"],
            {"Combo": 1, "HSVHistogram": 1, "LBP": 1, "AnnoyIndex": 1, "PostProcessor": 1},
        ),
    ],
    ids=["hsv", "combo"],
)
def test_cold_evaluate_builds_each_component_once(
    constructions: Counter, small_holidays: Path, tmp_path: Path, overrides, expected
) -> None:
    cfg = compose_config(
        [
            f"dataset.root={small_holidays}",
            f"cache_dir={tmp_path / 'cache'}",
            "progress=false",
            "workers=1",
            *overrides,
        ]
    )
    metrics = run(cfg, tmp_path / "out", quiet=True)
    assert metrics["features_cached"] is False and metrics["n_images"] == len(NAMES)
    # besides the configured components, only the fidelity check's exact baseline is built
    assert constructions == {**expected, "ExactIndex": 1}


def test_query_vector_equals_the_collection_row_of_a_camera_jpeg(tmp_path: Path) -> None:
    """A 3264x2448 JPEG: each part decodes it at its own size on both paths."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    photo = Image.fromarray(small).resize((3264, 2448), Image.Resampling.BICUBIC)
    photo.save(tmp_path / "camera.jpg", quality=90)
    combo = build_extractor(compose_config(["feature=combo"])["feature"])
    feats, _ = cached_features(
        None, tmp_path, ["camera.jpg"], "fp", combo, workers=1, progress=False
    )
    from_path = vectors_of(combo, tmp_path / "camera.jpg")
    from_bytes = vectors_of(combo, (tmp_path / "camera.jpg").read_bytes())
    assert feats.vectors.shape == from_path.shape == (1, feats.vectors.shape[1])
    assert np.array_equal(feats.vectors, from_path)
    assert np.array_equal(feats.vectors, from_bytes)
