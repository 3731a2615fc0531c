"""Every reader of data the project did not just write is total: a value or one project error.

Property-based (Hypothesis): each reader gets random bytes, mutations of a valid file (bytes
flipped, cut, inserted, deleted), deep nesting and valid JSON whose values have the wrong
types, and must either return a valid value or raise the project's one-line error, never
another exception. Examples are bounded (``BOUNDED``) so the whole file runs in seconds.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from search_lab.cli import finished_metrics
from search_lab.core import (
    MANIFEST,
    DatasetError,
    IndexMismatchError,
    SearchLabError,
    UnreadableFileError,
    integrity,
    manifest_of,
    read_json_object,
    readers,
    write_json,
)
from search_lab.data.layouts.labels import label_rows
from search_lab.evaluation import SKIPPED_ATTR, load_runs
from search_lab.report.cells import top_lists
from search_lab.report.runs import Outcome, Run
from search_lab.retrieval import (
    RECORD,
    FeatureCache,
    SearchEngine,
    ShardSet,
    build_engine,
    write_shards,
)
from search_lab.retrieval.cache import Features

BOUNDED = settings(
    max_examples=30,
    deadline=5000,  # ms per example: generous on a loaded machine, still a bound
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
DEEP = st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n) | st.just(b"[" * 100_000)
EDITS = st.binary(max_size=6) | st.sampled_from([b"[", b"{", b'"', b"\\", b"\xff", b"[" * 300])


@st.composite
def mutated(draw: st.DrawFn, base: bytes) -> bytes:
    """``base`` with a few bytes flipped, cut, inserted or deleted."""
    data = bytearray(base)
    for _ in range(draw(st.integers(0, 5))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        i = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[i] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(EDITS)
        elif data:
            del data[i]
    return bytes(data)


@st.composite
def retyped(draw: st.DrawFn, base: Any) -> bytes:
    """``base`` (JSON) with the value at one random place replaced by a random JSON value."""
    value = json.loads(json.dumps(base))
    node, key = _random_place(draw, value)
    if node is None:
        return json.dumps(draw(JSON_VALUES)).encode()
    node[key] = draw(JSON_VALUES)
    return json.dumps(value).encode()


def _random_place(draw: st.DrawFn, value: Any) -> tuple[Any, Any]:
    """A (container, key) somewhere inside ``value``, or (None, None) for the top."""
    places: list[tuple[Any, Any]] = []
    stack = [value]
    while stack:
        node = stack.pop()
        keys = list(node) if isinstance(node, dict) else range(len(node))
        for key in keys:
            places.append((node, key))
            if isinstance(node[key], dict | list):
                stack.append(node[key])
    return draw(st.sampled_from(places)) if places else (None, None)


def any_bytes(base: bytes) -> st.SearchStrategy[bytes]:
    """Random bytes, mutations of ``base``, deep nesting, and ``base`` re-typed if it is JSON."""
    options = st.binary(max_size=300) | mutated(base) | DEEP
    try:
        return options | retyped(json.loads(base))
    except ValueError:
        return options


@contextmanager
def scratch() -> Iterator[Path]:
    """A fresh folder per example (Hypothesis runs one test function many times)."""
    with tempfile.TemporaryDirectory(prefix="total-") as folder:
        yield Path(folder)


def total(call: Callable[[], Any], *errors: type[BaseException]) -> Any:
    """``call()``'s value, or None when it raised one of ``errors`` as one line."""
    try:
        return call()
    except errors as err:
        assert "\n" not in str(err) and str(err)
        return None


# --- the bounded reader itself ----------------------------------------------------------


@BOUNDED
@given(value=JSON_VALUES)
def test_json_depth_is_exact_for_json(value: Any) -> None:
    def depth(v: Any) -> int:
        inner = v.values() if isinstance(v, dict) else v if isinstance(v, list) else None
        return 0 if inner is None else 1 + max(map(depth, inner), default=0)

    data = json.dumps(value).encode()
    assert readers.json_depth(data) == depth(value)
    assert readers.parse_json(data, "x") == value


@BOUNDED
@given(data=st.binary(max_size=400) | DEEP | mutated(b'{"a": [1, "x\\"]", {"b": null}]}'))
def test_parse_json_is_total(data: bytes) -> None:
    total(lambda: readers.parse_json(data, "f.json"), UnreadableFileError)


