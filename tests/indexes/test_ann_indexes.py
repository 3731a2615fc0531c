"""Tests of what is particular to the kd-tree, HNSW, NN-descent and Faiss indexes.

The contract all indexes share is tested in test_indexes.py; here: Faiss factory strings and
IVF list adaptation, kd-tree exactness and eps, sha256-checked files, build parameters checked
on load, reproducible builds, and each method evaluated on holidays-small.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from search_lab import indexes
from search_lab.core import ConfigError, IndexMismatchError
from search_lab.indexes.faiss_factory import adapt_nlist
from search_lab.indexes.files import FileIndex
from tests.indexes.test_indexes import clustered, exact_ids

FILE_KINDS = [k for k in indexes.available() if issubclass(indexes.INDEXES._classes[k], FileIndex)]


@pytest.fixture(scope="module")
def items() -> np.ndarray:
    return clustered(2000, 32)


@pytest.fixture(scope="module")
def queries() -> np.ndarray:
    return clustered(50, 32, seed=1)


def recall_at_10(index: indexes.Index, items: np.ndarray, queries: np.ndarray) -> float:
    ids, _ = index.search(queries, 10)
    truth = exact_ids("euclidean", items, queries, 10)
    return float(np.mean([len(set(a) & set(t)) / 10 for a, t in zip(ids, truth, strict=True)]))


# --- faiss ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("factory", "exact", "min_recall"),
    [("Flat", True, 1.0), ("IVF1024,Flat", False, 0.9), ("IVF1024,PQ16", False, 0.4),
     ("HNSW32", False, 0.95)],
)  # fmt: skip
def test_faiss_factories(
    factory: str, exact: bool, min_recall: float, items: np.ndarray, queries: np.ndarray
) -> None:
    index = indexes.create("faiss", metric="euclidean", factory=factory, nprobe=8)
    assert index.exact is exact
    index.build(items)
    assert recall_at_10(index, items, queries) >= min_recall


def test_faiss_flat_equals_exact_search(items: np.ndarray, queries: np.ndarray) -> None:
    index = indexes.create("faiss", metric="cosine", factory="Flat")
    index.build(items)
    truth = indexes.create("exact", metric="cosine")
    truth.build(items)
    ids, d = index.search(queries, 10)
    t_ids, t_d = truth.search(queries, 10)
    np.testing.assert_allclose(d, t_d, atol=1e-5)
    assert np.mean(ids == t_ids) >= 0.99  # float32 ties may swap neighbours of equal distance


def test_adapt_nlist_by_hand(caplog: pytest.LogCaptureFixture) -> None:
    assert adapt_nlist("IVF16,Flat", 39 * 16) == "IVF16,Flat"
    assert adapt_nlist("HNSW32", 10) == "HNSW32"
    with caplog.at_level(logging.WARNING):
        assert adapt_nlist("IVF1024,PQ16", 2000) == "IVF51,PQ16"  # 2000 // 39
    assert "too few to train 1024 lists" in caplog.text
    assert adapt_nlist("IVF8,Flat", 3) == "IVF1,Flat"


def test_faiss_records_the_adapted_factory(tmp_path: Path, items: np.ndarray) -> None:
    index = indexes.create("faiss", metric="euclidean", factory="IVF1024,Flat")
    index.build(items)
    index.save(tmp_path)
    loaded = indexes.create("faiss", metric="euclidean", factory="IVF1024,Flat")
    loaded.load(tmp_path)
    assert loaded.built_factory == "IVF51,Flat"
    with pytest.raises(IndexMismatchError, match="built with factory='IVF51,Flat', but the conf"):
        indexes.create("faiss", metric="euclidean", factory="HNSW32").load(tmp_path)


@pytest.mark.parametrize(
    ("factory", "message"),
    [("Bogus", "could not parse index string Bogus"), ("PQ5", "multiple of the number")],
)
def test_faiss_bad_factory_is_one_line(factory: str, message: str, items: np.ndarray) -> None:
    index = indexes.create("faiss", metric="euclidean", factory=factory)
    with pytest.raises(ConfigError, match=message) as err:
        index.build(items)
    assert "\n" not in str(err.value)


# --- kd-tree --------------------------------------------------------------------------------


def test_kdtree_cosine_is_exact_on_vectors_of_any_length(items: np.ndarray) -> None:
    scaled = items * np.linspace(0.5, 3.0, len(items), dtype=np.float32)[:, None]
    index = indexes.create("kdtree", metric="cosine")
    index.build(scaled)
    truth = indexes.create("exact", metric="cosine")
    truth.build(scaled)
    np.testing.assert_allclose(
        index.search(scaled[:20] * 7, 5)[1], truth.search(scaled[:20] * 7, 5)[1], atol=1e-6
    )


def test_kdtree_cosine_refuses_zero_vectors() -> None:
    with pytest.raises(ConfigError, match="undefined for the 1 all-zero"):
        indexes.create("kdtree", metric="cosine").build(np.array([[1, 0], [0, 0]], np.float32))


def test_kdtree_eps_makes_it_approximate(items: np.ndarray, queries: np.ndarray) -> None:
    index = indexes.create("kdtree", metric="euclidean", eps=1.0)
    assert not index.exact
    index.build(items)
    _, d = index.search(queries, 10)
    truth = indexes.create("exact", metric="euclidean")
    truth.build(items)
    assert np.all(d[:, -1] <= 2.0 * truth.search(queries, 10)[1][:, -1] + 1e-6)  # (1 + eps)


def test_kdtree_bad_eps() -> None:
    with pytest.raises(ConfigError, match="eps must be a number >= 0"):
        indexes.create("kdtree", metric="euclidean", eps=-1)


# --- files, build parameters, reproducibility -----------------------------------------------


@pytest.mark.parametrize(
    "kind",
    [pytest.param(k, marks=[pytest.mark.slow] if k == "nndescent" else []) for k in FILE_KINDS],
)
def test_a_changed_byte_is_refused(kind: str, tmp_path: Path, items: np.ndarray) -> None:
    index = indexes.create(kind, metric="euclidean")
    index.build(items[:300])
    index.save(tmp_path)
    data = tmp_path / index.DATA_FILE
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # same size, other content
    data.write_bytes(bytes(raw))
    with pytest.raises(IndexMismatchError, match="size or xxh3_128 checksum differs"):
        indexes.create(kind, metric="euclidean").load(tmp_path)


def test_hnsw_build_parameters_are_checked_but_ef_may_change(
    tmp_path: Path, items: np.ndarray, queries: np.ndarray
) -> None:
    index = indexes.create("hnsw", metric="euclidean", M=8)
    index.build(items)
    index.save(tmp_path)
    with pytest.raises(IndexMismatchError, match="built with M=8, but the configuration says 16"):
        indexes.create("hnsw", metric="euclidean").load(tmp_path)
    wider = indexes.create("hnsw", metric="euclidean", M=8, ef=200)
    wider.load(tmp_path)
    assert recall_at_10(wider, items, queries) >= recall_at_10(index, items, queries)


@pytest.mark.parametrize(
    ("kind", "params"),
    [("hnsw", {}), ("faiss", {"factory": "IVF1024,PQ16"}), ("faiss", {"factory": "HNSW32"}),
     pytest.param("nndescent", {}, marks=pytest.mark.slow)],
)  # fmt: skip
def test_builds_are_reproducible(
    kind: str, params: dict, items: np.ndarray, queries: np.ndarray
) -> None:
    def run() -> tuple[np.ndarray, np.ndarray]:
        index = indexes.create(kind, metric="euclidean", **params)
        index.build(items)
        return index.search(queries, 10)

    for a, b in zip(run(), run(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_hnsw_fills_what_it_can_when_asked_for_everything() -> None:
    rng = np.random.default_rng(0)
    index = indexes.create("hnsw", metric="euclidean", M=2, ef_construction=2, ef=1)
    vectors = rng.standard_normal((200, 4)).astype(np.float32)
    index.build(vectors)
    ids, d = index.search(vectors[:5], 200)
    assert ids.shape == (5, 200)
    for row, dist in zip(ids, d, strict=True):
        n = int((row >= 0).sum())
        assert n > 0 and (row[n:] == -1).all() and np.isinf(dist[n:]).all()
        assert len(set(row[:n])) == n and np.all(np.diff(dist[:n]) >= 0)


# --- each method on holidays-small ----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["kdtree", "hnsw", "nndescent", "faiss"])
def test_default_settings_reach_095_recall_on_holidays(make_config, tmp_path: Path, kind: str):
    """``evaluate index=<kind>`` (hsv, cosine): ANN recall@10 >= 0.95, or exact (no recall)."""
    from search_lab.cli.evaluate import run

    metrics = run(make_config(f"index={kind}"), tmp_path / kind)
    if kind == "kdtree":
        assert "ann_recall_at" not in metrics
    else:
        assert metrics["ann_recall_at"]["10"] >= 0.95
    assert metrics["map"] == pytest.approx(0.5686, abs=0.01)
    assert 0 < metrics["query_ms_p50"] <= metrics["query_ms_p95"]


def test_a_folder_recorded_with_sha256_still_loads_and_is_checked(
    tmp_path: Path, items: np.ndarray
) -> None:
    from search_lab.core import read_json_object, write_json
    from search_lab.core.integrity import sha256

    index = indexes.create("kdtree", metric="euclidean")
    index.build(items[:300])
    index.save(tmp_path)
    meta = tmp_path / "kdtree.json"
    record = read_json_object(meta)
    del record["xxh3_128"]
    write_json(meta, {**record, "sha256": sha256(tmp_path / index.DATA_FILE)})
    assert indexes.create("kdtree", metric="euclidean").load(tmp_path) is None
    write_json(meta, {**record, "sha256": "0" * 64})
    with pytest.raises(IndexMismatchError, match="size or sha256 checksum differs"):
        indexes.create("kdtree", metric="euclidean").load(tmp_path)


def test_the_data_file_is_hashed_once_across_engine_and_index_checks(
    tmp_path: Path, items: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    from search_lab.core import integrity

    monkeypatch.setattr(integrity, "RACY_NS", 0)
    index = indexes.create("hnsw", metric="euclidean")
    index.build(items[:300])
    index.save(tmp_path)
    hashed: list[str] = []
    real = integrity.file_digest
    monkeypatch.setattr(integrity, "file_digest", lambda p: hashed.append(Path(p).name) or real(p))
    record = integrity.record(tmp_path)
    hashed.clear()
    assert integrity.problem(tmp_path, record) is None  # as the engine checks a folder
    indexes.create("hnsw", metric="euclidean").load(tmp_path)
    assert sorted(hashed) == sorted(record)  # each file once: the index check found it verified
    hashed.clear()
    assert integrity.problem(tmp_path, record) is None and hashed == []


@pytest.mark.parametrize(
    ("kind", "built", "other", "message"),
    [
        ("hnsw", {"M": 8}, {"M": 12}, "built with M=8, but the configuration says 12"),
        ("hnsw", {"ef_construction": 40}, {}, "built with ef_construction=40, but"),
        ("nndescent", {"n_neighbors": 10}, {}, "built with n_neighbors=10, but"),
        ("faiss", {"factory": "HNSW32"}, {"factory": "Flat"}, "built with factory='HNSW32'"),
    ],
)
def test_build_parameters_are_recorded_once_and_checked_against_the_data_file(
    tmp_path: Path, items: np.ndarray, kind: str, built: dict, other: dict, message: str
) -> None:
    """The record beside the data file holds no parameter (the manifest's config does); a
    load with other build parameters is refused from what the data file itself says."""
    from search_lab.core import read_json_object

    index = indexes.create(kind, metric="euclidean", **built)
    index.build(items[:300])
    index.save(tmp_path)
    record = read_json_object(tmp_path / f"{kind}.json")
    assert "params" not in record and not set(built) & set(record)
    with pytest.raises(IndexMismatchError, match=message):
        indexes.create(kind, metric="euclidean", **other).load(tmp_path)


def test_faiss_ivf_streamed_in_small_blocks_trains_on_enough_rows(items: np.ndarray) -> None:
    """Shards smaller than the training sample (Ray's 200 images) are gathered before training:
    the first block alone (100 rows) could not train 16 lists; the whole sample can."""
    factory = "IVF16,Flat"
    streamed = indexes.create("faiss", metric="euclidean", factory=factory, nprobe=16)
    blocks = [items[i : i + 100] for i in range(0, len(items), 100)]
    streamed.build_streaming(iter(blocks), len(items), Path("."))
    assert streamed.size == len(items) and streamed.built_factory == factory
    exact = indexes.create("exact", metric="euclidean")
    exact.build(items)
    got, want = streamed.search(items[:20], 5)[0], exact.search(items[:20], 5)[0]
    assert np.array_equal(got, want)  # nprobe = nlist: every list is searched
