"""Finished evaluation runs as one table: each ``metrics.json`` under some folders is a row.

:func:`load_runs` reads the runs into a ``pandas.DataFrame``, best mAP first, with every mAP's
95% bootstrap interval (``map_ci_low``/``map_ci_high``) and each run's per-query APs in
``attrs`` (for the paired tests of :mod:`search_lab.evaluation.comparison`). A run is named after
the overrides Hydra saved for it (:func:`run_name`). Shared by ``python -m search_lab.compare``,
sweeps' summaries and the app; no plotting, no command line here.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from search_lab.core import METRICS_FILE, SearchLabError, is_number, read_json_object, readers
from search_lab.evaluation.run_scores import (
    CI_COLUMNS,
    PER_QUERY_ATTR,
    RunScores,
    map_interval,
    per_query,
)
from search_lab.retrieval import result_neutral

log = logging.getLogger(__name__)

OUTPUTS_ENV = "SEARCH_LAB_OUTPUTS"
DEFAULT_OUTPUTS = Path("outputs")


def outputs_dir() -> Path:
    """Folder holding evaluation runs and sweeps: ``$SEARCH_LAB_OUTPUTS``, else ``outputs``."""
    return Path(os.environ.get(OUTPUTS_ENV) or DEFAULT_OUTPUTS)


OVERRIDES_FILE = Path(".hydra") / "overrides.yaml"
"""Where Hydra saves a job's command-line overrides, relative to its output folder."""

PATH_KEYS = frozenset({"dataset.root"})
"""Override keys that are paths: left out of a run's name (and of a sweep job's folder name)."""


def name_excluded(key: str) -> bool:
    """Whether an override key stays out of run names, sweep folder names and parameter columns:
    it cannot change a result (:func:`search_lab.retrieval.result_neutral`) or is a path."""
    return result_neutral(key) or key in PATH_KEYS


ID_COLUMNS = ("run", "name", "feature", "metric", "index")
TIME_COLUMNS = ("extract_s", "build_s", "search_s")
LATENCY_COLUMNS = ("query_ms_p50", "query_ms_p95")
COUNT_COLUMNS = ("n_images", "n_skipped", "dim")
SKIPPED_ATTR = "skipped_runs"
"""``attrs`` key of :func:`load_runs`' table: run folder -> why it was left out."""
_AT_PREFIXES = {"precision_at": "P@", "recall_at": "R@", "ann_recall_at": "ANN-R@"}


class CompareError(SearchLabError, ValueError):
    """A path, column, filter or baseline given to the comparison is unusable."""


def _metrics_files(paths: Sequence[str | Path]) -> list[Path]:
    """Every metrics.json at or under ``paths``, in a stable order, each file once."""
    found: list[Path] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            candidates = [path]
        elif path.is_dir():
            candidates = sorted(path.rglob(METRICS_FILE))
        else:
            raise CompareError(
                f"{path} does not exist; give sweep folders, run folders or metrics files"
            )
        for file in candidates:
            key = file.resolve()
            if key not in seen:
                seen.add(key)
                found.append(file)
    return found


def _read_overrides(run_dir: Path) -> list[tuple[str, str]]:
    """(key, value) of each ``key=value`` override Hydra saved for the run; [] if none."""
    path = run_dir / OVERRIDES_FILE
    if not path.is_file():
        return []
    try:
        lines = yaml.safe_load(readers.read_text(path, max_bytes=readers.RECORD_MAX_BYTES)) or []
        readers.expect(lines, list, f"the content of {path}")
    except (OSError, ValueError, yaml.YAMLError, RecursionError) as err:
        log.warning("cannot read %s (%s): naming the run after its folder", path, err)
        return []
    pairs = []
    for line in lines:
        key, sep, value = str(line).partition("=")
        if sep and not key.startswith("~"):
            pairs.append((key.lstrip("+"), value))
    return pairs


def run_name(run_dir: Path, overrides: Sequence[tuple[str, str]]) -> str:
    """Short readable name of a run: its overrides (``feature=hsv,metric=cosine``) or folder name.

    Keys that cannot change results (:func:`search_lab.retrieval.result_neutral`: ``progress``,
    ``workers``, ``executor``, ``feature.threads``, ...) and paths (:data:`PATH_KEYS`) are left
    out; so is ``experiment`` when other overrides remain.
    """
    kept = [(k, v) for k, v in overrides if not name_excluded(k)]
    if any(k != "experiment" for k, _ in kept):
        kept = [(k, v) for k, v in kept if k != "experiment"]
    return ",".join(sorted(f"{k}={v}" for k, v in kept)) or run_dir.name  # as Hydra's dirname


