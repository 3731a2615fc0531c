"""Feature extraction over a collection: process pool or batches, progress bar, feature cache.

This is the one place that turns image files into a feature matrix; evaluation, index building,
the benchmarks and the app all call it. Unreadable images are skipped with a warning, counted
and returned in ``Features.skipped``: one bad file never aborts a run.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from search_lab.core import ImageLoadError, die_with_parent
from search_lab.data import load_image
from search_lab.features import Extractor, create
from search_lab.retrieval.cache import FeatureCache, Features, cache_key
from search_lab.retrieval.index_identity import RESULT_NEUTRAL_KEYS

log = logging.getLogger(__name__)

_WORKER: dict[str, Any] = {}

Progress = bool | Callable[[int, int], None]

RUNTIME_PARAMS = frozenset(
    key.removeprefix("feature.") for key in RESULT_NEUTRAL_KEYS if key.startswith("feature.")
)
"""Feature parameters that change how fast vectors are computed, not what they are: kept out
of cache keys, also for the parts of a combined feature (the ``feature.*`` keys of
:data:`search_lab.retrieval.index_identity.RESULT_NEUTRAL_KEYS`)."""

# Parameters at a value that is the vectors' default: kept out of cache keys too, so caches
# written before the parameter existed stay valid (int8 and bf16 key their own features).
NEUTRAL_PARAMS = {"precision": "fp32"}


def identity(params: Mapping[str, Any]) -> dict[str, Any]:
    """What of a feature's parameters decides its vectors (cache keys, index compatibility)."""
    int8 = params.get("precision", "fp32") == "int8"  # calibration only shapes int8 vectors
    return {
        k: v
        for k, v in params.items()
        if k not in RUNTIME_PARAMS
        and not (k in NEUTRAL_PARAMS and NEUTRAL_PARAMS[k] == v)
        and not (k == "calibrate_on" and not int8)
    }


