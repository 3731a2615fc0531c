"""The re-ranking benchmark's offline merge: the order it scores is the order re-ranking gives.

``python -m search_lab.benchmarks.rerank merge|chain`` count each pair's inliers once and then
re-sort every query's head for many merge settings; these hand-made rankings pin that re-sort.
"""

from __future__ import annotations

import numpy as np
import pytest

from search_lab.benchmarks.rerank import (
    CHAIN_GRID,
    VARIANTS,
    diffusion_scores,
    main,
    merged_order,
    reciprocal_expansion,
    self_weighted_expansion,
    variant_similarities,
)
from search_lab.features import expand_queries
from search_lab.retrieval import SV_DEFAULTS

IDS = np.array([[0, 1, 2, 3, 4]])
DISTS = np.array([[0.0, 0.10, 0.20, 0.30, 0.40]])


def test_a_verified_candidate_moves_up_by_its_bonus() -> None:
    """Row 2 (distance 0.2) with 50 inliers: -0.2 + 0.25 * 50/50 = 0.05 beats -0.1 and 0."""
    counts = np.array([[0, 0, 50, 0]])  # the head: the query itself and 3 candidates
    got = merged_order(IDS, DISTS, counts, weight=0.25, least=8, sat=50)
    assert got.tolist() == [[2, 0, 1, 3, 4]]  # the tail (row 4) keeps its place


def test_below_min_inliers_counts_as_unverified() -> None:
    counts = np.array([[0, 0, 7, 0]])
    assert merged_order(IDS, DISTS, counts, 0.25, 8, 50).tolist() == IDS.tolist()


def test_saturation_caps_the_bonus() -> None:
    """Rows 2 and 3 both saturate (60, 500 inliers): equal bonus, so distance decides."""
    counts = np.array([[0, 0, 60, 500, 0]])
    got = merged_order(IDS, DISTS, counts, 0.25, 8, 50)
    # 0: 0; 1: -0.1; 2: -0.2 + 0.25 = 0.05; 3: -0.3 + 0.25 = -0.05; 4: -0.4
    assert got.tolist() == [[2, 0, 3, 1, 4]]


def test_chain_grid_holds_the_shipped_settings() -> None:
    """The grid includes recommended's expansion, as its file sets it (10, alpha 2, floor 0),
    and the defaults' merge is what `chain` applies."""
    from search_lab.cli import compose_config

    post = compose_config(["+experiment=recommended"])["post"]
    assert (post["expand"], post["expand_alpha"], post["expand_floor"]) == (10, 2.0, 0.0)
    assert post["expand"] in CHAIN_GRID["expand"]
    assert post["expand_alpha"] in CHAIN_GRID["expand_alpha"]
    assert post["expand_floor"] in CHAIN_GRID["expand_floor"]
    assert (SV_DEFAULTS["min_inliers"], SV_DEFAULTS["saturate"]) == (8, 50)


def _unit_at(*degrees: float) -> np.ndarray:
    rad = np.radians(degrees)
    return np.stack([np.cos(rad), np.sin(rad)], axis=1)


def test_reciprocal_expansion_keeps_only_mutual_neighbours() -> None:
    """Unit vectors at 0, 10, 15 and 90 degrees, k = kr = 2 (itself and its nearest): 10 and 15
    are each other's nearest, so each gains the other (weight cos 5 ** 2); 0's nearest is 10
    and 90's is 15, but neither is theirs, so both stay as they were."""
    x = _unit_at(0, 10, 15, 90)
    got = reciprocal_expansion(x, k=2, alpha=2.0, kr=2)
    w = np.cos(np.radians(5)) ** 2
    for row, other in ((1, 2), (2, 1)):
        want = 2 * x[row] + w * x[other]  # itself twice: x + its own weight-1 neighbour term
        np.testing.assert_allclose(got[row], want / np.linalg.norm(want), atol=1e-12)
    np.testing.assert_allclose(got[[0, 3]], x[[0, 3]], atol=1e-12)


