"""The evaluation runs behind the findings report: compose, run or reuse, and time extraction.

Each run the report cites lives in its own stable folder under ``outputs/report/runs/``, named
after its overrides as a sweep job is (:func:`search_lab.cli.sweep.job_subdir`). A folder whose
``metrics.json`` was computed from the same configuration is reused, not recomputed, so a
second report (or one resumed after an interruption) only runs what is missing.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search_lab.cli import comparable_config, compose_config, finished_metrics, job_subdir
from search_lab.core import SearchLabError, read_json_object, write_json
from search_lab.retrieval import dataset_of_config, extract_files, result_neutral

log = logging.getLogger(__name__)

COST_FILE = "extract_cost.json"
NEUTRAL = ("progress=false",)
"""Overrides every report run gets; they cannot change a result (retrieval.result_neutral)."""
REUSE_ONLY_REASON = "not run: --quick cites it only once the full report has made it"
_WEIGHTS_HINT = re.compile(r"feature\.weights=\S+")


@dataclass(frozen=True)
class Run:
    """One evaluation the report needs: a short label and its ``evaluate`` overrides."""

    label: str
    overrides: tuple[str, ...] = ()
    group: str = ""  # the row group a table shows it in (e.g. "families", "hsv bins")
    optional: bool = False  # a configuration error (e.g. missing weights) is a row, not a failure
    reuse_only: bool = False  # cited only if an earlier (full) report made it; never run here

    def command(self, dataset_overrides: tuple[str, ...] = ()) -> str:
        """The command that reproduces this run's numbers."""
        return " ".join(["python -m search_lab.evaluate", *self.overrides, *dataset_overrides])


@dataclass
class Outcome:
    """A run's result: its folder and metrics, or why it was not run."""

    run: Run
    folder: Path
    metrics: dict[str, Any] | None = None
    reason: str = ""
    reused: bool = False
    seconds: float = 0.0
    cost_ms: float | None = None  # extraction ms per image (one process), when measured
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether the run has metrics."""
        return self.metrics is not None


def run_folder(root: Path, run: Run, dataset_overrides: tuple[str, ...]) -> Path:
    """The stable folder of ``run`` under ``root`` (its overrides, as a sweep names jobs)."""
    kept = [o for o in dataset_overrides if not result_neutral(o.split("=", 1)[0])]
    name = job_subdir(",".join([*run.overrides, *kept]), 0)
    return root / ("defaults" if name == "job0" else name)


def not_run_reason(err: SearchLabError) -> str:
    """A one-line reason for an optional run that could not run (missing weights named)."""
    text = str(err).splitlines()[0]
    hint = _WEIGHTS_HINT.search(text)
    if "weights" in text and hint:
        return f"not run: weights missing ({hint.group()})"
    return f"not run: {text}"


def ensure(run: Run, root: Path, dataset_overrides: tuple[str, ...]) -> Outcome:
    """Reuse ``run``'s finished folder, or evaluate it there (quietly); see :class:`Outcome`."""
    from search_lab.cli import evaluate  # torch etc. only when a run is needed

    folder = run_folder(root, run, dataset_overrides)
    cfg = compose_config([*run.overrides, *dataset_overrides, *NEUTRAL])
    done = finished_metrics(folder, cfg)
    if done is not None:
        return Outcome(run, folder, done, reused=True)
    if run.reuse_only:
        return Outcome(run, folder, reason=REUSE_ONLY_REASON)
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # evaluate's terminal summary
            metrics = evaluate.run(cfg, folder)
    except SearchLabError as err:
        if not run.optional:
            raise
        log.info("%s: %s", run.label, err)
        return Outcome(run, folder, reason=not_run_reason(err))
    seconds = time.perf_counter() - start
    log.info("%s: mAP %.4f (%.1f s)", run.label, metrics["map"], seconds)
    return Outcome(run, folder, metrics, seconds=seconds)


def extraction_cost(outcome: Outcome, n_images: int) -> float | None:
    """Extraction ms per image of the run's feature, timed once on its first ``n_images``.

    One process (hand-crafted features) or the CNN engine's threads, after one warm-up image, so
    features compare on the same footing whatever the cache holds. Saved beside the run's
    ``metrics.json`` and reused while the feature configuration is the same.
    """
    if not outcome.ok:
        return None
    cfg = outcome.metrics["config"]
    feature = comparable_config(cfg["feature"])
    path = outcome.folder / COST_FILE
    if path.is_file():
        try:
            saved = read_json_object(path)
            if saved.get("feature") == feature and saved.get("n_images") == n_images:
                return float(saved["ms_per_image"])
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("%s is unreadable: timing extraction again", path)
    data = dataset_of_config(cfg["dataset"])
    names = data.names[: n_images + 1]
    extract_files(data.root, names[:1], cfg["feature"], workers=1, progress=False)
    feats = extract_files(data.root, names[1:], cfg["feature"], workers=1, progress=False)
    ms = 1e3 * feats.seconds / max(1, len(names) - 1)
    write_json(path, {"feature": feature, "n_images": n_images, "ms_per_image": ms})
    return ms
