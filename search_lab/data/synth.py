"""Synthetic distractor images: reproducible photos of nothing, for scale runs and tests.

``python -m search_lab.data distractors --count N --dest DIR [--seed S]`` writes N JPEGs
``s<seed>_<i>.jpg``. Image ``i`` depends only on ``(seed, i)``, so any count of the same seed
gives the same files, a larger count adds images to a smaller one, and an interrupted run
resumes (each file is written atomically: a file present is a finished one).

Each image mixes, at random, a smooth colour field (a few random colours interpolated across
the frame), filled shapes (ellipses, rectangles, stripes) and a noise texture (oriented
gratings plus grain), at Holidays-small's size (325x243, landscape or portrait). All pixel
work is whole-array numpy; synthetic images are far easier to tell from real photos than
other real photos are, so they make a *mild* distractor set (see docs/results.md).
"""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

import numpy as np
from PIL import Image

from search_lab.core import DatasetError, atomic_write_bytes, ownership

log = logging.getLogger(__name__)

SIZE = (243, 325)  # (height, width) of holidays-small's images
JPEG_QUALITY = 88


SYNTH_NAME = re.compile(r"s\d+_\d{7,}\.jpg")
"""The names :func:`file_name` gives: a --dest folder holding anything else is refused."""


def file_name(seed: int, i: int) -> str:
    """Name of image ``i`` of the set made with ``seed``."""
    return f"s{seed}_{i:07d}.jpg"


def colour_field(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth (h, w, 3) float field: a random 2x2 to 5x5 grid of colours, bicubic-upsampled."""
    g = int(rng.integers(2, 6))
    colours = rng.uniform(0, 255, size=(g, g, 3))
    grey = colours.mean(axis=2, keepdims=True)
    small = (grey + rng.uniform(0.2, 1.0) * (colours - grey)).astype(np.uint8)  # muted, as photos
    big = Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC)
    return np.asarray(big, np.float32)


def shapes(rng: np.random.Generator, canvas: np.ndarray) -> np.ndarray:
    """``canvas`` with 1 to 8 random filled ellipses, rectangles or stripe bands painted on."""
    h, w, _ = canvas.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for _ in range(int(rng.integers(1, 9))):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = rng.uniform(0.05, 0.4) * h, rng.uniform(0.05, 0.4) * w
        kind = rng.integers(3)
        if kind == 0:
            mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
        elif kind == 1:
            mask = (np.abs(yy - cy) <= ry) & (np.abs(xx - cx) <= rx)
        else:
            angle = rng.uniform(0, np.pi)
            proj = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
            mask = np.abs(proj) <= 0.3 * rx
        canvas[mask] = rng.integers(0, 256, size=3)
    return canvas


def texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A (h, w, 1) zero-mean texture: 1 to 3 oriented sine gratings plus Gaussian grain."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(1, 4))):
        angle, period = rng.uniform(0, np.pi), rng.uniform(4, 60)
        phase = (xx * np.cos(angle) + yy * np.sin(angle)) * (2 * np.pi / period)
        out += rng.uniform(5, 40) * np.sin(phase + rng.uniform(0, 2 * np.pi))
    out += rng.normal(0.0, rng.uniform(0, 20), size=(h, w)).astype(np.float32)
    return out[:, :, None]


def synth_image(seed: int, i: int) -> np.ndarray:
    """Image ``i`` of the set made with ``seed``: (h, w, 3) uint8, a function of both alone."""
    rng = np.random.default_rng((seed, i))
    h, w = SIZE if rng.random() < 0.75 else SIZE[::-1]
    image = colour_field(rng, h, w)
    if rng.random() < 0.7:
        image = shapes(rng, image)
    if rng.random() < 0.6:
        image = image + texture(rng, h, w)
    return np.clip(image, 0, 255).astype(np.uint8)


def jpeg_bytes(image: np.ndarray) -> bytes:
    """``image`` encoded as a JPEG (Pillow's encoder is deterministic for one input)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def generate(count: int, dest: Path, *, seed: int = 0) -> tuple[int, int]:
    """Write images 0..count-1 of ``seed`` into ``dest``; returns (written, already present).

    Raises
    ------
    DatasetError
        If ``count`` or ``seed`` is negative, or ``dest`` exists and is not a folder.
    """
    if count <= 0 or seed < 0:
        raise DatasetError(f"--count must be positive and --seed >= 0, got {count} and {seed}")
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise DatasetError(f"--dest {dest} exists and is not a folder")
    if foreign := ownership.unmatched_entries(dest, SYNTH_NAME):
        raise DatasetError(
            f"--dest {dest} holds files that are not synthetic distractors "
            f"({ownership.describe_entries(foreign)}): give an empty or new folder, or one "
            "this command filled"
        )
    dest.mkdir(parents=True, exist_ok=True)
    written = present = 0
    for i in range(count):
        path = dest / file_name(seed, i)
        if path.is_file():
            present += 1
            continue
        atomic_write_bytes(path, jpeg_bytes(synth_image(seed, i)))
        written += 1
        if written % 1000 == 0:
            log.info("%d of %d distractors written", written + present, count)
    return written, present
