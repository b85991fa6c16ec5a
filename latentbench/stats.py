"""Intervals for every headline number, and when a difference between two of them is real.

Numpy and scipy only; nothing else of latentbench but :mod:`latentbench.errors`, so metrics,
runners and the report can all use it. ``docs/statistics.md`` gives each method, why it was
chosen and its coverage as measured by ``tests/test_stats.py``.

- :class:`Interval`: a value with its interval; :meth:`Interval.to_keys` writes it into
  ``metrics.json`` as ``<name>``, ``<name>/ci95_low``, ``<name>/ci95_high``, ``<name>/n``.
- :func:`mean_interval`: the mean of per-image values (PSNR, SSIM, LPIPS): BCa bootstrap,
  expanded for small samples; Student t below :data:`MIN_BOOTSTRAP_N` values.
- :func:`proportion_interval` (Wilson) for independent successes (edit success, probe accuracy);
  :func:`clustered_proportion_interval` when trials come in clusters (GenEval's images of one
  prompt); :func:`stratified_mean_interval` for a mean of group means (GenEval overall).
- :func:`jackknife_interval`: a Frechet distance's interval from the distances with each group
  of the generated set left out (``metrics.fid.frechet_interval`` computes them);
  :func:`fd_sample_warning` below one sample per dimension.
- :func:`spearman_interval`: Spearman's rho with a Fisher-z (Bonett-Wright) interval.
- :func:`t_interval` / :func:`seed_aggregate`: one value per training seed.
- :func:`compare` / :func:`best_index`: "better beyond the intervals", else a tie.

A value with no interval at all (one image, n < 4 pairs) gets an unbounded one, -inf to +inf,
which ``metrics.json`` stores as null bounds, and which is never separated from anything.
"""

from __future__ import annotations

import enum
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats
from scipy.special import ndtr, ndtri

LEVEL = 0.95  # the level of every interval unless a caller asks otherwise
N_RESAMPLES = 2000  # bootstrap resamples: tail quantiles from ~50 resamples each
MIN_BOOTSTRAP_N = 10  # below: Student t (a bootstrap never reaches beyond the sample's range)
FD_GROUPS = 10  # groups of the FD jackknife: G + 1 distances, t with G - 1 degrees of freedom
MIN_SPEARMAN_N = 4  # the Fisher-z interval needs n - 3 > 0
MIN_PROBE_HELDOUT = 100  # a held-out split below this: accuracy +- ~0.1, a warning is recorded
_CHUNK = 4_000_000  # bootstrap count-matrix entries per step (32 MB)


# -- the interval --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Interval:
    """``value`` with a ``level`` interval [``low``, ``high``] from ``n`` units by ``method``.

    Bounds are -inf / +inf when the data cannot bound the value (too few units); ``value`` is
    NaN where it is undefined (Spearman's rho of a constant variable).
    """

    value: float
    low: float
    high: float
    n: int
    method: str
    level: float = LEVEL

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high

    def to_keys(self, name: str) -> dict[str, float | int]:
        """``{name: value, name/ci95_low: low, name/ci95_high: high, name/n: n}``.

        Non-finite numbers become null when ``atomic.atomic_write_json`` writes them."""
        low, high = interval_keys(name, self.level)
        return {name: self.value, low: self.low, high: self.high, f"{name}/n": self.n}

    @classmethod
    def from_keys(
        cls, metrics: Mapping[str, Any], name: str, level: float = LEVEL
    ) -> Interval | None:
        """Read back what :meth:`to_keys` wrote; None when the value or its bounds are absent,
        or the bounds are inverted (low > high: not an interval).

        A null bound (an unbounded side) reads as -inf / +inf, a null value as NaN."""
        low, high = interval_keys(name, level)
        if name not in metrics or low not in metrics or high not in metrics:
            return None

        def number(key: str, default: float) -> float:
            v = metrics[key]
            return default if v is None else float(v)

        n = metrics.get(f"{name}/n")
        lo, hi = number(low, -math.inf), number(high, math.inf)
        if lo > hi:
            return None
        return cls(
            value=number(name, math.nan),
            low=lo,
            high=hi,
            n=int(n) if n is not None else 0,
            method="read from metrics",
            level=level,
        )


