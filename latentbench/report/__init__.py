"""``latentbench report``: turn run folders into one comparison page.

:func:`write_report` reads run folders (never recomputes a metric) and writes, into ``out``:

- ``index.html``: self-contained (inline CSS, images as data URIs, no script, no network);
- ``README.md``: the same tables in Markdown, figures as links into ``figures/``;
- ``metrics.csv`` (run, kind, space, metric, value, variant) and ``curves.csv`` (+ step);
- ``figures/*.png``: the comparison tables, convergence curves, latent diagnostics, and copies of
  the runs' reconstruction / sample / edit grids (so the folder stands alone when committed).

The folder is built under a temporary name and moved into place when complete
(:func:`latentbench.runs.staged_dir`): a failed report leaves nothing half-written. It replaces
``out`` only when that is an earlier report (or empty), unless ``overwrite``. Only regular files
inside each run folder are read: a link that leads out of it is skipped, and said so.
"""

from __future__ import annotations

import datetime as _dt
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from latentbench.report import plots
from latentbench.report.load import BOOKKEEPING, ImageRole, Run, RunKind, load_runs
from latentbench.report.plots import FigureRef, slug
from latentbench.report.tables import (
    Direction,
    Table,
    build_tables,
    direction,
    href,
    md_text,
    table_markdown,
    write_curves_csv,
    write_metrics_csv,
)
from latentbench.runs import OutputKind, atomic_write_text, claim_output, staged_dir

__all__ = ["Report", "ReportSummary", "write_report"]

FIGURES = "figures"
MAX_CURVE_FIGURES = 12
HIDDEN_CURVES = BOOKKEEPING  # in curves.csv, not drawn
IMAGE_SECTIONS = (
    (ImageRole.RECON, "Reconstructions", True),
    (ImageRole.SAMPLES, "Samples per space", True),
    (ImageRole.EDITS, "Edits (before / after)", True),
    (ImageRole.OTHER, "Other figures of the runs", False),
)


@dataclass
class Section:
    title: str
    figures: list[FigureRef]
    intro: str = ""
    pixel_art: bool = False  # grids of small images: scale up without smoothing


@dataclass
class Report:
    title: str
    out: Path  # the final folder (links are relative to it)
    runs: list[Run]
    tables: list[Table]
    table_figures: list[FigureRef] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    created: str = ""
    version: str = ""


@dataclass(frozen=True)
class ReportSummary:
    out: Path
    runs: int
    tables: int
    figures: int
    metrics: int
    skipped: list[str] = field(default_factory=list)  # files not read (links out of a run...)


def write_report(
    run_dirs: Sequence[str | Path],
    out: str | Path,
    *,
    title: str | None = None,
    overwrite: bool = False,
) -> ReportSummary:
    """Read ``run_dirs`` (run folders, or folders of run folders) and write the report ``out``.

    ``title`` defaults to "latentbench report: <folder name of out>". UserError when a path is
    not a run folder, or when ``out`` holds a run or anything but an earlier report (unless
    ``overwrite``); nothing is written then.
    """
    out = Path(out)
    runs = load_runs(run_dirs)
    inputs = [*run_dirs, *(r.path for r in runs)]
    claim_output(out, OutputKind.REPORT, inputs=inputs, overwrite=overwrite)
    with staged_dir(out, OutputKind.REPORT) as tmp:
        report = build_report(runs, out, tmp, title or f"latentbench report: {out.name}")
        from latentbench.report.html import render_html

        atomic_write_text(tmp / "index.html", render_html(report, tmp))
        atomic_write_text(tmp / "README.md", render_markdown(report, tmp))
        n_metrics = write_metrics_csv(runs, tmp / "metrics.csv")
        write_curves_csv(runs, tmp / "curves.csv")
        n_figures = len(list((tmp / FIGURES).glob("*.png")))
    skipped = [f"{r.name}: {s}" for r in runs for s in r.skipped]
    return ReportSummary(out, len(runs), len(report.tables), n_figures, n_metrics, skipped)


