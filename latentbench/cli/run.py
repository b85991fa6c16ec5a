"""``latentbench run``: the whole pipeline an experiment file describes; ``latentbench plan``: its
full-size dry run (:mod:`latentbench.plan`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from latentbench.cli.common import Quiet, console, from_flags

Experiment = Annotated[
    str, typer.Argument(help="A shipped experiment (quickstart, smoke, ...) or a .yaml file.")
]
ExperimentOverwrite = Annotated[
    bool, typer.Option(help="Write the out: and report: folders even when they hold other files.")
]


GenerationSeeds = Annotated[
    str | None,
    typer.Option(
        help="Train the generators again on these seeds (e.g. 2,3), into <step>-seeds-2-3 "
        "and reports/<name>-seeds-2-3: those of the spaces whose generation its claims compare "
        "(all without claims); tokenizers and recon are shared."
    ),
]


def say(message: str) -> None:
    """A progress line of the experiment, as written (no markup, no wrapping)."""
    console.print(message, highlight=False, soft_wrap=True, markup=False)


def run_cmd(
    experiment: Experiment,
    overwrite: ExperimentOverwrite = False,
    generation_seeds: GenerationSeeds = None,
    quiet: Quiet = False,
) -> None:
    """Run a whole experiment file; steps already done are skipped, killed ones resume."""
    from latentbench.bench.seeds import parse_seeds
    from latentbench.experiment import run_experiment

    report = run_experiment(
        experiment,
        quiet=quiet,
        echo=say,
        overwrite=overwrite,
        generation_seeds=parse_seeds(generation_seeds),
    )
    console.print(f"report: {report / 'index.html'}", highlight=False, soft_wrap=True)


def plan_cmd(
    experiment: Experiment,
    out: Annotated[
        Path | None, typer.Option(help="Folder for plan.json / plan.md (runs/NAME-plan).")
    ] = None,
    batch: Annotated[int, typer.Option(help="Images per CPU step.")] = 2,
    budget_minutes: Annotated[float, typer.Option(help="Wall time for the CPU steps.")] = 8.0,
    meta_only: Annotated[bool, typer.Option(help="Parameters and FLOPs; no CPU step.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Write into --out whatever it holds.")] = False,
) -> None:
    """Dry run at full size: parameters, FLOPs, memory and GPU-hours of every stage."""
    from latentbench.plan import PlanConfig, plan_experiment, plan_table

    flags = {"batch": batch, "budget_minutes": budget_minutes, "meta_only": meta_only}
    plan = plan_experiment(
        experiment,
        from_flags(PlanConfig, "plan", **flags),
        out,
        overwrite=overwrite,
        echo=say,
    )
    print(plan_table(plan))
