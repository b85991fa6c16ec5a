"""``latentbench spaces``: the registered spaces, with their specs."""

from __future__ import annotations

from typing import Annotated

import typer

from latentbench.cli.common import AsJson, print_json, print_rows


def spaces_cmd(
    spec: Annotated[
        bool, typer.Option("--spec", help="Build each space (random weights) to show its spec.")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """List registered spaces (built-in and plugins)."""
    from latentbench.errors import UserError
    from latentbench.spaces import SPACES, build_space, space_info

    rows = []
    for entry in SPACES.entries():
        row: dict[str, object] = {"name": entry.name, "source": entry.source}
        if entry.version:
            row["version"] = entry.version  # a plugin's release
        try:  # a broken plugin must not hide the others
            row.update(space_info(entry.name).describe())  # family, needs_training, recipes
            if spec:
                built = build_space(entry.name, pretrained=False).spec.to_dict()
                row.update({k: v for k, v in built.items() if k != "name"})  # the spec's own
        except Exception as e:
            row["error"] = str(e) if isinstance(e, UserError) else f"{type(e).__name__}: {e}"
        rows.append(row)
    if as_json:
        print_json(rows)
        return
    header = (
        "space",
        "source",
        "family",
        "needs",
        *(["channels", "latent", "stride"] if spec else []),
    )
    print_rows(header, [_cells(r, spec) for r in rows], title=None)


def _cells(row: dict[str, object], spec: bool) -> list[str]:
    """A row of the table: name, source, family, what it needs first and, with --spec,
    channels, latent shape, stride."""
    source = " ".join(str(row[k]) for k in ("source", "version") if k in row)
    if "family" not in row:  # the plugin cannot be loaded
        return [str(row["name"]), source, str(row["error"]), "", *[""] * 3 * spec]
    extra: list[str] = []
    if spec:
        extra = (
            [str(row["channels"]), "x".join(map(str, row["latent_shape"])), str(row["stride"])]
            if "error" not in row
            else [str(row["error"]), "", ""]
        )
    needs = "train-tokenizer" if row["needs_training"] else ""
    return [str(row["name"]), source, str(row["family"]), needs, *extra]
