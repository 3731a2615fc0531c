"""The extractor interface and the one feature registry: `register`, `create`, `available`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from search_lab.registry import Registry


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
    max_side: int | None = None

    def extract(self, image: np.ndarray) -> np.ndarray:
        """Descriptor of one image: (H, W, 3) uint8 RGB in, 1-D float32 out."""
        raise NotImplementedError

    def extract_batch(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Descriptors of several images, (N, D) float32 (batched extractors override this)."""
        return np.stack([self.extract(image) for image in images]).astype(np.float32, copy=False)


FEATURES: Registry[Extractor] = Registry("feature")
register = FEATURES.register
available = FEATURES.available
create = FEATURES.create
