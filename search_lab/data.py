"""Retrieval datasets: the Holidays layout, one folder per group, and labelled collections.

Layouts: ``holidays`` (``GGGGNN.jpg``, instance protocol), ``folders`` (one subfolder per group,
instance protocol) and ``labels`` (a folder of images plus a ``file,label`` CSV, category
protocol: every image is a query, the other images of its label are relevant).

Command line: ``python -m search_lab.data fetch [--dest DIR] [--from PATH]`` downloads INRIA's
Holidays archives (or imports a local copy) into the dataset root; ``python -m search_lab.data
info [ROOT]`` prints its counts; ``python -m search_lab.data distractors --count N --dest DIR
[--seed S]`` writes a reproducible synthetic distractor set (:mod:`search_lab.synth`).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import logging
import os
import re
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from search_lab.errors import DatasetError, SearchLabError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})
HOLIDAYS_NAME = re.compile(r"^(\d{4})(\d{2})\.(jpe?g|png)$", re.IGNORECASE)
LAYOUTS = ("auto", "holidays", "folders", "labels")
LABELS_HEADER = ("file", "label")
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


def _is_image(path: Path) -> bool:
    return (
        path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
    )


def _holidays_groups(
    root: Path, labels: Path | None = None
) -> tuple[list[str], list[str], set[str]]:
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


def _folder_groups(root: Path, labels: Path | None = None) -> tuple[list[str], list[str], set[str]]:
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


def _label_rows(labels: Path | None, root: Path) -> list[list[str]]:
    """Data rows of a ``file,label`` CSV (header dropped; blank lines skipped).

    A missing, unreadable, empty or garbled file is fatal (DatasetError); a first row that is
    not the ``file,label`` header but names an image of ``root`` is read as data, with a warning.
    """
    if labels is None:
        raise DatasetError("the labels layout needs dataset.labels, a `file,label` CSV file")
    try:
        text = labels.read_text(encoding="utf-8-sig")
        rows = [row for row in csv.reader(text.splitlines()) if any(c.strip() for c in row)]
    except FileNotFoundError as err:
        raise DatasetError(f"labels file {labels} does not exist; set dataset.labels") from err
    except UnicodeDecodeError as err:
        raise DatasetError(f"labels file {labels} is not a text `file,label` CSV") from err
    except csv.Error as err:
        raise DatasetError(f"labels file {labels} is not a readable CSV ({err})") from err
    except OSError as err:
        raise DatasetError(f"labels file {labels} cannot be read: {err.strerror}") from err
    if not rows:
        raise DatasetError(f"labels file {labels} is empty; expected a `file,label` header row")
    first = tuple(c.strip().lower() for c in rows[0])
    if first[:2] == LABELS_HEADER:
        return rows[1:]
    if rows[0] and (root / rows[0][0].strip()).is_file():
        log.warning("%s has no `file,label` header: its first row is read as data", labels)
        return rows
    log.warning("%s: header %r read as `file,label`", labels, ",".join(rows[0]))
    return rows[1:]


def _labelled_groups(root: Path, labels: Path | None) -> tuple[list[str], list[str], set[str]]:
    """Names, labels, queries of a folder of images plus a ``file,label`` CSV (all are queries).

    Only images found under ``root`` are kept, so a CSV name can never point outside it. Rows
    naming missing files, malformed or duplicate rows and images the CSV leaves out are
    counted and warned about once each.
    """
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*") if _is_image(p)}
    label_of: dict[str, str] = {}
    problems: dict[str, list[str]] = defaultdict(list)
    for row in _label_rows(labels, root):
        cells = [c.strip() for c in row]
        if len(cells) < 2 or not cells[0] or not cells[1]:
            problems["malformed rows (not `file,label`)"].append(",".join(row))
        elif cells[0] not in on_disk:
            problems[f"rows naming images missing from {root}"].append(cells[0])
        elif cells[0] in label_of:
            kind = "same" if label_of[cells[0]] == cells[1] else "a different"
            problems[f"duplicate rows ({kind} label; the first row counts)"].append(cells[0])
        else:
            label_of[cells[0]] = cells[1]
    problems[f"images of {root} missing from the labels file (not indexed)"] = sorted(
        on_disk - label_of.keys()
    )
    for what, items in problems.items():
        if items:
            shown = ", ".join(items[:5]) + (" ..." if len(items) > 5 else "")
            log.warning("%s: %d %s: %s", labels, len(items), what, shown)
    if not label_of:
        raise DatasetError(f"no row of labels file {labels} names an image of {root}")
    names = sorted(label_of)
    return names, [label_of[n] for n in names], set(names)


def _detect_layout(root: Path) -> str:
    """``holidays`` when the root holds GGGGNN images directly, else ``folders``."""
    if any(HOLIDAYS_NAME.match(p.name) for p in root.iterdir()):
        return "holidays"
    return "folders"


Reader = Callable[[Path, Path | None], tuple[list[str], list[str], set[str]]]

# layout -> (reader of names, groups and query names; the protocol that scores it)
READERS: dict[str, tuple[Reader, str]] = {
    "holidays": (_holidays_groups, "instance"),
    "folders": (_folder_groups, "instance"),
    "labels": (_labelled_groups, "category"),
}


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
    reader, protocol = READERS[layout]
    labels = Path(labels) if labels and layout == "labels" else None
    names, groups, query_names = reader(root, labels)
    names, groups = _utf8_names(names, groups)
    if not names:
        raise DatasetError(f"dataset folder {root} holds no images in the {layout!r} layout")
    data = _with_ground_truth(root, names, groups, query_names, protocol)
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
