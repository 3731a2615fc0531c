"""The one-folder-per-group layout: each subfolder is a group, its first file the query."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from search_lab.data.layouts.base import DATASETS, Groups, Layout, is_image


@DATASETS.register("folders")
class FolderLayout(Layout):
    """One subfolder per group; the first image (by name) is its query (instance protocol)."""

    label = "one folder per group"
    description = (
        "one subfolder per group: its first image (by name) is the query, the rest of the "
        "group is relevant (Holidays trapezoid AP)"
    )
    auto_rank = 1  # after Holidays, before the plain fallback

    @classmethod
    def detect(cls, root: Path) -> bool:
        """True for a benchmark laid out one folder per group, and nothing else.

        No image directly in ``root``, no image deeper than one sub-folder, at least two groups
        and one of them of two images (one query with a relevant image). A collection nested
        by year or event, or with loose photos, is not taken for groups: ``auto`` reads it as
        ``plain``.
        """
        if any(is_image(p) for p in root.iterdir()):
            return False
        sizes = []
        for folder in _visible_folders(root):
            if any(p.is_dir() and any(_deep_images(p)) for p in _visible_folders(folder)):
                return False
            sizes.append(sum(1 for p in folder.iterdir() if is_image(p)))
        return sum(size > 0 for size in sizes) >= 2 and max(sizes, default=0) >= 2

    def read(self, root: Path, labels: Path | None) -> Groups:
        """Names, groups, queries of a one-subfolder-per-group layout (first file is the query)."""
        names, groups, queries = [], [], set()
        for folder in _visible_folders(root):
            files = sorted(p.name for p in folder.iterdir() if is_image(p))
            for i, name in enumerate(files):
                names.append(f"{folder.name}/{name}")
                groups.append(folder.name)
                if i == 0:
                    queries.add(f"{folder.name}/{name}")
        return names, groups, queries


def _visible_folders(root: Path) -> list[Path]:
    """The sub-folders of ``root`` whose names do not start with a dot, sorted."""
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _deep_images(folder: Path) -> Iterator[Path]:
    """The visible images anywhere under ``folder`` (lazily: the first one decides)."""
    return (p for p in folder.rglob("*") if is_image(p) and not _hidden(p, folder))


def _hidden(path: Path, base: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(base).parts)
