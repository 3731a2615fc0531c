"""Texture features: local binary patterns (``"lbp"``), plus the grey-level and grid-histogram
helpers that :mod:`search_lab.features.shape` reuses."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from search_lab.core import ConfigError, is_number, require, require_choice, require_int
from search_lab.features.base import Extractor, register

#: ITU-R BT.601 luma weights for R, G, B.
GREY_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)

#: LBP methods supported ("var" is left out: it gives real variances, not codes).
LBP_METHODS = ("uniform", "ror", "nri_uniform", "default")
#: Largest ``points`` for methods with 2**P codes ("default", "ror").
MAX_POINTS_EXPONENTIAL = 16
#: Largest ``points`` for the uniform methods.
MAX_POINTS_UNIFORM = 64


# --------------------------------------------------------------------------- helpers


def to_grey(image: np.ndarray) -> np.ndarray:
    """Grey levels of an RGB image with ITU-R BT.601 weights.

    Parameters
    ----------
    image : (H, W, 3) uint8 ndarray
        RGB image.

    Returns
    -------
    (H, W) float32 ndarray
        Luma ``0.299 R + 0.587 G + 0.114 B`` in [0, 255].

    Raises
    ------
    ValueError
        If ``image`` is not an (H, W, 3) uint8 array.
    """
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        raise ValueError(f"expected an (H, W, 3) RGB array, got shape {shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 RGB image, got dtype {image.dtype}")
    return image.astype(np.float32) @ GREY_WEIGHTS


def grid_histogram(
    bins: np.ndarray, n_bins: int, grid: int, weights: np.ndarray | None = None
) -> np.ndarray:
    """Histograms of integer ``bins`` over a ``grid`` x ``grid`` partition of the image.

    Each region's histogram is normalised to sum 1 (a region with no mass, e.g. smaller
    than one pixel or with all weights zero, gets the uniform histogram ``1 / n_bins``),
    then the concatenation is divided by the number of regions, so the result sums to 1.
    One ``np.bincount`` does all regions at once.

    Parameters
    ----------
    bins : (H, W) integer ndarray
        Bin index of every pixel, in ``[0, n_bins)``.
    n_bins : int
        Number of bins per region.
    grid : int
        Regions per side; regions are ordered row-major.
    weights : (H, W) float ndarray, optional
        Weight of every pixel (default 1 each).

    Returns
    -------
    (grid * grid * n_bins,) float64 ndarray
        Concatenated region histograms, summing to 1.
    """
    height, width = bins.shape
    row_region = (np.arange(height) * grid) // max(height, 1)
    col_region = (np.arange(width) * grid) // max(width, 1)
    region = row_region[:, None] * grid + col_region[None, :]
    index = (region * n_bins + bins).ravel()
    flat_weights = None if weights is None else weights.ravel()
    hist = np.bincount(index, weights=flat_weights, minlength=grid * grid * n_bins)
    hist = hist.reshape(grid * grid, n_bins).astype(np.float64, copy=False)
    totals = hist.sum(axis=1, keepdims=True)
    uniform = np.full_like(hist, 1.0 / n_bins)
    hist = np.divide(hist, totals, out=uniform, where=totals > 0)
    return hist.ravel() / (grid * grid)


def _as_list(value: Any) -> list[Any]:
    """A scalar as a one-item list; a list/tuple (or OmegaConf ListConfig) as a list."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    return [value]


def _ror_table(points: int) -> tuple[np.ndarray, int]:
    """Map each ``"ror"`` code (the smallest bit rotation of a P-bit pattern) to a dense index.

    Returns
    -------
    table : (2**points,) intp ndarray
        ``table[code]`` is the dense bin of ``code``; only rotation minima occur as codes.
    n_bins : int
        Number of rotation classes (36 for P = 8, 4116 for P = 16).
    """
    codes = np.arange(2**points, dtype=np.int64)
    mask = 2**points - 1
    rotations = [((codes >> k) | (codes << (points - k))) & mask for k in range(points)]
    minima = np.min(rotations, axis=0)
    classes, dense = np.unique(minima, return_inverse=True)
    return dense.astype(np.intp), len(classes)


def _lbp_bins(method: str, points: int) -> int:
    """Number of histogram bins of ``method`` with ``points`` neighbours (before "ror" folding)."""
    if method == "uniform":
        return points + 2
    if method == "nri_uniform":
        return points * (points - 1) + 3
    return 2**points


# --------------------------------------------------------------------------- features


