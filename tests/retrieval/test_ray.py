"""executor=ray: the same vectors as the local executor, shard retries, resume, one-line errors.

Tests marked ``ray`` start a local Ray with 2 CPUs (``pip install -r requirements-ray.txt``;
``pytest -m ray``); the error tests run in the default suite.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from search_lab.core import ConfigError
from search_lab.data import load_dataset
from search_lab.retrieval import FeatureCache, RayExecutor, cached_features
from search_lab.retrieval.ray_executor import CRASH_ENV

ROOT = Path(__file__).resolve().parents[2]
EX = {"name": "ray", "address": None, "num_cpus": 2, "shard_size": 100, "cpus_per_task": 1,
      "max_retries": 3}  # fmt: skip


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray with 2 CPUs for this module; the crash flag's path is known to its workers."""
    ray = pytest.importorskip("ray")
    flag = Path(os.environ.setdefault(CRASH_ENV, f"/tmp/search_lab_ray_crash_{os.getpid()}"))
    yield flag
    ray.shutdown()
    os.environ.pop(CRASH_ENV, None)


def _both(holidays_dir: Path, tmp_path: Path, feature: dict, names_count: int | None = None):
    data = load_dataset(holidays_dir)
    names = list(data.names[:names_count] if names_count else data.names)
    fingerprint = data.fingerprint()
    local, _ = cached_features(None, data.root, names, fingerprint, feature, progress=False)
    cache = FeatureCache(tmp_path / "cache")
    executor = RayExecutor(EX)
    remote, hit = executor.cached_features(cache, data.root, names, fingerprint, feature,
                                           progress=False)  # fmt: skip
    return local, remote, hit, (executor, cache, data.root, names, fingerprint)


@pytest.mark.ray
def test_hsv_on_ray_is_the_local_pool_and_resumes(
    ray_local: Path, holidays_dir: Path, tmp_path: Path, caplog
) -> None:
    hsv = {"name": "hsv", "bins": [8, 12, 3], "sqrt": True}
    local, remote, hit, (executor, cache, root, names, fp) = _both(holidays_dir, tmp_path, hsv)
    assert not hit and remote.names == local.names
    np.testing.assert_allclose(remote.vectors, local.vectors, rtol=0, atol=1e-6)
    files = sorted(cache.directory.glob("*.npz"))
    assert len(files) == 7  # 648 images in shards of 100
    files[2].unlink()  # a run killed before these two shards were written
    files[5].write_bytes(b"damaged")  # a shard file damaged on disk
    with caplog.at_level(logging.INFO):
        again, hit = executor.cached_features(cache, root, names, fp, hsv, progress=False)
    assert not hit and "extracting 2 of 7 shards on Ray" in caplog.text
    assert "is corrupt" in caplog.text
    np.testing.assert_array_equal(again.vectors, remote.vectors)
    third, hit = executor.cached_features(cache, root, names, fp, hsv, progress=False)
    assert hit and np.array_equal(third.vectors, remote.vectors)


@pytest.mark.ray
def test_a_lost_worker_is_retried(ray_local: Path, holidays_dir: Path, tmp_path: Path) -> None:
    ray_local.write_text("crash once")  # the first task to see it kills its worker
    hsv = {"name": "hsv", "bins": [8, 12, 3], "sqrt": True}
    local, remote, _, _ = _both(holidays_dir, tmp_path, hsv, names_count=300)
    assert not ray_local.exists()  # a worker did die
    np.testing.assert_allclose(remote.vectors, local.vectors, rtol=0, atol=1e-6)


@pytest.mark.ray
def test_cnn_on_ray_gives_the_local_vectors(
    ray_local: Path, holidays_dir: Path, tmp_path: Path
) -> None:
    from tests.conftest import compose_config

    cnn = compose_config(["feature=cnn"])["feature"]
    local, remote, _, _ = _both(holidays_dir, tmp_path, cnn, names_count=120)
    assert remote.names == local.names
    np.testing.assert_allclose(remote.vectors, local.vectors, rtol=1e-4, atol=1e-5)


