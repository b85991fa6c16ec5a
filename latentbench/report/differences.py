"""Which differences of the generation metric are real, in words:

- :func:`versus_initialisation`: does each space's trained generator beat its own untrained
  initialisation (the step-0 evaluation) beyond the intervals? A comparison of spaces at a
  step where the models are not yet distinguishable from their start ranks initial conditions;
- :func:`between_spaces`: each pair of spaces on the headline's generation column: better
  beyond the intervals, or not separable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import combinations

from latentbench.report.catalog import GENERATION_COLUMNS, Direction, direction
from latentbench.report.curves import Band, bands
from latentbench.report.load import Point, Run, RunKind
from latentbench.report.significance import fmt_interval
from latentbench.report.tables import Table
from latentbench.stats import Interval, Verdict, compare


def _at(band: Band, i: int) -> Interval:
    low, high = band.low[i], band.high[i]
    low = low if math.isfinite(low) else -math.inf
    high = high if math.isfinite(high) else math.inf
    return Interval(float(band.value[i]), float(low), float(high), band.seeds, "recorded")


def generation_metric(table: Table | None) -> tuple[str, str] | None:
    """(column key, metric name) of the headline's generation column, if any."""
    if table is None:
        return None
    for key in GENERATION_COLUMNS:
        cells = [r.cells[key] for r in table.rows if key in r.cells]
        if cells:
            return key, cells[0].scalar.metric
    return None


def versus_initialisation(runs: Sequence[Run], metric: str) -> list[str]:
    """One line per generator run with a step-0 and a later evaluation of ``metric``."""
    d = direction(metric)
    if d is Direction.NONE:
        return []
    points: list[Point] = [p for r in runs if r.kind is RunKind.TRAIN_GEN for p in r.curves]
    lines = []
    for band in bands(points, metric):
        if len(band.steps) < 2 or band.steps[0] != 0:
            continue
        start, end = _at(band, 0), _at(band, len(band.steps) - 1)
        verdict = compare(end, start, d is Direction.HIGHER)
        what = {
            Verdict.BETTER: "better than its untrained initialisation beyond the intervals",
            Verdict.WORSE: "worse than its untrained initialisation beyond the intervals",
            Verdict.TIE: "NOT separable from its untrained initialisation",
        }[verdict]
        lines.append(
            f"{band.space}: {metric} {fmt_interval(end.value, end)} at step {band.steps[-1]} vs "
            f"{fmt_interval(start.value, start)} at step 0: {what}"
        )
    return lines


def between_spaces(table: Table | None) -> list[str]:
    """One line per pair of spaces on the generation column of the headline."""
    found = generation_metric(table)
    if table is None or found is None:
        return []
    key, metric = found
    d = direction(metric)
    cells = [(r.space, r.cells[key].scalar) for r in table.rows if key in r.cells]
    lines = []
    for (a, sa), (b, sb) in combinations(cells, 2):
        if sa.interval is None or sb.interval is None or d is Direction.NONE:
            lines.append(f"{a} vs {b}: no interval, no verdict")
            continue
        verdict = compare(sa.interval, sb.interval, d is Direction.HIGHER)
        text = {
            Verdict.BETTER: f"{a} better beyond the intervals",
            Verdict.WORSE: f"{b} better beyond the intervals",
            Verdict.TIE: "not separable",
        }[verdict]
        lines.append(f"{a} vs {b} on {metric}: {text}")
    return lines
