"""What every command shares: the console, the option blocks, turning flags into a typed config,
printing results, and the one-line error.

A command module imports the option types it declares (``Quiet``, ``Overwrite``, ...) so that
typer reads them from the command's own module.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from latentbench.errors import UserError

console = Console(stderr=True, soft_wrap=True)  # one line per message, whatever the width
C = TypeVar("C")

# -- option blocks repeated across commands --------------------------------------------------
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the final metrics as JSON.")]
Overwrite = Annotated[
    bool,
    typer.Option(help="Replace (or write into) --out even when it is not this command's output."),
]
MaxPixelsFlag = Annotated[
    int | None,
    typer.Option(
        help="Skip images of more than N pixels, judged from the file header without decoding "
        "them (default 64 MP; at most Pillow's bomb limit, 179 MP)."
    ),
]
Device = Annotated[
    str | None, typer.Option(help="cpu, cuda, cuda:1 ... (default: cuda if present)")
]
Seeds = Annotated[
    str | None,
    typer.Option(help="e.g. 0,1,2: one run per seed in OUT/seed_<k>, their aggregate in OUT."),
]
LogWith = Annotated[
    str | None,
    typer.Option(help="Also log to tensorboard (RUN/trackers) or wandb, when installed."),
]
SpaceOptions = Annotated[
    list[str] | None,
    typer.Option(
        "--option", "-o", help="KEY=VALUE for every space that takes it, e.g. -o model=DIR."
    ),
]
DataSpec = Annotated[str, typer.Option(help="Data SPEC: folder, skimage[:names], shapes[:N], ...")]
Seed = Annotated[int, typer.Option()]
BatchSize = Annotated[int, typer.Option()]
LpipsRandomBackbone = Annotated[
    bool, typer.Option(help="Offline demo: LPIPS heads on a random backbone (named as such).")
]
# Sampling from a train-gen run (eval-gen, eval-edit).
Checkpoint = Annotated[
    str | None, typer.Option(help="Step, folder, or 'init' (untrained); default: last.")
]
OverrideSteps = Annotated[int | None, typer.Option(help="Override the run's steps.")]
OverrideGuidance = Annotated[float | None, typer.Option(help="Override the run's guidance.")]
OverrideShift = Annotated[float | None, typer.Option(help="Override the run's sampling shift.")]
OverrideSampler = Annotated[
    str | None, typer.Option(help="Override the run's sampler: euler, heun.")
]


# -- flags -> typed settings -----------------------------------------------------------------
def max_pixels_or_default(value: int | None) -> int:
    from latentbench.data import DEFAULT_MAX_PIXELS

    return DEFAULT_MAX_PIXELS if value is None else value


def split_names(value: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise UserError("no space given")
    return names


def names_or_none(value: str) -> list[str]:
    """'a,b' -> ['a', 'b']; 'none' -> []."""
    return [] if value.strip().lower() == "none" else split_names(value)


def parse_options(pairs: list[str]) -> dict[str, object]:
    """['a=1', 'b=x'] -> {'a': 1, 'b': 'x'} (values read as YAML scalars)."""
    import yaml

    options: dict[str, object] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key.strip():
            raise UserError(f"-o {pair!r} is not KEY=VALUE")
        try:
            options[key.strip()] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            raise UserError(f"-o {pair!r}: the value is not valid YAML") from None
    return options


def from_flags(cls: type[C], command: str, **flags: object) -> C:
    """The config ``cls`` of ``command`` from its flags, validated; errors name the flag."""
    from latentbench.config import from_dict

    return from_dict(cls, flags, command, flags=flags.keys())


# -- output ----------------------------------------------------------------------------------
def echo(message: str) -> None:
    """A runner's progress note, printed as given (no highlighting)."""
    console.print(message, highlight=False)


def print_json(obj: object) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def print_metrics_table(results: dict[str, object], title: str, wide: bool = False) -> None:
    """One row per space: the headline metrics with their intervals (``wide``: every scalar;
    all of them are in metrics.json), then the recorded warnings."""
    from latentbench.terminal import metrics_table, warnings_of

    Console(width=max(120, Console().width)).print(metrics_table(results, title, wide))
    for line in warnings_of(results):
        console.print(f"warning: {line}", highlight=False)


def print_rows(header: tuple[str, ...], rows, title: str) -> None:
    """A table of string rows on stdout."""
    table = Table(*header, title=title)
    for row in rows:
        table.add_row(*row)
    Console().print(table)


def fail(message: str) -> None:
    """A user's mistake: one line on stderr, exit code 2."""
    from rich.markup import escape

    line = " ".join(part.strip() for part in message.splitlines() if part.strip())
    console.print(f"[red]error:[/red] {escape(line)}", highlight=False, soft_wrap=True)
    sys.exit(2)
