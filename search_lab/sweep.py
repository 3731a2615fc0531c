"""Sweep job folders, resuming and the summary table: they live in :mod:`search_lab.cli.sweep`."""

from search_lab.cli.sweep import (
    RESULT_NEUTRAL_KEYS,
    AggregateSweep,
    comparable_config,
    finished_metrics,
    job_subdir,
    write_summary,
)

__all__ = [
    "RESULT_NEUTRAL_KEYS",
    "AggregateSweep",
    "comparable_config",
    "finished_metrics",
    "job_subdir",
    "write_summary",
]
