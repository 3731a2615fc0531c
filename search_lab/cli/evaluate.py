"""Evaluate one configuration on a retrieval dataset: ``python -m search_lab.evaluate [overrides]``.

Builds the run's :class:`~search_lab.retrieval.pipeline.Pipeline` once, lets the core evaluate it
(:func:`search_lab.evaluation.protocol.evaluate`) and writes ``metrics.json`` and ``rankings.dat``
into the Hydra output folder, with a summary on stdout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from search_lab.cli import distractor_output as distractor_report
from search_lab.cli.glue import CONF_DIR, run_job
from search_lab.core import (
    METRICS_FILE,
    RANKINGS_FILE,
    ConfigError,
    ownership,
    summary_lines,
    write_json,
    write_rankings,
)
from search_lab.evaluation import Evaluation, evaluate
from search_lab.retrieval import build_pipeline


def write(result: Evaluation, out_dir: Path, feature: str) -> list[str]:
    """Write an evaluation's files into ``out_dir``; returns the summary lines to show."""
    metrics = result.metrics
    out_dir.mkdir(parents=True, exist_ok=True)
    write_rankings(out_dir / RANKINGS_FILE, result.rankings)
    write_json(out_dir / METRICS_FILE, metrics)
    lines = [f"results in {out_dir}", *summary_lines(metrics)]
    if "distractors" in metrics:
        distractor_report.write(out_dir, metrics["distractors"], feature)
        lines += distractor_report.summary_lines(metrics["distractors"])
    return lines


def run(cfg: dict[str, Any], out_dir: Path, *, quiet: bool = False) -> dict[str, Any]:
    """Evaluate ``cfg`` and write its results into ``out_dir``; returns the metrics dict.

    The summary is printed unless ``quiet`` (callers that print their own, as benchmarks).
    """
    pipe = build_pipeline(cfg)
    outputs = (METRICS_FILE, RANKINGS_FILE, *distractor_report.FILES)
    if problem := ownership.run_folder_problem(out_dir, outputs, METRICS_FILE):
        raise ConfigError(f"{out_dir} is not a run folder search_lab wrote: {problem}; "
                          "choose another hydra.run.dir (nothing was overwritten)")  # fmt: skip
    result = evaluate(pipe)
    lines = write(result, out_dir, pipe.extractor.name)
    if not quiet:
        print("\n".join(lines))
    return result.metrics


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> float:
    """Hydra entry point; returns mAP for sweepers that optimise it."""
    return run_job(run, cfg)["map"]


if __name__ == "__main__":
    from search_lab.cli.glue import entry

    entry(main, "config")
