"""What a dataset layout is: how a benchmark's images and ground truth sit on disk.

A layout reads a folder into image names (relative to the root), the group of each image and
the names of the queries; :func:`search_lab.data.datasets.load_dataset` then attaches the relevance
sets by its ``protocol``. Layouts register by name in :data:`DATASETS` and carry their own metadata
(``label``, ``description``), the way features and indexes do.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from search_lab.core import Registry

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})

Groups = tuple[list[str], list[str], set[str]]
"""Image names (relative to the root, POSIX form), the group of each, and the query names."""


def is_image(path: Path) -> bool:
    """True for a visible file with an image suffix."""
    return (
        path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
    )


class Layout:
    """A dataset layout: reads a root folder (and a labels file, if it uses one) into groups."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    """The layout in a few plain words."""
    description: ClassVar[str] = ""
    """What the folder holds and how it is scored, in one line."""
    shown: ClassVar[dict[str, str]] = {}
    """Dataset parameters worth showing beside the label, each with how its value reads."""
    protocol: ClassVar[str] = "instance"
    """``instance`` (one query per group, Holidays AP) or ``category`` (every image a query)."""
    ground_truth: ClassVar[bool] = True
    """False for a collection without queries (``plain``): it can be indexed, not scored."""
    uses_labels: ClassVar[bool] = False
    """True when the layout reads ``dataset.labels`` (a ``file,label`` CSV)."""
    auto_rank: ClassVar[int | None] = None
    """Order in which ``layout=auto`` tries the layout's :meth:`detect` (None: never)."""

    @classmethod
    def detect(cls, root: Path) -> bool:
        """True when ``root`` looks laid out this way (for ``layout=auto``)."""
        return False

    def read(self, root: Path, labels: Path | None) -> Groups:
        """Names, groups and query names of the images under ``root``."""
        raise NotImplementedError


DATASETS: Registry[Layout] = Registry("dataset layout")
"""Every dataset layout by name (``dataset.layout`` in ``conf/dataset/*.yaml``)."""
