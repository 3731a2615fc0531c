"""The one place parameter values are checked: each check returns the value or raises ConfigError.

Every message has one shape, ``<name> must be <what is allowed>, got <value>``, where ``name``
says whose parameter it is: ``"hog: orientations"`` (a feature), ``"annoy index: n_trees"``
(an index), ``"post.pca_dim"`` or ``"executor.max_retries"`` (a config section). Choices say
``<owner>: unknown <param> <value>; choose one of: ...``. Booleans are never numbers here:
``true`` is not 1, and ``"maybe"`` is not true.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

from search_lab.core.errors import ConfigError


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer (numpy ones too), not a bool."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """Whether ``value`` is a finite real number, not a bool."""
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def require(name: str, value: Any, ok: bool, allowed: str) -> None:
    """Raise ``ConfigError("<name> must be <allowed>, got <value>")`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{name} must be {allowed}, got {value!r}")


def require_int(name: str, value: Any, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` as an int in ``[minimum, maximum]``: "an integer >= 1", "an integer in [1, 16]"."""
    allowed = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
    in_range = is_int(value) and value >= minimum and (maximum is None or value <= maximum)
    require(name, value, in_range, f"an integer {allowed}")
    return int(value)


def require_positive_int(name: str, value: Any, *, null: bool = False) -> int | None:
    """``value`` as an int > 0 ("a positive integer"); with ``null``, None passes too."""
    if null and value is None:
        return None
    allowed = "a positive integer or null" if null else "a positive integer"
    require(name, value, is_int(value) and value > 0, allowed)
    return int(value)


def require_number(
    name: str, value: Any, minimum: float = 0.0, *, strict: bool = False, below: float | None = None
) -> float:
    """``value`` as a float ``>= minimum`` (``> minimum`` when ``strict``), ``< below`` if given.

    Messages: "a number >= 0", "a positive number" (``strict`` with minimum 0), "a number > 1",
    "a number in [0, 1)".
    """
    ok = is_number(value) and (value > minimum if strict else value >= minimum)
    ok = ok and (below is None or value < below)
    if below is not None:
        allowed = f"a number in {'(' if strict else '['}{minimum:g}, {below:g})"
    elif strict and minimum == 0:
        allowed = "a positive number"
    else:
        allowed = f"a number {'>' if strict else '>='} {minimum:g}"
    require(name, value, ok, allowed)
    return float(value)


def require_bool(name: str, value: Any) -> bool:
    """``value`` if it is a real boolean ("true or false")."""
    require(name, value, isinstance(value, bool), "true or false")
    return bool(value)


def require_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``; else "<owner>: unknown <param> ...; choose one of"."""
    if value not in choices:
        owner, _, param = name.rpartition(": ")
        where = f"{owner}: " if owner else ""
        raise ConfigError(
            f"{where}unknown {param} {value!r}; choose one of: {', '.join(map(str, choices))}"
        )
    return str(value)


def require_int_pair(name: str, value: Any, minimum: int = 1) -> tuple[int, int]:
    """``value`` (an int or a pair of ints, each >= ``minimum``) as ``(rows, cols)``."""
    if is_int(value):
        value = (value, value)
    ok = isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2
    ok = ok and all(is_int(v) and v >= minimum for v in value)
    allowed = f"a pair of integers >= {minimum} (rows, cols) or one such integer"
    require(name, value, ok, allowed)
    return int(value[0]), int(value[1])


def require_jobs(name: str, value: Any) -> int:
    """A thread count: -1 (every core) or a positive integer."""
    require(
        name, value, is_int(value) and (value == -1 or value > 0), "-1 (every core) or positive"
    )
    return int(value)


def require_seed(name: str, value: Any, *, null: bool = False) -> int | None:
    """A random seed: a non-negative integer; with ``null``, None (the library's own) passes."""
    if null and value is None:
        return None
    allowed = "null or a non-negative integer" if null else "a non-negative integer"
    require(name, value, is_int(value) and value >= 0, allowed)
    return int(value)
