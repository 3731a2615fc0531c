"""Local features for geometric verification: keypoints and descriptors at a bounded image size.

Two detectors, registered by name: ``sift`` (OpenCV's SIFT from ``opencv-python-headless``,
128 floats quantised to bytes by OpenCV itself, so ``uint8`` is lossless) and ``orb``
(scikit-image's ORB, 256 binary tests packed into 32 bytes). Every image is loaded by the one
loader (:func:`search_lab.data.images.load_image`) with ``max_side``, so cost and memory per image
are bounded. A collection's local features are cached like its global ones: one file per
(dataset fingerprint, names, detector settings, library version), written atomically with a
checksum.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import os
import re
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from search_lab.core import ConfigError, DatasetError, ImageLoadError, atomic_write_bytes, integrity
from search_lab.data import load_image
from search_lab.retrieval.cache import FeatureCache, cache_key
from search_lab.retrieval.catalog import stat_of

log = logging.getLogger(__name__)

LOCAL_VERSION = 1  # bump when a detector's output changes meaning
POOL_MIN = 64  # fewer images are extracted in this process (a pool starts in about a second)
LOCAL_FILE = re.compile(r"local-[0-9a-f]+\.npz")  # what a folder's pointer may name


@dataclass
class Keypoints:
    """One image's local features: ``points`` (n, 2) x, y in pixels of the bounded image and
    ``descriptors`` (n, bytes) uint8; ``binary`` descriptors are compared by Hamming distance."""

    points: np.ndarray
    descriptors: np.ndarray
    binary: bool

    def __len__(self) -> int:
        return len(self.points)


def _grey(image: np.ndarray) -> np.ndarray:
    """8-bit grey (ITU-R 601 luma) of an RGB uint8 image."""
    weights = np.array([0.299, 0.587, 0.114])
    return np.clip(image[..., :3] @ weights, 0, 255).astype(np.uint8)


def sift(grey: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``n`` SIFT keypoints (strongest first) of a grey image: points, uint8 descriptors."""
    try:
        import cv2
    except ImportError as err:
        raise ConfigError("rerank.local=sift needs opencv-python-headless; or use orb") from err
    detector = cv2.SIFT_create(nfeatures=n)
    found, desc = detector.detectAndCompute(grey, None)
    if desc is None or not found:
        return np.zeros((0, 2), np.float32), np.zeros((0, 128), np.uint8)
    points = np.array([k.pt for k in found], np.float32)
    return points[:n], np.clip(np.rint(desc), 0, 255).astype(np.uint8)[:n]


