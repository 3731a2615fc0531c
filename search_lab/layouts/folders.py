"""The one-folder-per-group layout: each subfolder is a group, its first file the query."""

from __future__ import annotations

from pathlib import Path

from search_lab.layouts.base import DATASETS, Groups, Layout, is_image


@DATASETS.register("folders")
class FolderLayout(Layout):
    """One subfolder per group; the first image (by name) is its query (instance protocol)."""

    label = "one folder per group"
    description = (
        "one subfolder per group: its first image (by name) is the query, the rest of the "
        "group is relevant (Holidays trapezoid AP)"
    )
    auto_rank = 1  # whatever is not Holidays

    @classmethod
    def detect(cls, root: Path) -> bool:
        """Any folder can be read this way: the fallback of ``layout=auto``."""
        return True

    def read(self, root: Path, labels: Path | None) -> Groups:
        """Names, groups, queries of a one-subfolder-per-group layout (first file is the query)."""
        names, groups, queries = [], [], set()
        subfolders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        for folder in subfolders:
            files = sorted(p.name for p in folder.iterdir() if is_image(p))
            for i, name in enumerate(files):
                names.append(f"{folder.name}/{name}")
                groups.append(folder.name)
                if i == 0:
                    queries.add(f"{folder.name}/{name}")
        return names, groups, queries
