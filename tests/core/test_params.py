"""Tests for search_lab.core.params: hand-picked good and bad values and the exact messages."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from search_lab.core import ConfigError, params


@pytest.mark.parametrize(
    ("check", "value", "expected"),
    [
        (functools.partial(params.require_int, "hog: orientations"), 9, 9),
        (functools.partial(params.require_int, "hog: orientations"), np.int64(3), 3),
        (functools.partial(params.require_int, "lbp: points", minimum=1, maximum=16), 16, 16),
        (functools.partial(params.require_int, "post.expand", minimum=0), 0, 0),
        (functools.partial(params.require_positive_int, "post.pca_dim", null=True), None, None),
        (functools.partial(params.require_positive_int, "cnn: size"), 320, 320),
        (functools.partial(params.require_number, "post.shrinkage"), 0, 0.0),
        (functools.partial(params.require_number, "post.power", strict=True), 0.5, 0.5),
        (functools.partial(params.require_number, "edges: threshold", below=1), 0.999, 0.999),
        (functools.partial(params.require_bool, "hsv: sqrt"), False, False),
        (
            functools.partial(params.require_choice, "lbp: method", choices=["ror", "uniform"]),
            "ror",
            "ror",
        ),
        (functools.partial(params.require_int_pair, "hog: size"), 128, (128, 128)),
        (functools.partial(params.require_int_pair, "hog: size"), [64, 32], (64, 32)),
        (functools.partial(params.require_jobs, "hnsw index: n_jobs"), -1, -1),
        (functools.partial(params.require_seed, "annoy index: seed", null=True), None, None),
        (functools.partial(params.require_seed, "faiss index: seed"), 0, 0),
    ],
)
def test_good_values_pass(check: Callable[[Any], Any], value: Any, expected: Any) -> None:
    result = check(value)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(
    ("check", "value", "message"),
    [
        (functools.partial(params.require_int, "hog: orientations"), 0,
         "hog: orientations must be an integer >= 1, got 0"),
        (functools.partial(params.require_int, "hog: orientations"), True,
         "hog: orientations must be an integer >= 1, got True"),
        (functools.partial(params.require_int, "hog: orientations"), 2.0,
         "hog: orientations must be an integer >= 1, got 2.0"),
        (functools.partial(params.require_int, "lbp: points", minimum=1, maximum=16), 24,
         "lbp: points must be an integer in [1, 16], got 24"),
        (functools.partial(params.require_positive_int, "post.pca_dim", null=True), 1.5,
         "post.pca_dim must be a positive integer or null, got 1.5"),
        (functools.partial(params.require_positive_int, "cnn: size"), None,
         "cnn: size must be a positive integer, got None"),
        (functools.partial(params.require_number, "post.shrinkage"), -0.1,
         "post.shrinkage must be a number >= 0, got -0.1"),
        (functools.partial(params.require_number, "post.power", strict=True), 0,
         "post.power must be a positive number, got 0"),
        (functools.partial(params.require_number, "post.power", strict=True), float("nan"),
         "post.power must be a positive number, got nan"),
        (functools.partial(params.require_number, "kdtree index: eps"), "0",
         "kdtree index: eps must be a number >= 0, got '0'"),
        (functools.partial(params.require_number, "edges: threshold", below=1), 1.0,
         "edges: threshold must be a number in [0, 1), got 1.0"),
        (functools.partial(params.require_bool, "edges: signed"), "yes",
         "edges: signed must be true or false, got 'yes'"),
        (functools.partial(params.require_bool, "post.l2"), 1,
         "post.l2 must be true or false, got 1"),
        (functools.partial(params.require_choice, "hog: block_norm", choices=["L1", "L2-Hys"]),
         "L3", "hog: unknown block_norm 'L3'; choose one of: L1, L2-Hys"),
        (functools.partial(params.require_int_pair, "hog: size"), [128],
         "hog: size must be a pair of integers >= 1 (rows, cols) or one such integer, got [128]"),
        (functools.partial(params.require_jobs, "hnsw index: n_jobs"), 0,
         "hnsw index: n_jobs must be -1 (every core) or positive, got 0"),
        (functools.partial(params.require_seed, "annoy index: seed", null=True), -1,
         "annoy index: seed must be null or a non-negative integer, got -1"),
    ],
)  # fmt: skip
def test_bad_values_raise_one_exact_line(
    check: Callable[[Any], Any], value: Any, message: str
) -> None:
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        check(value)


def test_a_config_section_choice_has_no_owner_prefix() -> None:
    with pytest.raises(ConfigError, match=r"^unknown metric 'x'; choose one of: cosine$"):
        params.require_choice("metric", "x", ["cosine"])


def test_components_use_the_shared_messages() -> None:
    """The same wrong value gets the same words from a feature, an index and a config section."""
    from search_lab import indexes
    from search_lab.features import create, postprocess

    with pytest.raises(ConfigError, match=r"^hnsw index: M must be a positive integer, got 0$"):
        indexes.create("hnsw", metric="cosine", M=0)
    with pytest.raises(ConfigError, match=r"^lbp: grid must be an integer >= 1, got 0$"):
        create("lbp", grid=0)
    with pytest.raises(ConfigError, match=r"^post\.pca_dim must be a positive integer or null"):
        postprocess.PostProcessor(pca_dim=0)