def split_config(feature_cfg: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(name, params) of a feature config such as ``{"name": "hsv", "bins": [8, 12, 3]}``."""
    params = dict(feature_cfg)
    return params.pop("name"), params


def build_extractor(feature_cfg: Mapping[str, Any]) -> Extractor:
    """The extractor a feature config describes (ConfigError for unknown names or bad values)."""
    name, params = split_config(feature_cfg)
    return create(name, **params)


def as_extractor(feature: Extractor | Mapping[str, Any]) -> Extractor:
    """``feature`` itself, or the extractor its description names (callers holding a dict)."""
    return feature if isinstance(feature, Extractor) else build_extractor(feature)


def feature_key(extractor: Extractor) -> dict[str, Any]:
    """What decides an extractor's vectors: its description without :data:`RUNTIME_PARAMS`."""
    return identity(extractor.spec)


def load_for(
    extractor: Extractor, path: str | os.PathLike | bytes, rotation: int = 0
) -> np.ndarray:
    """Load an image as ``extractor`` needs it, turned ``rotation`` quarter turns anticlockwise."""
    image = load_image(path, max_side=extractor.max_side)
    return np.ascontiguousarray(np.rot90(image, rotation)) if rotation % 4 else image


def _init_worker(feature_cfg: dict[str, Any], rotation: int, parent: int | None = None) -> None:
    """Set up a pool worker (its own extractor, once); it dies with ``parent`` if that is killed."""
    if parent is not None:
        die_with_parent(parent)
    _WORKER["extractor"] = build_extractor(feature_cfg)
    _WORKER["rotation"] = rotation


def _extract_one(
    extractor: Extractor, rotation: int, path: Path
) -> tuple[np.ndarray | None, str | None]:
    """Descriptor of one file, or the reason it could not be read."""
    try:
        return extractor.extract(load_for(extractor, path, rotation)), None
    except ImageLoadError as err:
        return None, str(err)


def _extract_file(path: Path) -> tuple[np.ndarray | None, str | None]:
    """Pool task: :func:`_extract_one` with the worker's extractor."""
    return _extract_one(_WORKER["extractor"], _WORKER["rotation"], path)


POOL_START_S = 0.3
"""Seconds a pool of two worker processes costs to fork and feed its first tasks (measured here:
250 hsv images took 0.35 s in this process and 0.47 s through a pool)."""
PROBE = 8
"""Images extracted in this process first, timed, to decide whether a pool is worth starting."""


def _parallel(paths: Sequence[Path], extractor: Extractor, rotation: int, workers: int) -> Iterator:
    """Results of ``_extract_one`` in order: here, or by a pool of ``workers`` processes.

    The first :data:`PROBE` images are extracted here and timed; a pool is started for the rest
    only when they would take longer here than the pool's start-up buys back, so a small update
    (a few hundred hsv images) is not slowed down by forking workers.
    """
    done = 0
    if workers > 1 and len(paths) > PROBE:
        yield _extract_one(extractor, rotation, paths[0])  # warms the decoder up: not timed
        start = time.perf_counter()
        probed = [_extract_one(extractor, rotation, path) for path in paths[1:PROBE]]
        done, per_image = PROBE, (time.perf_counter() - start) / (PROBE - 1)
        yield from probed  # timed before yielding: the caller's time per item is not counted
        if per_image * (len(paths) - PROBE) < POOL_START_S * workers / (workers - 1):
            workers = 1
    if workers <= 1:
        yield from (_extract_one(extractor, rotation, path) for path in paths[done:])
        return
    from concurrent.futures import ProcessPoolExecutor  # a one-image query needs no pool
    from multiprocessing import get_all_start_methods, get_context

    rest = paths[done:]
    chunk = max(1, min(16, len(rest) // (workers * 8)))
    ctx = (
        get_context("fork") if "fork" in get_all_start_methods() else None
    )  # no re-imports per worker
    init_args = (extractor.spec, rotation, os.getpid())
    with ProcessPoolExecutor(workers, ctx, _init_worker, init_args) as pool:
        yield from pool.map(_extract_file, rest, chunksize=chunk)


def _batched(
    paths: Sequence[Path], extractor: Extractor, rotation: int, batch: int = 16
) -> Iterator:
    """Results for extractors that parallelise internally (CNN): one batch at a time."""
    for start in range(0, len(paths), batch):
        images, errors = [], []
        for path in paths[start : start + batch]:
            try:
                images.append(load_for(extractor, path, rotation))
                errors.append(None)
            except ImageLoadError as err:
                errors.append(str(err))
        vectors = iter(extractor.extract_batch(images)) if images else iter(())
        for error in errors:
            yield (None, error) if error else (next(vectors), None)


NETWORK_POOL_MIN = 64
"""Images from which a network feature (CNN) is extracted by a pool of one-thread worker
processes rather than here; below it the workers' start-up (a fresh interpreter, the network
loaded and checked: about 2 s, in parallel) costs more than the pool saves."""
NETWORK_CHUNK = 4  # images per task of the network pool: progress stays smooth


def _network_pays(extractor: Extractor, n_images: int, workers: int) -> bool:
    """Whether a network feature's images go to :func:`_network_pool`: several cores, enough
    images, and no thread count set by hand (``feature.threads`` keeps one process)."""
    return _is_network(extractor) and workers > 1 and n_images >= NETWORK_POOL_MIN


def _is_network(extractor: Extractor) -> bool:
    """A network feature (an extractor with ``threads`` and ``batch_size``) on the CPU whose
    thread count is left to this module (``device=cuda`` or ``auto`` keeps one process)."""
    network = hasattr(extractor, "threads") and hasattr(extractor, "batch_size")
    on_cpu = getattr(extractor, "device", "cpu") == "cpu"  # a GPU wants batches, one process
    return network and on_cpu and extractor.threads is None


def one_core(feature: Extractor | Mapping[str, Any]) -> Extractor:
    """``feature`` as a process that owns one core runs it best: a network feature on one
    thread, one image per forward pass (what the network pool's workers run; Ray's tasks);
    anything else as it is. Same vectors: both settings are runtime parameters."""
    extractor = as_extractor(feature)
    if _is_network(extractor):
        return build_extractor({**extractor.spec, **ONE_CORE})
    return extractor


ONE_CORE = {"threads": 1, "batch_size": 1}


def _network_pool(
    paths: Sequence[Path], extractor: Extractor, rotation: int, workers: int
) -> Iterator:
    """Results for a network feature from ``workers`` processes, one thread and one image per
    forward pass each, decoding their own images.

    Per image this is the cheapest way to run the CNN here (``python -m search_lab.bench``,
    engines table): activations of one image stay in the cache, and no core waits for another
    inside a forward pass or for the decoding. Fresh interpreters (``spawn``), not forks: a
    fork of a process whose torch or ONNX Runtime threads ran can hang. Inside
    :func:`workers_kept` the pool serves every call with the same feature.
    """
    spec = {**extractor.spec, **ONE_CORE}
    chunks = [paths[i : i + NETWORK_CHUNK] for i in range(0, len(paths), NETWORK_CHUNK)]
    log.info("%s: %d images in %d worker processes, one thread each", extractor.name,
             len(paths), workers)  # fmt: skip
    pool, kept = _pool(spec, rotation, workers)
    try:
        for engine_used, results in pool.map(_extract_chunk, chunks):
            if getattr(extractor, "engine_used", None) is None:  # metrics.json names it
                extractor.engine_used = engine_used
                log.info("%s: the workers run the network with %s", extractor.name, engine_used)
            yield from results
    except BaseException:
        _close_kept()  # a broken or interrupted pool is never handed out again
        pool.shutdown(cancel_futures=True)
        raise
    if not kept:
        pool.shutdown()


_KEPT = threading.local()  # this thread's kept pool: depth, key, pool (the app indexes in threads)


@contextmanager
def workers_kept() -> Iterator[None]:
    """Within this block, the network pool outlives each ``extract_files`` call, so a
    collection extracted chunk by chunk (the vector store, distractor shards) starts its
    workers once, not once per chunk (about 2 s each); they end with the block."""
    _KEPT.depth = getattr(_KEPT, "depth", 0) + 1
    try:
        yield
    finally:
        _KEPT.depth -= 1
        if not _KEPT.depth:
            _close_kept()


def _pool(spec: dict[str, Any], rotation: int, workers: int) -> tuple[Any, bool]:
    """(a process pool of ``workers`` extractors of ``spec``, whether it is kept): the kept
    one when it is for the same work, else a new one (kept inside :func:`workers_kept`)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    key = (json.dumps(spec, sort_keys=True, default=str), rotation, workers)
    kept = getattr(_KEPT, "depth", 0) > 0
    if kept and getattr(_KEPT, "key", None) == key:
        return _KEPT.pool, True
    init_args = (spec, rotation, os.getpid())
    pool = ProcessPoolExecutor(workers, get_context("spawn"), _init_worker, init_args)
    if kept:
        _close_kept()
        _KEPT.key, _KEPT.pool = key, pool
    return pool, kept


def _close_kept() -> None:
    """Shut this thread's kept pool down, if any."""
    pool = getattr(_KEPT, "pool", None)
    _KEPT.key = _KEPT.pool = None
    if pool is not None:
        pool.shutdown(cancel_futures=True)


def _extract_chunk(
    paths: Sequence[Path],
) -> tuple[str | None, list[tuple[np.ndarray | None, str | None]]]:
    """Pool task: a few files through the worker's network extractor, one at a time; with the
    engine the worker's extractor chose (``auto``)."""
    extractor = _WORKER["extractor"]
    results = list(_batched(paths, extractor, _WORKER["rotation"], extractor.batch_size))
    return getattr(extractor, "engine_used", None), results


def extract_files(
    root: Path,
    names: Sequence[str],
    feature: Extractor | Mapping[str, Any],
    *,
    rotation: int = 0,
    workers: int | None = None,
    progress: Progress = True,
    warn: bool = True,
) -> Features:
    """Descriptors of ``root / name`` for every name; unreadable files are skipped and reported.

    ``feature`` is the extractor (or its description). ``progress`` is True for a terminal
    progress bar (images/s), False for none, or a callable given ``(done, total)`` after every
    image (the app's progress bar). ``warn=False`` leaves the warning about each skipped file
    to the caller (``combo`` warns once for all its parts).
    """
    extractor = as_extractor(feature)
    paths = [Path(root) / name for name in names]
    workers = workers or os.cpu_count() or 1
    extractor.prepare_many()  # lookup tables now, before the clock and before workers fork
    start = time.perf_counter()
    if extractor.parallel:
        results = _parallel(paths, extractor, rotation, min(workers, max(1, len(paths))))
    elif _network_pays(extractor, len(paths), workers):
        results = _network_pool(paths, extractor, rotation, workers)
    else:
        results = _batched(paths, extractor, rotation, int(extractor.spec.get("batch_size", 16)))
    from tqdm import tqdm  # ~50 ms to import: not for a one-image query

    bar = tqdm(
        results,
        total=len(paths),
        unit="img",
        desc=f"extract {extractor.name}",
        disable=progress is not True,
        leave=False,
    )
    kept, vectors, skipped = [], [], {}
    for done, (name, (vector, error)) in enumerate(zip(names, bar, strict=True), 1):
        if callable(progress):
            progress(done, len(names))
        if error is None:
            kept.append(name)
            vectors.append(vector)
        else:
            if warn:
                log.warning("skipping %s", error)
            skipped[name] = error
    matrix = np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, 0), np.float32)
    return Features(kept, matrix, skipped, time.perf_counter() - start)


Fetch = Callable[..., tuple[Features, bool]]
"""``fetch(cache, root, names, fingerprint, extractor, *, rotation, workers, progress, warn)``:
features of one whole extractor (:func:`whole_features` here; the Ray executor its own)."""


def cached_features(
    cache: FeatureCache | None,
    root: Path,
    names: Sequence[str],
    fingerprint: str,
    feature: Extractor | Mapping[str, Any],
    *,
    rotation: int = 0,
    workers: int | None = None,
    progress: Progress = True,
    warn: bool = True,
    fetch: Fetch | None = None,
) -> tuple[Features, bool]:
    """Features of ``names`` from the cache, extracting (and storing) them on a miss.

    Returns the features and whether they came from the cache. An extractor with
    :meth:`~search_lab.features.Extractor.cache_parts` (``combo``) is assembled from its parts'
    cached matrices, so a combination reuses every part already extracted. ``fetch`` gets the
    features of one whole extractor (default :func:`whole_features`).
    """
    extractor, fetch = as_extractor(feature), fetch or whole_features
    options = {"rotation": rotation, "workers": workers, "progress": progress}
    parts = extractor.cache_parts()
    if not parts:
        return fetch(cache, root, names, fingerprint, extractor, warn=warn, **options)
    got = [fetch(cache, root, names, fingerprint, p, warn=False, **options) for p in parts]
    return _assembled(extractor, names, got)


def whole_features(
    cache: FeatureCache | None,
    root: Path,
    names: Sequence[str],
    fingerprint: str,
    extractor: Extractor,
    **options: Any,
) -> tuple[Features, bool]:
    """Features of one extractor as a whole: the cache entry, or :func:`extract_files` stored."""
    if cache is None:
        return extract_files(root, names, extractor, **options), False
    key = cache_key(
        fingerprint=fingerprint,
        names=cache_key(names=list(names)),
        feature=feature_key(extractor),
        rotation=options.get("rotation", 0),
    )
    with cache.lock(key):
        hit = cache.get(key)
        if hit is not None:
            return hit, True
        features = extract_files(root, names, extractor, **options)
        cache.put(key, features)
        return features, False


def _assembled(
    extractor: Extractor, names: Sequence[str], parts: list[tuple[Features, bool]]
) -> tuple[Features, bool]:
    """``extractor.assemble`` of its parts' features, on the images every part could read."""
    all_hit, skipped, seconds = True, {}, 0.0
    for features, hit in parts:
        all_hit &= hit
        for name, reason in features.skipped.items():
            if name not in skipped and not hit:  # once per file, as a single feature would
                log.warning("skipping %s", reason)
            skipped.setdefault(name, reason)
        seconds += features.seconds
    kept = [n for n in names if n not in skipped]
    matrices = []
    for features, _ in parts:
        row = {n: i for i, n in enumerate(features.names)}
        matrices.append(features.vectors[[row[n] for n in kept]])
    return Features(kept, extractor.assemble(matrices), skipped, seconds), all_hit


def vectors_of(
    extractor: Extractor, source: str | os.PathLike | bytes, rotations: Sequence[int] = (0,)
) -> np.ndarray:
    """Vectors of one file (or its bytes) turned by each of ``rotations`` quarter turns.

    The same path as the collection's: each part of a combination decodes the file at its
    own size, so a query's vector equals the collection's row for the same file.
    """
    parts = extractor.cache_parts()
    blocks = [
        part.extract_batch([load_for(part, source, turn) for turn in rotations])
        for part in parts or [extractor]
    ]
    return extractor.assemble(blocks) if parts else blocks[0]
