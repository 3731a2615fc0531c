"""A planted near-duplicate set: real photos, edited copies of some of them, unrelated others.

Each chosen original gets one copy per edit of :data:`EDITS` (JPEG quality 70, resized to 80%,
cropped by 5%, brightened by 10%, turned by 90 degrees); the other photos are left unrelated.
The set is a folder of ``images/`` plus ``labels.csv`` (``file,label``: an original and its
copies share the original's stem as label, every unrelated photo has its own), so it is also a
labelled collection: ``dataset.layout=labels dataset.root=<set>/images
dataset.labels=<set>/labels.csv`` builds an index of it. The true near-duplicate pairs are the
pairs within each label. The folder is written to a temporary folder and renamed, so a killed
run leaves no half set.
"""

from __future__ import annotations

import csv
import io
import json
import random
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image, ImageEnhance, ImageOps

from search_lab.core import DatasetError, atomic_write_json, atomic_write_text, temporary_dir

Edit = Callable[[Image.Image], Image.Image]


def _crop5(image: Image.Image) -> Image.Image:
    """5% of the width and of the height taken off, half on each side."""
    w, h = image.size
    dx, dy = round(w * 0.025), round(h * 0.025)
    return image.crop((dx, dy, w - dx, h - dy))


EDITS: dict[str, tuple[Edit, int]] = {
    "jpeg70": (lambda im: im, 70),
    "resize80": (lambda im: im.resize((round(im.width * 0.8), round(im.height * 0.8)),
                                      Image.Resampling.LANCZOS), 95),
    "crop5": (_crop5, 95),
    "bright10": (lambda im: ImageEnhance.Brightness(im).enhance(1.1), 95),
    "rot90": (lambda im: im.transpose(Image.Transpose.ROTATE_90), 95),
}  # fmt: skip
"""Edit name -> (what it does to the decoded RGB image, JPEG quality the copy is saved at)."""


def edited(source: Path, edit: str) -> bytes:
    """JPEG bytes of ``source`` after ``edit`` (orientation from EXIF applied first)."""
    change, quality = EDITS[edit]
    with Image.open(source) as opened:
        image = ImageOps.exif_transpose(opened).convert("RGB")
    buffer = io.BytesIO()
    change(image).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def make_planted(
    sources: Sequence[Path], out: Path, *, originals: int, unrelated: int, seed: int = 0
) -> dict[str, int]:
    """Write a planted set from ``sources`` (distinct photos) into ``out``; returns its counts.

    ``originals`` photos (a seeded sample) get one copy per edit, ``unrelated`` others are
    added as they are. Copies are named ``<stem>_<edit>.jpg``, the others keep their names.

    Raises
    ------
    DatasetError
        If there are fewer sources than ``originals + unrelated``, or two share a stem.
    """
    sources = sorted(Path(s) for s in sources)
    if len({s.stem for s in sources}) != len(sources):
        raise DatasetError("planted set: two source photos share a file stem; rename one")
    if originals < 1 or unrelated < 0 or len(sources) < originals + unrelated:
        raise DatasetError(
            f"planted set: {originals} originals and {unrelated} unrelated photos asked for, "
            f"{len(sources)} source photos given"
        )
    picked = random.Random(seed).sample(sources, originals + unrelated)
    rows: list[tuple[str, str]] = []
    with temporary_dir(out) as tmp:
        images = tmp / "images"
        images.mkdir()
        for n, source in enumerate(picked):
            shutil.copyfile(source, images / source.name)
            rows.append((source.name, source.stem))
            for edit in EDITS if n < originals else ():
                name = f"{source.stem}_{edit}.jpg"
                (images / name).write_bytes(edited(source, edit))
                rows.append((name, source.stem))
        _write_labels(tmp / "labels.csv", rows)
        counts = {"originals": originals, "copies": originals * len(EDITS),
                  "unrelated": unrelated, "images": len(rows)}  # fmt: skip
        made = _recipe(sources, originals, unrelated, seed) | {"counts": counts}
        atomic_write_json(tmp / RECIPE, made)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    return counts


RECIPE = "planted.json"
"""What a set was made from (sources, counts, seed, edits): a rerun with the same recipe reuses
the set, so its files keep their times and their features stay in the feature cache."""


def _recipe(sources: Sequence[Path], originals: int, unrelated: int, seed: int) -> dict:
    return {"sources": [str(s) for s in sorted(Path(s) for s in sources)],
            "originals": originals, "unrelated": unrelated, "seed": seed,
            "edits": list(EDITS)}  # fmt: skip


def ensure_planted(
    sources: Sequence[Path], out: Path, *, originals: int, unrelated: int, seed: int = 0
) -> dict[str, int]:
    """The counts of the planted set in ``out``, made by :func:`make_planted` unless ``out``
    already holds one made with the same recipe."""
    try:
        made = json.loads((out / RECIPE).read_text())
        if made | {"counts": None} == _recipe(sources, originals, unrelated, seed) | {
            "counts": None
        }:
            return made["counts"]
    except (OSError, ValueError, TypeError):
        pass
    return make_planted(sources, out, originals=originals, unrelated=unrelated, seed=seed)


def _write_labels(path: Path, rows: list[tuple[str, str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["file", "label"])
    writer.writerows(sorted(rows))
    atomic_write_text(path, buffer.getvalue())


def read_truth(labels: Path) -> tuple[list[list[str]], dict[str, str]]:
    """The planted groups (names sharing a label, two or more) and each copy's edit."""
    with labels.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    by_label: dict[str, list[str]] = {}
    for row in rows:
        by_label.setdefault(row["label"], []).append(row["file"])
    groups = [sorted(g) for g in by_label.values() if len(g) > 1]
    edits = {}
    for row in rows:
        stem = Path(row["file"]).stem
        suffix = stem.rsplit("_", 1)[-1] if "_" in stem else ""
        if suffix in EDITS and stem[: -len(suffix) - 1] == row["label"]:
            edits[row["file"]] = suffix
    return groups, edits