def interval_keys(name: str, level: float = LEVEL) -> tuple[str, str]:
    """The keys of the bounds of ``name``: ``(name/ci95_low, name/ci95_high)`` at 0.95."""
    low, high = _bound_names(level)
    return f"{name}/{low}", f"{name}/{high}"


def _bound_names(level: float) -> tuple[str, str]:
    tag = f"ci{level * 100:g}"
    return f"{tag}_low", f"{tag}_high"


def _unbounded(value: float, n: int, why: str, level: float) -> Interval:
    return Interval(float(value), -math.inf, math.inf, n, f"none: {why}", level)


def _finite_1d(values: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{what}: expected a non-empty 1-d sequence, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what}: values must be finite (got NaN or inf)")
    return x


# -- means -----------------------------------------------------------------------------------------
def mean_interval(
    values: Sequence[float] | np.ndarray,
    level: float = LEVEL,
    seed: int = 0,
    n_resamples: int = N_RESAMPLES,
) -> Interval:
    """The mean of per-unit values (per-image PSNR, ...) with its interval.

    - n >= :data:`MIN_BOOTSTRAP_N`: expanded BCa bootstrap (the bounds :func:`bootstrap_mean_bounds`
      gives many samples at once),
      deterministic for a seed; a few seconds at n = 50,000.
    - 2 <= n < :data:`MIN_BOOTSTRAP_N`: Student t (:func:`t_interval`); with so few values the
      bootstrap interval cannot reach beyond the sample's range and covers too rarely.
    - n = 1: unbounded. All values equal: the zero-width interval [v, v].
    """
    x = _finite_1d(values, "mean_interval")
    if x.size < MIN_BOOTSTRAP_N:
        return t_interval(x, level)
    low, high = _stratified_bounds([x[None]], level, seed, n_resamples)
    method = f"BCa bootstrap of the mean, expanded for n ({n_resamples} resamples, seed {seed})"
    return Interval(float(x.mean()), float(low[0]), float(high[0]), x.size, method, level)


def bootstrap_mean_bounds(
    *groups: np.ndarray,
    level: float = LEVEL,
    seed: int = 0,
    n_resamples: int = N_RESAMPLES,
) -> tuple[np.ndarray, np.ndarray]:
    """Bounds for many samples at once: each group (R, n_g) -> low (R,), high (R,).

    One group: the interval of each row's mean (row r gives ``mean_interval(x[r])`` to
    round-off for n >= :data:`MIN_BOOTSTRAP_N`); several: of the mean of the group means, as
    :func:`stratified_mean_interval`. Vectorised for coverage simulations: all rows share the
    resampled indices drawn from ``seed``.
    """
    arrays = [np.asarray(g, np.float64) for g in groups]
    if not arrays or any(a.ndim != 2 or a.shape[0] != arrays[0].shape[0] for a in arrays):
        raise ValueError("bootstrap_mean_bounds: expected groups (R, n_g) with the same R")
    return _stratified_bounds(arrays, level, seed, n_resamples)


def stratified_mean_interval(
    groups: Mapping[str, Sequence[float] | np.ndarray],
    level: float = LEVEL,
    seed: int = 0,
    n_resamples: int = N_RESAMPLES,
) -> Interval:
    """The mean of the group means (GenEval overall: the mean of the task scores, each the mean
    of its per-prompt scores), with an expanded BCa bootstrap that resamples within each group.

    Groups keep their sizes in every resample, as the benchmark fixes them. Each group needs at
    least one value; a group of one value adds no width. The expansion uses the smallest group.
    """
    if not groups:
        raise ValueError("stratified_mean_interval: no groups")
    arrays = [
        _finite_1d(v, f"stratified_mean_interval group {k!r}")[None] for k, v in groups.items()
    ]
    value = float(np.mean([a.mean() for a in arrays]))
    n = sum(a.shape[1] for a in arrays)
    if max(a.shape[1] for a in arrays) < 2:
        return _unbounded(value, n, "one value per group", level)
    low, high = _stratified_bounds(arrays, level, seed, n_resamples)
    method = (
        f"stratified BCa bootstrap of the mean of {len(arrays)} group means, expanded "
        f"({n_resamples} resamples, seed {seed})"
    )
    return Interval(value, float(low[0]), float(high[0]), n, method, level)


