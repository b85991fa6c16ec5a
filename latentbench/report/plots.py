"""The report's PNG figures, drawn with matplotlib's object API (Agg canvas, no pyplot state).

Each function takes records read by :mod:`latentbench.report.load`, writes one PNG and returns a
:class:`FigureRef` (or None when there is nothing to draw):

- :func:`convergence`: one metric vs training step, one line per (run, space);
- :func:`panels`: several metrics vs step, one panel each (GenEval tasks, training losses);
- :func:`robustness`: decoder PSNR vs latent noise sigma (``latent/robust_psnr@sigma`` scalars);
- :func:`probe`: linear-probe accuracies per space (with the majority baseline when recorded);
- :func:`channel_stats`: per-channel std (bars) and mean (dots) of the latents;
- :func:`table_figure`: a comparison table as an image (best values bold).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from latentbench.report.load import Point, Scalar
from latentbench.report.tables import BEST_MARK, Table, direction, fmt, points_by_line
from latentbench.runs import atomic_path

DPI = 100
MAX_PANELS = 8


@dataclass(frozen=True)
class FigureRef:
    path: Path  # the PNG, inside the report folder
    title: str
    caption: str


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "figure"


def _save(fig: Figure, path: Path) -> None:
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


def _labels(keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
    count: dict[str, int] = {}
    for _, space in keys:
        count[space] = count.get(space, 0) + 1
    return {k: line_label(k[0], k[1], count) for k in keys}


def _log_scale(values: Sequence[float]) -> bool:
    positive = [v for v in values if v > 0]
    return len(positive) == len(values) and len(values) > 1 and max(values) > 20 * min(positive)


def convergence(points: Sequence[Point], metric: str, path: Path) -> FigureRef | None:
    lines = points_by_line(p for p in points if p.metric == metric)
    if not lines:
        return None
    labels = _labels(list(lines))
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.subplots()
    values = []
    for key, pts in lines.items():
        ax.plot([p.step for p in pts], [p.value for p in pts], marker="o", ms=3, label=labels[key])
        values += [p.value for p in pts]
    arrow = direction(metric).arrow
    name = plain(metric)
    ax.set(xlabel="training step", ylabel=f"{name} {arrow}", title=f"{name} vs step")
    if _log_scale(values):
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)
    variants = sorted({p.variant for pts in lines.values() for p in pts if p.variant})
    caption = f"{metric} ({arrow} is better) at each evaluation, one line per space."
    if variants:
        caption += " Variant: " + " | ".join(variants[:3])
    return FigureRef(path, f"{metric} vs step", caption)


def panels(
    points: Sequence[Point], metrics: Sequence[str], path: Path, title: str, caption: str
) -> FigureRef | None:
    """One panel per metric (at most MAX_PANELS) vs step, one line per (run, space) in each."""
    metrics = [m for m in metrics if any(p.metric == m for p in points)][:MAX_PANELS]
    if not metrics:
        return None
    cols = min(3, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    fig = Figure(figsize=(3.6 * cols, 2.8 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, metric in zip(axes, metrics):
        lines = points_by_line(p for p in points if p.metric == metric)
        labels = _labels(list(lines))
        values = []
        for key, pts in lines.items():
            steps = [p.step for p in pts]
            ax.plot(steps, [p.value for p in pts], marker="o", ms=2, label=labels[key])
            values += [p.value for p in pts]
        ax.set(title=f"{plain(metric)} {direction(metric).arrow}", xlabel="step")
        if _log_scale(values):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7)
    _save(fig, path)
    return FigureRef(path, title, caption)


_SIGMA = re.compile(r"robust_psnr@([0-9.eE+-]+)$")


def robustness(scalars: Sequence[Scalar], path: Path) -> FigureRef | None:
    lines: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for s in scalars:
        m = _SIGMA.search(s.metric)
        if m:
            lines.setdefault((s.run, s.space), []).append((float(m.group(1)), s.value))
    if not lines:
        return None
    labels = _labels(list(lines))
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.subplots()
    for key, pts in lines.items():
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=labels[key])
    ax.set(
        xlabel="noise sigma on normalised latents",
        ylabel="decoded PSNR (dB) \u2191",
        title="Decoder robustness to latent noise",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)
    caption = "PSNR of decode(z + sigma * eps) against the input image; sigma 0 is plain recon."
    return FigureRef(path, "Noise robustness", caption)


def probe(scalars: Sequence[Scalar], path: Path) -> FigureRef | None:
    accs = [s for s in scalars if "probe" in s.metric and "baseline" not in s.metric]
    if not accs:
        return None
    keys = list(dict.fromkeys((s.run, s.space) for s in accs))
    metrics = list(dict.fromkeys(s.metric for s in accs))
    labels = _labels(keys)
    value = {(s.run, s.space, s.metric): s.value for s in accs}
    baseline = {(s.run, s.space): s.value for s in scalars if "majority_baseline" in s.metric}
    fig = Figure(figsize=(max(4.0, 1.2 * len(keys) + 2), 3.8))
    ax = fig.subplots()
    width = 0.8 / len(metrics)
    for j, metric in enumerate(metrics):
        xs = [i + j * width for i, k in enumerate(keys) if (*k, metric) in value]
        ys = [value[(*k, metric)] for k in keys if (*k, metric) in value]
        ax.bar(xs, ys, width, label=plain(metric))
    for i, k in enumerate(keys):
        if k in baseline:
            ax.hlines(baseline[k], i - width / 2, i + 0.8 - width / 2, colors="k", linestyles="--")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(keys))])
    ax.set_xticklabels([labels[k] for k in keys], rotation=20, ha="right", fontsize=8)
    ax.set(ylabel="top-1 accuracy \u2191", ylim=(0, 1.05), title="Linear probe")
    ax.legend(fontsize=8)
    _save(fig, path)
    caption = "Ridge-regression probe on pooled latents, held-out split"
    caption += "; dashed: majority-class baseline." if baseline else "."
    return FigureRef(path, "Linear probe", caption)


def channel_stats(vectors: dict[tuple[str, str, str], list[float]], path: Path) -> FigureRef | None:
    """``vectors``: (run, space, key) -> values, keys ending in channel_std / channel_mean."""
    stds = {(r, s): v for (r, s, k), v in vectors.items() if k.endswith("channel_std")}
    if not stds:
        return None
    means = {(r, s): v for (r, s, k), v in vectors.items() if k.endswith("channel_mean")}
    keys = list(stds)[:MAX_PANELS]
    labels = _labels(keys)
    cols = min(2, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig = Figure(figsize=(5.2 * cols, 2.6 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, key in zip(axes, keys):
        std = stds[key]
        ax.bar(range(len(std)), std, color="tab:blue", label="std")
        if key in means:
            ax.plot(range(len(means[key])), means[key], "o", color="tab:red", ms=3, label="mean")
        ax.axhline(0, color="k", lw=0.5)
        ax.set(title=labels[key], xlabel="channel")
        ax.legend(fontsize=7)
    for ax in axes[len(keys) :]:
        ax.set_visible(False)
    _save(fig, path)
    caption = "Per-channel std (bars) and mean (dots) of the latents."
    return FigureRef(path, "Channel statistics", caption)


def table_figure(table: Table, path: Path, max_columns: int = 10) -> FigureRef | None:
    """The first ``max_columns`` columns of ``table`` as a PNG (best values bold, starred)."""
    columns = table.columns[:max_columns]
    if not table.rows or not columns:
        return None
    header = ["run", "space"] + [plain(c, 24) + table.direction(c).arrow for c in columns]
    body = []
    best = []
    for run, space, cells in table.rows:
        row = [plain(run, 32), plain(space, 32)]
        for c in columns:
            s = cells.get(c)
            mark = f" {BEST_MARK}" if s is not None and table.is_best(s) else ""
            row.append("" if s is None else fmt(s.value) + mark)
        body.append(row)
        best.append([False, False] + [c in cells and table.is_best(cells[c]) for c in columns])
    fig = Figure(figsize=(min(2 + 1.25 * len(header), 20), 0.6 + 0.32 * (len(body) + 1)))
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
    _save(fig, path)
    more = len(table.columns) - len(columns)
    caption = f"{table.title}." + (f" {more} more column(s) in the HTML table." if more else "")
    return FigureRef(path, table.title, caption)
