"""The re-ranking benchmark's offline merge: the order it scores is the order re-ranking gives.

``python -m search_lab.benchmarks.rerank merge|chain`` count each pair's inliers once and then
re-sort every query's head for many merge settings; these hand-made rankings pin that re-sort.
"""

from __future__ import annotations

import numpy as np

from search_lab.benchmarks.rerank import CHAIN_GRID, merged_order
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
    """The grid includes recommended's expansion (20, alpha 2, floor 0) and the defaults'
    merge is what `chain` applies."""
    assert 20 in CHAIN_GRID["expand"] and 2.0 in CHAIN_GRID["expand_alpha"]
    assert 0.0 in CHAIN_GRID["expand_floor"]
    assert (SV_DEFAULTS["min_inliers"], SV_DEFAULTS["saturate"]) == (8, 50)
