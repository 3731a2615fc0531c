"""Image sets of the speed benchmark: whole-group subsets and the cached camera-size copies."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path

from PIL import Image

from search_lab.core import SearchLabError, write_json
from search_lab.data import Dataset, load_image

log = logging.getLogger(__name__)

CAMERA_SIZE = (3264, 2448)  # longer, shorter side of the generated camera-size images
CAMERA_QUALITY = 90


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A process pool started as ``extract_files`` starts its own (fork where available)."""
    ctx = get_context("fork") if "fork" in get_all_start_methods() else None
    return ProcessPoolExecutor(workers, ctx)


def whole_groups(data: Dataset, n: int) -> list[str]:
    """Names of the first groups of ``data`` (in name order) until at least ``n`` images.

    Whole groups keep the Holidays ground truth valid on the subset.
    """
    by_group: dict[str, list[str]] = {}
    for name, group in zip(data.names, data.groups, strict=True):
        by_group.setdefault(group, []).append(name)
    chosen: list[str] = []
    for members in by_group.values():
        if len(chosen) >= n:
            break
        chosen += members
    return chosen


def link_subset(root: Path, names: Iterable[str], dest: Path) -> Path:
    """A folder of symbolic links to ``root / name`` for each name (a dataset subset, no copy)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).symlink_to((root / name).resolve())
    return dest


def _upscale(job: tuple[Path, Path]) -> None:
    """Worker task: one image upright, upscaled to camera size, saved as a quality-90 JPEG."""
    src, dst = job
    image = Image.fromarray(load_image(src))
    long, short = CAMERA_SIZE
    size = (long, short) if image.width >= image.height else (short, long)
    image.resize(size, Image.Resampling.BICUBIC).save(dst, quality=CAMERA_QUALITY)


def _camera_key(root: Path, names: Sequence[str], n: int) -> str:
    """Cache folder name: requested count plus a hash of the sources and generation settings."""
    digest = hashlib.sha256(f"{CAMERA_SIZE}{CAMERA_QUALITY}".encode())
    for name in names:
        stat = (root / name).stat()
        digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return f"n{n}-{digest.hexdigest()[:12]}"


def camera_set(data: Dataset, n: int, cache_dir: Path, workers: int) -> tuple[Path, float | None]:
    """Folder of camera-size copies of the first whole groups of ``data`` (at least ``n`` images).

    Generated once into ``cache_dir`` (built in a temporary folder, then renamed) and reused.
    Returns the folder and the seconds generation took (None when it came from the cache).
    """
    names = whole_groups(data, n)
    final = cache_dir / _camera_key(data.root, names, n)
    if (final / "complete.json").is_file():
        return final, None
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=cache_dir))
    start = time.perf_counter()
    try:
        jobs = [(data.root / name, tmp / Path(name).with_suffix(".jpg")) for name in names]
        log.info("generating %d camera-size images in %s", len(jobs), final)
        with process_pool(workers) as pool:
            list(pool.map(_upscale, jobs, chunksize=4))
        write_json(tmp / "complete.json", {"sources": names, "size": CAMERA_SIZE})
        with contextlib.suppress(OSError):  # another run may have finished the same set first
            os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not (final / "complete.json").is_file():
        raise SearchLabError(f"could not create the camera-size set in {final}")
    return final, time.perf_counter() - start


def typical_size(paths: Sequence[Path]) -> str:
    """Most common ``WIDTHxHEIGHT`` among the images (from their headers)."""
    sizes: Counter[str] = Counter()
    for path in paths:
        with Image.open(path) as img:
            sizes[f"{img.width}x{img.height}"] += 1
    return sizes.most_common(1)[0][0] if sizes else "-"
