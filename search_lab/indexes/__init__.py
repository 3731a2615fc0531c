"""Search indexes behind one interface: ``build``, ``search``, ``save``, ``load``; made by name.

One module per method, each registered by name (``create(kind, metric=..., **params)``):
``ExactIndex`` compares every query with every item (the baseline); ``AnnoyIndex`` searches a
forest of random-projection trees (approximate, memory-mapped from disk). Both return distances
in the configured metric's own units, so rankings and scores never depend on the index.
"""

import lazy_loader

from search_lab.indexes import faiss_factory, hnsw, kdtree, nndescent  # noqa: F401
from search_lab.indexes.annoy_forest import ANNOY_METRICS, AnnoyIndex
from search_lab.indexes.base import (
    COMMON_CHECKS,
    INDEXES,
    PAD_ID,
    REBUILD,
    Check,
    Index,
    available,
    create,
    read_record,
    register,
    search_views,
)
from search_lab.indexes.exact import ExactIndex

__getattr__, __dir__, _lazy = lazy_loader.attach(
    __name__,
    submod_attrs={
        "distances": ["DISTANCES"],
        "editing": ["COMPACT", "SLOTS", "plan_edit"],
    },
)
__all__ = [
    "ANNOY_METRICS",
    "COMMON_CHECKS",
    "COMPACT",
    "DISTANCES",
    "INDEXES",
    "PAD_ID",
    "REBUILD",
    "SLOTS",
    "AnnoyIndex",
    "Check",
    "ExactIndex",
    "Index",
    "available",
    "create",
    "plan_edit",
    "read_record",
    "register",
    "search_views",
]
