"""``latentbench report``: turn run folders into one page that answers "which space?".

:func:`write_report` reads run folders (never recomputes a metric) and writes, into ``out``:

- ``index.html``: self-contained (inline CSS, images as data URIs, no script, no network):
  the headline table first (one row per space, "value ± half-interval", best marked only
  beyond the intervals), "does reconstruction predict generation?", convergence curves with
  interval bands against steps and wall-clock, GenEval per task, the image grids, the latent
  diagnostics, then the secondary tables (per benchmark, diagnostics, training) and the runs;
- ``README.md``: the same in Markdown, figures as links into ``figures/``;
- ``metrics.csv`` / ``curves.csv``: every number with its bounds;
- ``figures/*.png``; ``sources/<run>/*.json``: copies of the runs' small JSON files, which the
  numbers link to, so the folder's links work when it is committed alone.

Warnings are shown where the runs of one table differ in data, image size, sample count or
reference set (:mod:`latentbench.report.provenance`). With ``commit``, the report is refused
unless every run was made from that commit with a clean tree, and so is this checkout.

The folder is built under a temporary name and moved into place when complete
(:func:`latentbench.runs.staged_dir`): a failed report leaves nothing half-written. It replaces
``out`` only when that is an earlier report (or empty), unless ``overwrite``. Only regular files
inside each run folder are read or copied: a link that leads out of it is skipped, and said so.
"""

from __future__ import annotations

import datetime as _dt
import math
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from latentbench.atomic import atomic_write_text
from latentbench.report import plots
from latentbench.report.catalog import Direction, direction
from latentbench.report.compare_plots import (
    Correlation,
    geneval_bars,
    labelled_grid,
    recon_vs_generation,
)
from latentbench.report.curves import convergence
from latentbench.report.differences import (
    between_spaces,
    generation_metric,
    versus_initialisation,
)
from latentbench.report.load import BOOKKEEPING, ImageRole, Run, RunKind, load_runs
from latentbench.report.plots import FigureRef, Palette, slug
from latentbench.report.provenance import check_commit, commit_line, mismatch_warnings
from latentbench.report.sources import Sources
from latentbench.report.tables import (
    Table,
    build_headline,
    build_tables,
    write_curves_csv,
    write_metrics_csv,
)
from latentbench.runs import OutputKind, claim_output, git_hash, latentbench_version, staged_dir

__all__ = ["Report", "ReportSummary", "write_report"]

FIGURES = "figures"
MAX_CURVE_FIGURES = 12
IMAGE_SECTIONS = (
    (ImageRole.RECON, "Reconstructions", True),
    (ImageRole.SAMPLES, "Samples per space", True),
    (ImageRole.EDITS, "Edits (before / after)", True),
    (ImageRole.OTHER, "Other figures of the runs", False),
)
KIND_NAMES = {
    RunKind.RECON: "reconstruction runs",
    RunKind.TRAIN_GEN: "generation runs",
    RunKind.GENEVAL: "GenEval runs",
    RunKind.TRAIN_TOKENIZER: "tokenizer runs",
}


@dataclass
class Section:
    title: str
    figures: list[FigureRef]
    intro: str = ""
    pixel_art: bool = False  # grids of small images: scale up without smoothing
    lines: list[str] = field(default_factory=list)  # text under the intro (e.g. each rho)
    wide: bool = False  # one figure across the page
    header: tuple[str, ...] = ()  # a table of text cells under the lines (e.g. the claims)
    rows: list[list[str]] = field(default_factory=list)