def test_deep_nesting_is_refused_before_parsing() -> None:
    with pytest.raises(UnreadableFileError, match=r"f\.json is nested 100000 deep"):
        readers.parse_json(b"[" * 100_000 + b"]" * 100_000, "f.json")
    assert readers.parse_json(b"[" * 64 + b"]" * 64, "f.json") is not None
    assert readers.json_depth(b'["[[[", "\\"[", {"a": "{"}]') == 2  # brackets in strings


def test_special_and_large_files_are_refused_before_reading(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # no writer: an ordinary open() would block forever
    for path, what in [(fifo, "a FIFO"), (Path("/dev/zero"), "a character device")]:
        with pytest.raises(UnreadableFileError, match=f"is {what}, not a regular file"):
            readers.read_json(path)
    with pytest.raises(UnreadableFileError, match="is a folder"):
        readers.read_text(tmp_path)
    (tmp_path / "big.json").write_bytes(b" " * 101)
    with pytest.raises(UnreadableFileError, match=r"too large \(101 bytes > 100\)"):
        readers.read_json(tmp_path / "big.json", max_bytes=100)
    with pytest.raises(FileNotFoundError):
        readers.read_bytes(tmp_path / "none", max_bytes=1)


def test_expect_names_the_value_and_never_takes_a_bool_for_a_number() -> None:
    assert readers.expect(3, int, "'dim'") == 3
    with pytest.raises(UnreadableFileError, match="'dim' must be an integer, got True"):
        readers.expect(True, int, "'dim'")
    with pytest.raises(UnreadableFileError, match="must be an object or a list, got 'x'"):
        readers.expect("x", (dict, list), "v")


# --- manifest and index records ---------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory: pytest.TempPathFactory, holidays_dir: Path) -> Path:
    """An hsv / cosine / exact index of six Holidays images (built in about a second)."""
    from tests.conftest import compose_config

    base = tmp_path_factory.mktemp("tiny")
    (base / "photos").mkdir()
    for name in ("100000.jpg", "100001.jpg", "100002.jpg", "100100.jpg", "100101.jpg"):
        shutil.copy(holidays_dir / name, base / "photos" / name)
    cfg = compose_config(
        [f"dataset.root={base / 'photos'}", f"cache_dir={base / 'cache'}", "progress=false"]
    )
    return build_engine(cfg).save(base / "index")


def _copy(index: Path, folder: Path) -> Path:
    target = folder / "index"
    shutil.copytree(index, target)
    return target


@BOUNDED
@given(data=st.data())
def test_manifest_reading_is_total(tiny_index: Path, data: st.DataObject) -> None:
    base = (tiny_index / MANIFEST).read_bytes()
    content = data.draw(any_bytes(base))
    with scratch() as folder:
        index = _copy(tiny_index, folder)
        (index / MANIFEST).write_bytes(content)
        manifest = total(lambda: manifest_of(index), IndexMismatchError)
        assert manifest is None or isinstance(manifest["names"], list)
        engine = total(lambda: SearchEngine.load(index), SearchLabError)
        assert engine is None or len(engine.names) == 5


@BOUNDED
@given(data=st.data())
def test_index_record_reading_is_total(tiny_index: Path, data: st.DataObject) -> None:
    base = (tiny_index / "exact.json").read_bytes()
    content = data.draw(any_bytes(base))
    with scratch() as folder:
        index = _copy(tiny_index, folder)
        (index / "exact.json").write_bytes(content)
        files = json.loads((index / MANIFEST).read_text())["files"]
        files.pop("exact.json", None)  # the record is checksummed: test the parser behind it
        manifest = json.loads((index / MANIFEST).read_text())
        manifest["files"] = files
        (index / MANIFEST).write_text(json.dumps(manifest))
        engine = total(lambda: SearchEngine.load(index), SearchLabError)
        assert engine is None or engine.index.size == 5


# --- metrics.json: compare, the app's table, a sweep's resume ----------------------------

GOOD_METRICS = {
    "map": 0.5,
    "n_queries": 2,
    "n_images": 5,
    "n_skipped": 0,
    "precision_at": {"1": 1.0},
    "recall_at": {"1": 0.5},
    "extract_s": 0.1,
    "build_s": 0.0,
    "search_s": 0.0,
    "per_query_ap": {"a.jpg": 0.5, "b.jpg": 0.5},
    "config": {"feature": {"name": "hsv"}, "metric": {"name": "cosine"}},
}


@BOUNDED
@given(data=st.data())
def test_metrics_readers_are_total(data: st.DataObject) -> None:
    content = data.draw(any_bytes(json.dumps(GOOD_METRICS).encode()))
    overrides = data.draw(st.binary(max_size=60) | st.just(b"- feature=hsv\n"))
    with scratch() as root:
        write_json(root / "good" / "metrics.json", GOOD_METRICS)
        (root / "bad").mkdir()
        (root / "bad" / "metrics.json").write_bytes(content)
        (root / "bad" / ".hydra").mkdir()
        (root / "bad" / ".hydra" / "overrides.yaml").write_bytes(overrides)
        frame = load_runs([root])  # never raises: a bad folder is skipped, naming it
        assert str(root / "good") in set(frame["run"]) and len(frame) in (1, 2)
        skipped = frame.attrs[SKIPPED_ATTR]
        assert len(frame) + len(skipped) == 2 and set(skipped) <= {str(root / "bad")}
        if len(frame) == 2:
            frame.sort_values("map")  # every cell the table sorts on has a usable type
        done = total(lambda: finished_metrics(root / "bad", {}), SearchLabError)
        assert done is None or isinstance(done.get("map"), int | float | None)
        total(lambda: read_json_object(root / "bad" / "metrics.json"), UnreadableFileError)


# --- cache metadata, shard records, labels CSV, rankings --------------------------------


def _npz(vectors: np.ndarray, meta: bytes) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, vectors=vectors, meta=np.frombuffer(meta, np.uint8))
    return buffer.getvalue()


