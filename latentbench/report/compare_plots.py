"""Figures that compare spaces directly:

- :func:`recon_vs_generation`: "does reconstruction predict generation?": each reconstruction
  metric and each latent diagnostic (x) against the generation metric (y), one point per space,
  with Spearman's rho and its interval (:func:`latentbench.stats.spearman_interval`);
- :func:`geneval_bars`: the final GenEval score per task and space, with interval bars;
- :func:`labelled_grid`: a reconstruction grid with its rows named (originals, then spaces).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from latentbench.report.catalog import GENERATION_COLUMNS, RECON_COLUMNS, direction
from latentbench.report.load import Scalar
from latentbench.report.plots import FigureRef, Palette, error_bars, plain, save_figure
from latentbench.report.tables import Table
from latentbench.stats import Interval, spearman_interval

MAX_SCATTER_PANELS = 16
SKIP_DIAGNOSTICS = re.compile(r"majority_baseline|_reference$|channels$|num_")


@dataclass(frozen=True)
class Correlation:
    x: str  # the reconstruction metric or diagnostic
    y: str  # the generation metric
    rho: Interval  # Spearman's rho with its interval; n = the number of spaces


def _points(table: Table, diagnostics: Sequence[Scalar]) -> tuple[str, dict[str, dict]]:
    """The y column and, per x name, {space: Scalar}: headline recon columns, then every
    latent diagnostic (its first value per space)."""
    by_column = {c.key: c for c in table.columns}
    y = next((k for k in GENERATION_COLUMNS if sum(k in r.cells for r in table.rows) >= 2), "")
    xs: dict[str, dict[str, Scalar]] = {}
    for key in RECON_COLUMNS:
        if key in by_column:
            xs[by_column[key].label] = {r.space: r.cells[key].scalar for r in table.rows
                                        if key in r.cells}  # fmt: skip
    for s in diagnostics:
        if not SKIP_DIAGNOSTICS.search(s.metric):
            xs.setdefault(s.metric, {}).setdefault(s.space, s)
    return y, xs


def recon_vs_generation(
    table: Table | None, diagnostics: Sequence[Scalar], path: Path, palette: Palette
) -> tuple[FigureRef | None, list[Correlation]]:
    """The scatter panels and the correlations, over the spaces that have both numbers."""
    if table is None:
        return None, []
    y_key, xs = _points(table, diagnostics)
    if not y_key:
        return None, []
    y_col = next(c for c in table.columns if c.key == y_key)
    ys = {r.space: r.cells[y_key].scalar for r in table.rows if y_key in r.cells}
    pairs = {x: [s for s in ys if s in by] for x, by in xs.items()}
    pairs = {x: spaces for x, spaces in pairs.items() if len(spaces) >= 2}
    if not pairs:
        return None, []
    names = list(pairs)[:MAX_SCATTER_PANELS]
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig = Figure(figsize=(3.8 * cols, 3.4 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    found = []
    for ax, x in zip(axes, names):
        spaces = pairs[x]
        xv = [xs[x][s] for s in spaces]
        yv = [ys[s] for s in spaces]
        rho = spearman_interval([s.value for s in xv], [s.value for s in yv])
        found.append(Correlation(x, y_col.label, rho))
        _scatter(ax, spaces, xv, yv, palette)
        ax.set(xlabel=f"{plain(x, 32)} {direction(x).arrow}",
               ylabel=f"{plain(y_col.label, 32)} {y_col.direction.arrow}",
               title=f"rho = {_rho_text(rho)}")  # fmt: skip
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    save_figure(fig, path)
    caption = (
        f"Each reconstruction metric and latent diagnostic (x) against {y_col.label} (y), one "
        "point per space, bars: 95% intervals. rho: Spearman's rank correlation with its 95% "
        "interval (Fisher z, Bonett-Wright); below 4 spaces the interval is [-1, 1]."
    )
    return FigureRef(path, "Does reconstruction predict generation?", caption), found


def _rho_text(rho: Interval) -> str:
    if math.isnan(rho.value):
        return f"undefined (a constant), n = {rho.n}"
    return f"{rho.value:.2f} [{rho.low:.2f}, {rho.high:.2f}], n = {rho.n}"


def _scatter(ax, spaces, xv: list[Scalar], yv: list[Scalar], palette: Palette) -> None:
    xerr, yerr = error_bars(xv), error_bars(yv)
    for i, space in enumerate(spaces):
        ax.errorbar(
            [xv[i].value],
            [yv[i].value],
            xerr=None if xerr is None else [[xerr[0][i]], [xerr[1][i]]],
            yerr=None if yerr is None else [[yerr[0][i]], [yerr[1][i]]],
            fmt="o",
            color=palette(space),
            capsize=2,
            label=plain(space, 24),
        )


def geneval_bars(scalars: Sequence[Scalar], path: Path, palette: Palette) -> FigureRef | None:
    """Final GenEval per task (and overall) per space, error bars from the intervals."""
    scores = [s for s in scalars if s.metric == "geneval" or s.metric.startswith("geneval/")]
    if not scores:
        return None
    tasks = list(dict.fromkeys(s.metric.removeprefix("geneval/") for s in scores))
    tasks = sorted(tasks, key=lambda t: t == "geneval")  # overall last
    keys = list(dict.fromkeys((s.run, s.space) for s in scores))
    value = {(s.run, s.space, s.metric.removeprefix("geneval/")): s for s in scores}
    fig = Figure(figsize=(max(6.0, 0.9 * len(tasks) * max(1, len(keys)) / 2 + 3), 4.0))
    ax = fig.subplots()
    width = 0.8 / len(keys)
    for j, (run, space) in enumerate(keys):
        bars = [value.get((run, space, t)) for t in tasks]
        x = np.arange(len(tasks)) + j * width
        ax.bar(
            x,
            [b.value if b else 0.0 for b in bars],
            width,
            yerr=error_bars(bars),
            capsize=2,
            color=palette(space),
            label=plain(space if space == run else f"{space} ({run})", 32),
        )
    ax.set_xticks(np.arange(len(tasks)) + 0.4 - width / 2)
    ax.set_xticklabels(["overall" if t == "geneval" else t for t in tasks], rotation=15)
    ax.set(xlabel="GenEval task", ylabel="score \u2191", ylim=(0, 1.05), title="GenEval per task")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    save_figure(fig, path)
    caption = "Final Shapes GenEval score per task and space; bars: 95% intervals over prompts."
    return FigureRef(path, "GenEval per task", caption)


def labelled_grid(
    src: Path, rows: Sequence[str], dest: Path, title: str, caption: str
) -> FigureRef:
    """``src`` (a grid of len(rows) rows) drawn with each row's name on the left."""
    with Image.open(src) as im:
        arr = np.asarray(im.convert("RGB"))
    h, w = arr.shape[:2]
    scale = max(1.0, 480 / w)
    fig = Figure(figsize=(min(14.0, w * scale / 100 + 1.6), h * scale / 100 + 0.4))
    ax = fig.subplots()
    ax.imshow(arr, interpolation="nearest")
    step = h / len(rows)
    ax.set_yticks([(i + 0.5) * step for i in range(len(rows))])
    ax.set_yticklabels([plain(r, 24) for r in rows], fontsize=9)
    ax.set_xticks([])
    ax.set(xlabel="image", ylabel="row")
    save_figure(fig, dest)
    return FigureRef(dest, title, caption)