def orb(grey: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``n`` scikit-image ORB keypoints: (x, y) points and bit-packed descriptors."""
    from skimage.feature import ORB

    detector = ORB(n_keypoints=n, fast_threshold=0.05)
    try:
        detector.detect_and_extract(grey.astype(np.float64) / 255.0)
    except (RuntimeError, ValueError, IndexError):  # too small or too flat for any keypoint
        return np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8)
    points = detector.keypoints[:, ::-1].astype(np.float32)  # (row, col) -> (x, y)
    return points, np.packbits(detector.descriptors, axis=1)


DETECTORS: dict[str, tuple[Callable[[np.ndarray, int], tuple], bool]] = {
    "sift": (sift, False),
    "orb": (orb, True),
}
"""Detector name -> (function(grey, n) -> (points, descriptors), binary descriptors?)."""


@dataclass(frozen=True)
class LocalSpec:
    """Which local features: detector, bound on the longer side, keypoints per image."""

    name: str = "sift"
    max_side: int = 512
    max_keypoints: int = 1000

    def __post_init__(self) -> None:
        if self.name not in DETECTORS:
            raise ConfigError(
                f"rerank: unknown local feature {self.name!r}; choose one of: "
                + ", ".join(sorted(DETECTORS))
            )

    def of_image(self, image: np.ndarray) -> Keypoints:
        """Keypoints of an RGB image (shrunk to ``max_side`` first if larger)."""
        from search_lab.data import shrink

        function, binary = DETECTORS[self.name]
        points, desc = function(_grey(shrink(image, self.max_side)), self.max_keypoints)
        return Keypoints(points, desc, binary)

    def of_file(self, source: str | Path | bytes) -> Keypoints:
        """Keypoints of an image file or its bytes (ImageLoadError if it cannot be read)."""
        return self.of_image(load_image(source, max_side=self.max_side))


def library_version(name: str) -> str:
    """The version of the library behind detector ``name`` (part of the cache key)."""
    from importlib.metadata import PackageNotFoundError, version

    package = "opencv-python-headless" if name == "sift" else "scikit-image"
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def check_on_disk(root: Path, names: Sequence[str], by: str = "rerank") -> None:
    """DatasetError naming the first of ``names`` no longer under ``root`` (before any work);
    ``by`` names what needs them."""
    for name in names:
        if not (root / name).is_file():
            raise DatasetError(
                f"{by}: {root / name} is no longer on disk (the index was built from it); "
                "restore the images or rebuild the index"
            )


def collection_keypoints(
    spec: LocalSpec,
    root: Path,
    names: Sequence[str],
    fingerprint: str,
    cache: FeatureCache | None,
) -> list[Keypoints]:
    """Keypoints of every ``root / name`` (cache first); an unreadable image gets none.

    On a cache miss (a new or changed collection), the photos whose name, size and
    modification time equal those of the last collection of the same root and settings reuse
    its keypoints, so an update extracts only what was added or changed.
    """
    check_on_disk(root, names)
    if cache is None:
        return _extract_all(spec, [root / n for n in names])
    settings = {"local": vars(spec), "library": library_version(spec.name), "v": LOCAL_VERSION}
    key = cache_key(fingerprint=fingerprint, names=cache_key(names=list(names)), **settings)
    path = cache.directory / f"local-{key}.npz"
    latest = cache.directory / f"local-latest-{cache_key(root=str(root), **settings)}.json"
    with cache.lock(f"local-{key}"):
        found = _read(path, len(names))
        if found is not None:
            return found[0]
        files = [(n, *(stat_of(root / n) or (-1, -1))) for n in names]
        known = _previous(latest)
        todo = [f for f in files if f not in known]
        known.update(zip(todo, _extract_all(spec, [root / f[0] for f in todo]), strict=True))
        log.info(
            "local features (%s) of %d images (%d reused from the previous collection)",
            spec.name, len(todo), len(files) - len(todo),
        )  # fmt: skip
        sets = [known[f] for f in files]
        _write(path, sets, files)
        atomic_write_bytes(latest, json.dumps({"file": path.name}).encode())
        return sets


def _previous(latest: Path) -> dict[tuple, Keypoints]:
    """``{(name, size, mtime ns): keypoints}`` of the last collection written for this root
    and these settings (empty if none, or if it is gone or damaged)."""
    try:
        name = json.loads(latest.read_text())["file"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    if not isinstance(name, str) or not LOCAL_FILE.fullmatch(name):
        log.warning("local feature pointer %s is damaged: extracting every image", latest)
        return {}
    found = _read(latest.parent / name)
    return dict(zip(found[1], found[0], strict=True)) if found else {}


def _safe(spec: LocalSpec, path: Path) -> Keypoints:
    try:
        return spec.of_file(path)
    except ImageLoadError as err:
        log.warning("rerank: no local features for %s", err)
        binary = DETECTORS[spec.name][1]
        return Keypoints(np.zeros((0, 2), np.float32), np.zeros((0, 0), np.uint8), binary)


def _write(path: Path, sets: list[Keypoints], files: list[tuple]) -> None:
    """All images' keypoints in one npz: concatenated rows, offsets, a checksum, and each
    image's ``[name, size, mtime ns]`` (what a later collection may reuse them by)."""
    offsets = np.cumsum([0] + [len(s) for s in sets]).astype(np.int64)
    width = max((s.descriptors.shape[1] for s in sets if len(s)), default=0)
    points = np.concatenate([s.points for s in sets] or [np.zeros((0, 2))]).astype(np.float32)
    desc = np.concatenate(
        [s.descriptors.reshape(len(s), width) for s in sets if len(s)]
        or [np.zeros((0, width), np.uint8)]
    ).astype(np.uint8)
    meta = {
        "binary": bool(sets and sets[0].binary),
        integrity.HASH: _digest(points, desc),
        "files": files,
    }
    buffer = io.BytesIO()
    np.savez(
        buffer,
        offsets=offsets,
        points=points,
        desc=desc,
        meta=np.frombuffer(json.dumps(meta).encode(), np.uint8),
    )
    atomic_write_bytes(path, buffer.getvalue())


def _digest(points: np.ndarray, desc: np.ndarray) -> str:
    data = np.ascontiguousarray(points).tobytes() + np.ascontiguousarray(desc).tobytes()
    return integrity.digest(data)


def _extract_all(spec: LocalSpec, paths: list[Path]) -> list[Keypoints]:
    """Keypoints of ``paths`` in order: on every core from :data:`POOL_MIN` images on (spawned
    workers, one OpenCV thread each), else in this process."""
    workers = os.cpu_count() or 1
    if workers < 2 or len(paths) < POOL_MIN:
        return [_safe(spec, p) for p in paths]
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    with ProcessPoolExecutor(workers, get_context("spawn"), _one_thread) as pool:
        return list(pool.map(partial(_safe, spec), paths, chunksize=16))


def _one_thread() -> None:
    """A pool worker's OpenCV runs on one thread: the pool already uses every core."""
    import cv2

    cv2.setNumThreads(1)


def _read(path: Path, count: int | None = None) -> tuple[list[Keypoints], list[tuple]] | None:
    """The cached keypoints and the ``(name, size, mtime ns)`` of each image (``count`` of
    them when given), or None if absent; a corrupt or mismatched file is removed."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            offsets, points, desc = data["offsets"], data["points"], data["desc"]
            meta: dict[str, Any] = json.loads(bytes(data["meta"]).decode())
        if not isinstance(meta, dict):
            raise ValueError("its metadata is not an object")
        files = [(str(n), int(size), int(mtime)) for n, size, mtime in meta.get("files", [])]
        size = len(offsets) - 1
        if meta[integrity.HASH] != _digest(points, desc) or size != (count or len(files)):
            raise ValueError("checksum or size mismatch")
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as err:
        log.warning("local feature cache %s is corrupt (%s): extracting again", path, err)
        path.unlink(missing_ok=True)
        return None
    binary = bool(meta["binary"])
    sets = [Keypoints(points[a:b], desc[a:b], binary) for a, b in itertools.pairwise(offsets)]
    return sets, files
