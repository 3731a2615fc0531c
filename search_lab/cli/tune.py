"""Tune a recipe on your labelled collection: ``python -m search_lab.tune --budget N [overrides]``.

An Optuna study (TPE, seed 0) searches a recipe space (:mod:`search_lab.evaluation.tune_space`) on
the
**tune** side of the split only (``dataset.split=tune``), one evaluation per trial. The study
lives in ``<out>/study.journal`` (Optuna's journal file storage), so an interrupted run resumes
where it stopped when the same command is run again: finished trials are kept and never run
again, a trial cut off mid-way is run again with the same settings. Then the winner is run
**once** on the test side and reported with its 95% interval and its paired differences to
the baselines (plain ``feature=cnn`` by default; ``--baseline`` adds others). It writes
``experiments/tuned/<name>.yaml`` (``+experiment=tuned/<name>``) and ``<out>/summary.md``.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from search_lab.cli.glue import CONF_DIR, compose_config
from search_lab.core import ConfigError, DatasetError, atomic_write_text, run_command, write_json
from search_lab.data import check_ground_truth
from search_lab.evaluation import (
    SPACES,
    as_overrides,
    bootstrap_ci,
    evaluate,
    experiment_yaml,
    paired_comparison,
    shared_values,
)
from search_lab.retrieval import build_pipeline

log = logging.getLogger(__name__)

MIN_TEST_QUERIES = 20
"""Fewer test queries give no useful interval (a bootstrap over a handful of values)."""
DEFAULT_BASELINES = ("feature=cnn",)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m search_lab.tune", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides naming the collection")
    parser.add_argument("--budget", type=int, required=True, help="trials on the tune side")
    parser.add_argument("--name", required=True, help="name of the tuned experiment")
    parser.add_argument("--space", choices=sorted(SPACES), default="cnn")
    parser.add_argument("--out", type=Path, default=None, help="default outputs/tune/<name>")
    parser.add_argument(
        "--baseline",
        action="append",
        default=None,
        help="overrides of a baseline to compare with on the test side (repeatable; "
        f"default: {' and '.join(DEFAULT_BASELINES)})",
    )
    parser.add_argument(
        "--experiments",
        type=Path,
        default=CONF_DIR / "experiment" / "tuned",
        help=argparse.SUPPRESS,
    )
    return parser.parse_args(argv)


def side_config(base: list[str], side: str, extra: list[str] = ()) -> dict[str, Any]:
    """The composed config of ``base`` + ``extra`` on one side of the split, quiet."""
    return compose_config([*base, *extra, f"dataset.split={side}", "progress=false"])


def check_collection(base: list[str]) -> int:
    """The number of test-side queries; one line if there is no ground truth or too few."""
    pipe = build_pipeline(side_config(base, "all"))
    try:
        full = pipe.dataset.load()
        check_ground_truth(full)
    except DatasetError as err:
        raise DatasetError(f"tune needs a labelled collection (groups or labels): {err}") from err
    test = len(pipe.dataset.side(full).queries) if len(full.queries) > 1 else 0
    if test < MIN_TEST_QUERIES:
        raise DatasetError(
            f"the test side holds {test} queries; a 95% interval needs at least "
            f"{MIN_TEST_QUERIES}: add labelled images (about {2 * MIN_TEST_QUERIES} queries "
            "in all with the default dataset.split_fraction=0.5)"
        )
    return test


def open_study(out: Path, name: str) -> Any:
    """The study stored in ``out/study.journal``; a trial cut off mid-way is queued again."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out.mkdir(parents=True, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(out / "study.journal")))
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        direction="maximize",
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=0),
    )
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        study.enqueue_trial(trial.params)  # its settings run again: not lost
        log.warning("trial %d was interrupted: it runs again", trial.number)
    return study


