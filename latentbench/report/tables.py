"""Comparison tables: one per benchmark, best value per column, a direction per metric.

A metric's direction comes from :data:`DIRECTIONS`, a short ordered list of name patterns (the
first match wins); a metric no pattern matches has no direction and no "best". The same tables
render as Markdown (README.md) here and as HTML in :mod:`latentbench.report.html`; the long
formats ``metrics.csv`` / ``curves.csv`` hold every number of every run.
"""

from __future__ import annotations

import csv
import enum
import html
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from latentbench.report.load import Point, Run, RunKind, Scalar
from latentbench.runs import atomic_path


class Direction(str, enum.Enum):
    HIGHER = "higher"
    LOWER = "lower"
    NONE = "none"

    @property
    def arrow(self) -> str:
        return {"higher": "\u2191", "lower": "\u2193", "none": ""}[self.value]


# (pattern searched in the metric name, direction); first match wins.
DIRECTIONS: tuple[tuple[str, Direction], ...] = (
    (r"majority_baseline|nn_distance|num_|channels|latent_size", Direction.NONE),
    (r"^train/(lr|grad_norm)$", Direction.NONE),
    (r"lpips", Direction.LOWER),
    (r"(^|/)[ri]?fid|(^|/)fd(_|$)", Direction.LOWER),
    (r"psnr|ssim", Direction.HIGHER),
    (r"geneval|accuracy|probe|success", Direction.HIGHER),
    (r"images_per_s", Direction.HIGHER),
    (r"(^|/|_)l1(_|$)|loss|tail|^train/", Direction.LOWER),
)

BEST_MARK = "\u2605"  # the star after a best value
TITLES = {
    RunKind.RECON.value: "Reconstruction",
    RunKind.TRAIN_GEN.value: "Generation (final evaluation of each generator run)",
    RunKind.TRAIN_TOKENIZER.value: "Tokenizer training",
    RunKind.TOY_MANIFOLD.value: "Toy manifold (C0)",
    RunKind.GENEVAL.value: "GenEval (Shapes)",
}


def direction(metric: str) -> Direction:
    for pattern, d in DIRECTIONS:
        if re.search(pattern, metric):
            return d
    return Direction.NONE


def fmt(value: float) -> str:
    """Integers as integers, everything else with 4 significant digits."""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}"


def href(source: Path, out: Path) -> str:
    """Relative, URL-quoted link from the report folder ``out`` to ``source``."""
    rel = os.path.relpath(Path(source).resolve(), Path(out).resolve())
    return quote(Path(rel).as_posix())


@dataclass
class Table:
    """Rows (run, space) x metric columns of one benchmark."""

    benchmark: str
    title: str
    columns: list[str]
    rows: list[tuple[str, str, dict[str, Scalar]]]
    best: dict[str, float] = field(default_factory=dict)  # column -> best value
    notes: dict[str, int] = field(default_factory=dict)  # variant text -> footnote number

    def direction(self, column: str) -> Direction:
        return direction(column)

    def is_best(self, s: Scalar) -> bool:
        return s.metric in self.best and s.value == self.best[s.metric]

    def column_note(self, column: str) -> int | None:
        """The footnote of a column whose cells share one variant (else None: per cell)."""
        variants = {cells[column].variant for _, _, cells in self.rows if column in cells}
        if len(variants) == 1 and (v := next(iter(variants))):
            return self.notes[v]
        return None

    def cell_note(self, s: Scalar) -> int | None:
        if not s.variant or self.column_note(s.metric) is not None:
            return None
        return self.notes[s.variant]