@pytest.mark.ray
def test_evaluate_on_ray_from_the_command_line(holidays_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    proc = subprocess.run(
        [sys.executable, "-m", "search_lab.evaluate", "executor=ray", "executor.num_cpus=2",
         "executor.shard_size=150", f"cache_dir={tmp_path / 'cache'}", "progress=false",
         f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "HOLIDAYS_DIR": str(holidays_dir)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "mAP            0.5686" in proc.stdout  # the local executor's figure (README)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 5  # 648 images, shards of 150


def test_missing_ray_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(ConfigError, match=r"needs Ray, which is not installed: pip install -r"):
        RayExecutor(EX)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["executor=ray", "executor.gpus_per_task=1"],
            "gpus_per_task=1 reserves GPUs, but feature=hsv runs on the CPU",
        ),
        (
            ["executor=ray", "feature=cnn", "feature.device=cuda"],
            "feature.device=cuda on Ray needs executor.gpus_per_task > 0",
        ),
        (["executor=ray", "executor.shard_size=0.5"], "executor.shard_size must be a positive"),
    ],
)
def test_gpu_settings_that_cannot_work_are_refused_before_any_work(
    overrides: list[str], message: str
) -> None:
    from search_lab.retrieval import build_pipeline
    from tests.conftest import compose_config

    with pytest.raises(ConfigError, match=message):
        build_pipeline(compose_config(overrides))


def test_bad_executor_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"executor\.shard_size must be a positive"):
        RayExecutor({**EX, "shard_size": 0})
    with pytest.raises(ConfigError, match=r"executor\.gpus_per_task must be"):
        RayExecutor({**EX, "gpus_per_task": -1})


@pytest.mark.ray
def test_gpus_the_cluster_lacks_are_one_line(
    ray_local: Path, holidays_dir: Path, tmp_path: Path
) -> None:
    """Tasks asking for a GPU on a CPU-only cluster would wait forever: refused at once."""
    hsv = {"name": "hsv", "bins": [8, 12, 3], "sqrt": True}
    data = load_dataset(holidays_dir)
    executor = RayExecutor({**EX, "gpus_per_task": 1})
    with pytest.raises(ConfigError, match=r"gpus_per_task=1, but the Ray cluster has 0 GPU"):
        executor.cached_features(FeatureCache(tmp_path / "c"), data.root, list(data.names[:4]),
                                 data.fingerprint(), hsv, progress=False)  # fmt: skip


@pytest.mark.ray
def test_unreachable_address_is_one_line(holidays_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    proc = subprocess.run(
        [sys.executable, "-m", "search_lab.evaluate", "executor=ray",
         "executor.address=127.0.0.1:9", f"cache_dir={tmp_path / 'cache'}", "progress=false",
         f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "HOLIDAYS_DIR": str(holidays_dir)},
    )  # fmt: skip
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(errors) == 1, proc.stderr
    assert errors[0].startswith("error: cannot reach the Ray cluster at 127.0.0.1:9")


def test_the_executor_does_not_change_a_result() -> None:
    from search_lab.cli import comparable_config

    local = {"feature": {"name": "hsv"}, "executor": {"name": "local"}}
    assert comparable_config(local) == comparable_config({**local, "executor": EX})


@pytest.mark.ray
def test_build_index_on_ray_streams_the_shards_into_the_index(
    ray_local: Path, holidays_dir: Path, tmp_path: Path, caplog
) -> None:
    """build_index executor=ray indexes shard by shard: the local build's vectors and answers."""
    from search_lab.cli.build_index import run
    from search_lab.retrieval import SearchEngine
    from tests.conftest import compose_config

    def build(name: str, *overrides: str) -> SearchEngine:
        cfg = compose_config([f"dataset.root={holidays_dir}", f"cache_dir={tmp_path / name}",
                              f"index_dir={tmp_path / name / 'index'}", "progress=false",
                              *overrides], name="build_index")  # fmt: skip
        run(cfg, tmp_path)
        return SearchEngine.load(tmp_path / name / "index")

    ray = ["executor=ray", "executor.num_cpus=2", "executor.shard_size=100"]
    with caplog.at_level(logging.INFO):
        streamed = build("ray", *ray)
    assert "out of core from 7 shards" in caplog.text
    local = build("local")
    assert streamed.names == local.names and streamed.manifest["dim"] == local.manifest["dim"]
    np.testing.assert_allclose(streamed.index.vectors, local.index.vectors, atol=1e-5)

    whitened = build("annoy", *ray, "index=annoy", "post.pca_dim=64", "post.whiten=true")
    assert whitened.index.size == 648 and whitened.manifest["dim"] == 64
    hits = [whitened.query(whitened.path_of(n), k=1)[0][0].name for n in whitened.names[:40]]
    assert sum(h == n for h, n in zip(hits, whitened.names[:40], strict=True)) >= 38
