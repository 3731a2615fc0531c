"""Shape features: histograms of oriented gradients (``"hog"``) and a cheaper edge-orientation
histogram (``"edges"``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from PIL import Image

from search_lab.core import (
    ConfigError,
    require_bool,
    require_choice,
    require_int,
    require_int_pair,
    require_number,
)
from search_lab.features.base import Extractor, register
from search_lab.features.texture import (
    grid_histogram,
    to_grey,
)

#: Block normalisations accepted by :func:`skimage.feature.hog`.
HOG_BLOCK_NORMS = ("L2-Hys", "L2", "L1", "L1-sqrt")


@register("hog")
class HOG(Extractor):
    """Histogram of oriented gradients of the grey image resized to a fixed size.

    Resizing to ``size`` (aspect ratio not kept) makes the length independent of the
    input. Orientation bins follow :func:`skimage.feature.hog`: unsigned, bin ``k``
    covers ``[k, k + 1) * 180 / orientations`` degrees of the gradient direction, so a
    horizontal gradient (a vertical edge) lands in bin 0 and a vertical one in the bin
    holding 90 degrees.

    Parameters
    ----------
    size : (int, int), default (128, 128)
        ``(height, width)`` in pixels of the resized grey image (rows, cols, as in
        ``pixels_per_cell``). Each side must hold at least one block.
    orientations : int, default 9
        Orientation bins (>= 1).
    pixels_per_cell : (int, int), default (32, 32)
        Cell size ``(rows, cols)``.
    cells_per_block : (int, int), default (3, 3)
        Block size in cells ``(rows, cols)``.
    block_norm : {"L2-Hys", "L2", "L1", "L1-sqrt"}, default "L2-Hys"
        Per-block normalisation.
    max_side : int, default 256
        Largest image side the loader should deliver (twice the default ``size``).

    Notes
    -----
    Output: ``n_blocks_row * n_blocks_col * cells_per_block[0] * cells_per_block[1] *
    orientations`` float32 values, **L2-normalised**. An image without any gradient
    (constant) gives the constant unit vector ``1 / sqrt(D)`` rather than zeros, so
    cosine distances stay defined.
    """

    label = "histogram of oriented gradients (shape)"
    description = "histogram of oriented gradients on a fixed-size grey image"
    shown: ClassVar[dict[str, str]] = {
        "size": "size={}",
        "orientations": "{} orientations",
        "pixels_per_cell": "pixels_per_cell={}",
        "cells_per_block": "cells_per_block={}",
    }

    def __init__(
        self,
        *,
        size: Sequence[int] = (128, 128),
        orientations: int = 9,
        pixels_per_cell: Sequence[int] = (32, 32),
        cells_per_block: Sequence[int] = (3, 3),
        block_norm: str = "L2-Hys",
        max_side: int = 256,
    ) -> None:
        self.size = require_int_pair("hog: size", size)
        self.orientations = require_int("hog: orientations", orientations, 1)
        self.pixels_per_cell = require_int_pair("hog: pixels_per_cell", pixels_per_cell)
        self.cells_per_block = require_int_pair("hog: cells_per_block", cells_per_block)
        self.block_norm = require_choice("hog: block_norm", block_norm, HOG_BLOCK_NORMS)
        self.max_side = require_int("hog: max_side", max_side, 8)
        block = [c * b for c, b in zip(self.pixels_per_cell, self.cells_per_block, strict=True)]
        if self.size[0] < block[0] or self.size[1] < block[1]:
            raise ConfigError(
                f"hog: size {list(self.size)} is smaller than one block "
                f"(pixels_per_cell x cells_per_block = {block}); use a size of at least that"
            )

    @property
    def dim(self) -> int:
        """Length of the output vector."""
        cells = [s // c for s, c in zip(self.size, self.pixels_per_cell, strict=True)]
        blocks = [n - b + 1 for n, b in zip(cells, self.cells_per_block, strict=True)]
        return math.prod(blocks) * math.prod(self.cells_per_block) * self.orientations

    def extract(self, image: np.ndarray) -> np.ndarray:
        """L2-normalised HOG vector, shape (dim,), of one (H, W, 3) uint8 RGB image."""
        from skimage.feature import hog  # skimage takes ~0.3 s to import: only for this feature

        height, width = self.size
        grey = Image.fromarray(to_grey(image))  # float32 -> mode "F"
        small = np.asarray(grey.resize((width, height), Image.Resampling.BILINEAR))
        vector = hog(
            small,
            orientations=self.orientations,
            pixels_per_cell=self.pixels_per_cell,
            cells_per_block=self.cells_per_block,
            block_norm=self.block_norm,
            feature_vector=True,
        )
        norm = np.linalg.norm(vector)
        if norm > 0:
            return (vector / norm).astype(np.float32)
        return np.full(vector.shape, 1.0 / math.sqrt(vector.size), dtype=np.float32)


@register("edges")
class EdgeHistogram(Extractor):
    """Magnitude-weighted histogram of Sobel gradient orientations of strong edges.

    Gradients come from :func:`scipy.ndimage.sobel` on the grey image; the angle is
    ``atan2(gy, gx)`` in image axes (x to the right, y down). Bins are *centred* on
    multiples of ``180 / orientations`` degrees (``360 / orientations`` if ``signed``),
    so bin 0 holds rightward gradients (vertical edges, dark on the left) and, with 8
    unsigned bins, bin 4 holds vertical gradients (horizontal edges); with 16 signed bins
    bin 4 holds downward gradients (dark on top) and bin 12 upward ones. Only pixels whose magnitude
    exceeds ``threshold`` times the image's largest magnitude vote, with their magnitude.

    Parameters
    ----------
    orientations : int, default 16
        Orientation bins (>= 1).
    signed : bool, default True
        Distinguish a gradient from its opposite (dark-to-light vs light-to-dark).
    threshold : float, default 0.1
        Fraction of the largest gradient magnitude, in [0, 1).
    grid : int, default 2
        Histogram per cell of a ``grid`` x ``grid`` partition (row-major), concatenated.
    max_side : int, default 256
        Largest image side the loader should deliver.

    Notes
    -----
    Output: ``grid**2 * orientations`` float32 values, each region summing to 1 and the
    whole vector divided by the number of regions, so it **sums to 1**. A region with no
    voting pixel (a constant image, or a flat cell) gets the uniform histogram
    ``1 / orientations``: a zero vector would make cosine distances undefined (NaN),
    while the uniform histogram means "no preferred orientation" and keeps the sum-1
    contract.
    """

    label = "edge-orientation histogram (shape)"
    description = "edge-orientation histogram (Sobel), a cheaper shape descriptor"
    shown: ClassVar[dict[str, str]] = {
        "orientations": "{} orientations",
        "signed": "signed={}",
        "threshold": "threshold={}",
        "grid": "grid={}",
    }

    def __init__(
        self,
        *,
        orientations: int = 16,
        signed: bool = True,
        threshold: float = 0.1,
        grid: int = 2,
        max_side: int = 256,
    ) -> None:
        self.orientations = require_int("edges: orientations", orientations, 1)
        self.signed = require_bool("edges: signed", signed)
        self.threshold = require_number("edges: threshold", threshold, 0, below=1)
        self.grid = require_int("edges: grid", grid, 1)
        self.max_side = require_int("edges: max_side", max_side, 8)

    @property
    def dim(self) -> int:
        """Length of the output vector."""
        return self.grid**2 * self.orientations

    def extract(self, image: np.ndarray) -> np.ndarray:
        """Edge-orientation histograms per cell, concatenated, summing to 1: (dim,) float32."""
        grey = to_grey(image)
        from scipy import ndimage  # only when this feature is used

        gx = ndimage.sobel(grey, axis=1)
        gy = ndimage.sobel(grey, axis=0)
        magnitude = np.hypot(gx, gy)
        angle = np.arctan2(gy, gx)
        span = 2 * np.pi if self.signed else np.pi
        bins = np.rint(angle * (self.orientations / span)).astype(np.intp) % self.orientations
        peak = float(magnitude.max()) if magnitude.size else 0.0
        weights = np.where(magnitude > self.threshold * peak, magnitude, 0.0)
        vector = grid_histogram(bins, self.orientations, self.grid, weights=weights)
        return vector.astype(np.float32)
