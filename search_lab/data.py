"""Retrieval datasets: the Holidays layout, one folder per group, and labelled collections.

Layouts (registered in :data:`search_lab.layouts.DATASETS`, one module each): ``holidays``
(``GGGGNN.jpg``, instance protocol), ``folders`` (one subfolder per group, instance protocol)
and ``labels`` (a folder of images plus a ``file,label`` CSV, category protocol: every image is
a query, the other images of its label are relevant).

Command line: ``python -m search_lab.data fetch [--dest DIR] [--from PATH]`` downloads INRIA's
Holidays archives (or imports a local copy) into the dataset root; ``python -m search_lab.data
info [ROOT]`` prints its counts; ``python -m search_lab.data distractors --count N --dest DIR
[--seed S]`` writes a reproducible synthetic distractor set (:mod:`search_lab.synth`).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

from search_lab.errors import DatasetError, SearchLabError
from search_lab.layouts import DATASETS

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
        relevant; Holidays trapezoid AP) or ``category`` (a labelled collection: every image is
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
        digest = hashlib.sha256()
        for name in self.names:
            stat = (self.root / name).stat()
            line = f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n"
            digest.update(line.encode("utf-8", "surrogateescape"))  # any name the OS allows
        return digest.hexdigest()[:20]


def _auto_order() -> list[type]:
    """The registered layouts ``layout=auto`` tries, in ``auto_rank`` order."""
    classes = [DATASETS.get(name) for name in DATASETS.available()]
    return sorted((c for c in classes if c.auto_rank is not None), key=lambda c: c.auto_rank)


def layouts() -> tuple[str, ...]:
    """Every ``dataset.layout`` value: ``auto``, the layouts it tries in order, then the rest."""
    tried = [cls.name for cls in _auto_order()]
    return ("auto", *tried, *(name for name in DATASETS.available() if name not in tried))


def _detect_layout(root: Path) -> str:
    """The first layout whose ``detect`` accepts ``root``, in ``auto_rank`` order.

    ``holidays`` when the root holds GGGGNN images directly, else ``folders``.
    """
    return next(cls.name for cls in _auto_order() if cls.detect(root))


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
    root = Path(root) if root else default_root()
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
    data = _with_ground_truth(root, names, groups, query_names, reader.protocol)
    return replace(data, labels=labels)


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


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m search_lab.data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="download INRIA Holidays (or import a local copy)")
    fetch.add_argument(
        "--dest",
        type=Path,
        default=None,
        help="dataset root (default: $HOLIDAYS_DIR or data/holidays)",
    )
    fetch.add_argument(
        "--from", dest="source", type=Path, default=None, help="local folder or archive to import"
    )
    fetch.add_argument(
        "--mirror",
        default=None,
        help="base URL serving jpg1.tar.gz and jpg2.tar.gz instead of INRIA",
    )
    info = sub.add_parser("info", help="print a dataset's counts")
    info.add_argument("root", nargs="?", type=Path, default=None)
    info.add_argument(
        "--labels", type=Path, default=None, help="`file,label` CSV: the labels layout"
    )
    synth = sub.add_parser("distractors", help="write N synthetic distractor images")
    synth.add_argument("--count", type=int, required=True, help="number of images")
    synth.add_argument("--dest", type=Path, required=True, help="folder to write them into")
    synth.add_argument("--seed", type=int, default=0, help="image i depends on (seed, i) only")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; problems are reported as one line and exit status 2."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = _parse_args(argv)
    try:
        if args.command == "fetch":
            from search_lab.fetch import ARCHIVES, Archive, fetch

            root = args.dest or default_root()
            archives = ARCHIVES
            if args.mirror:
                base = args.mirror.rstrip("/")
                archives = tuple(
                    Archive(f"{base}/{a.filename}", a.size, a.sha256) for a in ARCHIVES
                )
            count = fetch(root, archives=archives, source=args.source)
            print(f"{count} images in {root}")
        elif args.command == "distractors":
            from search_lab.synth import generate

            written, present = generate(args.count, args.dest, seed=args.seed)
            print(f"{written} distractors written, {present} already there, in {args.dest}")
        else:
            layout = "labels" if args.labels else "auto"
            data = load_dataset(args.root, layout=layout, labels=args.labels)
            print(
                f"{data.root}: {len(data.names)} images, {len(set(data.groups))} groups, "
                f"{len(data.queries)} queries, {len(data.lonely)} without relevant images"
            )
    except SearchLabError as err:
        print(f"search_lab.data: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
