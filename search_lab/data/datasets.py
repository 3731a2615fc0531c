"""Retrieval datasets: the Holidays layout, one folder per group, and labelled collections.

Layouts (registered in :data:`search_lab.data.layouts.DATASETS`, one module each): ``holidays``
(``GGGGNN.jpg``, instance protocol), ``folders`` (one subfolder per group, instance protocol),
``labels`` (a folder of images plus a ``file,label`` CSV, category protocol: every image is
a query, the other images of its label are relevant) and ``plain`` (every image under a folder
tree, ``none`` protocol: no queries, indexed and searched but never scored).

The command line (``python -m search_lab.data fetch | info | distractors``) is
:mod:`search_lab.cli.data`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from search_lab.core import DatasetError
from search_lab.data.layouts import DATASETS

log = logging.getLogger(__name__)

DEFAULT_ROOT = Path("data/holidays")


def default_root() -> Path:
    """The dataset root when none is configured: ``$HOLIDAYS_DIR``, else ``data/holidays``."""
    return Path(os.environ.get("HOLIDAYS_DIR") or DEFAULT_ROOT)


@dataclass(frozen=True)
class Dataset:
    """Images of a retrieval benchmark with its ground truth.

    Attributes
    ----------
    root : Path
        Folder the images live in.
    names : tuple of str
        Image paths relative to ``root`` (POSIX form), sorted; an image's id is its position.
    groups : tuple of str
        Group of each image, aligned with ``names``.
    queries : tuple of int
        Ids of the query images (those with at least one relevant image).
    relevant : dict
        Query id -> frozenset of relevant image ids (the rest of its group, query excluded).
    lonely : tuple of int
        Queries with no relevant image: warned about and left out of the scores.
    protocol : str
        ``instance`` (Holidays and folders: one query per group, the rest of the group is
        relevant; Holidays trapezoid AP), ``none`` (a plain collection: no queries) or
        ``category`` (a labelled collection: every image is
        a query, the other images of its label are relevant; standard non-interpolated AP).
    labels : Path or None
        The ``file,label`` CSV of the ``labels`` layout (None for the other layouts).
    """

    root: Path
    names: tuple[str, ...]
    groups: tuple[str, ...]
    queries: tuple[int, ...]
    relevant: dict[int, frozenset[int]] = field(repr=False)
    lonely: tuple[int, ...] = ()
    protocol: str = "instance"
    labels: Path | None = None

    @property
    def paths(self) -> list[Path]:
        """Absolute paths of every image, in id order."""
        return [self.root / name for name in self.names]

    def fingerprint(self) -> str:
        """Hash of the file list (names, sizes, modification times): changes when any file does."""
        return fingerprint(self.root, self.names)


def fingerprint(root: Path, names: Sequence[str]) -> str:
    """Hash of ``names`` under ``root`` with their sizes and modification times (20 hex digits).

    The one fingerprint of a file list (datasets and distractor shards alike): it changes when
    any file does, and encodes any name the OS allows (``surrogateescape``).
    """
    folder = str(root)
    return fingerprint_of(
        (name, (st := os.stat(os.path.join(folder, name))).st_size, st.st_mtime_ns)
        for name in names
    )


def fingerprint_of(stats: Iterable[tuple[str, int, int]]) -> str:
    """:func:`fingerprint` of ``(name, size, mtime_ns)`` triples a caller has already read."""
    digest = hashlib.sha256()
    for name, size, mtime_ns in stats:
        digest.update(f"{name}\0{size}\0{mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:20]


def _auto_order() -> list[type]:
    """The registered layouts ``layout=auto`` tries, in ``auto_rank`` order."""
    classes = [DATASETS.get(name) for name in DATASETS.available()]
    return sorted((c for c in classes if c.auto_rank is not None), key=lambda c: c.auto_rank)


def layouts() -> tuple[str, ...]:
    """Every ``dataset.layout`` value: ``auto``, the layouts it tries in order, then the rest."""
    tried = [cls.name for cls in _auto_order()]
    return ("auto", *tried, *(name for name in DATASETS.available() if name not in tried))


_SAID_PLAIN: set[str] = set()


def dataset_root(root: str | os.PathLike | None) -> Path:
    """The folder a configured ``dataset.root`` names: :func:`default_root` when unset."""
    return Path(root) if root else default_root()


def layout_of(root: str | os.PathLike | None, layout: str = "auto") -> str:
    """The layout ``root`` is read in: ``layout`` itself, or for ``auto`` the first whose
    ``detect`` accepts it, in ``auto_rank`` order (said nowhere: :func:`load_dataset` says it).

    ``holidays`` when the root holds GGGGNN images directly, ``folders`` when it holds one
    folder of images per group and nothing deeper, else ``plain``.
    """
    root = dataset_root(root)
    if layout != "auto" or not root.is_dir():
        return layout
    return next(cls.name for cls in _auto_order() if cls.detect(root))


def _detect_layout(root: Path) -> str:
    """:func:`layout_of` for ``auto``, and one log line when ``root`` is read as a plain folder."""
    found = DATASETS.get(layout_of(root))
    if not found.ground_truth and str(root) not in _SAID_PLAIN:
        _SAID_PLAIN.add(str(root))  # once per folder and process (an index load re-reads it)
        benchmarks = ", ".join(c.name for c in _auto_order() if c.ground_truth)
        log.info(
            "%s fits no benchmark layout (%s): read as a %s (no queries, no ground truth)",
            root,
            benchmarks,
            found.label,
        )
    return found.name


def load_dataset(
    root: str | os.PathLike | None = None,
    *,
    layout: str = "auto",
    labels: str | os.PathLike | None = None,
) -> Dataset:
    """Read a dataset's file list and ground truth (no image is decoded).

    ``labels`` is the ``file,label`` CSV of the ``labels`` layout (names relative to ``root``).

    Raises
    ------
    DatasetError
        If the root is missing, holds no images, the labels file is missing, empty or garbled,
        or no query has a relevant image.
    """
    root = dataset_root(root)
    if layout not in layouts():
        raise DatasetError(
            f"unknown dataset layout {layout!r}; choose one of: {', '.join(layouts())}"
        )
    if not root.is_dir():
        raise DatasetError(
            f"dataset folder {root} does not exist; set HOLIDAYS_DIR or dataset.root, "
            "or run `python -m search_lab.data fetch`"
        )
    if layout == "auto":
        layout = _detect_layout(root)
    reader = DATASETS.create(layout)
    labels = Path(labels) if labels and reader.uses_labels else None
    names, groups, query_names = reader.read(root, labels)
    names, groups = _utf8_names(names, groups)
    if not names:
        raise DatasetError(f"dataset folder {root} holds no images in the {layout!r} layout")
    if not reader.ground_truth:
        return Dataset(root, tuple(names), tuple(groups), (), {}, (), reader.protocol)
    data = _with_ground_truth(root, names, groups, query_names, reader.protocol)
    return replace(data, labels=labels)


def check_ground_truth(data: Dataset) -> None:
    """DatasetError unless ``data`` has queries to score (a plain collection has none)."""
    if not data.queries:
        raise DatasetError(
            f"dataset folder {data.root} is a plain collection ({data.protocol!r} protocol): it "
            "has no queries and no ground truth to score; evaluate needs a labelled layout "
            "(dataset.layout=holidays, folders or labels)"
        )


def _utf8_names(names: list[str], groups: list[str]) -> tuple[list[str], list[str]]:
    """Leave out files whose names are not valid UTF-8, with one warning naming them escaped.

    Such names (bytes Python decodes to lone surrogates) cannot be written to JSON, result
    files or the app's pages faithfully, so they are skipped rather than half-handled.
    """
    keep = [i for i, name in enumerate(names) if not _undecodable(name)]
    if len(keep) < len(names):
        dropped = [os.fsencode(name) for name in names if _undecodable(name)]
        log.warning(
            "%d files skipped: their names are not valid UTF-8 (rename them to include them): %s",
            len(dropped),
            ", ".join(repr(raw) for raw in dropped[:5]) + (" ..." if len(dropped) > 5 else ""),
        )
    return [names[i] for i in keep], [groups[i] for i in keep]


def _undecodable(name: str) -> bool:
    """True for a name holding bytes that are not UTF-8 (decoded by Python as surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _with_ground_truth(
    root: Path, names: list[str], groups: list[str], query_names: set[str], protocol: str
) -> Dataset:
    """Attach queries and relevance sets: relevant = the rest of the query's group."""
    members: dict[str, list[int]] = defaultdict(list)
    for i, group in enumerate(groups):
        members[group].append(i)
    queries, lonely, relevant = [], [], {}
    for i, name in enumerate(names):
        if name not in query_names:
            continue
        others = frozenset(members[groups[i]]) - {i}
        if others:
            queries.append(i)
            relevant[i] = others
        else:
            lonely.append(i)
    if lonely:
        log.warning(
            "%d queries have no relevant image and are left out of the scores: %s",
            len(lonely),
            ", ".join(f"{names[i]} ({groups[i]})" for i in lonely[:5])
            + (" ..." if len(lonely) > 5 else ""),
        )
    if not queries:
        raise DatasetError(f"dataset folder {root} has no query with a relevant image")
    return Dataset(
        root, tuple(names), tuple(groups), tuple(queries), relevant, tuple(lonely), protocol
    )
