"""The post-processing chain on small matrices with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from search_lab.errors import ConfigError
from search_lab.postprocess import PostProcessor, l2n, signed_power


def test_l2n_and_signed_power() -> None:
    np.testing.assert_allclose(l2n(np.array([[3.0, 4.0], [0.0, 0.0]])), [[0.6, 0.8], [0.0, 0.0]])
    np.testing.assert_allclose(signed_power(np.array([-4.0, 9.0]), 0.5), [-2.0, 3.0])


def test_pca_whitening_gives_unit_variance_components() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 6)) * np.array([10, 5, 2, 1, 0.5, 0.1])
    post = PostProcessor(l2=False, pca_dim=3, whiten=True).fit(x)
    y = post.transform(x)
    assert y.shape == (500, 3)
    np.testing.assert_allclose(y.var(axis=0, ddof=1), 1.0, rtol=1e-3)
    np.testing.assert_allclose(np.corrcoef(y.T), np.eye(3), atol=1e-3)


def test_queries_are_mapped_like_the_collection() -> None:
    rng = np.random.default_rng(1)
    x = rng.random((50, 8))
    post = PostProcessor(power=0.5, pca_dim=4).fit(x)
    np.testing.assert_allclose(post.transform(x[3]), post.transform(x)[3:4], rtol=1e-6)
    assert np.allclose(np.linalg.norm(post.transform(x), axis=1), 1.0)


def test_state_round_trips() -> None:
    x = np.random.default_rng(2).random((30, 5))
    post = PostProcessor(pca_dim=2, whiten=True).fit(x)
    copy = PostProcessor(pca_dim=2, whiten=True)
    copy.state = dict(post.state)
    np.testing.assert_array_equal(copy.transform(x), post.transform(x))


@pytest.mark.parametrize("params", [{"power": 0}, {"pca_dim": 0}, {"whiten": True}])
def test_bad_parameters(params: dict) -> None:
    with pytest.raises(ConfigError, match="post"):
        PostProcessor(**params)