def _stratified_bounds(
    groups: list[np.ndarray], level: float, seed: int, n_resamples: int
) -> tuple[np.ndarray, np.ndarray]:
    """Expanded BCa bounds of the mean of group means; each group (R, n_g) -> bounds (R,), (R,).

    BCa (Efron 1987) corrects the percentile interval for bias (z0) and skewness (the
    acceleration, from the empirical influence of each value, (x - m_g) / n_g). The normal
    quantile z is replaced by sqrt(n / (n - 1)) t_{n-1} (Hesterberg's expansion; n = the smallest
    group), which undoes the bootstrap's 1/n variance and z-for-t narrowness at small n.
    """
    rng = np.random.default_rng(seed)
    means = [g.mean(1) for g in groups]  # each (R,)
    estimate = np.mean(means, axis=0)  # (R,)
    boot = np.mean([_bootstrap_means(g, n_resamples, rng) for g in groups], axis=0)  # (R, B)

    infl = np.concatenate([(g - m[:, None]) / g.shape[1] for g, m in zip(groups, means)], 1)
    s2, s3 = (infl**2).sum(1), (infl**3).sum(1)  # (R,)
    accel = np.divide(s3, 6 * s2**1.5, out=np.zeros_like(s2), where=s2 > 0)
    below = (boot < estimate[:, None]).mean(1) + 0.5 * (boot == estimate[:, None]).mean(1)
    z0 = ndtri(np.clip(below, 0.5 / n_resamples, 1 - 0.5 / n_resamples))  # (R,)

    n = min(g.shape[1] for g in groups)
    z = ndtri((1 + level) / 2)
    if n > 1:
        z = math.sqrt(n / (n - 1)) * stats.t.ppf((1 + level) / 2, n - 1)
    boot.sort(1)
    bounds = []
    for zq, limit in ((-z, 0.0), (z, 1.0)):
        shifted = z0 + zq
        denom = 1 - accel * shifted  # (R,); <= 0: past the pole of BCa's map (strong skew with
        # a large expanded z, e.g. a group of 2), where the level has gone to its limit
        safe = np.where(denom > 0, denom, 1.0)
        q = np.where(denom > 0, ndtr(z0 + shifted / safe), limit)  # (R,) quantile levels
        bounds.append(_row_quantiles(boot, q))
    low, high = bounds
    flat = np.ptp(np.concatenate(groups, 1), axis=1) == 0  # all values equal: [v, v]
    return np.where(flat, estimate, low), np.where(flat, estimate, high)


