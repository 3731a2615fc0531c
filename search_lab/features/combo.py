"""Combinations: a weighted concatenation of other features, each block L2-normalised first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Real
from typing import Any, ClassVar

import numpy as np

from search_lab.core import ConfigError
from search_lab.features.base import Extractor, available, create, register


def combine(blocks: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """Concatenate (N, D_i) blocks, each row L2-normalised per block and scaled by its weight.

    Normalising first makes a weight mean the same thing whatever a block's length or scale.
    """
    scaled = []
    for block, weight in zip(blocks, weights, strict=True):
        block = np.atleast_2d(np.asarray(block, np.float32))
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        scaled.append(block / np.maximum(norms, 1e-12) * np.float32(weight))
    return np.concatenate(scaled, axis=1)


@register("combo")
class Combo(Extractor):
    """Weighted concatenation of ``parts``, e.g. ``parts=[hsv, lbp], weights=[1, 0.5]``.

    Each part's parameters come from a keyword named after it (``hsv={"bins": [8, 12, 3]}``);
    the Hydra config fills them from ``conf/feature/<part>.yaml``.
    """

    label = "weighted combination of features"
    description = "weighted concatenation of any of the above, each block L2-normalised first"
    shown: ClassVar[dict[str, str]] = {"parts": "parts={}", "weights": "weights={}"}

    def __init__(
        self,
        *,
        parts: Sequence[str],
        weights: Sequence[float] | None = None,
        **part_params: Mapping[str, Any],
    ) -> None:
        parts = list(parts)
        if not parts:
            raise ConfigError("combo: parts must name at least one feature")
        weights = [1.0] * len(parts) if weights is None else list(weights)
        if any(not isinstance(w, Real) or isinstance(w, bool) for w in weights):
            raise ConfigError(f"combo: weights must be numbers, got {weights!r}")
        weights = [float(w) for w in weights]
        if len(weights) != len(parts):
            raise ConfigError(f"combo: {len(parts)} parts but {len(weights)} weights")
        if any(w < 0 for w in weights):
            raise ConfigError(f"combo: weights must be non-negative, got {weights}")
        unknown = [p for p in parts if p == "combo" or p not in available()]
        if unknown:
            valid = ", ".join(n for n in available() if n != "combo")
            raise ConfigError(f"combo: unknown part(s) {unknown}; choose from: {valid}")
        self.parts = [create(p, **_params(part_params.get(p, {}))) for p in parts]
        self.weights = weights
        self.parallel = all(p.parallel for p in self.parts)
        sides = [p.max_side for p in self.parts]
        self.max_side = None if None in sides else max(sides)

    def cache_parts(self) -> list[Extractor]:
        """The parts: each is extracted from the file at its own size and cached apart."""
        return self.parts

    def assemble(self, blocks: Sequence[np.ndarray]) -> np.ndarray:
        """The weighted concatenation of the parts' blocks (see :func:`combine`)."""
        return combine(blocks, self.weights)

    def _views(self, images: Sequence[np.ndarray], part: Extractor) -> list[np.ndarray]:
        """The images at the size ``part`` asks for (the loader gave the largest any part needs)."""
        from search_lab.data import shrink

        return [shrink(image, part.max_side) for image in images]

    def prepare(self) -> None:
        for part in self.parts:
            part.prepare()

    def prepare_many(self) -> None:
        for part in self.parts:
            part.prepare_many()

    def extract(self, image: np.ndarray) -> np.ndarray:
        return self.extract_batch([image])[0]

    def extract_batch(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Vectors of decoded images (each part sees it shrunk to its size).

        Files go through :func:`search_lab.retrieval.extract.vectors_of` instead, which decodes the
        file once per part as the collection's extraction does, so a query equals its indexed row.
        """
        return self.assemble([part.extract_batch(self._views(images, part)) for part in self.parts])


def _params(cfg: Mapping[str, Any]) -> dict[str, Any]:
    params = dict(cfg)
    params.pop("name", None)
    return params
