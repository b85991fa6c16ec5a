"""Which value of a column is best beyond the intervals, which are tied, how to write a cell.

A value is marked best only when :func:`latentbench.stats.best_index` says it beats every
other value of its column beyond both intervals. Otherwise the column says why not: a tie
(the entries not separable from the top value are named), all values equal, or values
without an interval (which are never marked, and block the mark of the others).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass

from latentbench.report.catalog import Direction
from latentbench.stats import Interval, Verdict, best_index, compare

BEST_MARK = "\u2605"  # the star after a best value


class Mark(str, enum.Enum):
    BEST = "best"  # separated from every other value beyond the intervals
    TIE = "tie"  # not separable from the top value (and nothing is best)
    NONE = ""


@dataclass(frozen=True)
class ColumnVerdict:
    marks: dict[int, Mark]  # entry index -> mark (entries without one are absent)
    text: str  # one line for the table ("" when the column has no direction)


def _unbounded(value: float) -> Interval:
    return Interval(value, -math.inf, math.inf, 0, "none recorded")


def column_verdict(
    entries: Sequence[tuple[str, float, Interval | None] | None], d: Direction
) -> ColumnVerdict:
    """``entries``: (label, value, interval) per row, None for an empty cell."""
    valid = [(i, e) for i, e in enumerate(entries) if e is not None and math.isfinite(e[1])]
    if d is Direction.NONE or len(valid) < 2:
        return ColumnVerdict({}, "")
    if len({e[1] for _, e in valid}) == 1:
        return ColumnVerdict({}, "all equal")
    missing = [e[0] for _, e in valid if e[2] is None]
    if len(missing) == len(valid):
        return ColumnVerdict({}, "no intervals: nothing marked")
    intervals = [None if e is None else (e[2] or _unbounded(e[1])) for e in entries]
    higher = d is Direction.HIGHER
    best = best_index(intervals, higher)
    if best is not None:
        return ColumnVerdict({best: Mark.BEST}, f"{entries[best][0]} best beyond the intervals")
    sign = 1.0 if higher else -1.0
    top, (label, _, _) = max(valid, key=lambda p: sign * p[1][1])
    top_iv = intervals[top]
    tied = [i for i, _ in valid if compare(top_iv, intervals[i], higher) is Verdict.TIE]
    text = "tie: " + ", ".join(entries[i][0] for i in tied) + " not separable"
    if missing:
        text += "; no interval: " + ", ".join(missing)
    return ColumnVerdict(dict.fromkeys(tied, Mark.TIE), text)


def fmt(value: float) -> str:
    """Integers as integers, everything else with 4 significant digits."""
    if not math.isfinite(value):
        return str(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}"


def fmt_interval(value: float, interval: Interval | None) -> str:
    """'value ± half-interval' with the half-width to 2 significant digits and the value to
    the same decimals; 'value (≥ low)' / 'value (≤ high)' when one side is unbounded; the value
    alone when there is no interval."""
    if interval is None:
        return fmt(value)
    low, high = math.isfinite(interval.low), math.isfinite(interval.high)
    if low != high:
        return (
            f"{fmt(value)} (≥ {fmt(interval.low)})"
            if low
            else f"{fmt(value)} (≤ {fmt(interval.high)})"
        )
    if not low:
        return fmt(value)
    half = interval.half_width
    if half <= 0:
        return f"{fmt(value)} \u00b1 0"
    decimals = max(0, 1 - math.floor(math.log10(half)))
    if decimals == 0:
        return f"{value:.0f} \u00b1 {half:.0f}"
    return f"{value:.{decimals}f} \u00b1 {half:.{decimals}f}"


def interval_text(interval: Interval | None) -> str:
    """The bounds for a tooltip: '95% interval [low, high]', or why there is none."""
    if interval is None:
        return "no interval recorded"
    if not (math.isfinite(interval.low) or math.isfinite(interval.high)):
        return "unbounded interval (too few units)"
    low = fmt(interval.low) if math.isfinite(interval.low) else "-inf"
    high = fmt(interval.high) if math.isfinite(interval.high) else "inf"
    return f"{interval.level:.0%} interval [{low}, {high}]"
