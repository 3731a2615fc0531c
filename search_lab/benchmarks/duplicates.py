"""Near-duplicates on planted sets: ``python -m search_lab.benchmarks.duplicates``.

Makes two planted sets (:mod:`search_lab.data.planted`) from two different collections: a *tune*
set (default: Wang photos) on which each tool's threshold is chosen for the best pair F1, and
a *test* set (default: one photo per Holidays group) on which precision, recall and F1 of the
pairs are reported at that threshold — never tuned and reported on the same images. Our
tool (``search_lab.retrieval.duplicates`` on an exact cosine index, for each feature) runs side by
side with imagededup's perceptual hash (PHash, Hamming distance on 64-bit hashes, at its default
threshold 10 and at the tuned one). Pairs are scored from the groups each tool's pairs make
(connected components), as the user sees them. imagededup's CNN method needs a network download this
machine cannot make, so it is not run. Writes ``bench/duplicates.json`` and ``bench/duplicates.md``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import warnings
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from search_lab.benchmarks.common import (
    compose,
    load_avg,
    machine,
    measure_and_report,
    package_version,
    start_cli,
)
from search_lab.benchmarks.duplicates_report import render
from search_lab.cli import RECOMMENDED
from search_lab.core import SearchLabError
from search_lab.data import EDITS, default_root, ensure_planted, read_truth
from search_lab.retrieval import (
    build_engine,
    close_pairs,
    components,
    find_duplicates,
    pair_scores,
    pairs_of,
)

PHASH_DEFAULT = 10
"""imagededup's own default ``max_distance_threshold`` for hashes."""

RECIPES = {"recommended": [RECOMMENDED, "rerank=none"]}
"""Names ``--features`` also takes: a named recipe's overrides, to score its own vectors (the
re-ranking left out: it does not change them). ``duplicates`` judges an index fitted on its
collection by colour histogram instead (:mod:`search_lab.retrieval.duplicate_space`)."""


def sources(name: str, holidays: Path, wang: Path) -> list[Path]:
    """The photos a set is planted from: Wang's images, or the first image of each Holidays
    group (images of one Holidays group show the same scene: they would be unplanted pairs)."""
    if name == "wang":
        return sorted((wang / "images").glob("*.jpg"))
    first: dict[str, Path] = {}
    for path in sorted(p for p in holidays.iterdir() if p.suffix.lower() in (".jpg", ".png")):
        first.setdefault(path.stem[:4], path)
    return list(first.values())


def scored(groups: list[list[str]], truth: list[list[str]], edits: dict[str, str]) -> dict:
    """Pair precision/recall/F1 of ``groups`` and the recall of original-copy pairs per edit."""
    found, result = pairs_of(groups), pair_scores(pairs_of(groups), pairs_of(truth))
    per_edit = {}
    for edit in EDITS:
        wanted = {frozenset((c, _original(c, g))) for g in truth for c in g if edits.get(c) == edit}
        per_edit[edit] = len(wanted & found) / len(wanted) if wanted else None
    return {**result, "recall_per_edit": per_edit}


def _original(copy: str, group: list[str]) -> str:
    return next(n for n in group if n.rsplit(".", 1)[0] == copy.rsplit("_", 1)[0])


def sweep(n: int, names: list[str], pairs: tuple, truth: list[list[str]]) -> list[tuple]:
    """(threshold, F1) for candidate thresholds: quantiles of the distances of ``pairs``."""
    left, right, dist = pairs
    candidates = np.unique(np.quantile(dist, np.linspace(0, 1, 201))) if len(dist) else []
    out, true_pairs = [], pairs_of(truth)
    for t in candidates:
        keep = dist <= t
        groups = [[names[i] for i in g] for g in components(n, left[keep], right[keep])]
        out.append((float(t), pair_scores(pairs_of(groups), true_pairs)["f1"]))
    return out


def best(points: list[tuple]) -> float:
    """The threshold of the best F1 (the smallest one among ties)."""
    return max(points, key=lambda p: (p[1], -p[0]))[0]


