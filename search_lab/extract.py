"""Feature extraction over a collection: process pool or batches, progress bar, feature cache.

This is the one place that turns image files into a feature matrix; evaluation, index building,
the benchmarks and the app all call it. Unreadable images are skipped with a warning, counted
and returned in ``Features.skipped``: one bad file never aborts a run.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from search_lab.cache import FeatureCache, Features, cache_key
from search_lab.errors import ImageLoadError
from search_lab.features import Extractor, create
from search_lab.features.combo import combine
from search_lab.images import load_image
from search_lab.lifeline import die_with_parent

log = logging.getLogger(__name__)

_WORKER: dict[str, Any] = {}

Progress = bool | Callable[[int, int], None]

# Parameters that change how fast vectors are computed, not what they are: kept out of cache keys.
RUNTIME_PARAMS = frozenset({"threads", "batch_size", "download"})


def split_config(feature_cfg: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(name, params) of a feature config such as ``{"name": "hsv", "bins": [8, 12, 3]}``."""
    params = dict(feature_cfg)
    return params.pop("name"), params


def build_extractor(feature_cfg: Mapping[str, Any]) -> Extractor:
    """The extractor a feature config describes (ConfigError for unknown names or bad values)."""
    name, params = split_config(feature_cfg)
    return create(name, **params)


def load_for(
    extractor: Extractor, path: str | os.PathLike | bytes, rotation: int = 0
) -> np.ndarray:
    """Load an image as ``extractor`` needs it, turned ``rotation`` quarter turns anticlockwise."""
    image = load_image(path, max_side=extractor.max_side)
    return np.ascontiguousarray(np.rot90(image, rotation)) if rotation % 4 else image


def _init_worker(feature_cfg: dict[str, Any], rotation: int, parent: int | None = None) -> None:
    """Set up a pool worker; it dies with ``parent`` (the run) if that is killed."""
    if parent is not None:
        die_with_parent(parent)
    _WORKER["extractor"] = build_extractor(feature_cfg)
    _WORKER["rotation"] = rotation


def _extract_file(path: Path) -> tuple[np.ndarray | None, str | None]:
    """Worker task: descriptor of one file, or the reason it could not be read."""
    try:
        extractor = _WORKER["extractor"]
        return extractor.extract(load_for(extractor, path, _WORKER["rotation"])), None
    except ImageLoadError as err:
        return None, str(err)


def _parallel(paths: Sequence[Path], feature_cfg: dict, rotation: int, workers: int) -> Iterator:
    """Results of ``_extract_file`` in order, computed by a pool of ``workers`` processes."""
    if workers <= 1:
        _init_worker(feature_cfg, rotation)
        yield from map(_extract_file, paths)
        return
    chunk = max(1, min(16, len(paths) // (workers * 8)))
    ctx = (
        get_context("fork") if "fork" in get_all_start_methods() else None
    )  # no re-imports per worker
    init_args = (feature_cfg, rotation, os.getpid())
    with ProcessPoolExecutor(workers, ctx, _init_worker, init_args) as pool:
        yield from pool.map(_extract_file, paths, chunksize=chunk)


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


def extract_files(
    root: Path,
    names: Sequence[str],
    feature_cfg: Mapping[str, Any],
    *,
    rotation: int = 0,
    workers: int | None = None,
    progress: Progress = True,
    warn: bool = True,
) -> Features:
    """Descriptors of ``root / name`` for every name; unreadable files are skipped and reported.

    ``progress`` is True for a terminal progress bar (images/s), False for none, or a callable
    given ``(done, total)`` after every image (the app's progress bar). ``warn=False`` leaves
    the warning about each skipped file to the caller (``combo`` warns once for all its parts).
    """
    feature_cfg = dict(feature_cfg)
    extractor = build_extractor(feature_cfg)
    paths = [Path(root) / name for name in names]
    workers = workers or os.cpu_count() or 1
    start = time.perf_counter()
    if extractor.parallel:
        results = _parallel(paths, feature_cfg, rotation, min(workers, max(1, len(paths))))
    else:
        results = _batched(paths, extractor, rotation, int(feature_cfg.get("batch_size", 16)))
    bar = tqdm(
        results,
        total=len(paths),
        unit="img",
        desc=f"extract {feature_cfg['name']}",
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


def cached_features(
    cache: FeatureCache | None,
    root: Path,
    names: Sequence[str],
    fingerprint: str,
    feature_cfg: Mapping[str, Any],
    *,
    rotation: int = 0,
    workers: int | None = None,
    progress: Progress = True,
    warn: bool = True,
) -> tuple[Features, bool]:
    """Features of ``names`` from the cache, extracting (and storing) them on a miss.

    Returns the features and whether they came from the cache. ``combo`` features are built from
    their parts' cached matrices, so a combination reuses every part already extracted.
    """
    feature_cfg = dict(feature_cfg)
    if feature_cfg["name"] == "combo":
        return _combo_features(
            cache, root, names, fingerprint, feature_cfg, rotation, workers, progress
        )
    if cache is None:
        options = {"rotation": rotation, "workers": workers, "progress": progress, "warn": warn}
        return extract_files(root, names, feature_cfg, **options), False
    key = cache_key(
        fingerprint=fingerprint,
        names=cache_key(names=list(names)),
        feature={k: v for k, v in feature_cfg.items() if k not in RUNTIME_PARAMS},
        rotation=rotation,
    )
    with cache.lock(key):
        hit = cache.get(key)
        if hit is not None:
            return hit, True
        options = {"rotation": rotation, "workers": workers, "progress": progress, "warn": warn}
        features = extract_files(root, names, feature_cfg, **options)
        cache.put(key, features)
        return features, False


def _combo_features(
    cache: FeatureCache | None,
    root: Path,
    names: Sequence[str],
    fingerprint: str,
    feature_cfg: dict[str, Any],
    rotation: int,
    workers: int | None,
    progress: Progress,
    fetch: Callable[..., tuple[Features, bool]] | None = None,
) -> tuple[Features, bool]:
    """Weighted concatenation of each part's features, on the images every part could read.

    ``fetch`` gets each part's features (default :func:`cached_features`; the Ray executor
    passes its own).
    """
    fetch = fetch or cached_features
    parts, weights = list(feature_cfg["parts"]), list(feature_cfg["weights"])
    build_extractor(feature_cfg)  # validates parts and weights before any extraction
    blocks, all_hit, skipped, seconds = [], True, {}, 0.0
    for part in parts:
        features, hit = fetch(
            cache,
            root,
            names,
            fingerprint,
            feature_cfg[part],
            rotation=rotation,
            workers=workers,
            progress=progress,
            warn=False,
        )
        blocks.append(features)
        all_hit &= hit
        for name, reason in features.skipped.items():
            if name not in skipped and not hit:  # once per file, as a single feature would
                log.warning("skipping %s", reason)
            skipped.setdefault(name, reason)
        seconds += features.seconds
    kept = [n for n in names if n not in skipped]
    rows = [{n: i for i, n in enumerate(f.names)} for f in blocks]
    matrices = [f.vectors[[row[n] for n in kept]] for f, row in zip(blocks, rows, strict=True)]
    return Features(kept, combine(matrices, weights), skipped, seconds), all_hit
