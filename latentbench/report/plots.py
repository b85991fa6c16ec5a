"""The report's PNG figures, drawn with matplotlib's object API (Agg canvas, no pyplot state).

Each function takes records read by :mod:`latentbench.report.load`, writes one PNG and returns a
:class:`FigureRef` (or None when there is nothing to draw). Every space has one colour, the same
in every figure (:class:`Palette`); every panel has axis labels and a legend.

- :func:`panels`: several metrics vs step, one panel each (training losses);
- :func:`robustness`: decoder PSNR vs latent noise sigma (``latent/robust_psnr@sigma`` scalars);
- :func:`probe`: linear-probe accuracies per space (with the majority baseline when recorded);
- :func:`channel_stats`: per-channel std (bars) and mean (dots) of the latents;
- :func:`table_figure`: a comparison table as an image (best values bold).

Convergence curves with interval bands are in :mod:`latentbench.report.curves`; the
"does reconstruction predict generation?" scatter, GenEval bars and labelled reconstruction
grids in :mod:`latentbench.report.compare_plots`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib import colormaps
from matplotlib.figure import Figure

from latentbench.atomic import atomic_path
from latentbench.report.catalog import direction
from latentbench.report.load import Point, Scalar
from latentbench.report.significance import BEST_MARK, Mark
from latentbench.report.tables import Table, points_by_line

DPI = 100
MAX_PANELS = 8


@dataclass(frozen=True)
class FigureRef:
    path: Path  # the PNG, inside the report folder
    title: str
    caption: str


class Palette:
    """One colour per space, in the order spaces are first asked for (tab10, then tab20)."""

    def __init__(self, spaces: Sequence[str] = ()) -> None:
        self._colours = list(colormaps["tab10"].colors) + list(colormaps["tab20"].colors[1::2])
        self._of: dict[str, tuple[float, ...]] = {}
        for space in spaces:
            self(space)

    def __call__(self, space: str) -> tuple[float, ...]:
        if space not in self._of:
            self._of[space] = self._colours[len(self._of) % len(self._colours)]
        return self._of[space]


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "figure"


def save_figure(fig: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)


def plain(text: str, limit: int = 48) -> str:
    """User text for matplotlib: no mathtext (``$``), at most ``limit`` characters."""
    text = text if len(text) <= limit else text[: limit - 1] + "\u2026"
    return text.replace("$", r"\$")


def line_label(run: str, space: str, runs_per_space: dict[str, int]) -> str:
    """The space alone when it names one run; else 'space (run)'."""
    if not space or space == run:
        return plain(run)
    return plain(space if runs_per_space.get(space, 0) <= 1 else f"{space} ({run})")


def labels_of(keys: Sequence[tuple]) -> dict[tuple, str]:
    """Legend labels of (run, space, ...) keys: the space, or 'space (run)' when it repeats."""
    count: dict[str, int] = {}
    for key in dict.fromkeys(k[:2] for k in keys):
        count[key[1]] = count.get(key[1], 0) + 1
    return {k: line_label(k[0], k[1], count) for k in keys}


def log_scale(values: Sequence[float]) -> bool:
    positive = [v for v in values if v > 0]
    return len(positive) == len(values) and len(values) > 1 and max(values) > 20 * min(positive)


def panels(
    points: Sequence[Point],
    metrics: Sequence[str],
    path: Path,
    title: str,
    caption: str,
    palette: Palette,
) -> FigureRef | None:
    """One panel per metric (at most MAX_PANELS) vs step, one line per (run, space, seed)."""
    metrics = [m for m in metrics if any(p.metric == m for p in points)][:MAX_PANELS]
    if not metrics:
        return None
    cols = min(3, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    fig = Figure(figsize=(3.9 * cols, 3.0 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, metric in zip(axes, metrics):
        lines = points_by_line(p for p in points if p.metric == metric)
        labels = labels_of(list(lines))
        values, labelled = [], set()
        for key, pts in lines.items():  # one line per seed; the legend names each space once
            label = "_" if key[:2] in labelled else labels[key]
            labelled.add(key[:2])
            xs, ys = [p.step for p in pts], [p.value for p in pts]
            ax.plot(xs, ys, marker="o", ms=2, color=palette(key[1]), label=label)
            values += ys
        arrow = direction(metric).arrow
        ax.set(title=plain(metric), xlabel="training step", ylabel=f"{plain(metric, 24)} {arrow}")
        if log_scale(values):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    save_figure(fig, path)
    return FigureRef(path, title, caption)


_SIGMA = re.compile(r"robust_psnr@([0-9.eE+-]+)$")


def robustness(scalars: Sequence[Scalar], path: Path, palette: Palette) -> FigureRef | None:
    lines: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for s in scalars:
        m = _SIGMA.search(s.metric)
        if m:
            lines.setdefault((s.run, s.space), []).append((float(m.group(1)), s.value))
    if not lines:
        return None
    labels = labels_of(list(lines))
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.subplots()
    for key, pts in lines.items():
        pts.sort()
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        ax.plot(xs, ys, marker="o", color=palette(key[1]), label=labels[key])
    ax.set(
        xlabel="noise sigma on normalised latents",
        ylabel="decoded PSNR (dB) \u2191",
        title="Decoder robustness to latent noise",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)
    caption = "PSNR of decode(z + sigma * eps) against the input image; sigma 0 is plain recon."
    return FigureRef(path, "Noise robustness", caption)


def error_bars(scalars: Sequence[Scalar | None]) -> list[list[float]] | None:
    """matplotlib's asymmetric yerr [[below...], [above...]] from the scalars' bounded
    intervals (0 where none); None when no scalar has one."""
    below, above, any_bounded = [], [], False
    for s in scalars:
        iv = s.interval if s is not None else None
        if iv is not None and math.isfinite(iv.low) and math.isfinite(iv.high):
            below.append(max(0.0, s.value - iv.low))
            above.append(max(0.0, iv.high - s.value))
            any_bounded = True
        else:
            below.append(0.0)
            above.append(0.0)
    return [below, above] if any_bounded else None


def probe(scalars: Sequence[Scalar], path: Path, palette: Palette) -> FigureRef | None:
    accs = [s for s in scalars if "probe" in s.metric and "baseline" not in s.metric]
    if not accs:
        return None
    keys = list(dict.fromkeys((s.run, s.space) for s in accs))
    metrics = list(dict.fromkeys(s.metric for s in accs))
    labels = labels_of(keys)
    value = {(s.run, s.space, s.metric): s for s in accs}
    baseline = {(s.run, s.space): s.value for s in scalars if "majority_baseline" in s.metric}
    fig = Figure(figsize=(max(4.5, 1.2 * len(keys) + 2), 3.8))
    ax = fig.subplots()
    width = 0.8 / len(metrics)
    hatches = ("", "//", "..", "xx")
    for j, metric in enumerate(metrics):
        shown = [(i, k) for i, k in enumerate(keys) if (*k, metric) in value]
        bars = [value[(*k, metric)] for _, k in shown]
        ax.bar(
            [i + j * width for i, _ in shown],
            [s.value for s in bars],
            width,
            yerr=error_bars(bars),
            capsize=3,
            color=[palette(k[1]) for _, k in shown],
            hatch=hatches[j % len(hatches)],
            edgecolor="k",
            label=plain(metric),
        )
    for i, k in enumerate(keys):
        if k in baseline:
            ax.hlines(baseline[k], i - width / 2, i + 0.8 - width / 2, colors="k", linestyles="--")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(keys))])
    ax.set_xticklabels([labels[k] for k in keys], rotation=20, ha="right", fontsize=8)
    ax.set(xlabel="space", ylabel="top-1 accuracy \u2191", ylim=(0, 1.05), title="Linear probe")
    ax.legend(fontsize=8)
    save_figure(fig, path)
    caption = "Ridge-regression probe on pooled latents, held-out split, with its interval"
    caption += "; dashed: majority-class baseline." if baseline else "."
    return FigureRef(path, "Linear probe", caption)


def channel_stats(
    vectors: dict[tuple[str, str, str], list[float]], path: Path, palette: Palette
) -> FigureRef | None:
    """``vectors``: (run, space, key) -> values, keys ending in channel_std / channel_mean."""
    stds = {(r, s): v for (r, s, k), v in vectors.items() if k.endswith("channel_std")}
    if not stds:
        return None
    means = {(r, s): v for (r, s, k), v in vectors.items() if k.endswith("channel_mean")}
    keys = list(stds)[:MAX_PANELS]
    labels = labels_of(keys)
    cols = min(2, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig = Figure(figsize=(5.2 * cols, 2.8 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, key in zip(axes, keys):
        std = stds[key]
        ax.bar(range(len(std)), std, color=palette(key[1]), label=f"{labels[key]}: std")
        if key in means:
            ax.plot(range(len(means[key])), means[key], "o", color="k", ms=3, label="mean")
        ax.axhline(0, color="k", lw=0.5)
        ax.set(title=labels[key], xlabel="channel", ylabel="latent value")
        ax.legend(fontsize=7)
    for ax in axes[len(keys) :]:
        ax.set_visible(False)
    save_figure(fig, path)
    caption = "Per-channel std (bars, in the space's colour) and mean (dots) of the latents."
    return FigureRef(path, "Channel statistics", caption)


def table_figure(table: Table, path: Path, max_columns: int = 10) -> FigureRef | None:
    """The first ``max_columns`` columns of ``table`` as a PNG (best values bold, starred)."""
    columns = table.columns[:max_columns]
    if not table.rows or not columns:
        return None
    header = ["space"] if not table.show_run else ["run", "space"]
    header += [plain(c.label, 24) + c.direction.arrow for c in columns]
    body, best = [], []
    for row in table.rows:
        texts = [plain(row.run, 32)] if table.show_run else []
        texts.append(plain(row.space, 32))
        marks = [False] * len(texts)
        for c in columns:
            cell = row.cells.get(c.key)
            is_best = cell is not None and cell.mark is Mark.BEST
            texts.append("" if cell is None else cell.text + (f" {BEST_MARK}" if is_best else ""))
            marks.append(is_best)
        body.append(texts)
        best.append(marks)
    fig = Figure(figsize=(min(2 + 1.5 * len(header), 22), 0.6 + 0.32 * (len(body) + 1)))
    ax = fig.subplots()
    ax.axis("off")
    mpl_table = ax.table(cellText=body, colLabels=header, loc="center", cellLoc="center")
    mpl_table.auto_set_font_size(False)
    mpl_table.set_fontsize(8)
    for (r, c), cell in mpl_table.get_celld().items():
        if r == 0:
            cell.set_text_props(weight="bold")
            cell.set_facecolor("#e8e8f0")
        elif best[r - 1][c]:
            cell.set_text_props(weight="bold")
            cell.set_facecolor("#e3f4e3")
    save_figure(fig, path)
    more = len(table.columns) - len(columns)
    caption = f"{table.title}." + (f" {more} more column(s) in the HTML table." if more else "")
    return FigureRef(path, table.title, caption)
