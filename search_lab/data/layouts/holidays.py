"""The INRIA Holidays layout: a flat folder of ``GGGGNN.jpg`` images, ``GGGG00`` the query."""

from __future__ import annotations

import re
from pathlib import Path

from search_lab.data.layouts.base import DATASETS, Groups, Layout

HOLIDAYS_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
"""The image types of a Holidays folder: the layout reads only these (INRIA's are all .jpg),
so :mod:`search_lab.data.archives` places only these into one (a narrower set than
:data:`~search_lab.data.layouts.base.IMAGE_SUFFIXES`, which the other layouts read)."""

HOLIDAYS_NAME = re.compile(
    r"^(\d{4})(\d{2})(" + "|".join(re.escape(s) for s in sorted(HOLIDAYS_SUFFIXES)) + ")$",
    re.IGNORECASE,
)


@DATASETS.register("holidays")
class HolidaysLayout(Layout):
    """A flat folder of ``GGGGNN`` images: group ``GGGG``, query ``GGGG00`` (instance protocol)."""

    label = "INRIA Holidays layout"
    description = (
        "a flat folder of GGGGNN.jpg images: GGGG is the group, GGGG00 its query, the rest of "
        "the group is relevant (Holidays trapezoid AP)"
    )
    auto_rank = 0

    @classmethod
    def detect(cls, root: Path) -> bool:
        """True when ``root`` holds GGGGNN images directly."""
        return any(HOLIDAYS_NAME.match(p.name) for p in root.iterdir())

    def read(self, root: Path, labels: Path | None) -> Groups:
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
