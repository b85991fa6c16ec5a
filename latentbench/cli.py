"""The command line. Thin: parse, call the API, print.

Every command turns a :class:`~latentbench.errors.UserError` into one line on stderr and exit
code 2; nothing else is caught, so a bug still shows its traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from latentbench.errors import UserError

app = typer.Typer(
    name="latentbench",
    help="Benchmark latent spaces: reconstruction, generation, editing.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Built-in datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")

console = Console(stderr=True)
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the final metrics as JSON.")]


def print_json(obj: object) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def split_names(value: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise UserError("no space given")
    return names


@app.command("spaces")
def spaces_cmd(
    spec: Annotated[
        bool, typer.Option("--spec", help="Build each space (random weights) to show its spec.")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """List registered spaces (built-in and plugins)."""
    from latentbench.spaces import SPACES, build_space

    rows = []
    for entry in SPACES.entries():
        row: dict[str, object] = {"name": entry.name, "source": entry.source}
        if spec:
            try:
                row.update(build_space(entry.name, pretrained=False).spec.to_dict())
            except Exception as e:  # a broken plugin must not hide the others
                row["error"] = f"{type(e).__name__}: {e}"
        rows.append(row)
    if as_json:
        print_json(rows)
        return
    table = Table("space", "source", *(["channels", "latent", "stride"] if spec else []))
    for r in rows:
        extra = []
        if spec:
            extra = (
                [str(r["channels"]), "x".join(map(str, r["latent_shape"])), str(r["stride"])]
                if "error" not in r
                else [str(r["error"]), "", ""]
            )
        table.add_row(str(r["name"]), str(r["source"]), *extra)
    Console().print(table)


def main() -> None:
    try:
        app(standalone_mode=False)
    except UserError as e:
        console.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Abort:
        console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)
    except Exception as e:
        # With standalone_mode=False, click's usage errors (typer vendors click) arrive here.
        if hasattr(e, "show") and isinstance(getattr(e, "exit_code", None), int):
            e.show()
            sys.exit(e.exit_code)
        raise


_ = (Path, Optional)  # re-exported for command modules that extend this app
