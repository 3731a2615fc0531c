"""The labels layout: a folder of images plus a ``file,label`` CSV (category protocol)."""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

from search_lab.core import DatasetError, MiB, UnreadableFileError, is_regular, read_csv
from search_lab.data.layouts.base import DATASETS, Groups, Layout, is_image

log = logging.getLogger(__name__)

LABELS_HEADER = ("file", "label")
MAX_BYTES = 256 * MiB
"""Largest labels file read: a million rows of long names and labels."""


def label_rows(labels: Path | None, root: Path) -> list[list[str]]:
    """Data rows of a ``file,label`` CSV (header dropped; blank lines skipped).

    A missing, unreadable, empty or garbled file is fatal (DatasetError), and so is a device,
    a FIFO or a file larger than :data:`MAX_BYTES` (refused before anything is read); a first
    row that is not the ``file,label`` header but names an image of ``root`` is read as data,
    with a warning.
    """
    if labels is None:
        raise DatasetError("the labels layout needs dataset.labels, a `file,label` CSV file")
    try:
        rows = read_csv(labels, max_bytes=MAX_BYTES, encoding="utf-8-sig")
    except FileNotFoundError as err:
        raise DatasetError(f"labels file {labels} does not exist; set dataset.labels") from err
    except UnreadableFileError as err:
        problem = f"unusable labels file: {err}; expected a text `file,label` CSV"
        raise DatasetError(problem) from err
    if not rows:
        raise DatasetError(f"labels file {labels} is empty; expected a `file,label` header row")
    first = tuple(c.strip().lower() for c in rows[0])
    if first[:2] == LABELS_HEADER:
        return rows[1:]
    if rows[0] and is_regular(root / rows[0][0].strip()):  # False for a name too long, too
        log.warning("%s has no `file,label` header: its first row is read as data", labels)
        return rows
    log.warning("%s: header %r read as `file,label`", labels, ",".join(rows[0]))
    return rows[1:]


@DATASETS.register("labels")
class LabelsLayout(Layout):
    """A folder of images plus a ``file,label`` CSV: every image a query (category protocol)."""

    label = "labelled collection"
    description = (
        "a folder of images plus a file,label CSV (dataset.labels): every image is a query, "
        "the other images of its label are relevant (standard non-interpolated AP)"
    )
    protocol = "category"
    uses_labels = True

    def read(self, root: Path, labels: Path | None) -> Groups:
        """Names, labels, queries of a folder of images plus a ``file,label`` CSV (all queries).

        Only images found under ``root`` are kept, so a CSV name can never point outside it.
        Rows naming missing files, malformed or duplicate rows and images the CSV leaves out
        are counted and warned about once each.
        """
        on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*") if is_image(p)}
        label_of: dict[str, str] = {}
        problems: dict[str, list[str]] = defaultdict(list)
        for row in label_rows(labels, root):
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
        _warn(labels, problems)
        if not label_of:
            raise DatasetError(f"no row of labels file {labels} names an image of {root}")
        names = sorted(label_of)
        return names, [label_of[n] for n in names], set(names)


def _warn(labels: Path | None, problems: dict[str, list[str]]) -> None:
    """One warning per kind of problem in a labels file, naming at most five rows."""
    for what, items in problems.items():
        if items:
            shown = ", ".join(items[:5]) + (" ..." if len(items) > 5 else "")
            log.warning("%s: %d %s: %s", labels, len(items), what, shown)
