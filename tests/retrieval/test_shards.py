"""Feature shards and out-of-core index builds: same index as the in-memory build, damage caught."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from search_lab import indexes
from search_lab.benchmarks import scale as bench_scale
from search_lab.core import DatasetError
from search_lab.retrieval import RECORD, ShardSet, write_shards
from search_lab.retrieval.shards import shard_file

PARAMS = {  # small, single-threaded, seeded: builds are reproducible
    "annoy": {"n_trees": 5, "seed": 3, "n_jobs": 1},
    "hnsw": {"M": 8, "ef_construction": 50},
    "faiss": {"factory": "Flat"},
    "nndescent": {},
    "kdtree": {},
    "exact": {},
}


@pytest.fixture
def shards(tmp_path: Path) -> tuple[ShardSet, np.ndarray]:
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((230, 12)).astype(np.float32)
    blocks = (matrix[i : i + 100] for i in range(0, 230, 100))  # 100, 100, 30 rows
    return write_shards(tmp_path / "shards", blocks), matrix


def test_shards_read_back_memory_mapped(shards: tuple[ShardSet, np.ndarray]) -> None:
    found, matrix = shards
    again = ShardSet.open(found.folder)
    assert (again.rows, again.dim, len(again.entries)) == (230, 12, 3)
    blocks = list(again.blocks())
    assert [len(b) for b in blocks] == [100, 100, 30]
    assert all(isinstance(b, np.memmap) for b in blocks)
    assert np.array_equal(np.concatenate(blocks), matrix)


def test_damaged_shards_are_one_clear_error(shards: tuple[ShardSet, np.ndarray]) -> None:
    found, _ = shards
    path = found.folder / shard_file(1)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # one flipped bit pattern in the vectors
    path.write_bytes(bytes(data))
    blocks = found.blocks()
    next(blocks)  # shard 0 is sound
    with pytest.raises(DatasetError, match=r"shard-00001\.npy is damaged"):
        next(blocks)
    path.unlink()
    with pytest.raises(DatasetError, match=r"shard-00001\.npy is missing"):
        ShardSet.open(found.folder)
    (found.folder / RECORD).write_text("{not json")
    with pytest.raises(DatasetError, match="is damaged"):
        ShardSet.open(found.folder)
    (found.folder / RECORD).unlink()
    with pytest.raises(DatasetError, match="holds no feature shards"):
        ShardSet.open(found.folder)


def test_a_truncated_shard_is_caught_without_checksums(shards: tuple[ShardSet, np.ndarray]) -> None:
    found, _ = shards
    path = found.folder / shard_file(2)
    path.write_bytes(path.read_bytes()[:-48])  # the last row gone
    with pytest.raises(DatasetError, match=r"shard-00002\.npy (holds|is not)"):
        list(found.blocks(verify=False))


KINDS = [  # NN-descent compiles its numba kernels first (about a minute here)
    pytest.param(k, marks=pytest.mark.slow) if k == "nndescent" else k for k in indexes.available()
]


@pytest.mark.parametrize("kind", KINDS)
def test_streamed_build_answers_like_the_in_memory_build(
    kind: str, shards: tuple[ShardSet, np.ndarray], tmp_path: Path
) -> None:
    found, matrix = shards
    in_memory = indexes.create(kind, metric="euclidean", **PARAMS[kind])
    in_memory.build(matrix)
    streamed = indexes.create(kind, metric="euclidean", **PARAMS[kind])
    folder = tmp_path / "index"
    folder.mkdir()
    streamed.build_streaming(found.blocks(), found.rows, folder)
    streamed.save(folder)
    loaded = indexes.create(kind, metric="euclidean", **PARAMS[kind])
    loaded.load(folder)
    queries = matrix[:20] + 0.01
    want = in_memory.search(queries, 10)
    for index in (streamed, loaded):
        ids, dists = index.search(queries, 10)
        assert np.array_equal(ids, want[0]), kind
        np.testing.assert_allclose(dists, want[1], rtol=1e-5)
    assert in_memory.size == streamed.size == loaded.size == 230


def test_annoy_on_disk_forest_is_the_in_memory_one(
    shards: tuple[ShardSet, np.ndarray], tmp_path: Path
) -> None:
    found, matrix = shards
    a = indexes.create("annoy", metric="cosine", **PARAMS["annoy"])
    a.build(matrix)
    a.save(tmp_path)
    b = indexes.create("annoy", metric="cosine", **PARAMS["annoy"])
    (tmp_path / "disk").mkdir()
    b.build_streaming(found.blocks(), found.rows, tmp_path / "disk")
    (tmp_path / "copy").mkdir()
    b.save(tmp_path / "copy")  # elsewhere: Annoy's own save would write nothing
    built = (tmp_path / "annoy.ann").read_bytes()
    assert (tmp_path / "disk" / "annoy.ann").read_bytes() == built
    assert (tmp_path / "copy" / "annoy.ann").read_bytes() == built
    assert indexes.AnnoyIndex.streaming and indexes.ExactIndex.streaming


def test_bench_scale_small_run(tmp_path: Path) -> None:
    args = ["--rows", "3000", "--dim", "8", "--shard-rows", "1000", "--trees", "2"]
    args += ["--work", str(tmp_path / "w"), "--json", str(tmp_path / "s.json")]
    assert bench_scale.main([*args, "--md", str(tmp_path / "s.md")]) == 0
    result = json.loads((tmp_path / "s.json").read_text())
    assert [b["mode"] for b in result["builds"]] == ["streaming", "in_memory"]
    assert result["identical"] is True
    assert all(b["peak_rss_mb"] > b["start_rss_mb"] > 0 for b in result["builds"])
    assert "| streaming |" in (tmp_path / "s.md").read_text()
    assert bench_scale.main(["--rows", "0"]) == 2
