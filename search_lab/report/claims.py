"""The report's claims in words, each computed over every row it speaks of.

Pure functions of plain values, so a test can hand them series that rise, fall or both and
check the words. Two rules hold throughout: a trend ("never falls", "falls") is read from
every step of a series, not from its two ends; and "best" is said only of a winner that is
measurably ahead of every other candidate, otherwise the sentence names them all as "no
clear winner among ...".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

TOLERANCE = 5e-4
"""Steps smaller than this count as flat: the report prints three decimals."""


def steps(values: Sequence[float], tol: float = TOLERANCE) -> list[int]:
    """The sign of every step of ``values``: +1 up, -1 down, 0 within ``tol``."""
    return [0 if abs(b - a) <= tol else (1 if b > a else -1) for a, b in pairwise(values)]


def trend(values: Sequence[float], tol: float = TOLERANCE) -> str:
    """How a series moves over all its steps, in words.

    ``"rises at every step"``, ``"falls at every step"``, ``"never falls"`` (some steps flat),
    ``"never rises"``, ``"stays level"``, ``"rises, then falls"`` (one peak) or ``"goes up and
    down"``; ``"has one value"`` for fewer than two.
    """
    signs = steps(values, tol)
    if not signs:
        return "has one value"
    moves = [s for s in signs if s]
    if not moves:
        return "stays level"
    if all(s > 0 for s in moves):
        return "rises at every step" if len(moves) == len(signs) else "never falls"
    if all(s < 0 for s in moves):
        return "falls at every step" if len(moves) == len(signs) else "never rises"
    first_down = moves.index(-1)
    if moves[0] > 0 and all(s < 0 for s in moves[first_down:]):
        return "rises, then falls"
    return "goes up and down"


def largest_drop(values: Sequence[float]) -> tuple[float, int, int]:
    """The largest fall from an earlier value to a later one: (drop >= 0, from index, to index)."""
    drop, where = 0.0, (0, 0)
    peak = 0
    for i, v in enumerate(values):
        if values[peak] < v:
            peak = i
        if values[peak] - v > drop:
            drop, where = values[peak] - v, (peak, i)
    return drop, *where


def dimension_sentence(
    rows: Sequence[tuple[str, Sequence[float]]], columns: Sequence[str], tol: float = TOLERANCE
) -> str:
    """Which methods keep or lose recall as dimension grows, read from every step of each row.

    ``rows`` are (method, recall per column); ``columns`` name the dimensions (``"32-d"``).
    """
    keep, lose, exact = [], [], []
    for name, values in rows:
        if all(abs(v - 1.0) <= tol for v in values):
            exact.append(name)
            continue
        drop, i, j = largest_drop(values)
        if drop <= tol:
            words = trend(values, tol)
            keep.append(name if words == "never falls" else f"{name} ({words})")
        else:
            lose.append(
                f"{name} ({trend(values, tol)}; down {drop:.3f} from {values[i]:.3f} at "
                f"{columns[i]} to {values[j]:.3f} at {columns[j]})"
            )
    parts = []
    if lose:
        parts.append("Recall falls at some step as dimension grows for " + "; ".join(lose))
    if keep:
        lead = "it never falls for " if lose else "Recall never falls as dimension grows for "
        parts.append(lead + "; ".join(keep))
    if exact:
        lead = "it stays at 1 for " if parts else "Recall stays at 1 for "
        parts.append(f"{lead}{', '.join(exact)} (exhaustive search)")
    return "; ".join(parts) + "." if parts else ""


@dataclass(frozen=True)
class Candidate:
    """One row in a "which is best" claim: its label, its mAP text, and whether the highest-mAP
    row is measurably better than it (paired interval excludes 0, p < 0.05)."""

    label: str
    text: str
    beaten_by_top: bool


def winner_sentence(group: str, top: Candidate, others: Sequence[Candidate]) -> str:
    """``**X** is best of <group> ...`` only if ``top`` measurably beats every other row.

    Otherwise ``no clear winner among <group>: X ..., Y ... (each within noise of the
    highest)``, naming every row the top does not measurably beat, highest first.
    """
    if not others:
        return f"Of {group}, only **{top.label}** ({top.text}) ran."
    tied = [c for c in others if not c.beaten_by_top]
    if not tied:
        return (
            f"Of {group}, **{top.label}** is best ({top.text}), measurably ahead of each of "
            f"the other {len(others)}."
        )
    names = ", ".join(f"{c.label} ({c.text})" for c in [top, *tied])
    return (
        f"No clear winner among {group}: {names} are within noise of the highest "
        f"(paired test, p ≥ 0.05 or an interval that includes 0)."
    )
