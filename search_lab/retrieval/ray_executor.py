"""``executor=ray``: feature extraction as Ray tasks over shards of the collection.

The collection is cut into shards of ``executor.shard_size`` images; each shard is one Ray task
(``extract_files`` on its images, one process per task slot; a worker process keeps its CNN
model loaded between tasks), and the driver writes each shard's features to the feature cache
the moment it finishes. So a run that is interrupted resumes from its finished shards, a shard
whose worker or node is lost is run again by Ray (``executor.max_retries``), and a damaged shard
file is warned about and extracted again. Vectors are the local executor's: the same
extraction code on the same images.

Ray tasks rather than Ray Data: a shard is the unit of caching, retry and resume, and tasks map
onto it one to one; Ray Data's streaming batches would need the same bookkeeping on top.
Ray is optional (``pip install -r requirements-ray.txt``); without it, or with an unreachable
``executor.address``, the run stops with one line before any extraction.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from search_lab.core import (
    PROJECT_DIR,
    ConfigError,
    SearchLabError,
    require_int,
    require_number,
    require_positive_int,
)
from search_lab.retrieval.cache import FeatureCache, Features, cache_key
from search_lab.retrieval.extract import Progress, extract_files, identity, one_core

log = logging.getLogger(__name__)

CRASH_ENV = "SEARCH_LAB_RAY_CRASH_ONCE"
"""Fault injection for tests: a task finding this file deletes it and kills its worker."""


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as err:
        raise ConfigError(
            "executor=ray needs Ray, which is not installed: pip install -r requirements-ray.txt "
            "(or use executor=local)"
        ) from err
    return ray


def _probe(address: str) -> None:
    """ConfigError unless something listens at ``host:port`` (Ray itself would wait minutes)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"executor.address must be null, auto or host:port, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as err:
        raise ConfigError(
            f"cannot reach the Ray cluster at {address} ({err.strerror or err}); start it with "
            "`ray start --head` or fix executor.address"
        ) from err


def check(ex: dict[str, Any]) -> None:
    """ConfigError for executor settings no run could use (checked before any work)."""
    require_positive_int("executor.shard_size", ex.get("shard_size"))
    require_number("executor.cpus_per_task", ex.get("cpus_per_task"), 0, strict=True)
    require_number("executor.gpus_per_task", ex.get("gpus_per_task", 0), 0)
    require_int("executor.max_retries", ex.get("max_retries"), 0)


def check_gpus(ray: Any, ex: dict[str, Any]) -> None:
    """ConfigError when tasks ask for GPUs the cluster does not have (they would wait forever)."""
    wanted = ex.get("gpus_per_task") or 0
    have = ray.cluster_resources().get("GPU", 0)
    if wanted > have:
        raise ConfigError(
            f"executor.gpus_per_task={wanted}, but the Ray cluster has {have:g} GPU(s): start "
            "GPU nodes (`ray start --num-gpus=N`) or set executor.gpus_per_task=0"
        )


def connect(ex: dict[str, Any]) -> Any:
    """The ``ray`` module, initialised: a Ray started here, or the cluster at the address."""
    ray = _import_ray()
    if ray.is_initialized():
        return ray
    address = ex.get("address")
    if address not in (None, "auto"):
        _probe(str(address))
    env = {"PYTHONPATH": str(PROJECT_DIR)}  # workers import search_lab from the same folder
    if os.environ.get(CRASH_ENV):
        env[CRASH_ENV] = os.environ[CRASH_ENV]
    options = {"runtime_env": {"env_vars": env}, "include_dashboard": False}
    try:
        if address is None:
            ray.init(num_cpus=ex.get("num_cpus"), log_to_driver=False, **options)
        else:
            ray.init(address=address, log_to_driver=False, **options)
    except ConnectionError as err:
        first = str(err).strip().splitlines()[0]
        raise ConfigError(f"cannot reach the Ray cluster ({address}): {first}") from err
    return ray


def extract_shard(root: str, names: list[str], feature_cfg: dict[str, Any], rotation: int):
    """Ray task: features of one shard, as the local executor computes them (one process)."""
    flag = os.environ.get(CRASH_ENV)
    if flag:
        try:
            Path(flag).unlink()  # of tasks running at once, only the one that removes it dies
        except FileNotFoundError:
            pass
        else:
            os._exit(1)  # the worker dies: Ray must run the shard again
    return extract_files(
        Path(root), names, feature_cfg, rotation=rotation, workers=1, progress=False, warn=False
    )


