"""Retrieval datasets: the Holidays layout and a generic one-folder-per-group layout.

Command line: ``python -m search_lab.data fetch [--dest DIR] [--from PATH]`` downloads INRIA's
Holidays archives (or imports a local copy) into the dataset root; ``python -m search_lab.data
info [ROOT]`` prints its counts.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from search_lab.errors import DatasetError, SearchLabError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})
HOLIDAYS_NAME = re.compile(r"^(\d{4})(\d{2})\.(jpe?g|png)$", re.IGNORECASE)
LAYOUTS = ("auto", "holidays", "folders")
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
    """

    root: Path
    names: tuple[str, ...]
    groups: tuple[str, ...]
    queries: tuple[int, ...]
    relevant: dict[int, frozenset[int]] = field(repr=False)
    lonely: tuple[int, ...] = ()
    protocol: str = "instance"

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


def _is_image(path: Path) -> bool:
    return (
        path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
    )


def _holidays_groups(root: Path) -> tuple[list[str], list[str], set[str]]:
    """Names, groups, queries of a flat Holidays folder (GGGGNN.jpg; GGGG00 is the query)."""
    names, groups, queries = [], [], set()
    for path in sorted(root.iterdir()):
        match = HOLIDAYS_NAME.match(path.name)
        if match and path.is_file():
            names.append(path.name)
            groups.append(match.group(1))
            if match.group(2) == "00":
                queries.add(path.name)
    return names, groups, queries


def _folder_groups(root: Path) -> tuple[list[str], list[str], set[str]]:
    """Names, groups, queries of a one-subfolder-per-group layout (first file is the query)."""
    names, groups, queries = [], [], set()
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p.name for p in folder.iterdir() if _is_image(p))
        for i, name in enumerate(files):
            names.append(f"{folder.name}/{name}")
            groups.append(folder.name)
            if i == 0:
                queries.add(f"{folder.name}/{name}")
    return names, groups, queries


def _detect_layout(root: Path) -> str:
    """``holidays`` when the root holds GGGGNN images directly, else ``folders``."""
    if any(HOLIDAYS_NAME.match(p.name) for p in root.iterdir()):
        return "holidays"
    return "folders"


def load_dataset(root: str | os.PathLike | None = None, *, layout: str = "auto") -> Dataset:
    """Read a dataset's file list and ground truth (no image is decoded).

    Raises
    ------
    DatasetError
        If the root is missing, holds no images, or no query has a relevant image.
    """
    root = Path(root) if root else default_root()
    if layout not in LAYOUTS:
        raise DatasetError(
            f"unknown dataset layout {layout!r}; choose one of: {', '.join(LAYOUTS)}"
        )
    if not root.is_dir():
        raise DatasetError(
            f"dataset folder {root} does not exist; set HOLIDAYS_DIR or dataset.root, "
            "or run `python -m search_lab.data fetch`"
        )
    if layout == "auto":
        layout = _detect_layout(root)
    reader = _holidays_groups if layout == "holidays" else _folder_groups
    names, groups, query_names = reader(root)
    names, groups = _utf8_names(names, groups)
    if not names:
        raise DatasetError(f"dataset folder {root} holds no images in the {layout!r} layout")
    return _with_ground_truth(root, names, groups, query_names)


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
    root: Path, names: list[str], groups: list[str], query_names: set[str]
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
            ", ".join(names[i] for i in lonely[:5]) + (" ..." if len(lonely) > 5 else ""),
        )
    if not queries:
        raise DatasetError(f"dataset folder {root} has no query with a relevant image")
    return Dataset(root, tuple(names), tuple(groups), tuple(queries), relevant, tuple(lonely))


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
        else:
            data = load_dataset(args.root)
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
