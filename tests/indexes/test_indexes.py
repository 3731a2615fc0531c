"""Tests for search_lab.indexes: the contract of every registered index, exact, Annoy, search_views.

Units use hand-made vectors or small seeded clustered sets; the end-to-end test evaluates
Annoy against exact search on holidays-small through ``search_lab.evaluate.run``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from search_lab import indexes
from search_lab.core import ConfigError, IndexMismatchError
from search_lab.indexes import PAD_ID, AnnoyIndex, ExactIndex, search_views
from search_lab.indexes.distances import METRICS, pairwise


def clustered(n: int, dim: int = 16, *, seed: int = 0, centers: int = 20) -> np.ndarray:
    """``n`` float32 vectors around ``centers`` random centres (spread 0.3); seeded."""
    rng = np.random.default_rng(seed)
    means = np.random.default_rng(12345).standard_normal((centers, dim))
    labels = rng.integers(0, centers, n)
    return (means[labels] + 0.3 * rng.standard_normal((n, dim))).astype(np.float32)


@pytest.fixture(scope="module")
def items() -> np.ndarray:
    return clustered(600)


@pytest.fixture(scope="module")
def queries() -> np.ndarray:
    return clustered(60, seed=1)


def exact_ids(metric: str, items: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    index = ExactIndex(metric=metric)
    index.build(items)
    return index.search(queries, k)[0]


# --- the contract every registered index keeps --------------------------------------------


@dataclass(frozen=True)
class Kind:
    """How the contract tests drive one index type (a kind missing here gets the defaults)."""

    params: dict = field(default_factory=dict)
    min_recall: float = 0.95  # recall@10 on clustered data, approximate kinds only
    slow: bool = False  # e.g. numba compiling in each new process
    metric_record: bool = True  # load refuses a folder saved for another metric
    damage_check: bool = True  # load refuses a truncated data file


KINDS: dict[str, Kind] = {
    "exact": Kind(metric_record=False, damage_check=False),  # checked by the engine's folder
    "annoy": Kind({"n_trees": 20, "seed": 1, "n_jobs": 1}),
    "kdtree": Kind(),
    "hnsw": Kind({"M": 16, "ef": 50}),
    "faiss": Kind({"factory": "HNSW32"}),
    "nndescent": Kind(slow=True),
}


def kinds(check: str | None = None) -> list:
    """Every registered kind as a pytest param (marked slow where the table says so)."""
    out = []
    for name in indexes.available():
        kind = KINDS.get(name, Kind())
        if check is None or getattr(kind, check):
            out.append(pytest.param(name, marks=[pytest.mark.slow] if kind.slow else []))
    return out


def supported(name: str) -> list[str]:
    """Metrics an index type accepts (asked of the type itself)."""
    ok = []
    for metric in sorted(METRICS):
        try:
            indexes.create(name, metric=metric, **KINDS.get(name, Kind()).params)
        except ConfigError:
            continue
        ok.append(metric)
    return ok


def kind_metric_pairs(*, wanted: bool) -> list:
    """(kind, metric) params for the supported (``wanted``) or unsupported pairs."""
    out = []
    for param in kinds():
        (name,) = param.values
        for metric in sorted(METRICS):
            if (metric in supported(name)) == wanted:
                out.append(pytest.param(name, metric, marks=param.marks, id=f"{name}-{metric}"))
    return out


def make(name: str, metric: str = "euclidean", **extra: object) -> indexes.Index:
    return indexes.create(name, metric=metric, **{**KINDS.get(name, Kind()).params, **extra})


def test_registry_has_every_search_method() -> None:
    assert {"exact", "annoy", "kdtree", "nndescent", "hnsw", "faiss"} <= set(indexes.available())


def test_every_registered_kind_has_a_config_and_a_description() -> None:
    conf = Path(__file__).resolve().parents[2] / "conf" / "index"
    for name in indexes.available():
        assert (conf / f"{name}.yaml").is_file(), name
        assert indexes.INDEXES._classes[name].description, name


def test_unknown_index_lists_choices() -> None:
    with pytest.raises(ConfigError, match="choose one of: annoy, exact, faiss, hnsw, kdtree"):
        indexes.create("flann", metric="cosine")


@pytest.mark.parametrize("kind", kinds())
def test_every_index_returns_sorted_rows_and_caps_k(kind: str, items: np.ndarray) -> None:
    index = make(kind)
    index.build(items[:30])
    ids, dists = index.search(items[:4], 50)
    assert ids.shape == dists.shape == (4, 30)
    assert ids.dtype == np.int64
    assert np.all(np.diff(dists, axis=1) >= 0)
    assert np.array_equal(ids[:, 0], np.arange(4))  # each item is its own nearest
    assert all(len(set(row)) == 30 for row in ids)


@pytest.mark.parametrize("kind", kinds())
def test_every_index_rejects_a_query_of_the_wrong_dimension(kind: str, items: np.ndarray) -> None:
    index = make(kind)
    index.build(items)
    with pytest.raises(IndexMismatchError, match="dimension 5 but the index holds 16-d"):
        index.search(np.ones((1, 5), np.float32), 3)


@pytest.mark.parametrize(("kind", "metric"), kind_metric_pairs(wanted=True))
def test_every_index_reports_distances_in_the_metric_units(
    kind: str, metric: str, items: np.ndarray, queries: np.ndarray
) -> None:
    """Exact kinds: the exact top-k distances; approximate ones: true distances of their ids."""
    if metric == "chi2":  # histograms: non-negative
        items, queries = np.abs(items), np.abs(queries)
    index = make(kind, metric)
    index.build(items)
    ids, dists = index.search(queries, 8)
    assert (ids >= 0).all()
    true = np.stack(
        [pairwise(metric, q[None], items[row])[0] for q, row in zip(queries, ids, strict=True)]
    )
    np.testing.assert_allclose(dists, true, rtol=1e-4, atol=1e-5)
    if index.exact:
        truth = ExactIndex(metric=metric)
        truth.build(items)
        np.testing.assert_allclose(dists, truth.search(queries, 8)[1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", kinds())
def test_every_index_reaches_its_recall_on_clustered_data(
    kind: str, items: np.ndarray, queries: np.ndarray
) -> None:
    index = make(kind, "euclidean")
    index.build(items)
    ids, _ = index.search(queries, 10)
    truth = exact_ids("euclidean", items, queries, 10)
    recall = np.mean([len(set(a) & set(t)) / 10 for a, t in zip(ids, truth, strict=True)])
    assert recall >= (1.0 if index.exact else KINDS.get(kind, Kind()).min_recall)


@pytest.mark.parametrize(("kind", "metric"), kind_metric_pairs(wanted=False))
def test_every_index_refuses_an_unsupported_metric(kind: str, metric: str) -> None:
    with pytest.raises(ConfigError, match=f"{kind} index does not support metric '{metric}'"):
        make(kind, metric)


@pytest.mark.parametrize("kind", kinds())
def test_every_index_save_load_round_trip(
    kind: str, tmp_path: Path, items: np.ndarray, queries: np.ndarray
) -> None:
    index = make(kind, "cosine")
    index.build(items)
    index.save(tmp_path)
    loaded = make(kind, "cosine")
    loaded.load(tmp_path)
    assert (loaded.size, loaded.dim) == (600, 16)
    for a, b in zip(index.search(queries, 10), loaded.search(queries, 10), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", kinds())
def test_every_index_refuses_an_empty_folder(kind: str, tmp_path: Path) -> None:
    with pytest.raises(IndexMismatchError, match="holds no"):
        make(kind).load(tmp_path)


@pytest.mark.parametrize("kind", kinds("damage_check"))
def test_every_index_refuses_a_truncated_file(kind: str, tmp_path: Path, items: np.ndarray) -> None:
    index = make(kind)
    index.build(items)
    index.save(tmp_path)
    data = max(
        (p for p in tmp_path.iterdir() if p.suffix != ".json"), key=lambda p: p.stat().st_size
    )
    data.write_bytes(data.read_bytes()[:-100])
    with pytest.raises(IndexMismatchError):
        make(kind).load(tmp_path)


@pytest.mark.parametrize("kind", kinds("metric_record"))
def test_every_index_refuses_a_folder_of_another_metric(
    kind: str, tmp_path: Path, items: np.ndarray
) -> None:
    saved_metric = "euclidean"
    other = next(m for m in supported(kind) if m not in (saved_metric, "chi2"))
    index = make(kind, saved_metric)
    index.build(items)
    index.save(tmp_path)
    with pytest.raises(IndexMismatchError, match=f"built for metric '{saved_metric}'"):
        make(kind, other).load(tmp_path)


# --- exact ----------------------------------------------------------------------------------

SQUARE = np.array([[0, 0], [1, 0], [3, 0], [0, 2]], np.float32)


def test_exact_ranks_by_hand() -> None:
    index = ExactIndex(metric="euclidean", block=1)
    index.build(SQUARE)
    ids, dists = index.search(np.array([[0.9, 0.0], [0.0, 1.9]]), 3)
    assert ids.tolist() == [[1, 0, 2], [3, 0, 1]]
    np.testing.assert_allclose(dists[0], [0.1, 0.9, 2.1], atol=1e-6)
    np.testing.assert_allclose(dists[1], [0.1, 1.9, np.hypot(1, 1.9)], atol=1e-6)


def test_exact_k_larger_than_collection_returns_everything_in_order() -> None:
    index = ExactIndex(metric="manhattan")
    index.build(SQUARE)
    ids, dists = index.search(np.array([[2.6, 0.0]]), 10)
    assert ids.tolist() == [[2, 1, 0, 3]]
    np.testing.assert_allclose(dists[0], [0.4, 1.6, 2.6, 4.6], atol=1e-6)


def test_exact_rejects_bad_block() -> None:
    with pytest.raises(ConfigError, match="block must be a positive integer"):
        indexes.create("exact", metric="cosine", block=0)


# --- annoy against exact --------------------------------------------------------------------


def test_annoy_agrees_with_exact_on_clustered_vectors(
    items: np.ndarray, queries: np.ndarray
) -> None:
    index = AnnoyIndex(metric="euclidean", n_trees=20, seed=1, n_jobs=1)
    index.build(items)
    ids, _ = index.search(queries, 10)
    truth = exact_ids("euclidean", items, queries, 10)
    assert np.mean(ids[:, 0] == truth[:, 0]) >= 0.95
    recall = np.mean([len(set(a) & set(t)) / 10 for a, t in zip(ids, truth, strict=True)])
    assert recall >= 0.95


def test_annoy_cosine_of_identical_direction_is_zero() -> None:
    index = AnnoyIndex(metric="cosine", n_trees=2)
    index.build(np.array([[1, 0], [0, 1], [3, 0.0]], np.float32))
    ids, dists = index.search(np.array([[2.0, 0.0]]), 3)
    assert set(ids[0, :2]) == {0, 2}
    np.testing.assert_allclose(dists[0], [0, 0, 1], atol=1e-6)


def test_annoy_dot_prefers_long_aligned_vectors() -> None:
    index = AnnoyIndex(metric="dot", n_trees=2)
    index.build(np.array([[1, 0], [0, 1], [3, 0.0]], np.float32))
    ids, dists = index.search(np.array([[1.0, 0.1]]), 3)
    assert ids[0].tolist() == [2, 0, 1]
    np.testing.assert_allclose(dists[0], [-3.0, -1.0, -0.1], atol=1e-6)


def test_annoy_pads_rows_it_cannot_fill() -> None:
    rng = np.random.default_rng(3)
    index = AnnoyIndex(metric="euclidean", n_trees=1, search_k=1, seed=0)
    index.build(rng.standard_normal((300, 2)).astype(np.float32))  # tiny leaves in 2-d
    ids, dists = index.search(rng.standard_normal((5, 2)).astype(np.float32), 100)
    assert ids.shape == (5, 100)
    assert (ids == PAD_ID).any(), "search_k=1 should leave rows short"
    for row, d in zip(ids, dists, strict=True):
        n = int((row >= 0).sum())
        assert (row[n:] == PAD_ID).all() and np.isinf(d[n:]).all()
        assert np.isfinite(d[:n]).all() and len(set(row[:n])) == n


def test_annoy_build_is_reproducible_for_a_seed(items: np.ndarray, queries: np.ndarray) -> None:
    def run(seed: int) -> np.ndarray:
        index = AnnoyIndex(metric="euclidean", n_trees=3, search_k=30, seed=seed, n_jobs=1)
        index.build(items)
        return index.search(queries, 10)[0]

    assert np.array_equal(run(7), run(7))


def test_annoy_build_replaces_the_forest(items: np.ndarray) -> None:
    index = AnnoyIndex(metric="euclidean", n_trees=2)
    index.build(items)
    index.build(items[:10, :4])
    assert (index.size, index.dim) == (10, 4)
    assert index.search(items[:1, :4], 50)[0].shape == (1, 10)


def test_annoy_search_before_build_says_so() -> None:
    with pytest.raises(RuntimeError, match="build"):
        AnnoyIndex(metric="cosine").search(np.ones((1, 3)), 1)


# --- annoy configuration errors -------------------------------------------------------------


@pytest.mark.parametrize("metric", ["chi2"])
def test_annoy_unsupported_metric_lists_supported(metric: str) -> None:
    with pytest.raises(ConfigError, match="cosine, dot, euclidean, manhattan"):
        indexes.create("annoy", metric=metric)


def test_unknown_metric_lists_metrics() -> None:
    with pytest.raises(ConfigError, match="unknown metric 'hamming'"):
        indexes.create("annoy", metric="hamming")


def test_annoy_unknown_parameter_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"index 'annoy'.*trees"):
        indexes.create("annoy", metric="cosine", trees=10)


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("n_trees", 0),
        ("n_trees", 2.5),
        ("n_trees", True),
        ("search_k", 0),
        ("search_k", -2),
        ("n_jobs", 0),
        ("seed", -1),
        ("seed", "x"),
    ],
)
def test_annoy_bad_parameter_values(param: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"annoy index: {param} must be"):
        indexes.create("annoy", metric="cosine", **{param: value})


# --- annoy files ----------------------------------------------------------------------------


def test_annoy_save_load_round_trip_is_memory_mapped(
    tmp_path: Path, items: np.ndarray, queries: np.ndarray
) -> None:
    index = AnnoyIndex(metric="cosine", n_trees=5, seed=3)
    index.build(items)
    index.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["annoy.ann", "annoy.json"]
    loaded = AnnoyIndex(metric="cosine", n_trees=5)
    loaded.load(tmp_path)
    assert (loaded.size, loaded.dim) == (600, 16)
    for a, b in zip(index.search(queries, 10), loaded.search(queries, 10), strict=True):
        np.testing.assert_array_equal(a, b)
    if sys.platform.startswith("linux"):
        maps = Path("/proc/self/maps").read_text()
        assert str((tmp_path / "annoy.ann").resolve()) in maps


@pytest.fixture
def saved(tmp_path: Path, items: np.ndarray) -> Path:
    index = AnnoyIndex(metric="euclidean", n_trees=4, seed=0)
    index.build(items)
    index.save(tmp_path)
    return tmp_path


def test_annoy_load_missing_files(tmp_path: Path) -> None:
    with pytest.raises(IndexMismatchError, match=r"holds no Annoy index .*build_index"):
        AnnoyIndex(metric="euclidean").load(tmp_path)


def test_annoy_load_other_metric(saved: Path) -> None:
    with pytest.raises(IndexMismatchError, match="built for metric 'euclidean', but 'cosine'"):
        AnnoyIndex(metric="cosine", n_trees=4).load(saved)


def test_annoy_load_other_tree_count(saved: Path) -> None:
    with pytest.raises(IndexMismatchError, match="holds 4 trees, but the configuration says 50"):
        AnnoyIndex(metric="euclidean", n_trees=50).load(saved)


def test_annoy_load_truncated_file(saved: Path) -> None:
    path = saved / "annoy.ann"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(IndexMismatchError, match="truncated or was replaced"):
        AnnoyIndex(metric="euclidean", n_trees=4).load(saved)


def test_annoy_load_unreadable_forest(saved: Path) -> None:
    # right size, wrong content: Annoy must reject it or the item count must disagree
    path = saved / "annoy.ann"
    path.write_bytes(b"\0" * path.stat().st_size)
    with pytest.raises(IndexMismatchError):
        AnnoyIndex(metric="euclidean", n_trees=4).load(saved)


def test_annoy_load_corrupt_metadata(saved: Path) -> None:
    (saved / "annoy.json").write_text("{not json")
    with pytest.raises(IndexMismatchError, match=r"annoy\.json is unreadable"):
        AnnoyIndex(metric="euclidean", n_trees=4).load(saved)


# --- search_views ---------------------------------------------------------------------------


def test_search_views_keeps_the_best_distance_per_item() -> None:
    index = ExactIndex(metric="euclidean")
    index.build(SQUARE)
    upright = np.array([[0.9, 0.0]])  # near item 1, then 0, 2, 3
    turned = np.array([[0.0, 1.8]])  # near item 3, then 0
    ids, dists = search_views(index, [upright, turned], 3)
    assert ids.tolist() == [[1, 3, 0]]
    np.testing.assert_allclose(dists[0], [0.1, 0.2, 0.9], atol=1e-6)


def test_search_views_ignores_padding() -> None:
    rng = np.random.default_rng(3)
    index = AnnoyIndex(metric="euclidean", n_trees=1, search_k=1, seed=0)
    index.build(rng.standard_normal((300, 2)).astype(np.float32))
    views = [rng.standard_normal((4, 2)).astype(np.float32) for _ in range(3)]
    ids, dists = search_views(index, views, 100)
    assert ids.shape == (4, 100)
    for row, d in zip(ids, dists, strict=True):
        n = int((row >= 0).sum())
        assert n > 0 and (row[n:] == PAD_ID).all() and np.isinf(d[n:]).all()
        assert len(set(row[:n])) == n and np.all(np.diff(d[:n]) >= 0)


def test_single_view_is_plain_search(items: np.ndarray, queries: np.ndarray) -> None:
    index = ExactIndex(metric="cosine")
    index.build(items)
    for a, b in zip(search_views(index, [queries], 5), index.search(queries, 5), strict=True):
        np.testing.assert_array_equal(a, b)


# --- end to end on holidays-small -----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("depth", ["null", "100"])
def test_annoy_matches_exact_on_holidays(make_config, tmp_path: Path, depth: str) -> None:
    """Annoy (50 trees, cosine, hsv) finds >= 95% of the exact top-10; mAP within 0.01."""
    from search_lab.cli.evaluate import run

    common = ["metric=cosine", f"eval.depth={depth}"]
    exact = run(make_config(*common, "index=exact"), tmp_path / "exact")
    ann = run(make_config(*common, "index=annoy", "index.n_trees=50"), tmp_path / "annoy")
    assert "ann_recall_at" not in exact
    assert set(ann["ann_recall_at"]) == {"1", "5", "10", "20"}
    assert ann["ann_recall_at"]["10"] >= 0.95
    assert abs(ann["map"] - exact["map"]) <= 0.01
    for metrics in (exact, ann):
        assert 0 < metrics["query_ms_p50"] <= metrics["query_ms_p95"]
