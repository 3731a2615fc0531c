"""Where an index changed in place puts each item, so ids stay the dense row numbers 0..N-1.

Every index answers with ids that are row numbers of the index folder's name list. An update
that drops some items and adds others must keep that true. Two kinds of in-place change exist:

``compact``
    The library renumbers on removal (Faiss ``Flat``/``PQ``/``SQ``/``LSH``, whose codes sit
    in one array, and the exact index): kept items close up in their order, new ones are
    appended. New rows: the kept old rows in order, then the fresh ones.
``slots``
    The library keeps the label of every item (hnswlib's labels, a Faiss IVF's ids): removed
    labels are freed, fresh items take the free labels below the new size first, and kept
    items whose label is past the new size move down into the labels left free (one
    re-insertion each; there are only as many as removed exceeds added).

:func:`plan_edit` computes either layout; :meth:`Index.edit` then applies it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COMPACT, SLOTS = "compact", "slots"


@dataclass
class Edit:
    """One in-place change: what each new row holds, which labels go, which are (re)set.

    ``sources[i]`` is the old row that new row ``i`` holds, or ``-1 - j`` for fresh vector
    ``j``. The index removes ``drop`` first, then sets ``put`` to the vectors of
    ``sources[put]``.
    """

    sources: np.ndarray
    drop: np.ndarray
    put: np.ndarray

    @property
    def moved(self) -> int:
        """Kept items re-inserted under a lower label (slots only)."""
        return int((self.sources[self.put] >= 0).sum())


def plan_edit(mode: str, n_old: int, keep: list[int], n_fresh: int) -> Edit:
    """The layout of ``mode`` (see module doc) for old rows ``keep`` (sorted) plus ``n_fresh``."""
    kept = np.asarray(keep, np.int64)
    removed = np.setdiff1d(np.arange(n_old, dtype=np.int64), kept)
    fresh = -1 - np.arange(n_fresh, dtype=np.int64)
    size = len(kept) + n_fresh
    if mode == COMPACT:
        sources = np.concatenate([kept, fresh])
        return Edit(sources, removed, np.arange(len(kept), size, dtype=np.int64))
    if mode != SLOTS:
        raise ValueError(f"unknown edit mode {mode!r}")
    sources = np.full(size, np.iinfo(np.int64).min, np.int64)
    low = kept[kept < size]
    sources[low] = low
    movers = kept[kept >= size]
    holes = np.setdiff1d(np.arange(size, dtype=np.int64), low)  # len = n_fresh + len(movers)
    sources[holes] = np.concatenate([fresh, movers])
    return Edit(sources, np.concatenate([removed, movers]), holes)
