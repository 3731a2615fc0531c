"""Per-query scores of finished runs as table columns: each mAP's interval, paired tests.

The comparison table (:mod:`search_lab.evaluation.runs`, :mod:`search_lab.evaluation.comparison`)
and the app read runs' ``per_query_ap`` through this module: the 95% interval of each run's mAP and
the paired comparison of every run with a baseline over the queries both share. The statistics
are in :mod:`search_lab.evaluation.stats`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from search_lab.core import is_number
from search_lab.evaluation.stats import bootstrap_ci, paired_comparison, shared_values

log = logging.getLogger(__name__)

CI_COLUMNS = ("map_ci_low", "map_ci_high")
"""The 95% bootstrap interval of each run's mAP (from ``map_ci95`` or ``per_query_ap``)."""
PAIRED_COLUMNS = ("Δmap_low", "Δmap_high", "Δmap_p", "Δmap_shared")
"""Paired comparison with the baseline over the queries both runs share: the 95% interval of
the mean AP difference, the sign-flip p-value and the number of shared queries."""
ALPHA = 0.05
"""Significance level of the marks in printed tables: a Δmap with p >= ALPHA is marked ns."""
PER_QUERY_ATTR = "per_query_ap"
"""``DataFrame.attrs`` key of the per-query APs of every run, keyed by its ``run`` folder."""


class RunScores(Mapping[str, Mapping[str, float]]):
    """Per-query APs of each run (run folder -> query name -> AP) kept in ``DataFrame.attrs``.

    Read-only, so pandas' copies of ``attrs`` share it instead of deep-copying every AP.
    """

    def __init__(self, scores: Mapping[str, Mapping[str, float]]) -> None:
        self._scores = {run: dict(aps) for run, aps in scores.items()}

    def __getitem__(self, run: str) -> Mapping[str, float]:
        return self._scores[run]

    def __iter__(self) -> Iterator[str]:
        return iter(self._scores)

    def __len__(self) -> int:
        return len(self._scores)

    def __deepcopy__(self, memo: dict[int, Any]) -> RunScores:
        return self


def per_query(metrics_file: Path, metrics: Mapping[str, Any]) -> dict[str, float]:
    """The run's ``per_query_ap`` (query name -> AP); {} when absent or malformed (warned)."""
    aps = metrics.get("per_query_ap")
    if aps is None:
        return {}
    if isinstance(aps, Mapping) and all(is_number(v) for v in aps.values()):
        return {str(k): float(v) for k, v in aps.items()}
    log.warning("%s: per_query_ap is not query -> number: no interval for this run", metrics_file)
    return {}


def map_interval(metrics: Mapping[str, Any], aps: Mapping[str, float]) -> list[float | None]:
    """``[low, high]`` of the run's mAP: its ``map_ci95``, else bootstrapped from ``aps``.

    A ``map_ci95`` that is not two finite numbers in order (a tampered file) is ignored.
    """
    saved = metrics.get("map_ci95")
    if (
        isinstance(saved, list)
        and len(saved) == 2
        and all(is_number(v) for v in saved)
        and saved[0] <= saved[1]
    ):
        return [float(saved[0]), float(saved[1])]
    return list(bootstrap_ci(list(aps.values()))) if aps else [None, None]


def paired_to_baseline(df: pd.DataFrame, pos: int) -> pd.DataFrame | None:
    """:data:`PAIRED_COLUMNS` of every row of ``df`` against the row at position ``pos``.

    Each run is paired with the baseline over the queries both have in ``per_query_ap``
    (matched by name): the 95% percentile bootstrap interval of the mean AP difference (row
    minus baseline) and the two-sided sign-flip p-value
    (:func:`search_lab.evaluation.stats.paired_comparison`, 2000 resamples, seed 0), and the number
    of shared queries. A row without per-query APs gets NaN everywhere; one that shares no query
    gets NaN and ``Δmap_shared`` 0. None when the baseline has no per-query APs (or ``df`` lacks
    ``attrs["per_query_ap"]``).
    """
    scores = df.attrs.get(PER_QUERY_ATTR) or {}
    base = scores.get(str(df["run"].iloc[pos]))
    if not base:
        return None
    cells = []
    for run in df["run"]:
        aps = scores.get(str(run)) or {}
        _, a, b = shared_values(base, aps)
        if a.size == 0:
            cells.append((math.nan, math.nan, math.nan, 0 if aps else math.nan))
            continue
        result = paired_comparison(a, b)
        cells.append((result.low, result.high, result.p_value, result.n))
    paired = pd.DataFrame(cells, columns=list(PAIRED_COLUMNS), index=df.index)
    return paired.astype({PAIRED_COLUMNS[3]: "Int64"})  # a count, missing where no data
