"""Distractors: images that belong to no group, added to the indexed collection.

``dataset.distractors=<folder>`` adds every image under the folder (recursively) to the
collection; they are relevant to no query, so they can only push relevant images down. With
``eval.distractor_counts=[0, 1000, ...]`` the same queries are scored on growing subsets: the
first ``n`` distractors of one seeded order (``eval.distractor_seed``), so each subset holds
the smaller ones. The order sorts names by a seeded hash, so adding files to the folder never
reorders the others.

Their features are extracted by :mod:`search_lab.retrieval.collection`, shard by shard
(:data:`SHARD` images of that order), so a run with more distractors re-uses every shard a
smaller run extracted. In the collection a distractor is named :data:`PREFIX` + its path.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from search_lab.core import ConfigError, DatasetError, is_int, require, require_seed
from search_lab.data.datasets import Dataset, _utf8_names
from search_lab.data.layouts import is_image

log = logging.getLogger(__name__)

PREFIX = "~distractors/"
"""Prefix of a distractor's name in the collection (keeps it apart from the dataset's names)."""
NO_GROUP = ""
"""Group of every distractor: no loader gives a dataset image an empty group."""
SHARD = 1000
"""Distractors per feature-cache entry."""


def list_images(folder: Path) -> list[str]:
    """Image paths under ``folder`` (recursive, POSIX, sorted); DatasetError if none or missing."""
    if not folder.is_dir():
        raise DatasetError(f"distractor folder {folder} does not exist; set dataset.distractors")
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if is_image(p))
    names, _ = _utf8_names(names, names)
    if not names:
        raise DatasetError(f"distractor folder {folder} holds no images (jpg, png, webp, ...)")
    return names


def check_names(names: Sequence[str], data: Dataset, folder: Path) -> None:
    """DatasetError if a distractor is named like a query: it would be a copy of the dataset."""
    queries = {Path(data.names[q]).name for q in (*data.queries, *data.lonely)}
    clash = sorted(n for n in names if Path(n).name in queries)
    if clash:
        raise DatasetError(
            f"distractor folder {folder} holds {clash[0]}, the file name of a query of "
            f"{data.root} ({len(clash)} such files): distractors must belong to no group; "
            "point dataset.distractors at a folder of other images"
        )
    taken = [n for n in data.names if n.startswith(PREFIX)]
    if taken:
        raise DatasetError(f"dataset image {taken[0]} starts with {PREFIX!r}: rename it")


def seeded_order(names: Sequence[str], seed: int) -> list[str]:
    """``names`` sorted by the hash of ``(seed, name)``: a seeded order stable under additions."""

    def key(name: str) -> bytes:
        return hashlib.sha256(f"{seed}\0{name}".encode("utf-8", "surrogateescape")).digest()

    return sorted(names, key=key)


def check_counts(eval_cfg: dict[str, Any], folder: str | None) -> list[int] | None:
    """The checked, sorted ``eval.distractor_counts`` (None when unset); ConfigError if bad."""
    counts, seed = eval_cfg.get("distractor_counts"), eval_cfg.get("distractor_seed", 0)
    require_seed("eval.distractor_seed", seed)
    if counts is None:
        return None
    name = "eval.distractor_counts"
    ok = isinstance(counts, list) and bool(counts) and all(is_int(n) for n in counts)
    require(name, counts, ok, "a list of integers >= 0")
    require(name, counts, min(counts) >= 0, ">= 0")
    if folder is None:
        raise ConfigError("eval.distractor_counts needs dataset.distractors=<folder of images>")
    return sorted(set(counts))


def chosen(
    source: str | None, data: Dataset, *, seed: int, counts: Sequence[int] | None, subsets: bool
) -> tuple[Path, list[str]] | None:
    """The distractor folder ``source`` and the names to extract, in seeded order; None if unset.

    Every check runs here, before any extraction: the folder exists and holds images, no file
    carries a query's name, and the largest count is at most the number of images.
    """
    if source is None:
        return None
    if subsets:
        raise ConfigError(
            "eval.subsets (small collections) and dataset.distractors (large ones) cannot be "
            "combined; run them apart"
        )
    folder = Path(source)
    names = list_images(folder)
    check_names(names, data, folder)
    order = seeded_order(names, seed)
    if counts is None:
        return folder, order
    if counts[-1] > len(order):
        raise ConfigError(
            f"eval.distractor_counts asks for {counts[-1]} distractors, but {folder} holds "
            f"{len(order)} images"
        )
    return folder, order[: counts[-1]]
