"""``latentbench report``: compare runs in one self-contained page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from latentbench.cli.common import Overwrite, console

RunDirs = Annotated[
    list[Path], typer.Argument(help="Run folders, or folders of run folders (train-gen --out).")
]
ReportOut = Annotated[Path, typer.Option(help="Report folder to write (replaced when complete).")]


def report_cmd(
    run_dirs: RunDirs,
    out: ReportOut,
    title: Annotated[str | None, typer.Option(help="Page title.")] = None,
    overwrite: Overwrite = False,
    commit: Annotated[
        str | None, typer.Option(help="Label it with this commit; refused unless every run is.")
    ] = None,
) -> None:
    """Compare runs: index.html (self-contained), README.md, metrics.csv, figures/."""
    from latentbench.report import write_report
    from latentbench.report.claims import experiment_roles

    claims = experiment_roles(run_dirs)  # an experiment's folder: its claims table too
    summary = write_report(
        run_dirs, out, title=title, overwrite=overwrite, commit=commit, claims=claims
    )
    for skipped in summary.skipped:
        console.print(f"not read: {skipped}", highlight=False, soft_wrap=True, markup=False)
    console.print(
        f"report of {summary.runs} run(s): {summary.tables} table(s), {summary.figures} "
        f"figure(s), {summary.metrics} numbers -> {out / 'index.html'}",
        highlight=False,
        soft_wrap=True,
    )
