"""``latentbench run``: the whole pipeline an experiment file describes."""

from __future__ import annotations

from typing import Annotated

import typer

from latentbench.cli.common import Quiet, console

Experiment = Annotated[
    str, typer.Argument(help="A shipped experiment (quickstart, smoke, ...) or a .yaml file.")
]
ExperimentOverwrite = Annotated[
    bool, typer.Option(help="Write the out: and report: folders even when they hold other files.")
]


def run_cmd(
    experiment: Experiment, overwrite: ExperimentOverwrite = False, quiet: Quiet = False
) -> None:
    """Run a whole experiment file; steps already done are skipped, killed ones resume."""
    from latentbench.experiment import run_experiment

    report = run_experiment(
        experiment,
        quiet=quiet,
        echo=lambda m: console.print(m, highlight=False, soft_wrap=True, markup=False),
        overwrite=overwrite,
    )
    console.print(f"report: {report / 'index.html'}", highlight=False, soft_wrap=True)