def run_trials(study: Any, args: argparse.Namespace, base: list[str], out: Path) -> None:
    """Trials until ``args.budget`` have finished (those of earlier runs count), with progress."""
    import optuna

    done = len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))
    seen = {str(t.user_attrs.get("overrides")): t.value for t in study.trials if t.value}
    for number in range(done + 1, args.budget + 1):
        trial = study.ask()
        values = SPACES[args.space](trial)
        overrides = as_overrides(values)
        key = str(overrides)
        trial.set_user_attr("overrides", overrides)
        if key in seen:  # the sampler proposed a finished recipe: its figure, not a re-run
            value = seen[key]
        else:
            metrics = evaluate(build_pipeline(side_config(base, "tune", overrides))).metrics
            value = seen[key] = metrics["map"]
            write_json(out / "trials" / f"{trial.number:04d}.json", {"overrides": overrides,
                       "map": value, "map_ci95": metrics["map_ci95"]})  # fmt: skip
        study.tell(trial, value)
        best = study.best_value
        print(f"trial {number}/{args.budget}: tune mAP {value:.4f} (best {best:.4f})  "
              + " ".join(overrides), flush=True)  # fmt: skip


def test_side(base: list[str], extra: list[str]) -> dict[str, float]:
    """Per-query AP of one configuration on the test side."""
    return evaluate(build_pipeline(side_config(base, "test", extra))).metrics["per_query_ap"]


def report(args: argparse.Namespace, base: list[str], study: Any, out: Path) -> list[str]:
    """Run the winner once on the test side, compare it with the baselines: summary lines."""
    best = study.best_trial
    winner = best.user_attrs["overrides"]
    ap = test_side(base, winner)
    values = list(ap.values())
    low, high = bootstrap_ci(values)
    mean = sum(values) / len(values)
    lines = [
        f"# Tuned recipe `{args.name}`",
        "",
        f"Tuned with `python -m search_lab.tune {shlex.join(sys.argv[1:])}`: {args.budget} "
        f"trials of the `{args.space}` space on the tune side only (`dataset.split=tune`).",
        "",
        f"- best tune mAP: {best.value:.4f} (trial {best.number + 1})",
        f"- recipe: `{' '.join(winner)}`",
        f"- **test mAP: {mean:.4f} [{low:.4f}, {high:.4f}]** over {len(values)} queries "
        f"(`{_evaluate(base, f'+experiment=tuned/{args.name}')}`)",
    ]
    for baseline in args.baseline or DEFAULT_BASELINES:
        _, a, b = shared_values(test_side(base, baseline.split()), ap)
        c = paired_comparison(a, b)
        lines.append(
            f"- vs `{baseline}` ({a.mean():.4f}, `{_evaluate(base, baseline)}`): "
            f"{c.delta:+.4f} [{c.low:+.4f}, {c.high:+.4f}], paired sign-flip p = {c.p_value:.4f}"
        )
    return lines


def _evaluate(base: list[str], extra: str) -> str:
    """The evaluate command of one configuration on the test side."""
    parts = ["python -m search_lab.evaluate", shlex.join(base), extra, "dataset.split=test"]
    return " ".join(p for p in parts if p)


def run(args: argparse.Namespace) -> Path:
    """Tune, test once, write the experiment file and the summary; returns the summary path."""
    if args.budget < 1:
        raise ConfigError(f"--budget must be at least 1 trial, got {args.budget}")
    base = [o for o in args.overrides if not o.startswith("dataset.split=")]
    out = args.out or Path("outputs") / "tune" / args.name
    check_collection(base)
    study = open_study(out, args.name)
    run_trials(study, args, base, out)
    lines = report(args, base, study, out)
    header = [line.lstrip("#- ").replace("`", "").replace("*", "") for line in lines[2:] if line]
    atomic_write_text(args.experiments / f"{args.name}.yaml",
                      experiment_yaml(_values(study.best_trial, args.space), header))  # fmt: skip
    summary = atomic_write_text(out / "summary.md", "\n".join(lines) + "\n")
    print("\n".join(lines[4:]))
    print(f"wrote {args.experiments / f'{args.name}.yaml'} and {summary}")
    return summary


def _values(trial: Any, space: str) -> dict[str, Any]:
    """The winner's overrides as values (the space re-run on its fixed parameters)."""
    import optuna

    return SPACES[space](optuna.trial.FixedTrial(trial.params))


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: a problem is one line and exit status 2."""
    args = parse_args(argv)
    return run_command(lambda: run(args))
