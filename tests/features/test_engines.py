"""CNN inference engines: fidelity against torch on real photos, one feature cache for every
fp32 engine, the export's checksum and rebuild, concurrent export, read-only folders, fallback."""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from search_lab.core import ConfigError
from search_lab.data import default_root, load_dataset, load_image
from search_lab.features import create
from search_lab.features import engines as eng
from search_lab.features.export import Exports
from search_lab.retrieval import FeatureCache, cached_features
from search_lab.retrieval.extract import feature_key, identity

KEY = {"backbone": "demo", "layer": "head", "weights": "abc", "engine": "onnxruntime"}


def installed(engine: str) -> bool:
    try:
        eng.import_engine(engine)
    except ConfigError:
        return False
    return True


def holidays() -> tuple[Path, list[str]]:
    try:
        data = load_dataset(default_root())
    except Exception as err:
        pytest.skip(f"holidays-small not available: {err}")
    return data.root, sorted(data.names)[:4]


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("engines"))


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    root, names = holidays()
    return [load_image(root / n, max_side=453) for n in names]


TWO_SCALES = {"scales": [1.0, 0.707]}  # sides 320 and 226: sizes the export never saw


@pytest.fixture(scope="module")
def torch_vectors(photos: list[np.ndarray]) -> np.ndarray:
    return create("cnn", engine="torch", **TWO_SCALES).extract_batch(photos)


# --------------------------------------------------------------------------------------------
# Fidelity on real photos
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "engine", ["onnxruntime", pytest.param("openvino", marks=pytest.mark.long)]
)  # auto's first choice in the default run; each engine in CI's long run
def test_engine_matches_torch_on_real_photos(
    engine: str, export_dir: str, photos: list[np.ndarray], torch_vectors: np.ndarray
) -> None:
    """Two scales, GeM pooling, landscape and portrait photos of odd and even sizes."""
    if not installed(engine):
        pytest.skip(f"{engine} is not installed")
    feature = create("cnn", engine=engine, export_dir=export_dir, **TWO_SCALES)
    vectors = feature.extract_batch(photos)
    assert feature.engine_used == engine
    assert eng.relative_difference(torch_vectors, vectors) <= eng.FIDELITY
    # hand-checkable: every row is unit length, and the ranking of photo 0's neighbours agrees
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert (
        np.argsort(-vectors @ vectors[0]).tolist()
        == np.argsort(-torch_vectors @ torch_vectors[0]).tolist()
    )


def _thread_ids() -> set[int]:
    return {int(t.name) for t in Path("/proc/self/task").iterdir()}


