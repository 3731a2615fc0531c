"""Where the app finds things: index and output folders, commands, image paths."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from search_lab.core import ImageLoadError

INDEXES_ENV = "SEARCH_LAB_INDEXES"
DEFAULT_INDEX_ENV = "SEARCH_LAB_DEFAULT_INDEX"
DEFAULT_INDEXES = Path("indexes")
DEFAULT_INDEX_NAME = "hsv-cosine-exact"
BUILD_COMMAND = "python -m search_lab.build_index"
FETCH_COMMAND = "python -m search_lab.data fetch"


def indexes_dir() -> Path:
    """Folder holding the built indexes: ``$SEARCH_LAB_INDEXES``, else ``indexes``."""
    return Path(os.environ.get(INDEXES_ENV) or DEFAULT_INDEXES)


def default_index() -> str:
    """Index folder name the Search page opens on: ``$SEARCH_LAB_DEFAULT_INDEX``, else the one
    ``make app`` builds (:data:`DEFAULT_INDEX_NAME`: hand-crafted, so the first visit is quick).
    """
    return os.environ.get(DEFAULT_INDEX_ENV) or DEFAULT_INDEX_NAME


def collection_path(root: Path, names: Sequence[str] | frozenset[str], name: str) -> Path:
    """``root / name`` for a name the index or dataset holds; anything else is refused.

    Raises
    ------
    ImageLoadError
        If ``name`` is not one of ``names`` or would lead outside ``root``.
    """
    if name not in names:
        raise ImageLoadError(f"{name!r} is not an image of this collection")
    path = (root / name).resolve()
    if not path.is_relative_to(root.resolve()):
        raise ImageLoadError(f"{name!r} lies outside the collection folder {root}")
    return path
