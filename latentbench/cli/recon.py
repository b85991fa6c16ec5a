"""``latentbench recon``: reconstruct images with each space and measure it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from latentbench.cli.common import (
    AsJson,
    BatchSize,
    DataSpec,
    Device,
    LpipsRandomBackbone,
    MaxPixelsFlag,
    Overwrite,
    Quiet,
    Seed,
    SpaceOptions,
    echo,
    from_flags,
    max_pixels_or_default,
    names_or_none,
    parse_options,
    print_json,
    print_metrics_table,
    split_names,
)

Spaces = Annotated[
    str, typer.Option(help="Spaces, comma-separated, or 'all'; a saved-space folder works too.")
]
ImageSize = Annotated[int, typer.Option(help="Images are center-cropped and resized to this.")]
FdExtractors = Annotated[
    str,
    typer.Option(
        help="Feature extractors for Frechet distances; 'inception' is rFID; 'none'; "
        "auto: inception where its weights are found, else efficientnet-lite0."
    ),
]
LpipsNets = Annotated[
    str, typer.Option(help="LPIPS nets: alex, vgg, none; auto: alex where its weights are found.")
]
Weights = Annotated[str | None, typer.Option(help="Weights file/folder for spaces that take one.")]
Strict = Annotated[bool, typer.Option(help="An unreadable image is an error, not a skip.")]
SaveImages = Annotated[
    bool, typer.Option(help="Write every original and reconstruction as PNG under images/.")
]
Diagnostics = Annotated[
    int,
    typer.Option(
        help="Images for the latent diagnostics (probe, noise robustness, iFID); 0: off"
        " (the default: they cost ~7 extra decodes per image; see README)."
    ),
]
Wide = Annotated[bool, typer.Option(help="Print every metric, not the headline.")]


def recon_cmd(
    space: Spaces,
    data: DataSpec,
    image_size: ImageSize = 256,
    num_images: Annotated[int | None, typer.Option(help="Use the first N images.")] = None,
    batch_size: BatchSize = 8,
    fd: FdExtractors = "auto",
    lpips: LpipsNets = "auto",
    lpips_random_backbone: LpipsRandomBackbone = False,
    weights: Weights = None,
    option: SpaceOptions = None,
    strict: Strict = False,
    max_pixels: MaxPixelsFlag = None,
    save_images: SaveImages = False,
    diagnostics: Diagnostics = 0,
    wide: Wide = False,
    seed: Seed = 0,
    device: Device = None,
    out: Annotated[Path, typer.Option(help="Run folder to write.")] = Path("runs/recon"),
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    as_json: AsJson = False,
) -> None:
    """Reconstruct images with each space; PSNR, SSIM, LPIPS, rFID / FD, throughput."""
    from latentbench.bench.recon import ReconConfig, run_recon

    cfg = from_flags(
        ReconConfig,
        "recon",
        spaces=split_names(space),
        data=data,
        image_size=image_size,
        num_images=num_images,
        batch_size=batch_size,
        fd=names_or_none(fd),
        lpips=names_or_none(lpips),
        lpips_random_backbone=lpips_random_backbone,
        weights=weights,
        space_options=parse_options(option or []),
        strict=strict,
        max_pixels=max_pixels_or_default(max_pixels),
        seed=seed,
        device=device,
        save_images=save_images,
        diagnostics=diagnostics,
    )
    results = run_recon(cfg, out, quiet=quiet, echo=echo, overwrite=overwrite)
    if as_json:
        print_json(results)
        return
    print_metrics_table(results, title=f"recon -> {out}", wide=wide)