@register("lbp")
class LBP(Extractor):
    """Histogram of local binary patterns of the grey image, per grid cell and radius.

    Codes come from :func:`skimage.feature.local_binary_pattern`; a border of
    ``ceil(radius)`` pixels is dropped, since there the circle leaves the image and
    the codes describe the border, not the texture.

    Parameters
    ----------
    points : int or list of int, default 8
        Neighbours P on the circle, one per radius (a single value is used for all radii).
        At most 16 for "default"/"ror" (2**P codes), 64 otherwise.
    radius : float or list of float, default 1
        Circle radius R in pixels (> 0). A list like ``[1, 2, 3]`` computes one histogram
        per radius and concatenates them (multi-resolution LBP).
    method : {"uniform", "ror", "nri_uniform", "default"}, default "nri_uniform"
        ``"uniform"``: rotation-invariant uniform, P + 2 bins. ``"ror"``: rotation
        invariant, one bin per rotation class (36 for P = 8), not 2**P mostly-empty bins.
        ``"nri_uniform"``: P * (P - 1) + 3 bins. ``"default"``: 2**P bins.
    grid : int, default 3
        Histogram per cell of a ``grid`` x ``grid`` partition (row-major), concatenated.
    max_side : int, default 256
        Largest image side the loader should deliver; it sets the scale the texture is
        read at.

    Notes
    -----
    Output: ``n_radii * grid**2 * n_bins`` float32 values, each region histogram summing
    to 1 and the whole vector divided by the number of regions, so it **sums to 1**.
    """

    label = "local binary patterns (texture)"
    description = (
        "local binary patterns (scikit-image), uniform / rotation-invariant / "
        "non-rotation-invariant uniform codes, per grid cell"
    )
    shown: ClassVar[dict[str, str]] = {
        "points": "points={}",
        "radius": "radius={}",
        "method": "{}",
        "grid": "grid={}",
    }

    def __init__(
        self,
        *,
        points: int | Sequence[int] = 8,
        radius: float | Sequence[float] = 1,
        method: str = "nri_uniform",
        grid: int = 3,
        max_side: int = 256,
    ) -> None:
        self.method = require_choice("lbp: method", method, LBP_METHODS)
        limit = MAX_POINTS_EXPONENTIAL if method in ("default", "ror") else MAX_POINTS_UNIFORM
        point_list = [require_int("lbp: points", p, 1, limit) for p in _as_list(points)]
        radius_list = _as_list(radius)
        for r in radius_list:
            require("lbp: radius", r, is_number(r) and r > 0, "a number > 0 or a list of them")
        if not point_list or not radius_list:
            raise ConfigError(
                f"lbp: points and radius must not be empty, got {points!r}, {radius!r}"
            )
        if len(point_list) == 1:
            point_list *= len(radius_list)
        if len(radius_list) == 1:
            radius_list *= len(point_list)
        if len(point_list) != len(radius_list):
            raise ConfigError(
                f"lbp: points {points!r} and radius {radius!r} must have the same length "
                "(or one of them be a single value)"
            )
        self.grid = require_int("lbp: grid", grid, 1)
        self.max_side = require_int("lbp: max_side", max_side, 8)
        self.points = tuple(point_list)
        self.radius = tuple(float(r) for r in radius_list)

        self._tables: list[tuple[np.ndarray | None, int]] = []
        for p in self.points:
            if self.method == "ror":
                self._tables.append(_ror_table(p))
            else:
                self._tables.append((None, _lbp_bins(self.method, p)))

    @property
    def dim(self) -> int:
        """Length of the output vector."""
        return sum(n_bins for _, n_bins in self._tables) * self.grid**2

    def extract(self, image: np.ndarray) -> np.ndarray:
        """LBP histograms per radius and cell, concatenated, summing to 1: (dim,) float32."""
        grey = np.rint(np.clip(to_grey(image), 0, 255)).astype(np.uint8)
        parts = []
        for p, r, (table, n_bins) in zip(self.points, self.radius, self._tables, strict=True):
            codes = _lbp(grey, p, r, self.method)
            margin = math.ceil(r)
            if codes.shape[0] > 2 * margin and codes.shape[1] > 2 * margin:
                codes = codes[margin:-margin, margin:-margin]
            codes = codes.astype(np.intp)
            if table is not None:
                codes = table[codes]
            parts.append(grid_histogram(codes, n_bins, self.grid))
        return (np.concatenate(parts) / len(parts)).astype(np.float32)


def _lbp(grey: np.ndarray, points: int, radius: float, method: str) -> np.ndarray:
    """skimage's ``local_binary_pattern``, imported on first use (skimage takes ~0.3 s)."""
    from skimage.feature import local_binary_pattern

    return local_binary_pattern(grey, points, radius, method)
