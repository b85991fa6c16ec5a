"""The command line. Thin: parse, call the API, print.

One module per command group (``recon``, ``data``, ``train``, ``evaluate``, ``report``, ``run``,
``spaces``); what they share (option blocks, flags -> typed config, tables, the one-line error)
is in :mod:`latentbench.cli.common`. Every command turns a
:class:`~latentbench.errors.UserError` into one line on stderr and exit code 2; nothing else is
caught, so a bug still shows its traceback.
"""

from __future__ import annotations

import sys

import typer

from latentbench.cli import data, evaluate, recon, report, run, spaces, train
from latentbench.cli.common import console, fail
from latentbench.errors import UserError

__all__ = ["app", "main"]

app = typer.Typer(
    name="latentbench",
    help="Benchmark latent spaces: reconstruction, generation, editing.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Built-in datasets.", no_args_is_help=True)

# name -> command, in the order of `latentbench --help`
COMMANDS = {
    "spaces": spaces.spaces_cmd,
    "recon": recon.recon_cmd,
    "train-tokenizer": train.train_tokenizer_cmd,
    "toy-manifold": train.toy_manifold_cmd,
    "train-gen": train.train_gen_cmd,
    "convert-run": train.convert_run_cmd,
    "eval-gen": evaluate.eval_gen_cmd,
    "eval-edit": evaluate.eval_edit_cmd,
    "report": report.report_cmd,
    "run": run.run_cmd,
    "plan": run.plan_cmd,
}
DATA_COMMANDS = {"export": data.export_cmd, "shapes": data.shapes_cmd}

app.add_typer(data_app, name="data")
for name, command in COMMANDS.items():
    app.command(name)(command)
for name, command in DATA_COMMANDS.items():
    data_app.command(name)(command)


def main() -> None:
    """The console script: run the app; a user's mistake is one line and exit code 2."""
    import pydantic

    try:
        code = app(standalone_mode=False)  # click returns, not raises, the code of a Ctrl-C
    except UserError as e:
        fail(str(e))
    except pydantic.ValidationError as e:  # a config built from user input outside from_dict
        from latentbench.config import validation_message

        fail(validation_message(e, type(None), e.title))
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
    if isinstance(code, int) and code != 0:
        if code == 130:
            console.print("interrupted")
        sys.exit(code)
