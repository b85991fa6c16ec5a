"""``latentbench data ...``: write the built-in datasets to folders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from latentbench.cli.common import (
    DataSpec,
    MaxPixelsFlag,
    Overwrite,
    Quiet,
    Seed,
    console,
    max_pixels_or_default,
)

ExportDir = Annotated[Path, typer.Option(help="Folder to write PNGs into, named by item key.")]
ShapesDir = Annotated[
    Path, typer.Option(help="Folder to write (new or empty, unless --overwrite).")
]


def export_cmd(
    data: DataSpec,
    out: ExportDir,
    image_size: Annotated[
        int | None, typer.Option(help="Center-crop and resize to this; omitted: native size.")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Export the first N images.")] = None,
    strict: Annotated[bool, typer.Option(help="An unreadable image is an error.")] = False,
    max_pixels: MaxPixelsFlag = None,
    overwrite: Overwrite = False,
) -> None:
    """Write a dataset's images as PNG files (e.g. the scikit-image photos for the README)."""
    from latentbench.data import data_paths, open_images
    from latentbench.data.export import export_images
    from latentbench.runs import OutputKind, claim_output, staged_dir

    kind = OutputKind.EXPORT
    claim_output(out, kind, data=data_paths(data), overwrite=overwrite)
    dataset = open_images(
        data, image_size, limit=limit, strict=strict, max_pixels=max_pixels_or_default(max_pixels)
    )
    with staged_dir(out, kind) as tmp:
        written, skipped = export_images(dataset, tmp)
    for key, reason in skipped:
        console.print(f"skipped {key}: {reason}", highlight=False)
    console.print(f"wrote {written} images to {out} ({len(skipped)} skipped)", highlight=False)


def shapes_cmd(
    out: ShapesDir,
    n: Annotated[int, typer.Option("--n", help="Number of images (and of edits).")] = 1000,
    image_size: Annotated[int, typer.Option(help="Image side in pixels.")] = 64,
    seed: Seed = 0,
    geneval: Annotated[
        bool,
        typer.Option(help="Write the GenEval prompt suite's ground truth in GenEval's layout."),
    ] = False,
    prompts_per_task: Annotated[int, typer.Option(help="GenEval prompts per task.")] = 100,
    samples: Annotated[int, typer.Option(help="With --geneval: images per prompt.")] = 4,
    edits: Annotated[int | None, typer.Option(help="Number of edits (default: --n).")] = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """The Shapes world: images + captions.jsonl + edits.jsonl + GenEval metadata, or (--geneval)
    ground-truth images of the GenEval prompts as DIR/<index:05d>/samples/<k:04d>.png."""
    from latentbench.data.shapes import write_dataset, write_oracle_layout
    from latentbench.runs import OutputKind, claim_output, staged_dir
    from latentbench.terminal import Progress

    claim_output(out, OutputKind.SHAPES, overwrite=overwrite)
    total = prompts_per_task * 6 * samples if geneval else n + (n if edits is None else edits)
    with (
        Progress(total, "images", disable=quiet) as bar,
        staged_dir(out, OutputKind.SHAPES) as tmp,
    ):
        # what both writers take; the two calls below name only what differs
        shared = dict(
            image_size=image_size, seed=seed, prompts_per_task=prompts_per_task, progress=bar.update
        )
        if geneval:
            count = write_oracle_layout(tmp, samples_per_prompt=samples, **shared)
            what = f"{count} ground-truth images of {prompts_per_task * 6} GenEval prompts"
        else:
            s = write_dataset(tmp, n=n, n_edits=edits, **shared)
            what = f"{s.images} images, {s.edits} edits, {s.prompts} GenEval prompts"
    console.print(f"wrote {what} to {out}", highlight=False)