def _thread_affinities(during: Callable[[], object], others: set[int]) -> set[int]:
    """The CPU counts of the affinity masks of this process's threads but ``others``, sampled
    while ``during`` runs (``others``: threads that existed before the engine was loaded, such
    as ONNX Runtime's pool of every-core threads, one pinned per core, as it should be)."""
    seen: set[int] = set()
    done = threading.Event()
    others = others - {threading.get_native_id()}

    def watch() -> None:
        while not done.is_set():
            for task in Path("/proc/self/task").iterdir():
                if int(task.name) not in others:
                    with contextlib.suppress(OSError):
                        seen.add(len(os.sched_getaffinity(int(task.name))))
            time.sleep(0.0005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        during()
    finally:
        done.set()
        watcher.join()
    return seen


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
def test_openvino_one_thread_is_not_pinned(export_dir: str) -> None:
    """The network pool's one-thread workers must not all be pinned to the first core: with
    OpenVINO's default pinning two workers shared one core (half the throughput)."""
    if not installed("openvino"):
        pytest.skip("openvino is not installed")
    before = _thread_ids()  # OpenVINO's own threads, started from here on, are watched too
    feature = create("cnn", engine="openvino", threads=1, size=160, export_dir=export_dir)
    feature.prepare()
    batch = np.zeros((1, 3, 120, 160), np.float32)
    runner = feature._runner
    assert feature.engine_used == "openvino" and runner is not None
    cores = len(os.sched_getaffinity(0))
    assert _thread_affinities(lambda: [runner(batch) for _ in range(40)], before) == {cores}


@pytest.mark.parametrize("pooling", ["max", pytest.param("avg", marks=pytest.mark.long)])
def test_every_pooling_exports(pooling: str, export_dir: str, photos: list[np.ndarray]) -> None:
    if not installed("onnxruntime"):
        pytest.skip("onnxruntime is not installed")
    params = {"pooling": pooling, "size": 160, "export_dir": export_dir}
    ref = create("cnn", engine="torch", **params).extract_batch(photos[:3])
    got = create("cnn", engine="onnxruntime", **params).extract_batch(photos[:3])
    assert eng.relative_difference(ref, got) <= eng.FIDELITY


@pytest.mark.long
@pytest.mark.parametrize(
    ("backbone", "layer"), [("resnet50", "layer4"), ("resnet50", "layer3"), ("alexnet", "fc6"),
                            ("alexnet", "conv5")],
)  # fmt: skip
def test_torchvision_backbones_export(
    backbone: str, layer: str, export_dir: str, photos: list[np.ndarray]
) -> None:
    """Randomly initialised (no download here): the graph, not the weights, is under test."""
    params = {"backbone": backbone, "layer": layer, "weights": None, "export_dir": export_dir}
    feature = create("cnn", engine="onnxruntime", size=224, **params)
    feature.prepare()
    ref = feature._torch_describe(eng.probe_batches(feature)[0])
    assert eng.relative_difference(ref, feature._runner(eng.probe_batches(feature)[0])) <= 1e-4
    assert feature.extract_batch(photos[:2]).shape == (2, feature.dim)


# --------------------------------------------------------------------------------------------
# One feature cache for every fp32 engine; precision keys its own
# --------------------------------------------------------------------------------------------


def test_engine_is_not_part_of_the_cache_key() -> None:
    keys = {
        json.dumps(feature_key(create("cnn", engine=e, precision="fp32")), sort_keys=True)
        for e in eng.ENGINES
    }
    assert keys == {json.dumps({"name": "cnn"})}
    # precision=fp32 is the default vectors: the key equals one written before the option
    assert identity({"name": "cnn", "precision": "fp32", "size": 320}) == {
        "name": "cnn",
        "size": 320,
    }
    assert identity({"name": "cnn", "precision": "int8"}) == {"name": "cnn", "precision": "int8"}


def test_cache_serves_every_fp32_engine(tmp_path: Path, export_dir: str) -> None:
    if not installed("onnxruntime"):
        pytest.skip("onnxruntime is not installed")
    root, names = holidays()
    cache = FeatureCache(tmp_path / "cache")
    made, hit = [], []
    for engine in ("torch", "onnxruntime"):
        feature = create("cnn", engine=engine, size=128, export_dir=export_dir)
        features, cached = cached_features(cache, root, names[:4], "fp", feature, progress=False)
        made.append(features.vectors)
        hit.append(cached)
    assert hit == [False, True]  # the second engine read the first one's features
    fresh = create("cnn", engine="onnxruntime", size=128, export_dir=export_dir)
    vectors = fresh.extract_batch([load_image(root / n, max_side=128) for n in names[:4]])
    assert eng.relative_difference(made[0], vectors) <= eng.FIDELITY


# --------------------------------------------------------------------------------------------
# The export store: checksum, rebuild, concurrency, read-only folders
# --------------------------------------------------------------------------------------------


def counting_build(log_file: Path, data: bytes = b"graph v1", delay: float = 0.0):
    def build() -> bytes:
        time.sleep(delay)
        with open(log_file, "a") as handle:
            handle.write(f"{os.getpid()}\n")
        return data

    return build


def test_export_is_verified_and_rebuilt(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store, builds = Exports(tmp_path / "x"), tmp_path / "builds.txt"
    path = store.get(KEY, counting_build(builds))
    assert path.read_bytes() == b"graph v1"
    assert store.get(KEY, counting_build(builds)) == path  # valid: not built again
    assert builds.read_text().count("\n") == 1
    for damage in (b"graph", b"graph v2"):  # truncated, then edited
        path.write_bytes(damage)
        with caplog.at_level(logging.WARNING):
            caplog.clear()
            store.get(KEY, counting_build(builds))
        assert [r.getMessage() for r in caplog.records] == [
            f"engine export {path.stem} is not usable (checksum mismatch (truncated or edited)):"
            " exporting again"
        ]
        assert path.read_bytes() == b"graph v1"
    meta = path.with_suffix(".json")  # written by another engine version under the same name
    record = json.loads(meta.read_text())
    record["key"]["engine_version"] = "0.0"
    meta.write_text(json.dumps(record))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        store.get(KEY, counting_build(builds))
    assert "written for another model, engine or engine version" in caplog.text
    assert builds.read_text().count("\n") == 4


def _export_in_child(folder: str, builds: str, queue: multiprocessing.Queue) -> None:
    queue.put(str(Exports(folder).get(KEY, counting_build(Path(builds), delay=1.0))))


def test_two_processes_export_once(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")  # the children use no torch: forking is safe
    queue = ctx.Queue()
    builds = tmp_path / "builds.txt"
    args = (str(tmp_path / "x"), str(builds), queue)
    children = [ctx.Process(target=_export_in_child, args=args) for _ in range(2)]
    for child in children:
        child.start()
    paths = {queue.get(timeout=120) for _ in children}
    for child in children:
        child.join(timeout=60)
    assert len(paths) == 1  # both use the one export
    assert builds.read_text().count("\n") == 1  # one exported, the other waited


def test_unwritable_folder_exports_for_this_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    store = Exports(blocker / "engines")  # cannot be created: same path as a read-only folder
    with caplog.at_level(logging.WARNING):
        path = store.get(KEY, counting_build(tmp_path / "builds.txt"))
    assert path.read_bytes() == b"graph v1" and not path.is_relative_to(blocker)
    assert "is not writable" in caplog.text and len(caplog.records) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_with_a_valid_export_is_used(tmp_path: Path) -> None:
    folder = tmp_path / "x"
    path = Exports(folder).get(KEY, counting_build(tmp_path / "b.txt"))
    folder.chmod(0o555)
    try:
        assert Exports(folder).get(KEY, counting_build(tmp_path / "b.txt")) == path
    finally:
        folder.chmod(0o755)


# --------------------------------------------------------------------------------------------
# Fallback and refusal
# --------------------------------------------------------------------------------------------


def test_unknown_engine_is_one_line() -> None:
    with pytest.raises(ConfigError, match="engine"):
        create("cnn", engine="tensorrt")


def test_broken_native_library_falls_back_under_auto(
    monkeypatch: pytest.MonkeyPatch, export_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    """``sys.modules[name] = None`` makes ``import name`` fail as a missing library does."""
    for name in eng.AUTO_ORDER:
        monkeypatch.setitem(sys.modules, name, None)
    feature = create("cnn", engine="auto", size=96, export_dir=export_dir)
    with caplog.at_level(logging.INFO):
        feature.prepare()
    assert feature.engine_used == "torch"
    assert "using torch" in caplog.text
    named = create("cnn", engine="onnxruntime", size=96, export_dir=export_dir)
    with pytest.raises(ConfigError, match=r"feature\.engine=onnxruntime cannot be loaded"):
        named.prepare()


def test_unfaithful_engine_is_refused(monkeypatch: pytest.MonkeyPatch, export_dir: str) -> None:
    if not installed("onnxruntime"):
        pytest.skip("onnxruntime is not installed")
    monkeypatch.setattr(eng, "FIDELITY", 0.0)  # no float engine is bit-identical to torch
    monkeypatch.setattr(eng, "AUTO_ORDER", ("onnxruntime",))
    feature = create("cnn", engine="onnxruntime", size=96, export_dir=export_dir)
    with pytest.raises(ConfigError, match="refused for efficientnet_lite0"):
        feature.prepare()
    auto = create("cnn", engine="auto", size=96, export_dir=export_dir)
    auto.prepare()
    assert auto.engine_used == "torch"


# --------------------------------------------------------------------------------------------
# int8
# --------------------------------------------------------------------------------------------


def test_int8_needs_onnxruntime_and_a_calibration_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="calibrate_on"):
        create("cnn", precision="int8")
    with pytest.raises(ConfigError, match="onnxruntime"):
        create("cnn", precision="int8", engine="openvino", calibrate_on=str(tmp_path))
    with pytest.raises(ConfigError, match="holds no images"):
        create("cnn", precision="int8", calibrate_on=str(tmp_path), size=96).prepare()
    # the calibration folder shapes int8 vectors only: fp32 keys ignore it
    fp32 = {"name": "cnn", "precision": "fp32", "calibrate_on": "/a"}
    assert identity(fp32) == {"name": "cnn"}
    int8 = {"name": "cnn", "precision": "int8", "calibrate_on": "/a"}
    assert identity(int8) == int8


@pytest.mark.long
def test_int8_graph_is_close_to_torch_and_cached_apart(
    export_dir: str, photos: list[np.ndarray]
) -> None:
    if not installed("onnxruntime"):
        pytest.skip("onnxruntime is not installed")
    root, _ = holidays()
    fp32 = create("cnn", engine="onnxruntime", size=160, export_dir=export_dir)
    int8 = create("cnn", precision="int8", calibrate_on=str(root), size=160, export_dir=export_dir)
    a, b = fp32.extract_batch(photos), int8.extract_batch(photos)
    assert int8.engine_used == "onnxruntime"
    cosines = (a * b).sum(axis=1)
    assert cosines.min() >= 0.9 and not np.allclose(a, b, atol=1e-4)
    metas = [json.loads(p.read_text())["key"] for p in Path(export_dir).glob("*.json")]
    assert {m["precision"] for m in metas} >= {"fp32", "int8"}
    assert all("calibration" in m for m in metas if m["precision"] == "int8")


# --------------------------------------------------------------------------------------------
# bf16
# --------------------------------------------------------------------------------------------


def test_bf16_needs_openvino_and_keys_its_own_vectors() -> None:
    for engine in ("torch", "onnxruntime"):
        with pytest.raises(ConfigError, match=r"precision=bf16 runs on feature\.engine=openvino"):
            create("cnn", precision="bf16", engine=engine)
    bf16 = {"name": "cnn", "precision": "bf16", "calibrate_on": "/a"}
    assert identity(bf16) == {"name": "cnn", "precision": "bf16"}  # calibration: int8 only
    assert feature_key(create("cnn", precision="bf16")) != feature_key(create("cnn"))


def test_bf16_is_refused_on_a_cpu_without_it(
    monkeypatch: pytest.MonkeyPatch, export_dir: str
) -> None:
    """OpenVINO would quietly run f32 there; this CPU's capability is the one thing faked."""
    if not installed("openvino"):
        pytest.skip("openvino is not installed")
    monkeypatch.setattr(eng, "native_bf16", lambda core: False)
    exports = Path(export_dir) / "bf16-refused"
    feature = create("cnn", precision="bf16", size=96, export_dir=str(exports))
    with pytest.raises(ConfigError, match="needs a CPU with native bf16"):
        feature.prepare()
    assert not list(exports.glob("*.onnx"))  # refused before anything was exported


def test_reduced_precision_without_its_engine_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Neither engine=torch nor auto can help there: the line names the engine to install."""
    from search_lab.features import cnn

    def missing(engine: str) -> str:
        raise ConfigError(f"cnn: feature.engine={engine} is not installed")

    monkeypatch.setattr(cnn, "engine_version", missing)
    for precision, engine in (("bf16", "openvino"), ("int8", "onnxruntime")):
        feature = create(
            "cnn", precision=precision, size=96, calibrate_on="/nowhere", export_dir=str(tmp_path)
        )  # an empty export folder: no engine checked here before
        with pytest.raises(ConfigError, match=f"install {engine} .* or use feature.precision=fp32"):
            feature.prepare()


@pytest.mark.skipif(not eng.bf16_available(), reason="this CPU has no native bf16 (or no openvino)")
def test_bf16_is_close_to_torch_on_real_photos(
    export_dir: str, photos: list[np.ndarray], torch_vectors: np.ndarray
) -> None:
    feature = create("cnn", precision="bf16", export_dir=export_dir, **TWO_SCALES)
    vectors = feature.extract_batch(photos)
    assert feature.engine_used == "openvino"
    cosines = (vectors * torch_vectors).sum(axis=1)
    assert cosines.min() >= eng.BF16_MIN_COSINE  # 0.998 on Holidays photos here
    assert eng.relative_difference(torch_vectors, vectors) > eng.FIDELITY  # really bf16, not f32
    metas = [json.loads(p.read_text())["key"] for p in Path(export_dir).glob("*.json")]
    assert all(m["precision"] in ("fp32", "int8") for m in metas)  # bf16 runs the fp32 graph
