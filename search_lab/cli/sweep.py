"""Sweeps: stable job folders, resuming finished jobs, and the table written when a sweep ends.

Three pieces, wired in ``conf/config.yaml``'s ``hydra:`` block:

- the ``sweep_subdir`` resolver names each job's folder after its overrides
  (``hydra.sweep.subdir: ${sweep_subdir:${hydra.job.override_dirname},${hydra.job.num}}``), so a
  re-run of the same command finds the same folders;
- :func:`finished_metrics`, called by ``search_lab.cli.glue.run_job`` in multirun mode, returns the
  saved metrics of a job whose ``metrics.json`` was computed from the same configuration, so
  an interrupted sweep re-run in the same ``hydra.sweep.dir`` only runs the missing jobs;
- :func:`write_summary` writes ``summary.csv`` and ``summary.md`` into the sweep folder when all
  jobs are done (called by the Hydra callback :class:`search_lab.cli.glue.AggregateSweep`).

Importing this module registers nothing, and it needs no Hydra: :mod:`search_lab.cli.glue`
registers the resolver and holds the callback.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from search_lab.core import METRICS_FILE, read_json_object, write_text
from search_lab.retrieval import result_neutral

log = logging.getLogger(__name__)

SUMMARY_CSV = "summary.csv"
SUMMARY_MD = "summary.md"
MAX_SUBDIR_CHARS = 120


def job_subdir(override_dirname: str, num: int) -> str:
    """Folder name of a sweep job: its overrides, made safe as one path component.

    Parameters
    ----------
    override_dirname : str
        Hydra's ``hydra.job.override_dirname`` (``feature=hsv,metric=cosine``).
    num : int
        The job's number, used only when there are no overrides (``job0``).

    Returns
    -------
    str
        ``override_dirname`` with ``/`` replaced by ``_``; names longer than 120 characters
        are cut and end with a short hash of the full name, so they stay unique and stable.
    """
    name = str(override_dirname).replace("/", "_").strip()
    if not name:
        return f"job{num}"
    if len(name) > MAX_SUBDIR_CHARS:
        digest = hashlib.sha256(name.encode()).hexdigest()[:10]
        name = f"{name[: MAX_SUBDIR_CHARS - 11]}~{digest}"
    return name


def comparable_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a resolved config that decides results, normalised as JSON would store it.

    Drops the keys that cannot change a result (:func:`search_lab.retrieval.result_neutral`:
    ``progress``, ``executor``, ``feature.threads``, ...) and turns tuples into lists, so a
    config compares equal to the ``config`` saved in its own ``metrics.json``.
    """
    return json.loads(json.dumps(_decisive(config), default=str))


def _decisive(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``tree`` without its result-neutral keys, at every depth (``prefix``: the dotted path)."""
    return {
        k: _decisive(v, f"{prefix}{k}.") if isinstance(v, Mapping) else v
        for k, v in tree.items()
        if not result_neutral(f"{prefix}{k}")
    }


def finished_metrics(out_dir: str | Path, config: Mapping[str, Any]) -> dict[str, Any] | None:
    """Saved metrics of a job already finished in ``out_dir`` with the same configuration.

    Parameters
    ----------
    out_dir : str or Path
        The job's output folder.
    config : mapping
        The job's resolved configuration (plain dict).

    Returns
    -------
    dict or None
        The contents of ``out_dir/metrics.json`` if it exists and its ``config`` equals
        ``config`` apart from result-neutral keys; None otherwise (the job must run).
        ``metrics.json`` is written atomically and last, so its presence means the job ended.
    """
    path = Path(out_dir) / METRICS_FILE
    if not path.is_file():
        return None
    try:
        saved = read_json_object(path)
    except (OSError, ValueError) as err:
        log.warning("cannot read %s (%s): running the job again", path, err)
        return None
    from search_lab.evaluation import metrics_problem

    if problem := metrics_problem(saved):
        log.warning("%s is unusable (%s): running the job again", path, problem)
        return None
    if comparable_config(saved.get("config") or {}) != comparable_config(config):
        log.info("%s was computed with another configuration: running the job again", path)
        return None
    return saved


def write_summary(sweep_dir: str | Path) -> tuple[Path, Path] | None:
    """Write ``summary.csv`` and ``summary.md`` for every run under ``sweep_dir``.

    One row per ``metrics.json`` found (see :func:`search_lab.evaluation.runs.load_runs`), best mAP
    first: the job's overrides (``name``), mAP, P@k, R@k, ANN recall and latency when present,
    timings. The CSV holds every column; the Markdown table leaves out the ``run`` folder.

    Returns
    -------
    (Path, Path) or None
        The CSV and Markdown paths, or None if no run was found.
    """
    from search_lab.evaluation import (
        load_runs,
        table_markdown,  # pandas: only when a sweep ends
    )

    sweep_dir = Path(sweep_dir)
    runs = load_runs([sweep_dir]) if sweep_dir.is_dir() else None
    if runs is None or runs.empty:
        log.warning("no %s under %s: no summary written", METRICS_FILE, sweep_dir)
        return None
    csv_path = write_text(sweep_dir / SUMMARY_CSV, runs.to_csv(index=False))
    md_path = write_text(
        sweep_dir / SUMMARY_MD, table_markdown(runs.drop(columns=["run"]), index=True)
    )
    best = runs.iloc[0]
    log.info(
        "summary of %d runs: %s (best: %s, mAP %.4f)", len(runs), md_path, best["name"], best["map"]
    )
    return csv_path, md_path
