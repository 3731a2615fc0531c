"""Distractor features: extracted shard by shard through the feature cache, appended to a
collection.

Which distractor images to add is :mod:`search_lab.data.distractors`' business; this module
turns them into vectors (one cache entry per :data:`~search_lab.data.distractors.SHARD` images,
so a larger run re-uses every shard a smaller one extracted) and grows the dataset with them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from search_lab.core import DatasetError
from search_lab.data import NO_GROUP, PREFIX, SHARD, Dataset, fingerprint
from search_lab.retrieval.cache import Features
from search_lab.retrieval.extract import workers_kept

if TYPE_CHECKING:
    from search_lab.retrieval.pipeline import Pipeline

log = logging.getLogger(__name__)


def distractor_features(pipe: Pipeline, folder: Path, names: Sequence[str]) -> Features:
    """Features of ``names`` (seeded order kept), one cache entry per shard of ``SHARD``."""
    parts = []
    n_shards = -(-len(names) // SHARD)
    with workers_kept():  # a CNN's worker processes start once, not once per shard
        for i, start in enumerate(range(0, len(names), SHARD)):
            shard = list(names[start : start + SHARD])
            feats, hit = pipe.features(folder, shard, fingerprint(folder, shard))
            how = "cached" if hit else "extracted"
            log.debug("distractor shard %d/%d %s", i + 1, n_shards, how)
            parts.append(feats)
    if not any(f.names for f in parts):
        raise DatasetError(f"no distractor image of {folder} could be read")
    return Features(
        [PREFIX + n for f in parts for n in f.names],
        np.concatenate([f.vectors for f in parts if len(f.names)], axis=0),
        {PREFIX + n: why for f in parts for n, why in f.skipped.items()},
        sum(f.seconds for f in parts),
    )


def with_distractors(data: Dataset, feats: Features, extra: Features) -> tuple[Dataset, Features]:
    """``data`` and its features with ``extra`` (distractor features) appended after them.

    The distractors join no group, so queries and relevance sets are unchanged and the
    dataset's ids stay where they were.
    """
    if extra.vectors.shape[1] != feats.vectors.shape[1]:
        raise DatasetError("distractor features do not match the dataset's dimension")
    grown = replace(
        data,
        names=(*data.names, *extra.names),
        groups=(*data.groups, *[NO_GROUP] * len(extra.names)),
    )
    merged = Features(
        [*feats.names, *extra.names],
        np.concatenate([feats.vectors, extra.vectors], axis=0),
        {**feats.skipped, **extra.skipped},
        feats.seconds + extra.seconds,
    )
    return grown, merged