def f1_at(n: int, names: list[str], pairs: tuple, truth: list[list[str]], t: float) -> float:
    """Pair F1 of the groups the ``pairs`` within ``t`` make."""
    left, right, dist = pairs
    keep = dist <= t
    groups = [[names[i] for i in g] for g in components(n, left[keep], right[keep])]
    return pair_scores(pairs_of(groups), pairs_of(truth))["f1"]


def ours(folder: Path, feature: str, cap: float) -> dict[str, Any]:
    """The exact cosine index of a planted set (features from the cache when there) for a
    feature or a recipe of :data:`RECIPES`, its pairs up to ``cap``; ``extract_s`` is the
    extraction's own time, as measured when run."""
    cfg = compose(
        [*RECIPES.get(feature, [f"feature={feature}"]), "dataset.layout=labels",
         f"dataset.root={folder / 'images'}", f"dataset.labels={folder / 'labels.csv'}",
         "progress=false"]
    )  # fmt: skip
    engine = build_engine(cfg)
    pairs = close_pairs(engine.index, cap)
    return {"engine": engine, "extract_s": engine.manifest["extract_s"], "pairs": pairs}


def run_ours(sets: dict[str, Path], feature: str, cap: float) -> dict[str, Any]:
    """Tune the threshold on the tune set, score it on the test set."""
    tune, test = (ours(sets[side], feature, cap) for side in ("tune", "test"))
    truth_tune, _ = read_truth(sets["tune"] / "labels.csv")
    truth, edits = read_truth(sets["test"] / "labels.csv")
    points = sweep(tune["engine"].index.size, tune["engine"].names, tune["pairs"][:3], truth_tune)
    threshold = best(points)
    found = find_duplicates(test["engine"].index, threshold)
    names = test["engine"].names
    groups = [[names[i] for i in g] for g in found.groups]
    own = "'s own vectors" if feature in RECIPES else ""
    return {"tool": f"search_lab {feature}{own} (cosine, exact)", "threshold": threshold,
            "unit": "cosine distance", "tune_f1": dict(points)[threshold],
            "test": scored(groups, truth, edits), "cost": found.cost(),
            "features_s": test["extract_s"], "search_s": found.seconds,
            "queries": found.queries}  # fmt: skip


def phash_pairs(folder: Path) -> tuple[list[str], tuple, float, float]:
    """imagededup PHash: names, pairs (ids, ids, Hamming distances) up to 32, and the seconds
    of hashing and of the duplicate search."""
    from imagededup.methods import PHash

    for name in [n for n in logging.root.manager.loggerDict if n.startswith("imagededup")]:
        logging.getLogger(name).setLevel(logging.WARNING)  # it logs every step at INFO
    hasher = PHash(verbose=False)
    start = time.perf_counter()
    hashes = hasher.encode_images(image_dir=str(folder / "images"), num_enc_workers=0)
    hashed = time.perf_counter()
    with warnings.catch_warnings():  # it warns on every call with encodings given
        warnings.filterwarnings("ignore", "Parameter num_enc_workers", RuntimeWarning)
        found = hasher.find_duplicates(encoding_map=hashes, max_distance_threshold=32,
                                       scores=True, num_dist_workers=0)  # fmt: skip
    searched = time.perf_counter()
    names = sorted(hashes)
    row = {n: i for i, n in enumerate(names)}
    trips = [(row[a], row[b], d) for a, dups in found.items() for b, d in dups if a < b]
    left, right, dist = (np.array(x) for x in zip(*trips, strict=True)) if trips else ([],) * 3
    pairs = (np.asarray(left, np.int64), np.asarray(right, np.int64), np.asarray(dist))
    return names, pairs, hashed - start, searched - hashed


