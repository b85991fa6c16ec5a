"""The README's shell commands against the command line as it is.

- Every ``latentbench`` command of every ```bash block (continuation lines joined, comments cut)
  is parsed by the real click command: its subcommand, every flag and every value's type. A
  renamed or dropped flag fails here, in every section, the slow commands included.
- The commands of the report and evaluation sections, which run in seconds, run exactly as
  written, in README order, in an empty folder; only ``.venv/bin/latentbench`` is replaced by
  this interpreter's ``latentbench``. ``make demo EXPERIMENT=smoke`` and ``make demo`` run in CI
  (tests/test_packaging.py checks that it does).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer

REPO = Path(__file__).resolve().parents[1]
EXECUTABLE = ".venv/bin/latentbench"

# The README commands run as written: every command that starts with one of these (after
# `latentbench`), in README order. Each must match at least one README command.
RUN_AS_WRITTEN = (
    "recon --space pixel --data shapes:32",
    "data shapes --geneval --out runs/shapes-geneval",
    "eval-gen --suite geneval-shapes --images runs/shapes-geneval",
    "train-gen --space pixel --task t2i --data shapes:200",
    "report runs/recon-pixel runs/shapes-geneval runs/gen-demo",
    "eval-gen runs/gen-demo/pixel",
    "train-gen --space pixel --task edit --data shapes-edits:200",
    "eval-edit runs/gen-edit-demo/pixel",
)


def readme_commands() -> list[tuple[int, str]]:
    """(line, command) of every line of the README's ```bash blocks that runs something."""
    found, block, pending, start = [], False, "", 0
    for number, line in enumerate((REPO / "README.md").read_text().splitlines(), start=1):
        if line.startswith("```"):
            block = not block and line.strip() in ("```bash", "```sh")
            continue
        if not block:
            continue
        text = re.sub(r"(^|\s+)#(\s.*)?$", "", line).rstrip()  # a comment, whole or trailing
        if not pending:
            start = number
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        command, pending = (pending + text).strip(), ""
        if command:
            found.append((start, command))
    return found


def latentbench_argv(command: str) -> list[str] | None:
    """The arguments after ``latentbench`` (an env assignment before it allowed), else None."""
    words = shlex.split(command)
    for i, word in enumerate(words):
        if word == "latentbench" or word.endswith("/latentbench"):
            return words[i + 1 :]
        if "=" not in word:
            return None
    return None


class ParseError(Exception):
    pass


def parse(argv: list[str]) -> None:
    """Parse ``latentbench ARGV`` with the real (typer-vendored click) commands, running
    nothing; a ParseError says what the command line would refuse."""
    from typer.main import get_command

    from latentbench.cli import app

    command, ctx, name = get_command(app), None, "latentbench"
    while hasattr(command, "list_commands"):  # a group: latentbench, latentbench data
        if not argv:
            raise ParseError(f"{name}: no subcommand")
        name, *argv = argv
        ctx = typer.Context(command, info_name=name, parent=ctx)
        sub = command.get_command(ctx, name)
        if sub is None:
            raise ParseError(f"no command {name!r}")
        command = sub
    try:
        command.make_context(name, list(argv), parent=ctx)
    except typer.Exit as e:  # --help
        if e.exit_code != 0:
            raise ParseError(f"exit {e.exit_code}") from None
    except Exception as e:  # click's usage errors (typer vendors click)
        if not hasattr(e, "format_message"):
            raise
        raise ParseError(e.format_message()) from None


COMMANDS = [(n, c, a) for n, c in readme_commands() if (a := latentbench_argv(c)) is not None]


def test_the_readme_shows_latentbench_commands():
    assert len(COMMANDS) > 30, COMMANDS


@pytest.mark.parametrize(("line", "command", "argv"), COMMANDS, ids=[f"L{n}" for n, *_ in COMMANDS])
def test_every_readme_command_parses(line: int, command: str, argv: list[str]) -> None:
    try:
        parse(argv)
    except ParseError as e:
        pytest.fail(f"README line {line}: {command}\n{e}")


@pytest.mark.parametrize(
    "argv",
    [
        ["recon", "--spcae", "pixel", "--data", "shapes:8"],
        ["recon", "--space", "pixel", "--data", "shapes:8", "--batch-size", "abc"],
        ["recon", "--data", "shapes:8"],
        ["data", "exprt"],
        ["reconstruct"],
    ],
)
def test_a_command_the_cli_would_refuse_does_not_parse(argv: list[str]) -> None:
    with pytest.raises(ParseError):
        parse(argv)


def test_the_quick_readme_commands_run_as_written(tmp_path: Path) -> None:
    chosen = [
        (line, command)
        for line, command, argv in COMMANDS
        if any(" ".join(argv).startswith(prefix) for prefix in RUN_AS_WRITTEN)
    ]
    for prefix in RUN_AS_WRITTEN:
        assert any(prefix in command for _, command in chosen), f"no README command {prefix!r}"
    latentbench = str(Path(sys.executable).with_name("latentbench"))
    env = {"PATH": str(Path(sys.executable).parent), "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)}
    env["LATENTBENCH_CACHE"] = str(tmp_path / "cache")
    for line, command in chosen:
        assert command.startswith(EXECUTABLE + " "), f"README line {line}: {command}"
        argv = [latentbench, *shlex.split(command)[1:]]
        done = subprocess.run(
            argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, f"README line {line}: {command}\n{done.stderr[-3000:]}"
    assert (tmp_path / "reports" / "demo" / "index.html").is_file()
    assert (tmp_path / "runs" / "eval-init" / "results.json").is_file()
