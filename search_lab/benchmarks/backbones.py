"""Milliseconds per image of the EfficientNet-Lite backbones: ``python -m
search_lab.benchmarks.backbones [--images N] [--scales S ...]``.

The first ``N`` holidays-small images (``HOLIDAYS_DIR``), decoded once, extracted in one batch
call on one thread after a warm-up of two; each backbone at its native input and at the
project's default 320 (``--scales 1.0 1.414``: as ``recommended`` extracts them). The load
average is printed with each row: on a shared machine it distorts the absolute figures, not
much the ratios between rows taken together.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from search_lab.features import create
from search_lab.retrieval import load_for

SETTINGS = [
    ("efficientnet_lite0", 320),
    ("efficientnet_lite0", 224),
    ("efficientnet_lite1", 240),
    ("efficientnet_lite1", 320),
    ("efficientnet_lite2", 260),
    ("efficientnet_lite2", 320),
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m search_lab.benchmarks.backbones")
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0])
    args = parser.parse_args(argv)
    root = Path(os.environ.get("HOLIDAYS_DIR", "data/holidays"))
    names = sorted(p.name for p in root.glob("*.jpg"))[: args.images]
    for backbone, size in SETTINGS:
        extractor = create("cnn", backbone=backbone, size=size, scales=args.scales, threads=1)
        extractor.prepare()
        images = [load_for(extractor, root / name) for name in names]
        extractor.extract_batch(images[:2])
        start = time.perf_counter()
        extractor.extract_batch(images)
        ms = 1e3 * (time.perf_counter() - start) / len(images)
        load = os.getloadavg()[0]
        print(f"{backbone} size {size} scales {args.scales}: {ms:.0f} ms/image (load {load:.1f})")


if __name__ == "__main__":
    main()