def run_phash(sets: dict[str, Path]) -> list[dict[str, Any]]:
    """PHash at its default threshold and at the one tuned on the tune set, on the test set."""
    names_t, pairs_t, _, _ = phash_pairs(sets["tune"])
    truth_tune, _ = read_truth(sets["tune"] / "labels.csv")
    tuned = best(sweep(len(names_t), names_t, pairs_t, truth_tune))
    names, (left, right, dist), hash_s, search_s = phash_pairs(sets["test"])
    truth, edits = read_truth(sets["test"] / "labels.csv")
    rows = []
    for label, threshold in (("default", PHASH_DEFAULT), ("tuned", tuned)):
        keep = dist <= threshold
        groups = [[names[i] for i in g] for g in components(len(names), left[keep], right[keep])]
        tune_f1 = f1_at(len(names_t), names_t, pairs_t, truth_tune, threshold)
        rows.append({"tool": f"imagededup PHash ({label} threshold)", "threshold": threshold,
                     "unit": "Hamming bits of 64", "tune_f1": tune_f1,
                     "test": scored(groups, truth, edits), "features_s": hash_s,
                     "search_s": search_s,
                     "cost": f"hashing {hash_s:.2f} s, all-pairs search (its Cython brute "
                             f"force, up to 32 bits) {search_s:.2f} s"})  # fmt: skip
    return rows


def bench(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Make both planted sets, run every tool, return the result record."""
    if args.tune == args.test:
        raise SearchLabError("--tune and --test must be different collections")
    load_at_start = load_avg()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_duplicates."))
    sets, counts = {}, {}
    for side, name in (("tune", args.tune), ("test", args.test)):
        photos = sources(name, args.holidays, args.wang)
        unrelated = min(args.unrelated, len(photos) - args.originals)
        sets[side] = work / f"planted-{name}"
        counts[side] = {
            "collection": name,
            **ensure_planted(
                photos, sets[side], originals=args.originals, unrelated=unrelated, seed=args.seed
            ),
        }
    rows = [run_ours(sets, feature, args.cap) for feature in args.features]
    rows += run_phash(sets)
    return {"command": command, "sets": counts, "edits": list(EDITS), "rows": rows,
            "machine": machine(load_avg_at_start=load_at_start,
                               imagededup=package_version("imagededup")),
            "load_avg_at_end": load_avg()}  # fmt: skip


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m search_lab.benchmarks.duplicates", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--tune", choices=("wang", "holidays"), default="wang")
    parser.add_argument("--test", choices=("wang", "holidays"), default="holidays")
    parser.add_argument("--holidays", type=Path, default=None, help="default $HOLIDAYS_DIR")
    parser.add_argument("--wang", type=Path, default=None, help="default $WANG_DIR")
    parser.add_argument("--originals", type=int, default=60, help="photos copied per set")
    parser.add_argument("--unrelated", type=int, default=180, help="photos left alone per set")
    parser.add_argument(
        "--features", nargs="+", default=["hsv", "cnn"],
        help=f"features, or recipes ({', '.join(RECIPES)}: their own vectors), to calibrate",
    )  # fmt: skip
    parser.add_argument("--cap", type=float, default=0.3, help="largest cosine distance tried")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None, help="folder for the planted sets")
    parser.add_argument("--json", type=Path, default=Path("bench/duplicates.json"))
    parser.add_argument("--md", type=Path, default=Path("bench/duplicates.md"))
    args = parser.parse_args(argv)
    args.holidays = args.holidays or default_root()
    args.wang = args.wang or wang_dir()
    return args


def wang_dir() -> Path:
    """``$WANG_DIR``, else ``../shared/datasets/wang-corel1k`` as ``conf/dataset/wang`` says."""
    return Path(os.environ.get("WANG_DIR") or "../shared/datasets/wang-corel1k")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; problems are one line and exit status 2."""
    argv, command = start_cli("search_lab.benchmarks.duplicates", argv)
    args = parse_args(argv)
    return measure_and_report(partial(bench, args, command), render, args.json, args.md)


if __name__ == "__main__":
    sys.exit(main())
