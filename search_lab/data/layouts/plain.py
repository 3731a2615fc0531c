"""The plain layout: every image under a folder tree, as a person keeps photos (no ground truth).

Images are found recursively; hidden files and folders (names starting with ``.``) are
skipped; a symbolic link is followed only when its target lies inside the root (a link
leading out is left out and counted), and linked folders are never descended (their images
are already found under their real path, and a link loop cannot trap the walk). Names are
paths relative to the root, in POSIX form, with whatever characters the file system allows.
There are no queries and no relevance sets: such a collection can be indexed and searched,
not scored.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from pathlib import Path

from search_lab.data.layouts.base import DATASETS, IMAGE_SUFFIXES, Groups, Layout

log = logging.getLogger(__name__)


def _is_image_name(name: str) -> bool:
    """True for a visible name with an image suffix."""
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def _linked_inside(entry: os.DirEntry, real_root: Path) -> bool:
    """True when the symbolic link ``entry`` leads to a file inside ``real_root``."""
    try:
        target = Path(entry.path).resolve(strict=True)
    except (OSError, RuntimeError):  # dangling link or a loop
        return False
    return target.is_relative_to(real_root) and target.is_file()


def walk_images(root: Path) -> list[str]:
    """Sorted relative POSIX names of the visible images under ``root`` (see module doc).

    Links leading out of the root (or dangling) and linked folders are left out, with one
    log line counting them.
    """
    real_root = root.resolve()
    prefix = len(str(real_root).rstrip(os.sep)) + 1  # names are paths after the root's
    names: list[str] = []
    left_out = 0
    stack = [str(real_root)]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as err:  # unreadable or vanished sub-folder: skipped, said once
            log.warning("skipping folder %s: %s", folder, err.strerror or err)
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_symlink():
                if _is_image_name(entry.name) and _linked_inside(entry, real_root):
                    names.append(_posix(entry.path[prefix:]))
                else:
                    left_out += 1
            elif entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
            elif _is_image_name(entry.name) and entry.is_file(follow_symlinks=False):
                names.append(_posix(entry.path[prefix:]))
    if left_out:
        log.info("%s: %d symbolic links left out (folders, or leading outside)", root, left_out)
    return sorted(names)


def _posix(relative: str) -> str:
    """A relative path in POSIX form (string work: pathlib costs ~25 us a name at 25,000)."""
    return relative if os.sep == "/" else relative.replace(os.sep, "/")


def case_clashes(names: list[str]) -> list[list[str]]:
    """Groups of names that differ only in letter case (one file each on this file system)."""
    by_folded: dict[str, list[str]] = defaultdict(list)
    for name in names:
        by_folded[name.casefold()].append(name)
    return [group for group in by_folded.values() if len(group) > 1]


@DATASETS.register("plain")
class PlainLayout(Layout):
    """Every image under a folder tree; no queries, no ground truth (search, not scoring)."""

    label = "plain photo collection"
    description = (
        "every image under the folder, sub-folders included (hidden ones skipped): no queries "
        "and no ground truth, so it can be indexed and searched but not scored"
    )
    protocol = "none"
    ground_truth = False
    auto_rank = 2  # whatever fits no benchmark layout

    @classmethod
    def detect(cls, root: Path) -> bool:
        """Any folder can be read this way: the fallback of ``layout=auto``."""
        return True

    def read(self, root: Path, labels: Path | None) -> Groups:
        """Every image name under ``root``; each image is its own group, none is a query."""
        names = walk_images(root)
        for group in case_clashes(names)[:5]:
            log.warning(
                "names that differ only in case are distinct files here, all indexed "
                "(they would collide on a case-insensitive disk): %s",
                ", ".join(repr(n) for n in group),
            )
        return names, list(names), set()
