"""The extractor interface and the one feature registry: `register`, `create`, `available`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from search_lab.core import Registry


class Extractor:
    """Turns an RGB image into a descriptor.

    Subclasses take keyword-only parameters (validated in ``__init__``, raising
    :class:`ConfigError`) and implement :meth:`extract`.

    Attributes
    ----------
    name : str
        Registry name.
    parallel : bool
        True when extraction is cheap Python/NumPy work that scales with a process pool;
        False for extractors that parallelise internally (torch threads).
    max_side : int or None
        Largest image side the feature needs. The loader decodes large JPEGs at reduced size
        and shrinks the image so that neither side exceeds it. None keeps full size.
    """

    name: ClassVar[str] = ""
    parallel: ClassVar[bool] = True
    label: ClassVar[str] = ""
    """The feature in a few plain words (the app's configuration line)."""
    description: ClassVar[str] = ""
    """What it computes, in one line (the Features table of docs/guide.md)."""
    shown: ClassVar[dict[str, str]] = {}
    """Main parameters, each with how its value reads (the Features table of docs/guide.md)."""
    max_side: int | None = None
    spec: dict[str, Any]
    """The description it was created from (``{"name": ..., **params}``, set by :func:`create`):
    picklable, so worker processes build their own copy, and the feature cache's key."""

    def prepare(self) -> None:
        """Load what extraction needs (a network and its weights) now, so a bad setting fails
        before any work; extraction also does it on first use. A no-op for most features."""

    def prepare_many(self) -> None:
        """Get ready for many images (e.g. build lookup tables before worker processes fork,
        so they inherit them). A no-op for most features."""

    def extract(self, image: np.ndarray) -> np.ndarray:
        """Descriptor of one image: (H, W, 3) uint8 RGB in, 1-D float32 out."""
        raise NotImplementedError

    def extract_batch(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Descriptors of several images, (N, D) float32 (batched extractors override this)."""
        return np.stack([self.extract(image) for image in images]).astype(np.float32, copy=False)

    def cache_parts(self) -> list[Extractor]:
        """Extractors whose features are extracted and cached apart, then assembled.

        Empty (the default): this extractor's features are extracted and cached as a whole.
        A combination returns its parts, so every part already cached is re-used.
        """
        return []

    def assemble(self, blocks: Sequence[np.ndarray]) -> np.ndarray:
        """This extractor's (N, D) vectors from the (N, D_i) blocks of :meth:`cache_parts`."""
        raise NotImplementedError(f"{self.name} has no parts to assemble")


FEATURES: Registry[Extractor] = Registry("feature")
register = FEATURES.register
available = FEATURES.available


def create(name: str, **params: Any) -> Extractor:
    """The extractor registered as ``name``, built with ``params``; it keeps them as ``spec``."""
    extractor = FEATURES.create(name, **params)
    extractor.spec = {"name": name, **params}
    return extractor
