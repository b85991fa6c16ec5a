"""The command line. Thin: parse, call the API, print.

Every command turns a :class:`~latentbench.errors.UserError` into one line on stderr and exit
code 2; nothing else is caught, so a bug still shows its traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

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


def _names_or_none(value: str) -> list[str]:
    return [] if value.strip().lower() == "none" else split_names(value)


@app.command("recon")
def recon_cmd(
    space: Annotated[
        str, typer.Option(help="Spaces, comma-separated, or 'all'; a saved-space folder works too.")
    ],
    data: Annotated[str, typer.Option(help="Data SPEC: folder, skimage[:names], shapes[:N], ...")],
    image_size: Annotated[
        int, typer.Option(help="Images are center-cropped and resized to this.")
    ] = 256,
    num_images: Annotated[int | None, typer.Option(help="Use the first N images.")] = None,
    batch_size: Annotated[int, typer.Option()] = 8,
    fd: Annotated[
        str,
        typer.Option(help="Feature extractors for Frechet distances; 'inception' is rFID; 'none'."),
    ] = "inception",
    lpips: Annotated[str, typer.Option(help="LPIPS nets: alex, vgg, or none.")] = "alex",
    lpips_random_backbone: Annotated[
        bool, typer.Option(help="Offline demo: LPIPS heads on a random backbone (named as such).")
    ] = False,
    weights: Annotated[
        str | None, typer.Option(help="Weights file/folder for spaces that take one.")
    ] = None,
    strict: Annotated[
        bool, typer.Option(help="An unreadable image is an error, not a skip.")
    ] = False,
    save_images: Annotated[
        bool, typer.Option(help="Write every original and reconstruction as PNG under images/.")
    ] = False,
    seed: Annotated[int, typer.Option()] = 0,
    device: Annotated[
        str | None, typer.Option(help="cpu, cuda, cuda:1 ... (default: cuda if present)")
    ] = None,
    out: Annotated[Path, typer.Option(help="Run folder to write.")] = Path("runs/recon"),
    quiet: Quiet = False,
    as_json: AsJson = False,
) -> None:
    """Reconstruct images with each space; PSNR, SSIM, LPIPS, rFID / FD, throughput."""
    from latentbench.bench.recon import ReconConfig, run_recon
    from latentbench.config import _coerce
    from latentbench.metrics.pixel import LPIPSNet

    nets = [_coerce(n, LPIPSNet, "--lpips") for n in _names_or_none(lpips)]
    cfg = ReconConfig(
        spaces=split_names(space),
        data=data,
        image_size=image_size,
        num_images=num_images,
        batch_size=batch_size,
        fd=_names_or_none(fd),
        lpips=nets,
        lpips_random_backbone=lpips_random_backbone,
        weights=weights,
        strict=strict,
        seed=seed,
        device=device,
        save_images=save_images,
    )
    results = run_recon(cfg, out, quiet=quiet, echo=lambda m: console.print(m, highlight=False))
    if as_json:
        print_json(results)
        return
    print_metrics_table(results, title=f"recon -> {out}")


def print_metrics_table(results: dict[str, dict[str, object]], title: str) -> None:
    """One row per space, one column per scalar metric."""
    columns: list[str] = []
    for metrics in results.values():
        columns += [
            k for k, v in metrics.items() if k not in columns and isinstance(v, (int, float))
        ]
    table = Table("space", *columns, title=title)
    for name, metrics in results.items():
        table.add_row(name, *(_fmt(metrics.get(c)) for c in columns))
    Console().print(table)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


@data_app.command("export")
def data_export_cmd(
    data: Annotated[str, typer.Option(help="Data SPEC: folder, skimage[:names], shapes[:N], ...")],
    out: Annotated[Path, typer.Option(help="Folder to write PNGs into, named by item key.")],
    image_size: Annotated[
        int | None, typer.Option(help="Center-crop and resize to this; omitted: native size.")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Export the first N images.")] = None,
    strict: Annotated[bool, typer.Option(help="An unreadable image is an error.")] = False,
) -> None:
    """Write a dataset's images as PNG files (e.g. the scikit-image photos for the README)."""
    from latentbench.data import open_images
    from latentbench.data.images import export_images

    dataset = open_images(data, image_size, limit=limit, strict=strict)
    written, skipped = export_images(dataset, out)
    for key, reason in skipped:
        console.print(f"skipped {key}: {reason}", highlight=False)
    console.print(f"wrote {written} images to {out} ({len(skipped)} skipped)", highlight=False)


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
