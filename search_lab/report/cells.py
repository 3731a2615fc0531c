"""Table cells, paired comparisons and sentences the report's sections share.

Every number the report prints is read from a run's ``metrics.json`` (through
:class:`~search_lab.report.runs.Outcome`) or from ``bench/ann.json``; nothing is typed in.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from search_lab.core import RANKINGS_FILE, read_text
from search_lab.evaluation import (
    PairedComparison,
    map_interval,
    p_text,
    paired_comparison,
    per_query,
    shared_values,
)
from search_lab.report.runs import Outcome

RUN_COLUMN = "run"
MAP_COLUMN = "mAP [95% CI]"


def interval(o: Outcome) -> tuple[float, float]:
    """The 95% bootstrap interval of the run's mAP (its ``map_ci95``)."""
    low, high = map_interval(o.metrics, per_query(o.folder, o.metrics))
    return (o.metrics["map"], o.metrics["map"]) if low is None else (low, high)


def map_cell(o: Outcome) -> str:
    """``0.5686 [0.515, 0.626]``: the mAP and its 95% interval, or why the run is missing."""
    if not o.ok:
        return o.reason
    low, high = interval(o)
    return f"{o.metrics['map']:.4f} [{low:.3f}, {high:.3f}]"


def short(o: Outcome) -> str:
    """``0.569 [0.515, 0.626]`` for sentences."""
    low, high = interval(o)
    return f"{o.metrics['map']:.3f} [{low:.3f}, {high:.3f}]"


def run_cell(o: Outcome) -> str:
    """The run folder, relative to the working folder when inside it."""
    path = o.folder.resolve()
    try:
        return f"`{path.relative_to(Path.cwd())}`"
    except ValueError:
        return f"`{path}`"


def metric(o: Outcome, key: str, sub: str | None = None, fmt: str = "{:.4f}") -> str:
    """One formatted metrics value (``sub``: a key inside a dict value), '' when absent."""
    if not o.ok:
        return ""
    value: Any = o.metrics.get(key)
    if sub is not None and isinstance(value, dict):
        value = value.get(sub)
    return "" if value is None else fmt.format(value)


def paired(base: Outcome, other: Outcome) -> PairedComparison | None:
    """``other`` against ``base`` over the queries both scored (per-query AP)."""
    if not (base.ok and other.ok):
        return None
    a = per_query(base.folder / "metrics.json", base.metrics)
    b = per_query(other.folder / "metrics.json", other.metrics)
    _, x, y = shared_values(a, b)
    return paired_comparison(x, y) if x.size else None


def delta_text(pc: PairedComparison | None) -> str:
    """``+0.067 [+0.024, +0.112], p = 0.003``, the paired mAP difference in words."""
    if pc is None:
        return "not comparable"
    p = p_text(pc.p_value)
    return f"{pc.delta:+.3f} [{pc.low:+.3f}, {pc.high:+.3f}], p {'' if p[0] == '<' else '= '}{p}"


def verdict(pc: PairedComparison | None) -> str:
    """Whether a paired difference is measurable: 'better', 'worse' or 'no clear difference'."""
    if pc is None or not pc.significant() or pc.low <= 0 <= pc.high:
        return "no clear difference"
    return "better" if pc.delta > 0 else "worse"


def find(outcomes: Sequence[Outcome], label: str, group: str | None = None) -> Outcome | None:
    """The finished outcome with this label (and group), or None."""
    for o in outcomes:
        if o.ok and o.run.label == label and (group is None or o.run.group == group):
            return o
    return None


def best(outcomes: Sequence[Outcome]) -> Outcome | None:
    """The finished outcome with the highest mAP."""
    done = [o for o in outcomes if o.ok]
    return max(done, key=lambda o: o.metrics["map"]) if done else None


def top_lists(o: Outcome, k: int) -> dict[str, list[str]]:
    """Each query's top-``k`` result names from the run's ``rankings.dat``.

    Read through :func:`search_lab.core.readers.read_text` (a regular UTF-8 file of bounded size;
    UnreadableFileError otherwise); any line splits into a query and its names.
    """
    out = {}
    for line in read_text(o.folder / RANKINGS_FILE).split("\n"):
        if not line:
            continue
        tokens = line.split(" ", 2 * k + 1)
        out[tokens[0]] = tokens[2 : 2 * k + 1 : 2]
    return out


def same_top(a: Outcome, b: Outcome, k: int = 10) -> float | None:
    """Share of the queries whose top-``k`` lists are identical in two runs (same order)."""
    if not (a.ok and b.ok):
        return None
    ta, tb = top_lists(a, k), top_lists(b, k)
    shared = set(ta) & set(tb)
    return sum(ta[q] == tb[q] for q in shared) / len(shared) if shared else None


def not_run(outcomes: Sequence[Outcome]) -> str:
    """A sentence listing the rows that could not run, or ''."""
    missing = [
        f"{o.run.label} ({o.reason.removeprefix('not run: ')})" for o in outcomes if not o.ok
    ]
    return ("Not run: " + "; ".join(missing) + ".") if missing else ""


def display(path: str | os.PathLike) -> str:
    """A path relative to the working folder when inside it."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def winner(outcomes: Sequence[Outcome], group: str) -> str:
    """The "which is best" sentence over every finished outcome (see claims.winner_sentence)."""
    from search_lab.report.claims import Candidate, winner_sentence

    done = sorted((o for o in outcomes if o.ok), key=lambda o: -o.metrics["map"])
    if not done:
        return ""
    top = done[0]

    def candidate(o: Outcome) -> Candidate:
        beaten = o is not top and verdict(paired(o, top)) == "better"
        return Candidate(o.run.label, f"mAP {short(o)}", beaten)

    return winner_sentence(group, candidate(top), [candidate(o) for o in done[1:]])
