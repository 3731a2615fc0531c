"""The talk's four questions answered with measurements: ``python -m search_lab.report``.

Runs (or reuses) the evaluations each question needs (:mod:`search_lab.report.plan`), reads
the search-method benchmark, and writes one self-contained ``report.html`` (charts inline), a
``report.md`` with its charts as PNG files, and ``report.json`` (the runs cited) into
``outputs/report/<time>/``, atomically: the folder appears complete or not at all.

    python -m search_lab.report [--quick] [--out DIR] [dataset overrides, e.g. dataset=wang]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from search_lab.core import (
    SearchLabError,
    install,
    read_json_object,
    shown,
    write_bytes,
    write_error,
    write_json,
    write_text,
)
from search_lab.evaluation import outputs_dir
from search_lab.report import plan as report_plan
from search_lab.report.cells import display
from search_lab.report.dimension import dimension
from search_lab.report.distances import distances
from search_lab.report.files import HTML_FILE, MD_FILE, REPORT_DIR
from search_lab.report.render import html_page, markdown
from search_lab.report.runs import Outcome, Run, ensure, extraction_cost
from search_lab.report.sections import features, search

log = logging.getLogger(__name__)

RUNS_DIR = "runs"
JSON_FILE = "report.json"
TITLE = "Findings: the talk's four questions, measured"
COST_IMAGES = {True: 12, False: 48}  # images timed per feature for its extraction cost


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options; everything else is a ``key=value`` override for every run."""
    parser = argparse.ArgumentParser(
        prog="python -m search_lab.report", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--quick", action="store_true", help="hsv/lbp only, fewer settings (under a minute)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=outputs_dir() / REPORT_DIR,
        help="parent of the report folders (default: $SEARCH_LAB_OUTPUTS/report, outputs/report)",
    )
    parser.add_argument("--runs", type=Path, help="folder of the reused runs (default OUT/runs)")
    parser.add_argument(
        "--bench", type=Path, default=Path("bench/ann.json"), help="bench_ann results"
    )
    parser.add_argument(
        "--export",
        type=Path,
        help="also copy report.md and its charts into this folder (e.g. docs/report)",
    )
    parser.add_argument(
        "overrides", nargs="*", help="dataset overrides for every run (dataset.root=...)"
    )
    args = parser.parse_args(argv)
    bad = [o for o in args.overrides if "=" not in o or o.startswith("-")]
    if bad:
        parser.error(f"overrides must be key=value, got {bad[0]!r}")
    return args


def run_all(runs: list[Run], root: Path, overrides: tuple[str, ...]) -> list[Outcome]:
    """Every run, reused or evaluated, in order."""
    return [ensure(run, root, overrides) for run in runs]


def read_bench(path: Path) -> dict[str, Any] | None:
    """The benchmark results, or None (with a warning) when missing or unreadable."""
    try:
        bench = read_json_object(path)
    except (OSError, ValueError) as err:
        log.warning("no search-method benchmark (%s): run python -m search_lab.bench_ann", err)
        return None
    bench["source"] = display(path)  # named beside every figure the report takes from it
    return bench


def build(args: argparse.Namespace) -> tuple[list[Any], dict[str, Any]]:
    """Run everything and build the four sections; returns them and the citation record."""
    root = args.runs or args.out / RUNS_DIR
    dataset = tuple(args.overrides)
    q1 = run_all(report_plan.features(args.quick), root, dataset)
    costs = {o.run.label: extraction_cost(o, COST_IMAGES[args.quick]) for o in q1}
    q2 = run_all(report_plan.search(args.quick), root, dataset)
    q2_rerank = run_all(report_plan.rerank(args.quick), root, dataset)
    q3 = run_all(report_plan.metrics(args.quick), root, dataset)
    q4_runs, _ = report_plan.dimensions(args.quick)
    q4 = run_all(q4_runs, root, dataset)
    bench = read_bench(args.bench)
    sections = [
        features(q1, costs, dataset),
        search(q2, bench, dataset, q2_rerank),
        distances(q3, dataset),
        dimension(q4, bench, dataset),
    ]
    everything = [*q1, *q2, *q2_rerank, *q3, *q4]
    record = {
        "quick": args.quick,
        "overrides": list(dataset),
        "runs": [
            {
                "label": o.run.label,
                "group": o.run.group,
                "folder": str(o.folder),
                "reused": o.reused,
                "reason": o.reason,
            }
            for o in everything
        ],
    }
    return sections, record


def preamble(args: argparse.Namespace, record: dict[str, Any], seconds: float) -> list[str]:
    """The lines under the title: how it was made, on what, in how long."""
    runs = record["runs"]
    reused = sum(r["reused"] for r in runs)
    mode = "--quick " if args.quick else ""
    command = f"python -m search_lab.report {mode}{' '.join(args.overrides)}".strip()
    lines = [report_plan.quick_leaves_out()] if args.quick else []
    return [
        *lines,
        f"Made by `{command}` on {datetime.now():%Y-%m-%d %H:%M} in {seconds:.0f} s "
        f"({len(runs)} runs cited, {reused} reused from earlier reports; load average "
        f"{os.getloadavg()[0]:.1f}).",
        "Each mAP comes with its 95% percentile bootstrap interval over the queries (2000 "
        "resamples, seed 0); a difference is called better or worse only when its paired "
        "interval excludes 0 and the sign-flip p-value is below 0.05. The report chooses "
        "nothing: it measures every listed setting on the whole collection (the named "
        "experiments `best` and `best_handcrafted` were tuned on holidays-small's tune side; "
        "see docs/results.md for their test-side figures).",
    ]


def write_report(out: Path, sections: list[Any], record: dict[str, Any], lines: list[str]) -> Path:
    """Write html, md, charts and json into a fresh ``out/<time>/``, atomically (rename)."""
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    final = out / stamp
    tmp = out / f".{stamp}.tmp-{os.getpid()}"
    tmp.mkdir(parents=True)
    try:
        for section in sections:
            for chart in section.charts:
                write_bytes(tmp / f"{chart.name}.png", chart.png)
        write_text(tmp / MD_FILE, markdown(TITLE, lines, sections))
        write_text(tmp / HTML_FILE, html_page(TITLE, lines, sections))
        write_json(tmp / JSON_FILE, record)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def export(folder: Path, target: Path) -> None:
    """Copy the report's Markdown and charts (not its runs) into ``target``, atomically each."""
    target.mkdir(parents=True, exist_ok=True)
    for path in [folder / MD_FILE, *sorted(folder.glob("*.png"))]:
        write_bytes(target / path.name, path.read_bytes())


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry: build and write the report; one ``error:`` line and status 2 on bad input."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    install()
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        sections, record = build(args)
        lines = preamble(args, record, time.perf_counter() - start)
        folder = write_report(args.out, sections, record, lines)
        if args.export:
            export(folder, args.export)
    except SearchLabError as err:
        print(f"error: {shown(err)}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: {shown(write_error(err))}", file=sys.stderr)
        return 2
    print(
        f"report in {display(folder)} ({time.perf_counter() - start:.0f} s): {MD_FILE}, {HTML_FILE}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
