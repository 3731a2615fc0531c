"""Confidence in a figure: bootstrap intervals of a mean and paired tests between two runs.

Functions over per-query values (e.g. average precisions). Every random draw comes from a
seeded generator, so a figure is the same on every run.

Which parts are scipy's, decided by measurement when the switch was made (the hand-written
bootstrap of commit 87e7cce against scipy 1.17.1 with numpy 2.4.6, 2000 resamples as the
project uses, seed 0; times are medians of 7 calls on a shared 2-core machine):

- the percentile bootstrap is :func:`scipy.stats.bootstrap`. Same seed, same intervals: it
  draws the same resample indices from the generator, so on all 53 per-query AP vectors saved
  on the machine (4 to 1000 queries, the published hsv run among them) no interval end moved
  by more than 2.2e-16, none at the 3 or 4 decimals README prints, and every saved
  ``map_ci95`` is reproduced. Speed is close: 15.1 ms (hand-written) against 16.1 ms (scipy)
  for 500 queries, 31.3 against 40.0 ms for 1000, milliseconds beside a run's search.
- the paired sign-flip test stays hand-written. :func:`scipy.stats.permutation_test`
  (``permutation_type="samples"``) gives the same p-values when it enumerates (the hand-computed
  cases of the tests) but is 80 to 150 times slower
  (51 ms against 0.6 ms for 500 differences, 122 against 0.8 ms for 1000: it draws one float
  per sign, this module one random byte per 8 signs), its Monte-Carlo p-values come from
  another random stream (23 of 46 pairs of saved runs changed at 3 decimals, by up to 0.025,
  so the p-values README publishes would move), and it enumerates only when ``2**m`` patterns
  fit in ``n_resamples`` (16 differences: Monte-Carlo 0.0005 instead of the exact 3.1e-5).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

EXACT_LIMIT = 16
"""Up to this many non-zero differences the sign-flip test enumerates every sign pattern."""

_BLOCK = 1 << 22
"""Values drawn per block of resamples (32 MB of bootstrap indices, 4 MB of random sign
bytes), to bound memory."""


def _as_values(values: object, name: str = "values") -> np.ndarray:
    """``values`` as a 1-D float array; ValueError if it is empty, not 1-D or not finite."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty: a mean needs at least one value")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return array


def _check_options(n_resamples: int, level: float) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")


