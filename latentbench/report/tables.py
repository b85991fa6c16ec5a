"""The report's tables: the headline ("which space?") first, then the secondary tables.

- :func:`build_headline`: one row per space, the :data:`~latentbench.report.catalog.HEADLINE`
  columns (reconstruction, generation at the final step, training budget), each cell
  "value ± half-interval";
- :func:`build_tables`: one table per benchmark (its result metrics), then the latent
  diagnostics and the training numbers of every run in tables of their own.

Marks come from :mod:`latentbench.report.significance`: best only beyond the intervals. The long
formats ``metrics.csv`` / ``curves.csv`` hold every number of every run with its bounds.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from latentbench.atomic import atomic_path
from latentbench.report.catalog import (
    HEADLINE,
    TITLES,
    Direction,
    HeadlineColumn,
    Role,
    direction,
    role,
)
from latentbench.report.load import Point, Run, Scalar
from latentbench.report.significance import Mark, column_verdict, fmt_interval


@dataclass(frozen=True)
class Cell:
    scalar: Scalar
    mark: Mark = Mark.NONE

    @property
    def text(self) -> str:
        return fmt_interval(self.scalar.value, self.scalar.interval)


@dataclass
class Column:
    key: str
    label: str
    direction: Direction
    verdict: str = ""  # best / tie / all equal / no intervals (significance.column_verdict)
    note: int | None = None  # footnote of the variant its cells share


@dataclass
class Row:
    run: str
    space: str
    cells: dict[str, Cell]


@dataclass
class Table:
    key: str  # for file names
    title: str
    columns: list[Column]
    rows: list[Row]
    show_run: bool = True  # the headline has one row per space: no run column
    intro: str = ""
    notes: dict[str, int] = field(default_factory=dict)  # variant text -> footnote number
    warnings: list[str] = field(default_factory=list)  # settings that differ between rows

    def row_label(self, row: Row) -> str:
        spaces = Counter(r.space for r in self.rows)
        if not self.show_run or (spaces[row.space] == 1 and row.space):
            return row.space
        return f"{row.space} ({row.run})" if row.space and row.space != row.run else row.run

    def cell_note(self, column: Column, cell: Cell) -> int | None:
        """A cell's own footnote, when its column's cells do not share one variant."""
        if not cell.scalar.variant or column.note is not None:
            return None
        return self.notes[cell.scalar.variant]

    def runs(self) -> list[str]:
        return list(dict.fromkeys(c.scalar.run for r in self.rows for c in r.cells.values()))


def finish(table: Table) -> Table:
    """Marks and verdicts per column (beyond the intervals), and the variant footnotes."""
    for column in table.columns:
        entries = []
        for row in table.rows:
            cell = row.cells.get(column.key)
            s = cell.scalar if cell else None
            entries.append((table.row_label(row), s.value, s.interval) if s else None)
        verdict = column_verdict(entries, column.direction)
        column.verdict = verdict.text
        for i, mark in verdict.marks.items():
            row = table.rows[i]
            row.cells[column.key] = Cell(row.cells[column.key].scalar, mark)
        for row in table.rows:
            v = row.cells[column.key].scalar.variant if column.key in row.cells else ""
            if v and v not in table.notes:
                table.notes[v] = len(table.notes) + 1
        variants = {r.cells[column.key].scalar.variant for r in table.rows if column.key in r.cells}
        if len(variants) == 1 and (v := next(iter(variants))):
            column.note = table.notes[v]
    return table


# -- the headline -------------------------------------------------------------------------------
def _metric_of(spec: HeadlineColumn, runs: Sequence[Run]) -> str | None:
    """The metric name that fills ``spec``: the most common match over its runs."""
    names: Counter[str] = Counter()
    for run in runs:
        if run.kind in spec.kinds:
            metrics = dict.fromkeys(s.metric for s in run.scalars)
            names.update(m for m in metrics if re.fullmatch(spec.pattern, m))
    return names.most_common(1)[0][0] if names else None


def headline_label(spec: HeadlineColumn, metric: str) -> str:
    unit = f" ({spec.unit})" if spec.unit else ""
    name = metric.removeprefix("fd_")  # the extractor of an FD
    shown = "" if metric.lower() == spec.label.lower() or metric == spec.key else f" [{name}]"
    return f"{spec.label}{unit}{shown}"


def build_headline(runs: Sequence[Run]) -> Table | None:
    """One row per space: reconstruction, generation at the final step, training budget."""
    rows: dict[str, Row] = {}
    columns: list[Column] = []
    hidden: dict[tuple[str, str, str], list[str]] = {}  # (space, shown, other run) -> columns
    for spec in HEADLINE:
        metric = _metric_of(spec, runs)
        if metric is None:
            continue
        columns.append(Column(spec.key, headline_label(spec, metric), direction(metric)))
        seen: dict[str, str] = {}
        for run in runs:
            for s in run.scalars if run.kind in spec.kinds else ():
                if s.metric != metric:
                    continue
                row = rows.setdefault(s.space, Row("", s.space, {}))
                if spec.key not in row.cells:
                    seen[s.space] = run.name
                    row.cells[spec.key] = Cell(s)
                elif seen[s.space] != run.name:  # (one run may hold it twice: metrics, results)
                    hidden.setdefault((s.space, seen[s.space], run.name), []).append(spec.label)
    if not columns:
        return None
    intro = (
        "One row per space: reconstruction, generation at the final step, training budget. "
        "Each cell: value \u00b1 half its 95% interval."
    )
    table = Table("headline", "Which space?", columns, list(rows.values()), False, intro)
    table.warnings += [
        f"{space}: {', '.join(labels)} from {shown}; {other} has them too (not shown)"
        for (space, shown, other), labels in hidden.items()
    ]
    return finish(table)


# -- the secondary tables -----------------------------------------------------------------------
def build_table(key: str, title: str, scalars: Sequence[Scalar], intro: str = "") -> Table:
    rows: dict[tuple[str, str], Row] = {}
    order: list[str] = []
    for s in scalars:
        rows.setdefault((s.run, s.space), Row(s.run, s.space, {})).cells[s.metric] = Cell(s)
        if s.metric not in order:
            order.append(s.metric)
    directed = [c for c in order if direction(c) is not Direction.NONE]
    undirected = [c for c in order if c not in directed]
    columns = [Column(c, c, direction(c)) for c in directed + undirected]
    return finish(Table(key, title, columns, list(rows.values()), intro=intro))


def build_tables(runs: Sequence[Run]) -> list[Table]:
    """One table per benchmark (result metrics), then latent diagnostics, then training."""
    groups: dict[str, list[Scalar]] = {}
    for run in runs:
        groups.setdefault(run.benchmark, []).extend(
            s for s in run.scalars if role(s.metric) is Role.RESULT
        )
    tables = [
        build_table(b, TITLES.get(b, f"Other runs: {b}"), scalars)
        for b, scalars in groups.items()
        if scalars
    ]
    for r, title, intro in (
        (Role.DIAGNOSTIC, "Latent diagnostics", "Properties of each space's latents (recon)."),
        (Role.TRAINING, "Training", "Losses and throughput as the runs logged them."),
    ):
        scalars = [s for run in runs for s in run.scalars if role(s.metric) is r]
        if scalars:
            tables.append(build_table(r.value, title, scalars, intro))
    return tables


# -- long-format CSV ----------------------------------------------------------------------------
METRICS_COLUMNS = ("run", "kind", "space", "metric", "value", "ci95_low", "ci95_high", "variant")
CURVES_COLUMNS = (
    "run",
    "kind",
    "space",
    "metric",
    "step",
    "seconds",
    "seed",
    "value",
    "ci95_low",
    "ci95_high",
    "variant",
)


def _opt(value: float | int | None) -> str:
    return "" if value is None else repr(value)


def write_metrics_csv(runs: Iterable[Run], path: Path) -> int:
    """Every final scalar with its bounds (empty: none recorded), one per line."""
    rows = []
    for r in runs:
        for s in r.scalars:
            iv = s.interval
            low, high = (iv.low, iv.high) if iv else (None, None)
            rows.append((r.name, r.benchmark, s.space, s.metric, repr(s.value), _opt(low),
                         _opt(high), s.variant))  # fmt: skip
    _write_csv(path, METRICS_COLUMNS, rows)
    return len(rows)


def write_curves_csv(runs: Iterable[Run], path: Path) -> int:
    """Every metrics.jsonl point (of every seed), one per line."""
    rows = [
        (
            r.name,
            r.benchmark,
            p.space,
            p.metric,
            p.step,
            _opt(p.seconds),
            _opt(p.seed),
            repr(p.value),
            _opt(p.low),
            _opt(p.high),
            p.variant,
        )  # fmt: skip
        for r in runs
        for p in r.curves
    ]
    _write_csv(path, CURVES_COLUMNS, rows)
    return len(rows)


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def points_by_line(points: Iterable[Point]) -> dict[tuple[str, str, int | None], list[Point]]:
    """Points grouped by (run, space, seed), each sorted by step (last write of a step wins)."""
    lines: dict[tuple[str, str, int | None], dict[int, Point]] = {}
    for p in points:
        lines.setdefault((p.run, p.space, p.seed), {})[p.step] = p
    return {k: [v[s] for s in sorted(v)] for k, v in lines.items()}