def build_tables(runs: Sequence[Run]) -> list[Table]:
    """One :class:`Table` per benchmark, in the order the benchmarks first appear."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.benchmark, []).append(run)
    tables = []
    for benchmark, members in groups.items():
        scalars = [s for r in members for s in r.scalars]
        if scalars:
            tables.append(build_table(benchmark, scalars))
    return tables


def build_table(benchmark: str, scalars: Sequence[Scalar]) -> Table:
    rows: dict[tuple[str, str], dict[str, Scalar]] = {}
    order: list[str] = []
    for s in scalars:
        rows.setdefault((s.run, s.space), {})[s.metric] = s
        if s.metric not in order:
            order.append(s.metric)
    directed = [c for c in order if direction(c) is not Direction.NONE]
    columns = directed + [c for c in order if c not in directed]
    table = Table(
        benchmark,
        TITLES.get(benchmark, f"Other runs: {benchmark}"),
        columns,
        [(run, space, cells) for (run, space), cells in rows.items()],
    )
    for column in directed:
        values = [cells[column].value for _, _, cells in table.rows if column in cells]
        values = [v for v in values if math.isfinite(v)]
        if len(values) >= 2:
            d = direction(column)
            table.best[column] = max(values) if d is Direction.HIGHER else min(values)
    for column in columns:
        for _, _, cells in table.rows:
            v = cells[column].variant if column in cells else ""
            if v and v not in table.notes:
                table.notes[v] = len(table.notes) + 1
    return table


# -- Markdown -----------------------------------------------------------------------------------
def md_text(text: str) -> str:
    """User text for a Markdown table cell: HTML-escaped, pipes and brackets escaped."""
    out = html.escape(str(text), quote=True)
    for ch in "\\|[]`*_":
        out = out.replace(ch, "\\" + ch)
    return out.replace("\n", " ")


def _md_title(text: str) -> str:
    return html.escape(text, quote=True).replace("\n", " ")


def table_markdown(table: Table, out: Path) -> str:
    head = ["run", "space"]
    for c in table.columns:
        note = table.column_note(c)
        head.append(md_text(c) + table.direction(c).arrow + (f" [{note}]" if note else ""))
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run, space, cells in table.rows:
        row = [md_text(run), md_text(space)]
        for c in table.columns:
            s = cells.get(c)
            if s is None:
                row.append("")
                continue
            text = fmt(s.value)
            if table.is_best(s):
                text = f"**{text}** {BEST_MARK}"
            note = table.cell_note(s)
            title = f' "{_md_title(s.variant)}"' if s.variant else ""
            row.append(f"[{text}]({href(s.source, out)}{title})" + (f" [{note}]" if note else ""))
        lines.append("| " + " | ".join(row) + " |")
    if table.notes:
        lines.append("")
        lines += [f"[{n}] {md_text(v)}  " for v, n in table.notes.items()]
    return "\n".join(lines)


# -- long-format CSV ----------------------------------------------------------------------------
METRICS_COLUMNS = ("run", "kind", "space", "metric", "value", "variant")
CURVES_COLUMNS = ("run", "kind", "space", "metric", "step", "value", "variant")


def write_metrics_csv(runs: Iterable[Run], path: Path) -> int:
    """Every final scalar, one per line (run, kind, space, metric, value, variant)."""
    rows = [
        (r.name, r.benchmark, s.space, s.metric, repr(s.value), s.variant)
        for r in runs
        for s in r.scalars
    ]
    _write_csv(path, METRICS_COLUMNS, rows)
    return len(rows)


def write_curves_csv(runs: Iterable[Run], path: Path) -> int:
    """Every metrics.jsonl point, one per line (run, kind, space, metric, step, value, variant)."""
    rows = [
        (r.name, r.benchmark, p.space, p.metric, p.step, repr(p.value), p.variant)
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


def points_by_line(points: Iterable[Point]) -> dict[tuple[str, str], list[Point]]:
    """Points grouped by (run, space), each sorted by step (last write of a step wins)."""
    lines: dict[tuple[str, str], dict[int, Point]] = {}
    for p in points:
        lines.setdefault((p.run, p.space), {})[p.step] = p
    return {k: [v[s] for s in sorted(v)] for k, v in lines.items()}