@dataclass
class Report:
    title: str
    out: Path  # the final folder
    runs: list[Run]
    headline: Table | None
    tables: list[Table]
    sources: Sources
    headline_figure: FigureRef | None = None  # the headline table as a PNG
    commit: str = ""  # the sentence on the runs' commits
    sections: list[Section] = field(default_factory=list)
    correlations: list[Correlation] = field(default_factory=list)
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
    commit: str | None = None,
    claims: Mapping[str, str] | None = None,
) -> ReportSummary:
    """Read ``run_dirs`` (run folders, or folders of run folders) and write the report ``out``.

    ``claims`` (role -> space name, an experiment's ``claims:``) adds the claims table of
    docs/method.md's C0-C5 (:mod:`latentbench.report.claims`).

    ``title`` defaults to "latentbench report: <folder name of out>". UserError when a path is
    not a run folder, when ``out`` holds a run or anything but an earlier report (unless
    ``overwrite``), or when ``commit`` is given and a run was not made from it (clean); nothing
    is written then.
    """
    out = Path(out)
    runs = load_runs(run_dirs)
    if commit:
        check_commit(runs, commit, git_hash())
    inputs = [*run_dirs, *(r.path for r in runs)]
    claim_output(out, OutputKind.REPORT, inputs=inputs, overwrite=overwrite)
    with staged_dir(out, OutputKind.REPORT) as tmp:
        title = title or f"latentbench report: {out.name}"
        report = build_report(runs, out, tmp, title, commit, claims)
        from latentbench.report.html import render_html
        from latentbench.report.markdown import render_markdown

        atomic_write_text(tmp / "index.html", render_html(report, tmp))
        atomic_write_text(tmp / "README.md", render_markdown(report, tmp))
        n_metrics = write_metrics_csv(runs, tmp / "metrics.csv")
        write_curves_csv(runs, tmp / "curves.csv")
        n_figures = len(list((tmp / FIGURES).glob("*.png")))
    n_tables = len(report.tables) + (report.headline is not None)
    skipped = [f"{r.name}: {s}" for r in runs for s in r.skipped]
    return ReportSummary(out, len(runs), n_tables, n_figures, n_metrics, skipped)


def build_report(
    runs: list[Run],
    out: Path,
    root: Path,
    title: str,
    commit: str | None = None,
    claims: Mapping[str, str] | None = None,
) -> Report:
    """Tables and figures (written under ``root/figures``, sources under ``root/sources``)."""
    figures = root / FIGURES
    figures.mkdir(parents=True, exist_ok=True)
    sources = Sources(root)
    sources.copy_runs(runs)
    headline = build_headline(runs)
    tables = build_tables(runs)
    add_warnings(runs, headline, tables)
    report = Report(title, out, runs, headline, tables, sources, commit=commit_line(runs, commit))
    report.created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    report.version = latentbench_version()
    if headline is not None:
        report.headline_figure = plots.table_figure(headline, figures / "table_headline.png")
    spaces = [r.space for r in headline.rows] if headline else []
    palette = Palette(spaces + [s.space for r in runs for s in r.scalars])
    if claims:
        _claims_section(report, claims)
    _differences_section(report)
    _comparison_sections(report, figures, palette)
    _convergence_sections(report, figures, palette)
    for role, name, pixel_art in IMAGE_SECTIONS:
        _add(report, name, copy_images(runs, role, figures), pixel_art=pixel_art)
    _diagnostic_section(report, figures, palette)
    return report


def add_warnings(runs: Sequence[Run], headline: Table | None, tables: Sequence[Table]) -> None:
    """A warning on each table whose runs differ in data, image size, samples or reference."""
    if headline is not None:
        shown = set(headline.runs())
        for kind, what in KIND_NAMES.items():
            members = [r for r in runs if r.kind is kind and r.name in shown]
            headline.warnings += mismatch_warnings(members, what)
    for table in tables:
        members = [r for r in runs if r.name in table.runs()]
        if len({r.benchmark for r in members}) == 1:
            table.warnings += mismatch_warnings(members, f"the runs of '{table.title}'")


def _claims_section(report: Report, roles: Mapping[str, str]) -> None:
    from latentbench.report.claims import CLAIMS_HEADER, claims_rows, claims_table, evaluate_claims

    results = evaluate_claims(claims_table(report.runs, roles))
    mapping = ", ".join(f"{role} = {name}" for role, name in roles.items())
    intro = (
        "The method's claims C0-C5 (docs/method.md), judged on these runs: 'holds' when every "
        "comparison is separated in the claimed direction (the 95% intervals do not overlap; "
        "over seeds, every seed orders the pair the same way), 'reversed' when one is separated "
        "against it, else 'not separable at this budget'. Roles: " + mapping + "."
    )
    report.sections.append(
        Section("Claims", [], intro, header=CLAIMS_HEADER, rows=claims_rows(results))
    )