@BOUNDED
@given(data=st.data(), rows=st.integers(0, 4))
def test_cache_metadata_reading_is_total(data: st.DataObject, rows: int) -> None:
    with scratch() as folder:
        cache = FeatureCache(folder)
        cache.put("k", Features([f"{i}.jpg" for i in range(3)], np.eye(3, 4), {}, 1.0))
        with np.load(cache.path("k")) as saved:
            meta, vectors = bytes(saved["meta"]), saved["vectors"]
        content = data.draw(any_bytes(meta))
        if rows != 3:
            vectors = np.ones((rows, 4), np.float32)
        cache.path("k").write_bytes(_npz(vectors, content))
        got = cache.get("k")  # None (a warning, the file removed) or the very features
        assert got is None or (len(got.names) == len(got.vectors) == 3)


@BOUNDED
@given(data=st.data())
def test_shard_record_reading_is_total(data: st.DataObject) -> None:
    with scratch() as folder:
        write_shards(folder, [np.ones((2, 3), np.float32), np.zeros((1, 3), np.float32)])
        content = data.draw(any_bytes((folder / RECORD).read_bytes()))
        (folder / RECORD).write_bytes(content)
        shards = total(lambda: ShardSet.open(folder), DatasetError)
        if shards is not None:
            assert all(isinstance(e[integrity.HASH], str) for e in shards.entries)
            total(lambda: [b.shape for b in shards.blocks()], DatasetError)


@BOUNDED
@given(content=any_bytes(b"file,label\na.jpg,x\nb.jpg,x\n"))
def test_labels_reading_is_total(content: bytes) -> None:
    with scratch() as folder:
        (folder / "labels.csv").write_bytes(content)
        rows = total(lambda: label_rows(folder / "labels.csv", folder), DatasetError)
        assert rows is None or all(isinstance(c, str) for row in rows for c in row)


@BOUNDED
@given(content=any_bytes(b"q.jpg 0 a.jpg 1 b.jpg\nr.jpg 0 b.jpg\n"))
def test_rankings_reading_is_total(content: bytes) -> None:
    with scratch() as folder:
        (folder / "rankings.dat").write_bytes(content)
        outcome = Outcome(Run("r"), folder, {"map": 0.5})
        tops = total(lambda: top_lists(outcome, 2), UnreadableFileError)
        assert tops is None or all(len(v) <= 2 for v in tops.values())


def test_property_suite_logs_stay_quiet(caplog: pytest.LogCaptureFixture) -> None:
    """A skipped run's warning is one line naming the folder (spot check of the wording)."""
    with scratch() as root, caplog.at_level(logging.WARNING):
        (root / "r").mkdir()
        (root / "r" / "metrics.json").write_text('{"map": "high"}')
        assert load_runs([root]).empty
    [message] = [r.getMessage() for r in caplog.records]
    assert message.startswith(f"skipping run folder {root / 'r'}: ") and "'map'" in message
