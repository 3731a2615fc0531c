"""Feature cache: keys, atomic writes, corruption detection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from search_lab.core import integrity
from search_lab.retrieval import FeatureCache
from search_lab.retrieval.cache import Features, cache_key


def sample() -> Features:
    return Features(
        ["a.jpg", "b.jpg"],
        np.arange(6, dtype=np.float32).reshape(2, 3),
        {"c.jpg": "truncated"},
        1.5,
    )


def test_round_trip(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    cache.put("k", sample())
    got = cache.get("k")
    assert got.names == ["a.jpg", "b.jpg"] and got.skipped == {"c.jpg": "truncated"}
    np.testing.assert_array_equal(got.vectors, sample().vectors)
    assert not list(tmp_path.glob("*.tmp"))


def test_key_depends_on_every_part() -> None:
    base = cache_key(fingerprint="f", feature={"name": "hsv", "bins": [8, 12, 3]})
    assert base == cache_key(feature={"bins": [8, 12, 3], "name": "hsv"}, fingerprint="f")
    assert base != cache_key(fingerprint="f", feature={"name": "hsv", "bins": [8, 12, 4]})
    assert base != cache_key(fingerprint="g", feature={"name": "hsv", "bins": [8, 12, 3]})


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupt_file_is_detected_and_removed(tmp_path: Path, damage: str) -> None:
    cache = FeatureCache(tmp_path)
    cache.put("k", sample())
    path = cache.path("k")
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:  # change one float inside the stored vectors: only the checksum notices
        offset = data.find(np.float32(5).tobytes())
        data[offset : offset + 4] = np.float32(7).tobytes()
    path.write_bytes(bytes(data))
    assert cache.get("k") is None
    assert not path.exists()


def test_checksum_is_xxh3_and_older_sha256_files_still_read(tmp_path: Path) -> None:
    import hashlib
    import io
    import json

    cache = FeatureCache(tmp_path)
    cache.put("k", sample())
    with np.load(cache.path("k")) as data:
        meta = json.loads(bytes(data["meta"]).decode())
    assert meta["xxh3_128"] == integrity.digest(sample().vectors.tobytes())
    old = {"names": ["a.jpg", "b.jpg"], "skipped": {}, "seconds": 1.0}
    old["sha256"] = hashlib.sha256(sample().vectors.tobytes()).hexdigest()
    buffer = io.BytesIO()
    np.savez(
        buffer, vectors=sample().vectors, meta=np.frombuffer(json.dumps(old).encode(), np.uint8)
    )
    cache.path("old").write_bytes(buffer.getvalue())
    np.testing.assert_array_equal(cache.get("old").vectors, sample().vectors)


def test_runtime_parameters_do_not_change_the_key(tmp_path: Path, monkeypatch) -> None:
    import search_lab.retrieval.extract as extract

    calls = []

    def fake_extract(root, names, cfg, **kwargs):  # records what would be extracted
        calls.append(cfg)
        return Features(list(names), np.ones((len(names), 2), np.float32), {})

    monkeypatch.setattr(extract, "extract_files", fake_extract)
    cache = FeatureCache(tmp_path)
    cnn = {"name": "cnn", "size": 224, "threads": 1, "batch_size": 8}
    extract.cached_features(cache, tmp_path, ["a.jpg"], "fp", cnn)
    _, hit = extract.cached_features(
        cache, tmp_path, ["a.jpg"], "fp", {**cnn, "threads": 2, "batch_size": 4}
    )
    assert hit and len(calls) == 1
    _, hit = extract.cached_features(cache, tmp_path, ["a.jpg"], "fp", {**cnn, "size": 320})
    assert not hit and len(calls) == 2
