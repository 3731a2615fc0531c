"""``python -m search_lab.data``: fetch Holidays, print a dataset's counts, write distractors.

``fetch [--dest DIR] [--from PATH] [--mirror URL]`` downloads INRIA's Holidays archives (or
imports a local copy) into the dataset root; ``info [ROOT] [--labels CSV]`` prints its counts;
``distractors --count N --dest DIR [--seed S]`` writes a reproducible synthetic distractor set
(:mod:`search_lab.data.synth`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from search_lab.core import SearchLabError, install
from search_lab.data import default_root, load_dataset


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
    install()
    args = _parse_args(argv)
    try:
        if args.command == "fetch":
            from search_lab.data import ARCHIVES, Archive, fetch

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
            from search_lab.data import generate

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
        print(f"search_lab.data.datasets: error: {err}", file=sys.stderr)
        return 2
    return 0
