"""Weighted combinations of features."""

from __future__ import annotations

import numpy as np
import pytest

from search_lab.core import ConfigError
from search_lab.features import create
from search_lab.features.combo import combine


def test_combine_normalises_each_block_then_weights_it() -> None:
    a = np.array([[3.0, 4.0]])
    b = np.array([[0.0, 10.0, 0.0]])
    out = combine([a, b], [1.0, 0.5])
    np.testing.assert_allclose(out, [[0.6, 0.8, 0.0, 0.5, 0.0]])


def test_combo_extractor_concatenates_its_parts() -> None:
    image = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    combo = create("combo", parts=["hsv", "edges"], weights=[1.0, 2.0], hsv={"bins": [4, 4, 2]})
    hsv = create("hsv", bins=[4, 4, 2]).extract(image)
    edges = create("edges").extract(image)
    expected = combine([hsv[None], edges[None]], [1.0, 2.0])[0]
    np.testing.assert_allclose(combo.extract(image), expected, rtol=1e-5)
    assert combo.parallel and combo.max_side == 512


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"parts": []}, "at least one"),
        ({"parts": ["hsv", "lbp"], "weights": [1.0]}, "2 parts but 1 weights"),
        ({"parts": ["hsv", "colour"]}, "unknown part"),
        ({"parts": ["combo"]}, "unknown part"),
        ({"parts": ["hsv"], "weights": [-1.0]}, "non-negative"),
    ],
)
def test_bad_combinations(params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        create("combo", **params)