def build_report(runs: list[Run], out: Path, root: Path, title: str) -> Report:
    """Tables and figures (written under ``root/figures``) for ``runs``."""
    from importlib import metadata

    try:
        version = metadata.version("latentbench")
    except metadata.PackageNotFoundError:
        version = "unknown"
    figures = root / FIGURES
    figures.mkdir(parents=True, exist_ok=True)
    tables = build_tables(runs)
    report = Report(
        title,
        out,
        runs,
        tables,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        version=version,
    )
    for table in tables:
        ref = plots.table_figure(table, figures / f"table_{slug(table.benchmark)}.png")
        if ref:
            report.table_figures.append(ref)
    curves = [p for r in runs for p in r.curves]
    conv = [
        plots.convergence(curves, m, figures / f"curve_{slug(m)}.png")
        for m in curve_metrics(runs)[:MAX_CURVE_FIGURES]
    ]
    names = list(dict.fromkeys(p.metric for p in curves))
    tasks = sorted(m for m in names if m.startswith("geneval/"))
    caption = "Shapes GenEval score of each task (\u2191) at each evaluation."
    path = figures / "curve_geneval_tasks.png"
    conv.append(plots.panels(curves, tasks, path, "GenEval per task", caption))
    train = [m for m in names if m.startswith("train/") and m not in HIDDEN_CURVES]
    caption = "Training losses as logged by the loop (mean over processes)."
    path = figures / "curve_train.png"
    conv.append(plots.panels(curves, train, path, "Training losses", caption))
    _add(report, "Convergence", conv, "Evaluations during training, one line per space.")
    for role, name, pixel_art in IMAGE_SECTIONS:
        refs = copy_images(runs, role, figures)
        _add(report, name, refs, pixel_art=pixel_art)
    scalars = [s for r in runs for s in r.scalars]
    vectors = {(r.name, space, key): v for r in runs for (space, key), v in r.vectors.items()}
    diagnostics = [
        plots.robustness(scalars, figures / "latent_robustness.png"),
        plots.probe(scalars, figures / "latent_probe.png"),
        plots.channel_stats(vectors, figures / "latent_channels.png"),
    ]
    _add(report, "Latent diagnostics", diagnostics)
    return report


def _add(
    report: Report,
    title: str,
    refs: Sequence[FigureRef | None],
    intro: str = "",
    pixel_art: bool = False,
) -> None:
    kept = [r for r in refs if r is not None]
    if kept:
        report.sections.append(Section(title, kept, intro, pixel_art))


def curve_metrics(runs: Sequence[Run]) -> list[str]:
    """Curve names that get a figure of their own: headline metrics (with a direction) first,
    then other curves; per-task GenEval and training curves go to one panel figure each."""
    names = dict.fromkeys(
        p.metric for r in runs for p in r.curves if not p.metric.startswith(("geneval/", "train/"))
    )
    return sorted(names, key=lambda n: direction(n) is Direction.NONE)


def copy_images(runs: Sequence[Run], role: ImageRole, figures: Path) -> list[FigureRef]:
    """Copy each run image of ``role`` into ``figures/`` (run__path.png)."""
    refs = []
    for run in runs:
        if run.kind is RunKind.GENEVAL:
            continue
        for img in run.images:
            if img.role is not role:
                continue
            rel = img.path.relative_to(run.path).as_posix()
            dest = figures / f"{slug(run.name)}__{slug(rel)}"
            shutil.copyfile(img.path.resolve(), dest)  # a regular file inside the run
            title = f"{img.space or run.name}: {rel}"
            refs.append(FigureRef(dest, title, img.caption))
    return refs


def render_markdown(report: Report, root: Path) -> str:
    """README.md: tables with linked numbers, then the figures as image links."""
    lines = [
        f"# {md_text(report.title)}",
        "",
        f"{len(report.runs)} run(s); generated {report.created} by latentbench "
        f"{report.version}. Open `index.html` for the self-contained page; `metrics.csv` and "
        "`curves.csv` hold every number. Numbers link to the run file they were read from; "
        "\u2605 marks the best value of a column (\u2191 higher / \u2193 lower is better).",
        "",
    ]
    table_figs = {ref.title: ref for ref in report.table_figures}
    for table in report.tables:
        lines += [f"## {md_text(table.title)}", "", table_markdown(table, report.out), ""]
        if table.title in table_figs:
            ref = table_figs[table.title]
            lines += [f"Table as an image: [{ref.path.name}]({_rel(ref, root)})", ""]
    for section in report.sections:
        lines += [f"## {md_text(section.title)}", ""]
        for ref in section.figures:
            lines += [
                f"![{md_text(ref.title)}]({_rel(ref, root)})",
                "",
                f"*{md_text(ref.title)}*: {md_text(ref.caption)}",
                "",
            ]
    lines += ["## Runs", "", "| run | command | git | time | notes |", "|---|---|---|---|---|"]
    for r in report.runs:
        m = r.manifest
        link = f"[{md_text(r.name)}]({href(r.path, report.out)})"
        lines.append(
            f"| {link} | {md_text(r.command)} | {md_text(m.get('git') or '')} | "
            f"{md_text(m.get('time') or '')} | {md_text('; '.join(r.notes))} |"
        )
    return "\n".join(lines) + "\n"


def _rel(ref: FigureRef, root: Path) -> str:
    return ref.path.relative_to(root).as_posix()