def bootstrap_ci(
    values: object, *, n_resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of ``values``.

    Parameters
    ----------
    values : array_like, shape (n,)
        Per-query values, e.g. the average precision of every query (their mean is the mAP).
    n_resamples : int
        Number of bootstrap resamples; each draws ``n`` values with replacement.
    seed : int
        Seed of the ``numpy.random.default_rng`` generator: the same seed gives the same
        interval.
    level : float
        Coverage of the interval, e.g. 0.95 for a 95% interval.

    Returns
    -------
    (low, high) : tuple of float
        The ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles (numpy's default linear
        interpolation) of the resampled means. Constant values give exactly ``(c, c)``.

    Raises
    ------
    ValueError
        If ``values`` is empty, not one-dimensional or not finite, or an option is out of range.

    Notes
    -----
    :func:`scipy.stats.bootstrap` (``method="percentile"``) draws the resamples in batches of
    about :data:`_BLOCK` values, so memory stays bounded. The values are centred on their
    mean before resampling and the mean added back, so a constant sample has no rounding
    error; one value (which scipy refuses) gives ``(value, value)``, as every resample would.
    """
    array = _as_values(values)
    _check_options(n_resamples, level)
    mean = float(array.mean())
    if array.size == 1:
        return mean, mean
    interval = scipy_stats.bootstrap(
        (array - mean,),
        np.mean,
        n_resamples=n_resamples,
        batch=max(1, _BLOCK // array.size),
        confidence_level=level,
        method="percentile",
        rng=np.random.default_rng(seed),
        vectorized=True,
    ).confidence_interval
    return mean + float(interval.low), mean + float(interval.high)


def _sign_patterns(m: int) -> np.ndarray:
    """Every vector of ``m`` signs (+1/-1): shape ``(2**m, m)``."""
    bits = (np.arange(2**m)[:, None] >> np.arange(m)) & 1
    return (1 - 2 * bits).astype(np.float64)


def sign_flip_p_value(
    differences: object, *, n_resamples: int = 2000, seed: int = 0, exact_limit: int = EXACT_LIMIT
) -> tuple[float, bool]:
    """Two-sided p-value of the paired sign-flip (randomisation) test that the mean is 0.

    Parameters
    ----------
    differences : array_like, shape (n,)
        Paired differences, e.g. ``ap_b - ap_a`` per query.
    n_resamples : int
        Random sign patterns drawn when there are more than ``exact_limit`` non-zero
        differences.
    seed : int
        Seed of the generator for those random patterns.
    exact_limit : int
        Largest number of non-zero differences whose ``2**m`` sign patterns are enumerated.

    Returns
    -------
    (p, exact) : (float, bool)
        Under the null hypothesis each difference is as likely to have either sign, so the
        statistic ``|sum(d)|`` is compared with ``|sum(s * d)|`` over sign vectors ``s``.
        Zero differences do not change any sum and are left out; with ``m`` non-zero ones:
        ``m == 0`` gives p = 1; ``m <= exact_limit`` gives the exact p, the share of all
        ``2**m`` patterns (the observed one included) at least as extreme; otherwise a
        Monte-Carlo p ``(count + 1) / (n_resamples + 1)``, where ``count`` of ``n_resamples``
        random patterns are at least as extreme. ``exact`` says which.
    """
    d = _as_values(differences, "differences")
    _check_options(n_resamples, 0.5)
    nonzero = d[d != 0.0]
    m = nonzero.size
    if m == 0:
        return 1.0, True
    observed = abs(float(nonzero.sum()))
    slack = 1e-9 * float(np.abs(nonzero).sum())  # sums in another order round differently
    if m <= exact_limit:
        sums = np.abs(_sign_patterns(m) @ nonzero)
        return float(np.mean(sums >= observed - slack)), True
    rng = np.random.default_rng((seed, 1))  # a stream apart from the bootstrap's
    tables, n_bytes = _byte_tables(nonzero), -(-m // 8)
    offsets = np.arange(n_bytes, dtype=np.int32) * 256
    total, rows = float(nonzero.sum()), max(1, _BLOCK // n_bytes)
    count = 0
    for start in range(0, n_resamples, rows):  # blocks of patterns, each one matrix
        size = (min(rows, n_resamples - start), n_bytes)
        packed = rng.integers(0, 256, size=size, dtype=np.uint8)  # 8 random signs a byte
        flipped = np.take(tables, packed + offsets).sum(axis=1)  # sum of d where s = -1
        count += int(np.count_nonzero(np.abs(total - 2.0 * flipped) >= observed - slack))
    return (count + 1) / (n_resamples + 1), False


def _byte_tables(d: np.ndarray) -> np.ndarray:
    """Flat lookup table: entry ``256 * j + v`` sums ``d[8 * j + k]`` over the bits k set in v.

    A random sign pattern is then one random byte per 8 differences, and its flipped sum costs
    one lookup per byte instead of a multiply-add per difference.
    """
    padded = np.zeros(-(-d.size // 8) * 8)
    padded[: d.size] = d
    bits = (np.arange(256)[:, None] >> np.arange(8)) & 1  # (256, 8): bit k of every byte
    return (padded.reshape(-1, 8) @ bits.T.astype(np.float64)).ravel()


@dataclass(frozen=True)
class PairedComparison:
    """Run B against run A over the same queries: mean difference, its interval, its p-value."""

    delta: float
    """Mean of ``b - a`` over the paired queries (B's mean minus A's)."""
    low: float
    """Lower end of the paired percentile bootstrap interval of ``delta``."""
    high: float
    """Upper end of that interval."""
    p_value: float
    """Two-sided p-value of the paired sign-flip test (see :func:`sign_flip_p_value`)."""
    n: int
    """Number of paired queries."""
    exact: bool
    """Whether ``p_value`` comes from exact enumeration rather than Monte-Carlo."""
    level: float = 0.95
    """Coverage of the interval."""

    def significant(self, alpha: float = 0.05) -> bool:
        """Whether the difference is significant at ``alpha``: ``p_value < alpha``."""
        return self.p_value < alpha


def paired_comparison(
    a: object,
    b: object,
    *,
    n_resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    exact_limit: int = EXACT_LIMIT,
) -> PairedComparison:
    """Compare two runs on the same queries: ``b - a`` with its interval and p-value.

    Parameters
    ----------
    a, b : array_like, shape (n,)
        The per-query values of runs A and B, in the same query order.
    n_resamples, seed, level, exact_limit
        As for :func:`bootstrap_ci` and :func:`sign_flip_p_value`.

    Returns
    -------
    PairedComparison
        ``delta`` = mean(b - a); ``low``/``high`` = the percentile bootstrap interval of the
        mean of the paired differences (queries resampled with replacement, both runs'
        values kept together); ``p_value`` = the two-sided paired sign-flip randomisation
        test, exact for at most ``exact_limit`` non-zero differences, else Monte-Carlo with
        the ``(count + 1) / (n_resamples + 1)`` correction.

    Raises
    ------
    ValueError
        If ``a`` and ``b`` differ in shape, are empty, not 1-D or not finite.
    """
    first, second = _as_values(a, "a"), _as_values(b, "b")
    if first.shape != second.shape:
        raise ValueError(f"a and b must pair up: shapes {first.shape} and {second.shape}")
    d = second - first
    low, high = bootstrap_ci(d, n_resamples=n_resamples, seed=seed, level=level)
    p, exact = sign_flip_p_value(d, n_resamples=n_resamples, seed=seed, exact_limit=exact_limit)
    return PairedComparison(float(d.mean()), low, high, p, int(d.size), exact, level)


def shared_values(
    a: Mapping[str, float], b: Mapping[str, float]
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The keys (e.g. query names) both mappings have, sorted, and their values in each."""
    names = sorted(set(a) & set(b))
    return (
        names,
        np.array([a[n] for n in names], dtype=np.float64),
        np.array([b[n] for n in names], dtype=np.float64),
    )
