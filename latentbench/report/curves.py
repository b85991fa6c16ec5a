"""Convergence curves with interval bands, against training steps and against wall-clock.

A line is one (run, space). Its band is the interval each evaluation recorded
(``ci95_low`` / ``ci95_high`` of the metrics.jsonl row); for a seed group the line is the mean
over seeds at each step and the band the Student t interval over the seeds (the per-seed curves
drawn as one band). The wall-clock panel needs rows with ``seconds``; without them only the
step panel is drawn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from latentbench.report.catalog import direction
from latentbench.report.load import Point
from latentbench.report.plots import FigureRef, Palette, labels_of, log_scale, plain, save_figure
from latentbench.report.tables import points_by_line
from latentbench.stats import t_interval


@dataclass
class Band:
    """One line: values at each step, the interval around them (NaN: none), wall-clock."""

    run: str
    space: str
    steps: np.ndarray  # (T,)
    seconds: np.ndarray  # (T,) NaN where not logged
    value: np.ndarray  # (T,)
    low: np.ndarray  # (T,) NaN where no interval
    high: np.ndarray  # (T,)
    seeds: int


def _opt(x: float | None) -> float:
    return math.nan if x is None else x


def _one(run: str, space: str, pts: list[Point]) -> Band:
    return Band(
        run,
        space,
        np.array([p.step for p in pts]),
        np.array([_opt(p.seconds) for p in pts]),
        np.array([p.value for p in pts]),
        np.array([_opt(p.low) for p in pts]),
        np.array([_opt(p.high) for p in pts]),
        1,
    )


def _over_seeds(run: str, space: str, lines: list[list[Point]]) -> Band:
    """Mean and t interval over seeds at each step that every seed logged."""
    by_step = [{p.step: p for p in pts} for pts in lines]
    steps = sorted(set.intersection(*(set(b) for b in by_step)))
    value, low, high, seconds = [], [], [], []
    for step in steps:
        at = [b[step] for b in by_step]
        iv = t_interval([p.value for p in at])
        value.append(iv.value)
        low.append(iv.low)
        high.append(iv.high)
        secs = [p.seconds for p in at if p.seconds is not None]
        seconds.append(float(np.mean(secs)) if secs else math.nan)
    arr = np.array
    return Band(run, space, arr(steps), arr(seconds), arr(value), arr(low), arr(high), len(lines))


def bands(points: Sequence[Point], metric: str) -> list[Band]:
    lines = points_by_line(p for p in points if p.metric == metric)
    groups: dict[tuple[str, str], list[list[Point]]] = {}
    for (run, space, _seed), pts in lines.items():
        groups.setdefault((run, space), []).append(pts)
    return [
        _one(run, space, seeds[0]) if len(seeds) == 1 else _over_seeds(run, space, seeds)
        for (run, space), seeds in groups.items()
    ]


def _draw(ax: Axes, lines: list[Band], x_of, labels: dict, palette: Palette) -> list[float]:
    values: list[float] = []
    for band in lines:
        x = x_of(band)
        keep = np.isfinite(x)
        if not keep.any():
            continue
        colour = palette(band.space)
        label = labels[(band.run, band.space)]
        label += f" ({band.seeds} seeds)" if band.seeds > 1 else ""
        ax.plot(x[keep], band.value[keep], marker="o", ms=3, color=colour, label=label)
        bounded = keep & np.isfinite(band.low) & np.isfinite(band.high)
        if bounded.any():
            ax.fill_between(x[bounded], band.low[bounded], band.high[bounded], color=colour,
                            alpha=0.2, lw=0)  # fmt: skip
        values += list(band.value[keep])
    return values


def convergence(points: Sequence[Point], metric: str, path, palette: Palette) -> FigureRef | None:
    """``metric`` against steps (and against wall-clock when logged), with interval bands."""
    lines = bands(points, metric)
    if not lines:
        return None
    labels = labels_of([(b.run, b.space) for b in lines])
    timed = any(np.isfinite(b.seconds).any() for b in lines)
    fig = Figure(figsize=(11.0 if timed else 6.4, 4.0))
    axes = fig.subplots(1, 2 if timed else 1, squeeze=False).ravel()
    arrow, name = direction(metric).arrow, plain(metric)
    xs = [("training step", lambda b: b.steps.astype(float))]
    if timed:
        xs.append(("wall-clock (s)", lambda b: b.seconds))
    for ax, (xlabel, x_of) in zip(axes, xs):
        values = _draw(ax, lines, x_of, labels, palette)
        ax.set(xlabel=xlabel, ylabel=f"{name} {arrow}", title=f"{name} vs {xlabel.split(' (')[0]}")
        if log_scale(values):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(fig, path)
    variants = sorted({p.variant for p in points if p.metric == metric and p.variant})
    caption = (
        f"{metric} ({arrow} is better) at each evaluation, one line per space; band: the 95% "
        "interval of each evaluation (over seeds: Student t over the per-seed values)."
    )
    if not timed:
        caption += " No wall-clock logged (metrics.jsonl rows without seconds)."
    if variants:
        caption += " Variant: " + " | ".join(variants[:3])
    return FigureRef(path, f"{metric} vs step and wall-clock" if timed else f"{metric} vs step",
                     caption)  # fmt: skip
