"""Feature extractors, created by name through one registry.

Importing this package registers every built-in feature. ``create("hsv", bins=[8, 12, 3])``
returns an :class:`Extractor`; ``available()`` lists the names. The CNN module imports torch
only when a CNN extractor is created, so hand-crafted runs start fast.
"""

from search_lab.features import cnn, color, combo, shape, texture  # noqa: F401  (registration)
from search_lab.features.base import Extractor, available, create, register

__all__ = ["Extractor", "available", "create", "register"]
