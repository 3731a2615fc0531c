"""Which vectors an index's near-duplicates are judged on: its own, or its photos' colour
histograms.

The distances of an index whose chain is fitted on its collection (PCA, whitening, query
expansion: ``+experiment=recommended``) are scaled by the whole collection, so no threshold
carries over from one folder to another: the recipe's own vectors put a photo and its JPEG
copy 0.024 apart in a folder of five photos, above the 0.0225 that was best on a planted set
of 540, and the pair is missed. Such an index's duplicates are judged on the colour histogram
of its photos instead, the best calibrated feature on the planted sets (pair F1 0.938 against
0.804 for the CNN and 0.816 for the recipe's own vectors, bench/duplicates.md), extracted once
into the feature cache. Every other index is judged on its own vectors.
"""

from __future__ import annotations

from dataclasses import dataclass

from search_lab.core import ConfigError, DatasetError
from search_lab.data import fingerprint
from search_lab.features import PostProcessor
from search_lab.indexes import Index, create
from search_lab.retrieval.duplicates import CALIBRATED, default_threshold, fitted_on_collection
from search_lab.retrieval.engine import SearchEngine
from search_lab.retrieval.extract import cached_features
from search_lab.retrieval.local_features import check_on_disk
from search_lab.retrieval.rerank_engine import engine_cache

HISTOGRAM = {"name": "hsv"}
"""The feature an index fitted on its collection is judged on (default parameters: those
:data:`search_lab.retrieval.duplicates.CALIBRATED` was calibrated for)."""


@dataclass
class DuplicateSpace:
    """Vectors to find near-duplicates in: an index over them, their names, the distance's
    words, and the calibrated threshold (None when there is none: ``no_default`` says why, and
    the caller must give one)."""

    index: Index
    names: list[str]
    distance: str
    threshold: float | None
    no_default: str = ""


def duplicate_space(engine: SearchEngine) -> DuplicateSpace:
    """Where ``engine``'s near-duplicates are found (see the module docstring)."""
    if fitted_on_collection(engine.config):
        return _histograms(engine)
    own = DuplicateSpace(
        engine.index, list(engine.names), f"{engine.config['metric']['name']} distance", None
    )
    try:
        own.threshold = default_threshold(engine.config)
    except ConfigError as err:
        own.no_default = str(err)
    return own


def _histograms(engine: SearchEngine) -> DuplicateSpace:
    """An exact cosine index over the colour histograms of ``engine``'s photos as they are now
    (cached under their current fingerprint); a photo unreadable now is left out."""
    check_on_disk(engine.root, engine.names, by="duplicates")
    features, _ = cached_features(
        engine_cache(engine),
        engine.root,
        engine.names,
        fingerprint(engine.root, engine.names),
        HISTOGRAM,
        progress=False,
    )
    if not features.names:
        raise DatasetError(f"duplicates: none of the {len(engine.names)} photos could be read")
    index = create("exact", metric="cosine")
    index.build(PostProcessor().transform(features.vectors))  # the calibration's chain: L2
    return DuplicateSpace(
        index, list(features.names), "cosine distance of colour histograms", CALIBRATED["hsv"]
    )