class RayExecutor:
    """``cached_features`` with the same contract, extracting missing shards on Ray."""

    def __init__(self, ex: dict[str, Any]) -> None:
        check(ex)
        _import_ray()  # one line now if Ray is missing, not after the dataset is read
        self.ex = ex

    def shard_keys(
        self, names: Sequence[str], fingerprint: str, feature_cfg: dict[str, Any], rotation: int
    ) -> list[tuple[list[str], str]]:
        """(names, cache key) of every shard, in collection order."""
        size = int(self.ex["shard_size"])
        feature = identity(feature_cfg)
        shards = [list(names[i : i + size]) for i in range(0, len(names), size)]
        return [
            (s, cache_key(fingerprint=fingerprint, shard=cache_key(names=s), feature=feature,
                          rotation=rotation))
            for s in shards
        ]  # fmt: skip

    def cached_features(
        self,
        cache: FeatureCache | None,
        root: Path,
        names: Sequence[str],
        fingerprint: str,
        feature_cfg: dict[str, Any],
        **options: Any,
    ) -> tuple[Features, bool]:
        """Features of one whole extractor (``extract.cached_features`` assembles combos from
        their parts): cached shards read, missing ones extracted on Ray and stored.

        ``options``: ``rotation``, ``progress`` and ``warn`` as for :meth:`ensure_shards`
        (``workers`` is the cluster's business and ignored).
        """
        options.pop("workers", None)
        shards, extracted = self.ensure_shards(cache, root, names, fingerprint, feature_cfg,
                                               **options)  # fmt: skip
        assert cache is not None  # ensure_shards refuses a run without a cache
        return _joined([read_shard(cache, key) for _, key in shards]), not extracted

    def ensure_shards(
        self,
        cache: FeatureCache | None,
        root: Path,
        names: Sequence[str],
        fingerprint: str,
        feature_cfg: dict[str, Any],
        *,
        rotation: int = 0,
        progress: Progress = True,
        warn: bool = True,
    ) -> tuple[list[tuple[list[str], str]], int]:
        """Every shard of ``names`` in the cache, missing or damaged ones extracted on Ray.

        Returns each shard's (names, cache key) in collection order and how many shards were
        extracted. Shards are checked one at a time and none is kept, so memory does not grow
        with the collection (the out-of-core build reads them back one by one).
        """
        if cache is None:
            raise ConfigError("executor=ray writes every shard to the feature cache: set cache_dir")
        shards = self.shard_keys(names, fingerprint, feature_cfg, rotation)
        todo = [i for i, (_, key) in enumerate(shards) if cache.get(key) is None]
        if todo:
            log.info("extracting %d of %d shards on Ray", len(todo), len(shards))
            self._run(cache, root, shards, todo, dict(feature_cfg), rotation, progress, warn)
        return shards, len(todo)

    def _run(
        self,
        cache: FeatureCache,
        root: Path,
        shards: list[tuple[list[str], str]],
        todo: list[int],
        feature_cfg: dict[str, Any],
        rotation: int,
        progress: Progress,
        warn: bool,
    ) -> None:
        """Extract the shards ``todo`` as Ray tasks; each is cached the moment it finishes."""
        ray = connect(self.ex)
        check_gpus(ray, self.ex)
        task = ray.remote(extract_shard).options(
            num_cpus=self.ex["cpus_per_task"], num_gpus=self.ex.get("gpus_per_task") or 0,
            max_retries=self.ex["max_retries"],
        )  # fmt: skip
        if self.ex["cpus_per_task"] == 1 and not self.ex.get("gpus_per_task"):  # one core each
            feature_cfg = one_core(feature_cfg).spec
        pending = {task.remote(str(root), shards[i][0], feature_cfg, rotation): i for i in todo}
        total = sum(len(shards[i][0]) for i in todo)
        bar = tqdm(total=total, unit="img", desc="extract on Ray", disable=progress is not True)
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                i = pending.pop(ready[0])
                try:
                    feats = ray.get(ready[0])
                except ray.exceptions.RayError as err:
                    first = str(err).strip().splitlines()[0]
                    raise SearchLabError(
                        f"shard {i} ({shards[i][0][0]} ...) failed on Ray (a lost worker is "
                        f"retried {self.ex['max_retries']} times): {first}"
                    ) from err
                cache.put(shards[i][1], feats)
                for reason in feats.skipped.values() if warn else ():
                    log.warning("skipping %s", reason)
                bar.update(len(shards[i][0]))
                if callable(progress):
                    progress(bar.n, total)
        finally:
            for ref in pending:
                ray.cancel(ref)
            bar.close()


def read_shard(cache: FeatureCache, key: str) -> Features:
    """A shard the run has just checked or written; one line if it has gone or been damaged."""
    feats = cache.get(key)
    if feats is None:
        raise SearchLabError(
            f"feature shard {cache.path(key)} disappeared or was damaged during the run; "
            "run the command again (finished shards are kept)"
        )
    return feats


def _joined(parts: list[Features]) -> Features:
    """One Features of consecutive shards (their order kept)."""
    blocks = [f.vectors for f in parts if f.names]
    return Features(
        [n for f in parts for n in f.names],
        np.concatenate(blocks, axis=0) if blocks else np.zeros((0, 0), np.float32),
        {n: why for f in parts for n, why in f.skipped.items()},
        sum(f.seconds for f in parts),
    )
