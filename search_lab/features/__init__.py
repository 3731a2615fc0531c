"""Feature extractors, created by name through one registry.

Importing this package registers every built-in feature. ``create("hsv", bins=[8, 12, 3])``
returns an :class:`Extractor`; ``available()`` lists the names. The CNN module imports torch
only when a CNN extractor is created, so hand-crafted runs start fast.
"""

import lazy_loader

from search_lab.features import cnn, color, combo, shape, texture  # noqa: F401  (registration)
from search_lab.features.base import Extractor, available, create, register

__getattr__, __dir__, _lazy = lazy_loader.attach(
    __name__,
    submod_attrs={
        "backbones": ["packaged_lite", "weights_file"],
        "base": ["FEATURES"],
        "engines": ["bf16_available", "engines_used"],
        "pooling": ["pool"],
        "postprocess": ["EXPAND_BASE", "PostProcessor", "expand_queries", "neighbour_weights"],
    },
)
__all__ = [
    "EXPAND_BASE",
    "FEATURES",
    "Extractor",
    "PostProcessor",
    "available",
    "bf16_available",
    "create",
    "engines_used",
    "expand_queries",
    "neighbour_weights",
    "packaged_lite",
    "pool",
    "register",
    "weights_file",
]
