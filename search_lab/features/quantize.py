"""int8 CNN features (``feature.precision=int8``): ONNX Runtime static quantisation of the
exported graph, calibrated on images of the collection being indexed.

Static quantisation needs the ranges of the activations, measured on representative inputs:
``feature.calibrate_on`` names a folder (the collection's, or any ``post.fit_on``-style source);
:data:`CALIBRATION_IMAGES` of its images, spread evenly over its sorted file names, are run
through the fp32 graph at every input side of the feature. The quantised graph is cached like
the fp32 export, under its own key (which includes the calibration files' names and sizes).
Its vectors are not torch's (int8 arithmetic), so the feature cache keys on the precision.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xxhash

from search_lab.core import ConfigError, ImageLoadError
from search_lab.data import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

CALIBRATION_IMAGES = 32
INT8_MIN_COSINE = 0.9  # an int8 graph whose vectors are further from torch's is broken


def calibration_files(folder: str | Path, n: int = CALIBRATION_IMAGES) -> list[Path]:
    """``n`` image files of ``folder`` (recursively), evenly spread over their sorted names."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise ConfigError(
            f"cnn: feature.precision=int8 calibrates on images: feature.calibrate_on={folder!r} "
            "is not a folder (pass the collection's image folder)"
        )
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ConfigError(f"cnn: feature.calibrate_on={folder!r} holds no images")
    picks = np.linspace(0, len(files) - 1, min(n, len(files))).round().astype(int)
    return [files[i] for i in dict.fromkeys(picks.tolist())]


def calibration_digest(files: Sequence[Path]) -> str:
    """What the calibration depends on: the files' names and sizes."""
    h = xxhash.xxh3_128()
    for path in files:
        h.update(f"{path.name}:{path.stat().st_size};".encode())
    return h.hexdigest()


def calibration_batches(feature: Any, files: Sequence[Path]) -> list[np.ndarray]:
    """Network inputs of the calibration images, one per batch, at every input side."""
    from search_lab.data import load_image

    batches = []
    for path in files:
        try:
            image = load_image(path, max_side=feature.max_side)
        except ImageLoadError as err:
            log.warning("int8 calibration: skipping %s", err)
            continue
        batches += [feature._input(image, side)[None] for side in feature.sides]
    return batches


def quantized(fp32: bytes, batches: Sequence[np.ndarray]) -> bytes:
    """The int8 (QDQ, per-channel weights) ONNX bytes of the fp32 graph ``fp32``."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.items, None)
            return None if batch is None else {"images": batch}

    with tempfile.TemporaryDirectory(prefix="search_lab-int8.") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(fp32)
        quantize_static(
            str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        )  # fmt: skip
        log.info("quantised the graph to int8 on %d calibration inputs", len(batches))
        return dst.read_bytes()


def min_cosine(reference: np.ndarray, other: np.ndarray) -> float:
    """Smallest cosine similarity between matching rows of two (N, D) matrices."""
    a = reference / np.maximum(np.linalg.norm(reference, axis=1, keepdims=True), 1e-12)
    b = other / np.maximum(np.linalg.norm(other, axis=1, keepdims=True), 1e-12)
    return float((a * b).sum(axis=1).min())