def _bootstrap_means(x: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``n_resamples`` resamples (with replacement) of each row of x (R, n) -> (R, B).

    As count matrices (B, n) times x: one matrix product instead of R * B * n gathers; every
    row uses the same resamples."""
    rows, n = x.shape
    out = np.empty((rows, n_resamples))  # (R, B)
    step = max(1, _CHUNK // n)
    for start in range(0, n_resamples, step):
        b = min(step, n_resamples - start)
        idx = rng.integers(0, n, size=(b, n)) + n * np.arange(b)[:, None]  # (b, n)
        counts = np.bincount(idx.ravel(), minlength=b * n).reshape(b, n)
        out[:, start : start + b] = x @ counts.T / n
    return out


def _row_quantiles(sorted_rows: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per-row quantile q[r] of sorted rows (R, B), linear interpolation (numpy's default)."""
    pos = q * (sorted_rows.shape[1] - 1)  # (R,)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, sorted_rows.shape[1] - 1)
    rows = np.arange(len(q))
    frac = pos - lo
    return sorted_rows[rows, lo] * (1 - frac) + sorted_rows[rows, hi] * frac


def t_interval(values: Sequence[float] | np.ndarray, level: float = LEVEL) -> Interval:
    """Mean +- t_{n-1} sd / sqrt(n): exact for normal values; unbounded for one value."""
    x = _finite_1d(values, "t_interval")
    mean = float(x.mean())
    if x.size < 2:
        return _unbounded(mean, 1, "one value", level)
    half = float(stats.t.ppf((1 + level) / 2, x.size - 1) * x.std(ddof=1)) / math.sqrt(x.size)
    return Interval(mean, mean - half, mean + half, x.size, "Student t", level)


def seed_aggregate(values: Sequence[float], level: float = LEVEL) -> dict[str, Any]:
    """One number per training seed -> ``{mean, std, n, values, ci95_low, ci95_high}``.

    ``std`` is the sample standard deviation (ddof 1, NaN for one seed); the interval is
    :func:`t_interval` (unbounded for one seed, as wide as t_{n-1} says for two)."""
    x = _finite_1d(values, "seed_aggregate")
    iv = t_interval(x, level)
    low, high = _bound_names(level)
    return {
        "mean": iv.value,
        "std": float(x.std(ddof=1)) if x.size > 1 else math.nan,
        "n": int(x.size),
        "values": [float(v) for v in x],
        low: iv.low,
        high: iv.high,
    }


# -- proportions ----------------------------------------------------------------------------------
def proportion_interval(successes: int, n: int, level: float = LEVEL) -> Interval:
    """Successes out of n independent trials, with Wilson's score interval (scipy).

    Use it where every trial is its own unit: one edit, one held-out probe image, one image per
    prompt. Wilson stays inside [0, 1] and is not degenerate at 0 or n successes."""
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(
            f"proportion_interval: need 0 <= successes <= n, n >= 1; got {successes}/{n}"
        )
    ci = stats.binomtest(int(successes), int(n)).proportion_ci(level, method="wilson")
    return Interval(successes / n, float(ci.low), float(ci.high), int(n), "Wilson score", level)


def clustered_proportion_interval(
    successes: Sequence[int], trials: Sequence[int], level: float = LEVEL
) -> Interval:
    """A success rate over trials that come in clusters (GenEval: the images of one prompt).

    Images of one prompt succeed or fail together more often than independent trials, so the
    interval is Wilson's on an effective number of trials (Kish's design effect):
    n_eff = p (1 - p) / var(p), var(p) the ratio estimator's variance over clusters, n_eff kept
    within [clusters, trials]; 0 or all successes take n_eff = clusters. One trial per cluster
    is exactly :func:`proportion_interval`. ``n`` of the result is the number of clusters.
    """
    k = np.asarray(successes, np.float64)
    m = np.asarray(trials, np.float64)
    if (
        k.ndim != 1
        or k.shape != m.shape
        or k.size == 0
        or np.any(m < 1)
        or np.any(k < 0)
        or np.any(k > m)
    ):
        raise ValueError(
            "clustered_proportion_interval: need 0 <= successes <= trials, trials >= 1 per cluster"
        )
    clusters, total = k.size, m.sum()
    p = float(k.sum() / total)
    var = (
        ((k - p * m) ** 2).sum() / (clusters * (clusters - 1) * m.mean() ** 2)
        if clusters > 1
        else 0.0
    )
    n_eff = p * (1 - p) / var if var > 0 else float(clusters)
    n_eff = float(np.clip(n_eff, clusters, total))
    low, high = _wilson(p, n_eff, level)
    method = f"Wilson score on n_eff = {n_eff:.1f} of {int(total)} trials (design effect)"
    return Interval(float(p), low, high, clusters, method, level)


def _wilson(p: float, n: float, level: float) -> tuple[float, float]:
    """Wilson's score interval for a proportion p of n (possibly fractional) trials."""
    z = float(ndtri((1 + level) / 2))
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def probe_heldout_warning(n: int, minimum: int = MIN_PROBE_HELDOUT) -> str | None:
    """A line for the result when a linear probe's held-out split is small, else None."""
    if n >= minimum:
        return None
    return (
        f"probe held-out split has {n} samples < {minimum}: its accuracy is uncertain by "
        f"about +-{1 / math.sqrt(max(n, 1)):.2f}; use a larger held-out split"
    )


# -- Frechet distances ----------------------------------------------------------------------------
def jackknife_interval(
    value: float, left_out: Sequence[float], n: int, level: float = LEVEL
) -> Interval:
    """A delete-a-group jackknife t-interval for a non-negative ``value`` (a Frechet distance)
    from the G values ``left_out`` computed without each group in turn:
    se^2 = (G-1)/G sum (v_g - mean)^2, value +- t_{G-1} se, low clipped at 0. ``n``: units.

    The distance of N samples is biased upward by ~c/N, so the interval is about the number
    reported for N samples, not the distance of infinitely many. A bootstrap over rows is badly
    off here: repeated rows shrink the effective sample, so every resampled distance is larger
    and the percentile interval misses (docs/statistics.md). Groups should have equal sizes
    (+-1, as row i in group i % G gives): sizes that differ more move the left-out distances by
    their bias and widen the interval."""
    v = np.asarray(left_out, np.float64)  # (G,)
    k = v.size
    if k < 2:
        return _unbounded(value, n, "fewer than 2 left-out values", level)
    se = math.sqrt((k - 1) / k * ((v - v.mean()) ** 2).sum())
    half = float(stats.t.ppf((1 + level) / 2, k - 1)) * se
    method = f"delete-a-group jackknife over {k} groups, t interval"
    return Interval(value, max(0.0, value - half), value + half, n, method, level)


def fd_sample_warning(n: int, dim: int) -> str | None:
    """A line for the result when an FD has fewer samples than feature dimensions, else None."""
    if n >= dim:
        return None
    return (
        f"FD on {n} samples < {dim} feature dimensions: the covariance is singular, the "
        f"distance is biased upward and noisy; compare only equal sample counts, use >= {dim}"
    )


# -- correlation ----------------------------------------------------------------------------------
def spearman_interval(
    x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, level: float = LEVEL
) -> Interval:
    """Spearman's rho with a Fisher-z interval, standard error sqrt((1 + rho^2 / 2) / (n - 3))
    (Bonett & Wright 2000).

    - n < :data:`MIN_SPEARMAN_N` pairs: [-1, 1], nothing can be said.
    - |rho| = 1 (likely with few pairs): the transform uses the largest |rho| below 1 that n
      ranks allow, 1 - 12 / (n^3 - n), and the interval's far side is +-1.
    - A constant x or y: rho is undefined (NaN), the interval [-1, 1].
    """
    a, b = _finite_1d(x, "spearman_interval x"), _finite_1d(y, "spearman_interval y")
    if a.shape != b.shape:
        raise ValueError(f"spearman_interval: {a.size} x values but {b.size} y values")
    n = a.size
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return Interval(math.nan, -1.0, 1.0, n, "none: a constant variable", level)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho = float(stats.spearmanr(a, b).statistic)
    if n < MIN_SPEARMAN_N:
        return Interval(rho, -1.0, 1.0, n, f"none: n < {MIN_SPEARMAN_N}", level)
    edge = 1 - 12 / (n**3 - n)
    z = math.atanh(min(max(rho, -edge), edge))
    half = float(ndtri((1 + level) / 2)) * math.sqrt((1 + rho * rho / 2) / (n - 3))
    low = -1.0 if rho <= -edge - 1e-12 else math.tanh(z - half)
    high = 1.0 if rho >= edge + 1e-12 else math.tanh(z + half)
    return Interval(rho, low, high, n, "Fisher z, Bonett-Wright standard error", level)


# -- which differences are real -------------------------------------------------------------------
class Verdict(str, enum.Enum):
    """How value A compares with value B given their intervals."""

    BETTER = "better"  # A's interval lies entirely on the better side of B's
    WORSE = "worse"
    TIE = "not separable"  # the intervals overlap (or touch)


def compare(a: Interval, b: Interval, higher_is_better: bool) -> Verdict:
    """A vs B beyond their intervals. Non-overlap of two 95% intervals is a conservative test
    (about p < 0.006 for equal widths): a "better" is a difference, a tie may still be one."""
    hi_a, lo_a, hi_b, lo_b = a.high, a.low, b.high, b.low
    if lo_a > hi_b:
        return Verdict.BETTER if higher_is_better else Verdict.WORSE
    if lo_b > hi_a:
        return Verdict.WORSE if higher_is_better else Verdict.BETTER
    return Verdict.TIE


def best_index(intervals: Sequence[Interval | None], higher_is_better: bool) -> int | None:
    """The index of the best entry when it beats every other one beyond the intervals, else
    None (ties, overlapping intervals, an all-equal column, fewer than two values).

    None entries and NaN values (empty cells) take no part.
    """
    valid = [
        (i, iv) for i, iv in enumerate(intervals) if iv is not None and not math.isnan(iv.value)
    ]
    if len(valid) < 2:
        return None
    sign = 1.0 if higher_is_better else -1.0
    best_i, best = max(valid, key=lambda p: sign * p[1].value)
    others = [iv for i, iv in valid if i != best_i]
    if all(compare(best, o, higher_is_better) is Verdict.BETTER for o in others):
        return best_i
    return None
