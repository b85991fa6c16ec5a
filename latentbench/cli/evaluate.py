"""``latentbench eval-gen`` and ``eval-edit``: score a trained generator, or images made
elsewhere, on a prompt suite or an edit set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from latentbench.cli.common import (
    AsJson,
    BatchSize,
    Checkpoint,
    Device,
    LpipsRandomBackbone,
    MaxPixelsFlag,
    OverrideGuidance,
    OverrideSampler,
    OverrideShift,
    OverrideSteps,
    Overwrite,
    Quiet,
    Seed,
    from_flags,
    max_pixels_or_default,
    print_json,
    print_rows,
)
from latentbench.errors import UserError


class Bars:
    """Progress bars for runners that take ``progress(total) -> per-item callback``; a context
    manager that closes the last bar."""

    def __init__(self, quiet: bool) -> None:
        self.quiet, self.bar = quiet, None

    def __call__(self, total: int):
        from latentbench.terminal import Progress

        self.close()  # a rich bar on a terminal, plain lines every 10 s otherwise
        self.bar = Progress(total, "images", disable=self.quiet)
        return self.bar.update

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> Bars:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def with_bars(runner, cfg, run_dir, images, out, *, quiet: bool, overwrite: bool):
    """``runner(cfg, ...)`` (run_eval_gen, run_eval_edit) with a progress bar per stage."""
    with Bars(quiet) as bars:
        return runner(
            cfg, run_dir=run_dir, images=images, out=out, progress=bars, overwrite=overwrite
        )


ClipScore = Annotated[
    bool | None, typer.Option(help="geneval: CLIPScore of each image (default: on).")
]

# -- eval-gen --------------------------------------------------------------------------------
Suite = Annotated[str, typer.Option(help="Prompt suite: geneval-shapes or geneval.")]
T2IRun = Annotated[
    Path | None, typer.Argument(help="A train-gen run folder (t2i): sample N images per prompt.")
]
GenImages = Annotated[
    Path | None,
    typer.Option(help="Score images made elsewhere: DIR/<index:05d>/samples/<k:04d>.png."),
]
Metadata = Annotated[
    Path | None,
    typer.Option(
        help="GenEval evaluation_metadata.jsonl (or Bagel's _long variant); "
        "geneval-shapes default: the built-in Shapes suite."
    ),
]
Detector = Annotated[str | None, typer.Option(help="geneval: mask2former (default) or owlv2.")]
DetectorModel = Annotated[str | None, typer.Option(help="Detector hub id or local folder.")]
GenClipModel = Annotated[
    str | None,
    typer.Option(help="CLIP hub id or local folder (default openai/clip-vit-large-patch14)."),
]
Threshold = Annotated[float | None, typer.Option(help="Detection score threshold.")]
CountingThreshold = Annotated[float | None, typer.Option(help="Threshold of the counting task.")]
EvalGenOut = Annotated[
    Path | None,
    typer.Option(
        help="RUN_DIR: output folder (default RUN_DIR/eval-gen/SUITE); --images: results "
        ".json file or folder (default DIR/results.json)."
    ),
]


def eval_gen_cmd(
    suite: Suite,
    run_dir: T2IRun = None,
    images: GenImages = None,
    metadata: Metadata = None,
    samples: Annotated[int, typer.Option(help="Images per prompt (GenEval: 4).")] = 4,
    prompts_per_task: Annotated[int, typer.Option(help="Built-in Shapes suite size.")] = 100,
    limit: Annotated[int | None, typer.Option(help="Only the first N prompts.")] = None,
    detector: Detector = None,
    detector_model: DetectorModel = None,
    clip_model: GenClipModel = None,
    threshold: Threshold = None,
    counting_threshold: CountingThreshold = None,
    clipscore: ClipScore = None,
    checkpoint: Checkpoint = None,
    sample_steps: OverrideSteps = None,
    guidance: OverrideGuidance = None,
    sample_shift: OverrideShift = None,
    sampler: OverrideSampler = None,
    seed: Seed = 0,
    batch_size: BatchSize = 16,
    device: Device = None,
    max_pixels: MaxPixelsFlag = None,
    out: EvalGenOut = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    as_json: AsJson = False,
) -> None:
    """GenEval-style scores: per-task and overall (mean of the six tasks), per-prompt rows."""
    from latentbench.bench.eval_gen import EvalGenConfig, run_eval_gen, table_rows

    if run_dir is None and images is None:
        raise UserError(
            "RUN_DIR or --images DIR is required (GenEval layout: DIR/<index:05d>/metadata.jsonl)"
        )
    cfg = from_flags(
        EvalGenConfig,
        "eval-gen",
        suite=suite,
        metadata=str(metadata) if metadata else None,
        samples_per_prompt=samples,
        prompts_per_task=prompts_per_task,
        limit=limit,
        seed=seed,
        detector=detector,
        detector_model=detector_model,
        clip_model=clip_model,
        threshold=threshold,
        counting_threshold=counting_threshold,
        clipscore=clipscore,
        checkpoint=checkpoint,
        sample_steps=sample_steps,
        guidance=guidance,
        sample_shift=sample_shift,
        sampler=sampler,
        batch_size=batch_size,
        device=device,
        max_pixels=max_pixels_or_default(max_pixels),
    )
    res = with_bars(run_eval_gen, cfg, run_dir, images, out, quiet=quiet, overwrite=overwrite)
    if as_json:
        print_json({k: v for k, v in res.results.items() if k != "per_image"})
        return
    title = f"{res.results['label']} -> {res.path}"
    print_rows(("task", "correct", "score"), table_rows(res.results), title=title)


# -- eval-edit -------------------------------------------------------------------------------
EditRun = Annotated[
    Path | None, typer.Argument(help="A train-gen run folder (edit): edit with it.")
]
Edits = Annotated[
    Path | None,
    typer.Option(help="Edits .jsonl (Shapes rows or natural: source, instruction, ...)."),
]
EditImages = Annotated[
    Path | None, typer.Option(help="Score edited images made elsewhere: DIR/<row:05d>.png.")
]
EditClipModel = Annotated[
    str | None, typer.Option(help="CLIP hub id or folder (default ViT-B/32, MagicBrush).")
]
DinoModel = Annotated[
    str | None, typer.Option(help="DINO hub id or folder (default facebook/dino-vits16).")
]
MaskedLpips = Annotated[str, typer.Option(help="LPIPS net outside the mask: alex, vgg, none.")]
LpipsWeights = Annotated[str | None, typer.Option(help="LPIPS backbone file/folder.")]
Judge = Annotated[
    str | None, typer.Option(help="Reward-model judge (registry name); off by default.")
]
EditSeed = Annotated[int, typer.Option(help="Shapes edit set and sampling noise.")]
SHAPES_COLUMNS = ("category", "edits", "success", "l1 out", "psnr out", "lpips out")
NATURAL_COLUMNS = ("metric", "mean", "edits")


def eval_edit_cmd(
    run_dir: EditRun = None,
    edits: Edits = None,
    images: EditImages = None,
    num_edits: Annotated[int, typer.Option(help="Built-in Shapes edits (no --edits).")] = 140,
    limit: Annotated[int | None, typer.Option(help="Only the first N edits.")] = None,
    clip_model: EditClipModel = None,
    dino_model: DinoModel = None,
    lpips: MaskedLpips = "alex",
    lpips_weights: LpipsWeights = None,
    lpips_random_backbone: LpipsRandomBackbone = False,
    judge: Judge = None,
    checkpoint: Checkpoint = None,
    sample_steps: OverrideSteps = None,
    guidance: OverrideGuidance = None,
    seed: EditSeed = 1000,
    batch_size: BatchSize = 16,
    device: Device = None,
    max_pixels: MaxPixelsFlag = None,
    out: Annotated[Path | None, typer.Option(help="Output folder.")] = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    as_json: AsJson = False,
) -> None:
    """Editing metrics: Shapes success per category + preservation; natural-image MagicBrush /
    PIE-Bench metrics (L1, CLIP-I, CLIP-T, DINO, PSNR/SSIM/LPIPS outside the mask)."""
    from latentbench.bench.eval_edit import EvalEditConfig, run_eval_edit, table_rows

    cfg = from_flags(
        EvalEditConfig,
        "eval-edit",
        edits=str(edits) if edits else None,
        num_edits=num_edits,
        limit=limit,
        seed=seed,
        clip_model=clip_model,
        dino_model=dino_model,
        lpips=lpips,
        lpips_weights=lpips_weights,
        lpips_random_backbone=lpips_random_backbone,
        judge=judge,
        checkpoint=checkpoint,
        sample_steps=sample_steps,
        guidance=guidance,
        batch_size=batch_size,
        device=device,
        max_pixels=max_pixels_or_default(max_pixels),
    )
    res = with_bars(run_eval_edit, cfg, run_dir, images, out, quiet=quiet, overwrite=overwrite)
    if as_json:
        print_json({k: v for k, v in res.results.items() if k != "config"})
        return
    header = SHAPES_COLUMNS if res.results["kind"] == "shapes" else NATURAL_COLUMNS
    print_rows(header, table_rows(res.results), title=f"eval-edit -> {res.path}")
