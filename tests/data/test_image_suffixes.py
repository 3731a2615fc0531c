"""The two image-suffix sets: every layout's, and the narrower one of a Holidays folder."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from search_lab.data import IMAGE_SUFFIXES
from search_lab.data.fetch import extract_images
from search_lab.data.layouts.holidays import HOLIDAYS_NAME, HOLIDAYS_SUFFIXES


def test_holidays_reads_a_subset_of_the_image_types() -> None:
    assert {".jpg", ".jpeg", ".png"} == HOLIDAYS_SUFFIXES
    assert HOLIDAYS_SUFFIXES < IMAGE_SUFFIXES
    names = ["100000.jpg", "100001.JPEG", "100002.png", "100003.webp", "100004.jpgx", "10000.jpg"]
    assert [bool(HOLIDAYS_NAME.match(n)) for n in names] == [True, True, True, False, False, False]


def test_an_archive_places_only_what_the_holidays_layout_reads(tmp_path: Path) -> None:
    archive = tmp_path / "mixed.tar"
    with tarfile.open(archive, "w") as tar:
        for name in ("jpg/100000.jpg", "jpg/100001.webp", "jpg/100002.PNG"):
            info = tarfile.TarInfo(name)
            info.size = 3
            tar.addfile(info, io.BytesIO(b"abc"))
    root = tmp_path / "holidays"
    assert extract_images(archive, root) == 2
    assert sorted(p.name for p in root.iterdir()) == ["100000.jpg", "100002.PNG"]