def test_reciprocal_expansion_with_everyone_reciprocal_is_the_recipe() -> None:
    x = np.random.default_rng(0).normal(size=(30, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    want = expand_queries(x, x, 5, 2.0)
    np.testing.assert_allclose(reciprocal_expansion(x, 5, 2.0, kr=30), want, atol=1e-12)


def test_self_weight_two_is_the_recipe_and_more_stays_closer() -> None:
    """The recipe counts each vector twice (x + a sum that holds x); counting it 4 times keeps
    every vector closer to itself."""
    x = np.random.default_rng(1).normal(size=(30, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    recipe = expand_queries(x, x, 5, 2.0)
    np.testing.assert_allclose(self_weighted_expansion(x, 5, 2.0, 2.0), recipe, atol=1e-12)
    heavier = self_weighted_expansion(x, 5, 2.0, 4.0)
    assert np.all(np.sum(heavier * x, axis=1) > np.sum(recipe * x, axis=1))


def test_variants_label_every_setting_once_and_fuse_by_beta() -> None:
    x = np.random.default_rng(2).normal(size=(120, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    rows = np.array([0, 5, 7])
    got = dict(variant_similarities(x, rows))
    sizes = [np.prod([len(values) for values in v.values()]) for v in VARIANTS.values()]
    assert len(got) == 2 + sum(sizes)
    np.testing.assert_allclose(got["no expansion"], x[rows] @ x.T)
    e = expand_queries(x, x, 20, 1.0)
    want = 0.75 * (x[rows] @ x.T) + 0.25 * (e[rows] @ e.T)
    np.testing.assert_allclose(got["fused beta=0.25 alpha=1.0"], want)


def test_diffusion_solves_its_fixed_point_and_stays_in_the_query_s_component() -> None:
    """Two clusters (0/20/35 and 130/150 degrees): every cosine across them is below 0, so
    no edge joins them. The scores equal the fixed point of f <- alpha S f + y reached
    by iteration, peak at 1, and are 0 on the other cluster."""
    x = _unit_at(0, 20, 35, 130, 150)
    rows = np.array([0, 3])
    got = diffusion_scores(x, rows, k=3, alpha=0.8, kq=2)
    sims = x @ x.T
    w = np.where(sims > 0, sims, 0.0) ** 3
    np.fill_diagonal(w, 0.0)  # k = 3 holds itself and both others of its cluster: all mutual
    d = np.sqrt(w.sum(axis=1))
    s = w / d[:, None] / d[None, :]
    y = np.zeros((2, 5))
    y[0, [0, 1]] = [1.0, np.cos(np.radians(20)) ** 3]  # kq = 2: itself and its nearest
    y[1, [3, 4]] = [1.0, np.cos(np.radians(20)) ** 3]
    f = y.copy()
    for _ in range(300):
        f = 0.8 * f @ s.T + y
    np.testing.assert_allclose(got, f / f.max(axis=1, keepdims=True), atol=1e-10)
    assert got[0, 3:].tolist() == [0.0, 0.0] and got[1, :3].tolist() == [0.0, 0.0, 0.0]


def test_variants_run_on_a_collection_smaller_than_their_neighbourhoods() -> None:
    """12 images, below every k (20, 50, 100) and kr (up to 30): all of them are taken."""
    x = np.random.default_rng(3).normal(size=(12, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    got = dict(variant_similarities(x, np.array([0, 1])))
    assert all(s.shape == (2, 12) and np.isfinite(s).all() for s in got.values())
    np.testing.assert_allclose(
        got["reciprocal kr=30 alpha=2.0"], got["the recipe (20, alpha 2)"], atol=1e-12
    )


def test_bad_input_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["variants", "dataset.split=bogus", "--weights"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: unknown dataset.split 'bogus'; choose one of: all, tune, test"
