"""Which of my photos are (near) duplicates: ``python -m search_lab.duplicates --index DIR``.

Loads a built index (every check of :meth:`SearchEngine.load`) and lists its groups of
near-duplicate images, one group per line (names tab-separated, control characters escaped),
largest first; ``--json`` writes one object ``{"threshold": T, "distance": "...", "groups":
[[name, ...], ...], "cost": {...}}`` instead. An index fitted on its collection (PCA,
expansion: ``+experiment=recommended``) is judged on its photos' colour histograms, which
needs the photos on disk (:mod:`search_lab.retrieval.duplicate_space`). The cost (queries, k,
seconds) goes to stderr as one line. Exit status 0, or 2 for a bad index, missing photos or
bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from search_lab.cli.search import shown
from search_lab.core import ConfigError, run_command
from search_lab.retrieval import (
    DuplicateGroups,
    DuplicateSpace,
    SearchEngine,
    duplicate_space,
    find_duplicates,
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m search_lab.duplicates", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--index", required=True, type=Path, help="a built index folder")
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="largest distance between two duplicates, in the index metric's units, or for an "
        "index fitted on its collection (PCA, expansion) in the cosine distance of its photos' "
        "colour histograms (default: the calibrated value)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object instead of lines")
    parser.add_argument(
        "--sizes-only",
        action="store_true",
        help="check the index files' sizes but not their checksums (faster on huge indexes)",
    )
    return parser.parse_args(argv)


def named(space: DuplicateSpace, found: DuplicateGroups) -> list[list[str]]:
    """The groups as file names, each group sorted by name."""
    return [sorted(space.names[i] for i in group) for group in found.groups]


def cost_record(found: DuplicateGroups) -> dict[str, Any]:
    """The cost as JSON values: queries, rounds of (k, rows), seconds, pairs."""
    rounds = [{"k": k, "queries": rows} for k, rows in found.rounds]
    return {"queries": found.queries, "rounds": rounds, "seconds": round(found.seconds, 4),
            "pairs": found.pairs}  # fmt: skip


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """List the groups of ``args.index`` on ``out`` (stdout) and the cost on stderr."""
    out = out or sys.stdout
    engine = SearchEngine.load(args.index, verify=not args.sizes_only)
    space = duplicate_space(engine)
    threshold = space.threshold if args.threshold is None else args.threshold
    if threshold is None:
        raise ConfigError(space.no_default)
    found = find_duplicates(space.index, threshold)
    groups = named(space, found)
    if args.json:
        record = {"threshold": found.threshold, "distance": space.distance, "groups": groups,
                  "cost": cost_record(found)}  # fmt: skip
        out.write(json.dumps(record) + "\n")
    else:
        for group in groups:
            out.write("\t".join(shown(name) for name in group) + "\n")
    print(f"{found.cost()} ({space.distance})", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: problems with the index or threshold are one line, status 2."""
    args = parse_args(argv)
    return run_command(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