def name_items(name: str) -> list[str]:
    """The ``key=value`` items of a run name, split at commas outside brackets.

    ``"feature.bins=[2,2,2],metric=cosine"`` gives ``["feature.bins=[2,2,2]", "metric=cosine"]``.
    """
    items, depth, start = [], 0, 0
    for i, char in enumerate(name):
        depth += (char in "[{(") - (char in "]})")
        if char == "," and depth == 0:
            items.append(name[start:i])
            start = i + 1
    items.append(name[start:])
    return [item for item in items if item]


def common_items(names: Sequence[str]) -> list[str]:
    """The ``key=value`` items every one of several names has (none for fewer than two)."""
    if len(names) < 2:
        return []
    split = [name_items(str(n)) for n in names]
    return [i for i in split[0] if all(i in s for s in split[1:])]


def short_labels(names: Sequence[str]) -> list[str]:
    """Names without the items they all share (see :func:`common_items`), for chart labels."""
    common = set(common_items(names))
    return [",".join(i for i in name_items(str(n)) if i not in common) or str(n) for n in names]


def _lookup(config: Mapping[str, Any], dotted: str) -> Any:
    """``config["a"]["b"]`` for ``"a.b"``; None when a key is missing."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _cell(value: Any) -> Any:
    """A table cell: lists and dicts become compact strings like the overrides that set them."""
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    return value


def _at_columns(metrics: Mapping[str, Any]) -> dict[str, float]:
    """``P@k``, ``R@k`` and ``ANN-R@k`` cells from the ``*_at`` dicts of a metrics file."""
    cells = {}
    for key, prefix in _AT_PREFIXES.items():
        values = metrics.get(key) or {}
        if not isinstance(values, Mapping):
            raise ValueError(f"{key} is not an object keyed by k")
        for k, value in values.items():
            cells[f"{prefix}{k}"] = value
    return cells


def _label(value: Any) -> str | None:
    """A name cell: a string (an edited file's number or list shown as text) or None."""
    return None if value is None else value if isinstance(value, str) else json.dumps(value)


def metrics_problem(metrics: Any) -> str | None:
    """Why a parsed ``metrics.json`` cannot be a row of the table (one phrase), or None.

    Every value the table and its charts use must have its type: ``map`` and the timings,
    latencies and counts a number (or null), ``config`` an object, each ``*_at`` an object of
    numbers. (``per_query_ap`` and ``map_ci95`` are checked where they are used.)
    """
    if not isinstance(metrics, Mapping) or "map" not in metrics:
        return "no 'map' in it, not a search_lab metrics file"
    for key in ("map", *LATENCY_COLUMNS, *TIME_COLUMNS, *COUNT_COLUMNS):
        value = metrics.get(key)
        if value is not None and not is_number(value):
            return f"{key!r} is not a number"
    if not isinstance(metrics.get("config") or {}, Mapping):
        return "'config' is not an object"
    for key in _AT_PREFIXES:
        values = metrics.get(key) or {}
        if not isinstance(values, Mapping) or not all(
            v is None or is_number(v) for v in values.values()
        ):
            return f"{key!r} is not an object of numbers keyed by k"
    return None


def _row(
    metrics_file: Path, metrics: Mapping[str, Any], aps: Mapping[str, float]
) -> tuple[dict[str, Any], list[str]]:
    """One table row for a run (``aps``: its per-query APs) and the parameter keys it set."""
    run_dir = metrics_file.parent
    overrides = _read_overrides(run_dir)
    config = metrics.get("config") or {}
    row: dict[str, Any] = {
        "run": str(run_dir),
        "name": run_name(run_dir, overrides),
        "feature": _label(_lookup(config, "feature.name")),
        "metric": _label(_lookup(config, "metric.name")),
        "index": _label(_lookup(config, "index.name")),
        "map": metrics.get("map"),
        **_at_columns(metrics),
    }
    interval = map_interval(metrics, aps)
    if interval[0] is not None:
        row.update(zip(CI_COLUMNS, interval, strict=True))
    for key in (*LATENCY_COLUMNS, *TIME_COLUMNS, *COUNT_COLUMNS):
        if key in metrics:
            row[key] = metrics[key]
    if metrics.get("features_cached") is False and metrics.get("extract_s"):
        row["img_per_s"] = metrics.get("n_images", 0) / metrics["extract_s"]  # cold extraction only
    params = []
    for key, value in overrides:
        if "." in key and not name_excluded(key) and not key.startswith("hydra."):
            found = _lookup(config, key)
            row[key] = _cell(found if found is not None else value)
            params.append(key)
    return row, params


def k_order(column: str) -> tuple[int, float, str]:
    """Sort key of an ``@k`` column: by family (P, R, ANN-R) then numerically by k."""
    prefix, _, k = column.partition("@")
    family = list(_AT_PREFIXES.values()).index(prefix + "@")
    try:
        return family, float(k), ""
    except ValueError:
        return family, math.inf, k


def _ordered_columns(present: set[str], params: Iterable[str]) -> list[str]:
    """Column order: identity, parameters, mAP, @k scores, latency, timings, counts."""
    prefixes = set(_AT_PREFIXES.values())
    at_cols = sorted((c for c in present if c.partition("@")[0] + "@" in prefixes), key=k_order)
    ci = [c for c in CI_COLUMNS if c in present]
    order = [*ID_COLUMNS, *dict.fromkeys(params), "map", *ci, *at_cols]
    order += [c for c in LATENCY_COLUMNS if c in present]
    order += [
        *TIME_COLUMNS,
        *(["img_per_s"] if "img_per_s" in present else []),
        "n_images",
        "n_skipped",
    ]
    order += [c for c in ("dim",) if c in present]
    return order


def _read_rows(
    paths: Sequence[str | Path],
) -> tuple[list[dict[str, Any]], list[str], dict[str, Mapping[str, float]]]:
    """The row of every readable run under ``paths``, the parameter keys set, per-query APs.

    A metrics file that cannot be read (a special file, too large or deep, not JSON) or
    whose values have the wrong types is skipped with a warning naming its run folder, and
    recorded in ``skipped`` (run folder -> reason).
    """
    rows, params, scores, skipped = [], [], {}, {}
    for file in _metrics_files(paths):
        try:
            metrics = read_json_object(file)
            problem = metrics_problem(metrics)
            if problem is None:
                aps = per_query(file, metrics)
                row, row_params = _row(file, metrics, aps)
        except (OSError, ValueError) as err:  # UnreadableFileError is a ValueError
            problem = str(err).removeprefix(str(file)).strip()
        if problem is not None:
            log.warning("skipping run folder %s: %s: %s", file.parent, file.name, problem)
            skipped[str(file.parent)] = problem
            continue
        rows.append(row)
        params += row_params
        scores[row["run"]] = aps
    return rows, params, scores, skipped


def load_runs(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Read every ``metrics.json`` at or under ``paths`` into one table, best mAP first.

    Parameters
    ----------
    paths : sequence of str or Path
        Sweep folders, run folders, any folder above them (searched recursively) or
        ``metrics.json`` files. A file found twice is read once.

    Returns
    -------
    pandas.DataFrame
        One row per run, index 0..n-1, sorted by ``map`` descending (ties by ``name``).
        Columns: ``run`` (the run folder), ``name`` (its overrides such as
        ``feature=hsv,metric=cosine``, else the folder name), ``feature``, ``metric``, ``index``
        (names from the saved config), one column per dotted parameter any run overrode
        (e.g. ``index.n_trees``; lists as ``"[4,4,4]"``), ``map``, ``map_ci_low`` and
        ``map_ci_high`` when any run has them (the 95% interval: the run's ``map_ci95``, or
        for older runs the same seeded bootstrap over its ``per_query_ap``), ``P@k`` and ``R@k`` for
        every k found, ``ANN-R@k`` and ``query_ms_p50``/``query_ms_p95`` when any run has
        them, ``extract_s``, ``build_s``, ``search_s``, ``img_per_s`` (extraction throughput,
        for runs that did not read cached features), ``n_images``, ``n_skipped``, ``dim``.
        Missing values are NaN/None. With no run found the frame is empty but has the
        always-present columns. ``attrs["per_query_ap"]`` holds a :class:`RunScores` with
        every run's per-query APs (by ``run``), for :func:`diff_to_baseline`'s paired tests.

    Raises
    ------
    CompareError
        If a path does not exist.

    Notes
    -----
    A metrics file that cannot be read or has values of the wrong type (see
    :func:`metrics_problem`) is skipped with a warning naming its run folder; such folders are
    in ``attrs["skipped_runs"]`` (run folder -> reason).
    """
    rows, params, scores, skipped = _read_rows(paths)
    present = {key for row in rows for key in row}
    columns = _ordered_columns(present, params)
    frame = pd.DataFrame(rows, columns=columns)
    frame = frame.sort_values(["map", "name"], ascending=[False, True], na_position="last")
    frame = frame.reset_index(drop=True)
    frame.attrs[PER_QUERY_ATTR] = RunScores(scores)
    frame.attrs[SKIPPED_ATTR] = skipped
    return frame
