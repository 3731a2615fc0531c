"""Tune/test splits and random group subsets of a dataset, so settings are never scored where tuned.

A split is deterministic: each group (instance datasets) or each query (category datasets) goes
to the ``tune`` side when a seeded hash of its id falls below ``fraction``. The hash depends on
the id alone, so adding images to a collection never moves an existing group across sides.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from search_lab.core import (
    ConfigError,
    DatasetError,
    is_int,
    require,
    require_choice,
    require_number,
)
from search_lab.data.datasets import Dataset

SIDES = ("all", "tune", "test")


def on_tune_side(key: str, *, fraction: float, seed: int) -> bool:
    """True when ``key`` (a group id or a query name) belongs to the tune side."""
    digest = hashlib.sha256(f"{seed}\0{key}".encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def check_split(side: str, fraction: float, seed: int) -> None:
    """ConfigError unless the split options make sense (checked before any work)."""
    require_choice("dataset.split", side, SIDES)
    require_number("dataset.split_fraction", fraction, 0.0, strict=True, below=1.0)
    require("dataset.split_seed", seed, is_int(seed), "an integer")  # any: it only salts a hash


def restrict(data: Dataset, keep: Sequence[int], queries: Sequence[int] | None = None) -> Dataset:
    """``data`` reduced to the images ``keep`` (ids renumbered, relevance kept inside them).

    ``queries`` (old ids, default: every query of ``data`` that is kept) limits the queries
    further; a query left with no relevant image moves to ``lonely``.
    """
    keep = sorted(set(keep))
    new_id = {old: new for new, old in enumerate(keep)}
    wanted = set(data.queries if queries is None else queries) & set(new_id)
    relevant, kept_queries, lonely = {}, [], [new_id[q] for q in data.lonely if q in new_id]
    for q in sorted(wanted):
        others = frozenset(new_id[r] for r in data.relevant[q] if r in new_id)
        if others:
            kept_queries.append(new_id[q])
            relevant[new_id[q]] = others
        else:
            lonely.append(new_id[q])
    return replace(
        data,
        names=tuple(data.names[i] for i in keep),
        groups=tuple(data.groups[i] for i in keep),
        queries=tuple(kept_queries),
        relevant=relevant,
        lonely=tuple(sorted(lonely)),
    )


def split_dataset(data: Dataset, side: str, *, fraction: float = 0.5, seed: int = 0) -> Dataset:
    """One side of the tune/test split of ``data`` (``all`` returns it unchanged).

    Instance datasets split their groups: the other side's images are not part of the result.
    Category datasets (every image a query) split their queries and keep the whole collection,
    since the relevant images of a query are the rest of its category on both sides.

    Raises
    ------
    DatasetError
        If the chosen side holds no query with a relevant image.
    """
    check_split(side, fraction, seed)
    if side == "all":
        return data

    def ours(key: str) -> bool:
        return on_tune_side(key, fraction=fraction, seed=seed) == (side == "tune")

    if data.protocol == "category":
        chosen = [q for q in data.queries if ours(data.names[q])]
        result = restrict(data, range(len(data.names)), chosen)
    else:
        sides = {g: ours(g) for g in set(data.groups)}
        result = restrict(data, [i for i, g in enumerate(data.groups) if sides[g]])
    if not result.queries:
        raise DatasetError(
            f"dataset.split={side} (fraction {fraction}, seed {seed}) leaves no query with a "
            f"relevant image in {data.root}; change dataset.split_fraction or dataset.split_seed"
        )
    return result


def check_groups(data: Dataset, groups: int) -> None:
    """ConfigError unless ``data`` holds at least ``groups`` groups (``eval.subset_groups``)."""
    count = len(set(data.groups))
    if groups > count:
        raise ConfigError(
            f"eval.subset_groups={groups} is more than the {count} groups of {data.root}"
        )


def group_subsets(data: Dataset, count: int, groups: int, *, seed: int = 0) -> list[Dataset]:
    """``count`` random subsets of ``groups`` whole groups each (seeded), as small collections.

    This is how a configuration is checked against collection size: settings fitted on the
    collection (PCA, whitening) must not collapse when the collection is small.
    """
    check_groups(data, groups)
    names = sorted(set(data.groups))
    rng = np.random.default_rng(seed)
    members: dict[str, list[int]] = {}
    for i, g in enumerate(data.groups):
        members.setdefault(g, []).append(i)
    subsets = []
    for _ in range(count):
        chosen = rng.choice(len(names), size=groups, replace=False)
        subset = restrict(data, [i for c in chosen for i in members[names[c]]])
        if subset.queries:
            subsets.append(subset)
    return subsets
