"""The post-processing chain on small matrices with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from search_lab.core import ConfigError
from search_lab.features import PostProcessor
from search_lab.features.postprocess import l2n, signed_power


def test_l2n_and_signed_power() -> None:
    np.testing.assert_allclose(l2n(np.array([[3.0, 4.0], [0.0, 0.0]])), [[0.6, 0.8], [0.0, 0.0]])
    np.testing.assert_allclose(signed_power(np.array([-4.0, 9.0]), 0.5), [-2.0, 3.0])


def test_pca_whitening_gives_unit_variance_components() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 6)) * np.array([10, 5, 2, 1, 0.5, 0.1])
    post = PostProcessor(l2=False, pca_dim=3, whiten=True, shrinkage=0.0).fit(x)
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


def test_shrunk_whitening_by_hand() -> None:
    # Points (+-2, 0) and (0, +-1): variances 8/3 and 2/3 (ddof 1), mean variance 5/3.
    # With shrinkage 1 the axes are divided by sqrt(8/3 + 5/3) and sqrt(2/3 + 5/3).
    x = np.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    post = PostProcessor(l2=False, pca_dim=2, whiten=True, shrinkage=1.0).fit(x)
    np.testing.assert_allclose(post.state["scale"], [(13 / 3) ** -0.5, (7 / 3) ** -0.5])
    y = post.transform(x)
    np.testing.assert_allclose(np.abs(y[0]), [2 / np.sqrt(13 / 3), 0.0], atol=1e-6)
    np.testing.assert_allclose(np.abs(y[2]), [0.0, 1 / np.sqrt(7 / 3)], atol=1e-6)


def test_components_bounded_by_the_collection(caplog: pytest.LogCaptureFixture) -> None:
    x = np.random.default_rng(3).normal(size=(10, 50))  # 10 images span 9 directions
    with caplog.at_level("INFO", logger="search_lab.features.postprocess"):
        post = PostProcessor(pca_dim=20, whiten=True).fit(x)
    assert post.transform(x).shape == (10, 9)
    assert "post.pca_dim=20 reduced to 9" in caplog.text


def test_shrinkage_keeps_a_small_collection_sound() -> None:
    # 40 images of 20 tight pairs in 300 dimensions: plain whitening blows up the directions
    # that only noise spans, so a pair's members stop being each other's nearest neighbours.
    rng = np.random.default_rng(4)
    centres = rng.normal(size=(20, 300)) * np.linspace(3, 0.01, 300)
    x = np.repeat(centres, 2, axis=0) + 0.05 * rng.normal(size=(40, 300))

    def pairs_found(shrinkage: float) -> float:
        y = PostProcessor(pca_dim=128, whiten=True, shrinkage=shrinkage).fit_transform(x)
        sim = y @ y.T
        np.fill_diagonal(sim, -np.inf)
        return float(np.mean(sim.argmax(axis=1) == np.arange(40) ^ 1))

    assert pairs_found(1.0) == 1.0
    assert pairs_found(0.0) < pairs_found(1.0)


@pytest.mark.parametrize(
    "params", [{"power": 0}, {"pca_dim": 0}, {"whiten": True}, {"shrinkage": -1}]
)
def test_bad_parameters(params: dict) -> None:
    with pytest.raises(ConfigError, match="post"):
        PostProcessor(**params)


def test_expansion_adds_weighted_neighbours_by_hand() -> None:
    """alpha-QE worked out by hand on three unit vectors of a 2-D collection."""
    from search_lab.features.postprocess import expand_queries

    base = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    # query (1, 0): top-2 are itself (cos 1) and (0.6, 0.8) (cos 0.6); alpha 1
    # -> (1, 0) + 1 * (1, 0) + 0.6 * (0.6, 0.8) = (2.36, 0.48), then L2-normalised
    got = expand_queries(base[:1], base, k=2, alpha=1.0)
    want = np.array([2.36, 0.48]) / np.hypot(2.36, 0.48)
    np.testing.assert_allclose(got[0], want)
    # neighbours at a negative similarity weigh nothing
    got = expand_queries(np.array([[-1.0, 0.0]]), base, k=2, alpha=2.0)
    np.testing.assert_allclose(got[0], [-1.0, 0.0])  # both neighbours at cos <= 0


def test_expansion_floor_drops_neighbours_below_it_by_hand() -> None:
    from search_lab.features.postprocess import expand_queries

    base = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    # floor 0.7: (0.6, 0.8) at cos 0.6 weighs nothing; only the query's own row (cos 1) adds
    got = expand_queries(base[:1], base, k=2, alpha=1.0, floor=0.7)
    np.testing.assert_allclose(got[0], [1.0, 0.0])
    # floor 0.5 keeps it: the plain alpha-QE result of the test above
    got = expand_queries(base[:1], base, k=2, alpha=1.0, floor=0.5)
    np.testing.assert_allclose(got[0], np.array([2.36, 0.48]) / np.hypot(2.36, 0.48))


def test_expansion_is_fitted_on_the_collection_and_saved_in_the_state() -> None:
    rng = np.random.default_rng(0)
    collection = rng.random((40, 6))
    post = PostProcessor(expand=3, expand_alpha=3.0)
    assert not post.fitted
    vectors = post.fit_transform(collection)
    assert post.fitted and post.state["expand_base"].shape == (40, 6)
    again = PostProcessor(expand=3, expand_alpha=3.0)
    again.state = dict(post.state)  # as loaded from an index folder
    np.testing.assert_allclose(again.transform(collection[5]), vectors[5:6], atol=1e-6)
    for bad in ({"expand": -1}, {"expand": 2, "l2": False}, {"expand_alpha": "x"}):
        with pytest.raises(ConfigError):
            PostProcessor(**bad)


@pytest.mark.parametrize("whiten", [False, True])
def test_a_pca_fitted_from_streamed_moments_is_the_in_memory_one(whiten: bool) -> None:
    """Moments summed over blocks give the PCA of the whole matrix (up to each axis' sign)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(500, 24)) * np.linspace(3, 0.1, 24) + rng.normal(size=24)
    whole = PostProcessor(power=0.5, pca_dim=10, whiten=whiten).fit(x)
    streamed = PostProcessor(power=0.5, pca_dim=10, whiten=whiten)
    parts = [streamed.moments(block) for block in np.array_split(x, 7)]
    count = sum(p[0] for p in parts)
    streamed.fit_moments(count, sum(p[1] for p in parts), sum(p[2] for p in parts))
    assert count == 500
    np.testing.assert_allclose(streamed.state["mean"], whole.state["mean"], atol=1e-12)
    np.testing.assert_allclose(streamed.state["scale"], whole.state["scale"], rtol=1e-9)
    a, b = whole.transform(x[:50]), streamed.transform(x[:50])
    signs = np.sign(np.sum(a * b, axis=0))  # eigh may return an axis negated
    np.testing.assert_allclose(a, b * signs, atol=1e-5)


def test_streamed_moments_refuse_query_expansion() -> None:
    post = PostProcessor(expand=2)
    with pytest.raises(ValueError, match="fit it in memory"):
        post.fit_moments(*post.moments(np.eye(3)))
