"""An index folder's saved post-processing state (``post.npz``) and the checks on reading it.

Kept apart from :mod:`search_lab.retrieval.engine` so the engine stays about serving, and so the
update path (:mod:`search_lab.retrieval.update`) and ``post.fit_on`` read the state the same way.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from search_lab.core import MANIFEST, REBUILD, IndexMismatchError, integrity, manifest_of, swap
from search_lab.features import EXPAND_BASE, PostProcessor
from search_lab.retrieval.pipeline import make_post

POST_STATE = "post.npz"


def read_post_state(directory: Path) -> dict[str, np.ndarray]:
    """The fitted post-processing state saved in an index folder."""
    try:
        with np.load(directory / POST_STATE) as state:
            return {k: state[k] for k in state.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:  # missing, truncated, not npz
        raise IndexMismatchError(f"{directory / POST_STATE} is missing or unreadable") from err


def check_post(directory: Path, post: PostProcessor, dim: int) -> None:
    """Refuse a manifest whose post-processing settings do not fit its saved ``post.npz``.

    An edited ``post.pca_dim`` or ``post.expand`` of the right type would otherwise ask for a
    state the folder never saved, or give query vectors of another width than the index's.
    """
    state = post.state
    widths = [len(state["components"])] if "components" in state else []
    if post.expand and EXPAND_BASE in state:
        widths.append(np.shape(state[EXPAND_BASE])[-1])
    if post.fitted and all(w == dim for w in widths):
        return
    settings = f"post.pca_dim={post.pca_dim!r}, post.expand={post.expand!r}"
    raise IndexMismatchError(
        f"{directory}: the manifest's post-processing ({settings}) does not match the saved "
        f"{POST_STATE} (index dimension {dim}); {REBUILD}"
    )


def check_listed(directory: Path, manifest: dict[str, Any], needed: tuple[str, ...]) -> None:
    """Refuse a folder whose checksum list leaves out a file the index reads (never unverified).

    A file that is not there at all is left to the index's own load, which names what is missing.
    """
    for name in needed:
        if name not in manifest["files"] and (directory / name).exists():
            raise IndexMismatchError(
                f"{directory / name} is not in the checksum list ('files') of {MANIFEST}: it "
                f"would be read unverified; {REBUILD}"
            )


def verified_post_state(directory: Path) -> dict[str, np.ndarray]:
    """The fitted state of an index folder's post-processing, checksum verified (``post.fit_on``).

    It is checked against the chain the folder's own config describes before anyone uses it.
    """
    swap.recover(directory)
    manifest = manifest_of(directory)
    recorded = manifest["files"]
    check_listed(directory, manifest, (POST_STATE,))
    if POST_STATE not in recorded:
        raise IndexMismatchError(f"{directory / POST_STATE} is missing; {REBUILD}")
    if problem := integrity.problem(directory, {POST_STATE: recorded[POST_STATE]}, full=True):
        raise IndexMismatchError(f"{problem}; {REBUILD}")
    post = make_post(manifest["config"])
    post.state = read_post_state(directory)
    check_post(directory, post, manifest["dim"])
    return post.state