def _differences_section(report: Report) -> None:
    found = generation_metric(report.headline)
    if found is None:
        return
    lines = versus_initialisation(report.runs, found[1]) + between_spaces(report.headline)
    intro = (
        "The generation metric of each space against its own untrained initialisation "
        "(step 0), then each pair of spaces; 'beyond the intervals': the 95% intervals do not "
        "overlap."
    )
    if lines:
        report.sections.append(Section("Which differences are real?", [], intro, lines=lines))


def _comparison_sections(report: Report, figures: Path, palette: Palette) -> None:
    diagnostics = [
        s for r in report.runs if r.kind is RunKind.RECON for s in r.scalars
        if s.metric.startswith("latent/")
    ]  # fmt: skip
    path = figures / "recon_vs_generation.png"
    ref, report.correlations = recon_vs_generation(report.headline, diagnostics, path, palette)
    lines = [
        f"{c.x}: rho undefined ({c.x} is the same for all {c.rho.n} spaces)"
        if math.isnan(c.rho.value)
        else f"{c.x}: rho = {c.rho.value:.2f}, 95% interval [{c.rho.low:.2f}, {c.rho.high:.2f}] "
        f"over {c.rho.n} spaces" + ("" if c.rho.n >= 4 else " (too few spaces to say)")
        for c in report.correlations
    ]
    intro = (
        "Across the compared spaces: does a better reconstruction (or latent diagnostic) go "
        "with better generation? Spearman's rho of each against the generation metric."
    )
    if ref is not None:
        report.sections.append(Section(ref.title, [ref], intro, lines=lines, wide=True))
    scalars = [s for r in report.runs for s in r.scalars]
    _add(report, "GenEval per task", [geneval_bars(scalars, figures / "geneval_tasks.png",
                                                   palette)])  # fmt: skip


def _convergence_sections(report: Report, figures: Path, palette: Palette) -> None:
    curves = [p for r in report.runs for p in r.curves]
    conv = [
        convergence(curves, m, figures / f"curve_{slug(m)}.png", palette)
        for m in curve_metrics(report.runs)[:MAX_CURVE_FIGURES]
    ]
    names = list(dict.fromkeys(p.metric for p in curves))
    tasks = sorted(m for m in names if m.startswith("geneval/"))
    caption = "Shapes GenEval score of each task (\u2191) at each evaluation."
    path = figures / "curve_geneval_tasks.png"
    conv.append(plots.panels(curves, tasks, path, "GenEval per task vs step", caption, palette))
    intro = "Evaluations during training, one line (and interval band) per space."
    _add(report, "Convergence", conv, intro)
    train = [m for m in names if m.startswith("train/") and m not in BOOKKEEPING]
    caption = "Training losses as logged by the loop (mean over processes), one line per seed."
    path = figures / "curve_train.png"
    _add(report, "Training", [plots.panels(curves, train, path, "Training losses", caption,
                                           palette)])  # fmt: skip


def _diagnostic_section(report: Report, figures: Path, palette: Palette) -> None:
    scalars = [s for r in report.runs for s in r.scalars]
    vectors = {
        (r.name, space, key): v for r in report.runs for (space, key), v in r.vectors.items()
    }
    diagnostics = [
        plots.robustness(scalars, figures / "latent_robustness.png", palette),
        plots.probe(scalars, figures / "latent_probe.png", palette),
        plots.channel_stats(vectors, figures / "latent_channels.png", palette),
    ]
    _add(report, "Latent diagnostics", diagnostics)


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
    """Each run image of ``role`` into ``figures/`` (run__path.png); a grid with row names is
    redrawn with them on its left."""
    refs = []
    for run in runs:
        if run.kind is RunKind.GENEVAL:
            continue
        for img in run.images:
            if img.role is not role:
                continue
            rel = img.path.relative_to(run.path).as_posix()
            dest = figures / f"{slug(run.name)}__{slug(rel)}"
            title = f"{img.space or run.name}: {rel}"
            if img.rows:
                refs.append(labelled_grid(img.path.resolve(), img.rows, dest, title, img.caption))
                continue
            shutil.copyfile(img.path.resolve(), dest)  # a regular file inside the run
            refs.append(FigureRef(dest, title, img.caption))
    return refs
