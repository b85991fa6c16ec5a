"""The command line. Thin: parse, call the API, print.

Every command turns a :class:`~latentbench.errors.UserError` into one line on stderr and exit
code 2; nothing else is caught, so a bug still shows its traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, TypeVar

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

console = Console(stderr=True, soft_wrap=True)  # one line per message, whatever the width
C = TypeVar("C")
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the final metrics as JSON.")]
MaxPixelsFlag = Annotated[
    int | None,
    typer.Option(
        help="Skip images of more than N pixels, judged from the file header without decoding "
        "them (default 64 MP; at most Pillow's bomb limit, 179 MP)."
    ),
]


def max_pixels_or_default(value: int | None) -> int:
    from latentbench.data import DEFAULT_MAX_PIXELS

    return DEFAULT_MAX_PIXELS if value is None else value


Overwrite = Annotated[
    bool,
    typer.Option(help="Replace (or write into) --out even when it is not this command's output."),
]


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
    from latentbench.spaces import SPACES, build_space, space_info

    rows = []
    for entry in SPACES.entries():
        row: dict[str, object] = {"name": entry.name, "source": entry.source}
        row.update(space_info(entry.name).describe())
        if spec:
            try:
                row.update(build_space(entry.name, pretrained=False).spec.to_dict())
            except Exception as e:  # a broken plugin must not hide the others
                row["error"] = f"{type(e).__name__}: {e}"
        rows.append(row)
    if as_json:
        print_json(rows)
        return
    table = Table(
        "space", "source", "family", "needs", *(["channels", "latent", "stride"] if spec else [])
    )
    for r in rows:
        extra = []
        if spec:
            extra = (
                [str(r["channels"]), "x".join(map(str, r["latent_shape"])), str(r["stride"])]
                if "error" not in r
                else [str(r["error"]), "", ""]
            )
        needs = "train-tokenizer" if r["needs_training"] else ""
        table.add_row(str(r["name"]), str(r["source"]), str(r["family"]), needs, *extra)
    Console().print(table)


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
        typer.Option(
            help="Feature extractors for Frechet distances; 'inception' is rFID; 'none'; "
            "auto: inception where its weights are found, else efficientnet-lite0."
        ),
    ] = "auto",
    lpips: Annotated[
        str,
        typer.Option(help="LPIPS nets: alex, vgg, none; auto: alex where its weights are found."),
    ] = "auto",
    lpips_random_backbone: Annotated[
        bool, typer.Option(help="Offline demo: LPIPS heads on a random backbone (named as such).")
    ] = False,
    weights: Annotated[
        str | None, typer.Option(help="Weights file/folder for spaces that take one.")
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option", "-o", help="KEY=VALUE for every space that takes it, e.g. -o model=DIR."
        ),
    ] = None,
    strict: Annotated[
        bool, typer.Option(help="An unreadable image is an error, not a skip.")
    ] = False,
    max_pixels: MaxPixelsFlag = None,
    save_images: Annotated[
        bool, typer.Option(help="Write every original and reconstruction as PNG under images/.")
    ] = False,
    diagnostics: Annotated[
        int,
        typer.Option(
            help="Images for the latent diagnostics (probe, noise robustness, iFID); 0: off."
        ),
    ] = 32,
    seed: Annotated[int, typer.Option()] = 0,
    device: Annotated[
        str | None, typer.Option(help="cpu, cuda, cuda:1 ... (default: cuda if present)")
    ] = None,
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
        fd=_names_or_none(fd),
        lpips=_names_or_none(lpips),
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
    results = run_recon(
        cfg,
        out,
        quiet=quiet,
        echo=lambda m: console.print(m, highlight=False),
        overwrite=overwrite,
    )
    if as_json:
        print_json(results)
        return
    print_metrics_table(results, title=f"recon -> {out}")


SHORT_NAMES = {
    "num_images": "images",
    "skipped_images": "skipped",
    "encode_images_per_s": "enc img/s",
    "decode_images_per_s": "dec img/s",
}
TABLE_SKIP = ("latent_", "steps", "seconds")


def print_metrics_table(results: dict[str, dict[str, object]], title: str) -> None:
    """One row per space, one column per headline scalar (all of them are in metrics.json)."""
    columns: list[str] = []
    for metrics in results.values():
        columns += [
            k
            for k, v in metrics.items()
            if k not in columns and isinstance(v, (int, float)) and not k.startswith(TABLE_SKIP)
        ]
    table = Table("space", *(SHORT_NAMES.get(c, c) for c in columns), title=title)
    for name, metrics in results.items():
        table.add_row(name, *(_fmt(metrics.get(c)) for c in columns))
    Console(width=max(120, Console().width)).print(table)


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
    max_pixels: MaxPixelsFlag = None,
    overwrite: Overwrite = False,
) -> None:
    """Write a dataset's images as PNG files (e.g. the scikit-image photos for the README)."""
    from latentbench.data import open_images
    from latentbench.data.export import export_images
    from latentbench.runs import OutputKind, claim_output, existing_paths, staged_dir

    kind = OutputKind.EXPORT
    claim_output(out, kind, data=existing_paths(data), overwrite=overwrite)
    dataset = open_images(
        data, image_size, limit=limit, strict=strict, max_pixels=max_pixels_or_default(max_pixels)
    )
    with staged_dir(out, kind) as tmp:
        written, skipped = export_images(dataset, tmp)
    for key, reason in skipped:
        console.print(f"skipped {key}: {reason}", highlight=False)
    console.print(f"wrote {written} images to {out} ({len(skipped)} skipped)", highlight=False)


@data_app.command("shapes")
def data_shapes_cmd(
    out: Annotated[Path, typer.Option(help="Folder to write (new or empty, unless --overwrite).")],
    n: Annotated[int, typer.Option("--n", help="Number of images (and of edits).")] = 1000,
    image_size: Annotated[int, typer.Option(help="Image side in pixels.")] = 64,
    seed: Annotated[int, typer.Option()] = 0,
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
    from tqdm import tqdm

    from latentbench.data.shapes import write_dataset, write_oracle_layout
    from latentbench.runs import OutputKind, claim_output, staged_dir

    claim_output(out, OutputKind.SHAPES, overwrite=overwrite)
    total = prompts_per_task * 6 * samples if geneval else n + (n if edits is None else edits)
    with (
        tqdm(total=total, disable=quiet, unit="img") as bar,
        staged_dir(out, OutputKind.SHAPES) as tmp,
    ):
        if geneval:
            count = write_oracle_layout(
                tmp,
                prompts_per_task=prompts_per_task,
                samples_per_prompt=samples,
                image_size=image_size,
                seed=seed,
                progress=bar.update,
            )
            what = f"{count} ground-truth images of {prompts_per_task * 6} GenEval prompts"
        else:
            s = write_dataset(
                tmp,
                n=n,
                image_size=image_size,
                seed=seed,
                n_edits=edits,
                prompts_per_task=prompts_per_task,
                progress=bar.update,
            )
            what = f"{s.images} images, {s.edits} edits, {s.prompts} GenEval prompts"
    console.print(f"wrote {what} to {out}", highlight=False)


@app.command("train-tokenizer")
def train_tokenizer_cmd(
    space: Annotated[str, typer.Option(help="semrec, svae, pvae, semrec-mlp, rae or rae-hd.")],
    data: Annotated[str, typer.Option(help="Training data SPEC: folder, shapes[:N], ...")],
    preset: Annotated[
        str, typer.Option(help="tiny, quickstart, paper (shipped), or a .yaml file.")
    ] = "tiny",
    stage: Annotated[int, typer.Option(help="semrec: 1 = S-VAE, 2 = PS-VAE (needs --init).")] = 1,
    init: Annotated[
        Path | None, typer.Option(help="Start from this saved space (stage 1's output).")
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Override the preset's steps.")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Run + space folder (default runs/tokenizers/...).")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the last checkpoint.")] = False,
    eval_data: Annotated[
        str | None, typer.Option(help="Held-out SPEC: PSNR and linear probes into metrics.json.")
    ] = None,
    eval_images: Annotated[int, typer.Option(help="Held-out images to use.")] = 1000,
    max_pixels: MaxPixelsFlag = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    as_json: AsJson = False,
) -> None:
    """Train a tokenizer space; the output folder loads as a space (recon --space DIR)."""
    from latentbench.bench.tokenizer import TrainTokenizerConfig, train_tokenizer

    job = from_flags(
        TrainTokenizerConfig,
        "train-tokenizer",
        space=space,
        data=data,
        preset=preset,
        stage=stage,
        init=str(init) if init else None,
        steps=steps,
        eval_data=eval_data,
        eval_images=eval_images,
        max_pixels=max_pixels_or_default(max_pixels),
    )
    metrics = train_tokenizer(job, out, resume=resume, quiet=quiet, overwrite=overwrite)
    if as_json:
        print_json(metrics)
        return
    table = Table("metric", "value", title=f"train-tokenizer {space} stage {stage}")
    for key, value in metrics.items():
        table.add_row(key, _fmt(value))
    Console().print(table)


@app.command("toy-manifold")
def toy_manifold_cmd(
    out: Annotated[Path, typer.Option(help="Folder for metrics.json and the plot.")] = Path(
        "runs/toy-manifold"
    ),
    steps: Annotated[int, typer.Option(help="Training steps per model.")] = 3000,
    seed: Annotated[int, typer.Option()] = 0,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    as_json: AsJson = False,
) -> None:
    """The paper's toy C0: one flow model on a 2-D 'PS' set, in 2-D and embedded in 8-D."""
    from latentbench.bench.toy_manifold import ToyConfig, run_toy_manifold

    cfg = from_flags(ToyConfig, "toy-manifold", steps=steps, seed=seed)
    result = run_toy_manifold(cfg, out, quiet=quiet, overwrite=overwrite)
    if as_json:
        print_json(result)
        return
    console.print(
        f"final tail distance: 2-D {result['final_tail_2d']:.4f}, 8-D {result['final_tail_8d']:.4f}"
        f" -> {out}",
        highlight=False,
    )


@app.command("train-gen")
def train_gen_cmd(
    space: Annotated[str, typer.Option(help="Spaces, comma-separated, or 'all'; or a folder.")],
    task: Annotated[str, typer.Option(help="class, t2i or edit.")] = "t2i",
    data: Annotated[
        str | None, typer.Option(help="Data SPEC (shapes:N; edit: shapes-edits:N).")
    ] = None,
    preset: Annotated[str | None, typer.Option(help="tiny, small, base, large, xl.")] = None,
    config: Annotated[
        str | None,
        typer.Option(help="train-gen settings: tiny ... xl (shipped) or a .yaml file; flags win."),
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Override the preset's steps.")] = None,
    eval_every: Annotated[int | None, typer.Option(help="Evaluate every N steps.")] = None,
    eval_samples: Annotated[int | None, typer.Option(help="Samples per evaluation.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Global batch size.")] = None,
    sample_steps: Annotated[
        int | None, typer.Option(help="Sampling steps of the evaluations (preset's).")
    ] = None,
    sampler: Annotated[str | None, typer.Option(help="euler (default) or heun.")] = None,
    sample_shift: Annotated[
        float | None, typer.Option(help="Sampling time shift (default: the training shift).")
    ] = None,
    guidance: Annotated[float | None, typer.Option(help="Classifier-free guidance.")] = None,
    fd_extractor: Annotated[
        str | None,
        typer.Option(
            help="inception (FID), efficientnet-lite0, dinov2, timm:NAME, none; "
            "default auto: inception, else efficientnet-lite0."
        ),
    ] = None,
    text_encoder: Annotated[
        str | None,
        typer.Option(help="learned (default), minilm, or hf (with --text-encoder-path)."),
    ] = None,
    text_encoder_path: Annotated[
        str | None, typer.Option(help="Hub id or local folder of an HF text encoder.")
    ] = None,
    mixed_precision: Annotated[
        str | None,
        typer.Option(help="no (default), bf16 (GPUs; CPUs with avx512_bf16/AMX) or fp16."),
    ] = None,
    compile: Annotated[bool | None, typer.Option(help="torch.compile the DiT.")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    max_pixels: MaxPixelsFlag = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option", "-o", help="KEY=VALUE for every space that takes it, e.g. -o model=DIR."
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="One run folder per space under it.")] = Path(
        "runs/gen"
    ),
    resume: Annotated[bool, typer.Option(help="Continue each space from its checkpoint.")] = False,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    as_json: AsJson = False,
) -> None:
    """Train the same flow-matching DiT on each space; convergence curves into metrics.jsonl."""
    from latentbench.bench.generation import load_config, train_generators

    cfg = load_config(
        config,
        space="multi",
        task=task,
        data=data,
        preset=preset,
        steps=steps,
        eval_every=eval_every,
        eval_samples=eval_samples,
        batch_size=batch_size,
        sample_steps=sample_steps,
        sampler=sampler,
        sample_shift=sample_shift,
        guidance=guidance,
        fd_extractor=fd_extractor,
        text_encoder=text_encoder,
        text_encoder_path=text_encoder_path,
        mixed_precision=mixed_precision,
        compile=compile,
        seed=seed,
        max_pixels=max_pixels,
        space_options=parse_options(option) if option else None,
    )
    results = train_generators(
        split_names(space),
        cfg,
        out,
        resume=resume,
        quiet=quiet,
        echo=lambda m: console.print(m, highlight=False),
        overwrite=overwrite,
    )
    if as_json:
        print_json(results)
        return
    print_metrics_table(results, title=f"train-gen -> {out}")


class _Bars:
    """Progress bars for runners that take ``progress(total) -> per-item callback``."""

    def __init__(self, quiet: bool) -> None:
        self.quiet, self.bar = quiet, None

    def __call__(self, total: int):
        from tqdm import tqdm

        self.close()
        self.bar = tqdm(total=total, disable=self.quiet, unit="img")
        return self.bar.update

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@app.command("eval-gen")
def eval_gen_cmd(
    suite: Annotated[str, typer.Option(help="Prompt suite: geneval-shapes or geneval.")],
    run_dir: Annotated[
        Path | None,
        typer.Argument(help="A train-gen run folder (t2i): sample N images per prompt."),
    ] = None,
    images: Annotated[
        Path | None,
        typer.Option(help="Score images made elsewhere: DIR/<index:05d>/samples/<k:04d>.png."),
    ] = None,
    metadata: Annotated[
        Path | None,
        typer.Option(
            help="GenEval evaluation_metadata.jsonl (or Bagel's _long variant); "
            "geneval-shapes default: the built-in Shapes suite."
        ),
    ] = None,
    samples: Annotated[int, typer.Option(help="Images per prompt (GenEval: 4).")] = 4,
    prompts_per_task: Annotated[int, typer.Option(help="Built-in Shapes suite size.")] = 100,
    limit: Annotated[int | None, typer.Option(help="Only the first N prompts.")] = None,
    detector: Annotated[str, typer.Option(help="geneval: mask2former or owlv2.")] = "mask2former",
    detector_model: Annotated[
        str | None, typer.Option(help="Detector hub id or local folder.")
    ] = None,
    clip_model: Annotated[
        str | None,
        typer.Option(help="CLIP hub id or local folder (default openai/clip-vit-large-patch14)."),
    ] = None,
    threshold: Annotated[float | None, typer.Option(help="Detection score threshold.")] = None,
    counting_threshold: Annotated[
        float | None, typer.Option(help="Threshold of the counting task.")
    ] = None,
    clipscore: Annotated[bool, typer.Option(help="geneval: CLIPScore of each image.")] = True,
    checkpoint: Annotated[
        str | None, typer.Option(help="Step, folder, or 'init' (untrained); default: last.")
    ] = None,
    sample_steps: Annotated[int | None, typer.Option(help="Override the run's steps.")] = None,
    guidance: Annotated[float | None, typer.Option(help="Override the run's guidance.")] = None,
    sample_shift: Annotated[
        float | None, typer.Option(help="Override the run's sampling shift.")
    ] = None,
    sampler: Annotated[
        str | None, typer.Option(help="Override the run's sampler: euler, heun.")
    ] = None,
    seed: Annotated[int, typer.Option()] = 0,
    batch_size: Annotated[int, typer.Option()] = 16,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, ...")] = None,
    max_pixels: MaxPixelsFlag = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="RUN_DIR: output folder (default RUN_DIR/eval-gen/SUITE); --images: results "
            ".json file or folder (default DIR/results.json)."
        ),
    ] = None,
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
    bars = _Bars(quiet)
    try:
        res = run_eval_gen(
            cfg, run_dir=run_dir, images=images, out=out, progress=bars, overwrite=overwrite
        )
    finally:
        bars.close()
    if as_json:
        print_json({k: v for k, v in res.results.items() if k != "per_image"})
        return
    table = Table("task", "correct", "score", title=f"{res.results['label']} -> {res.path}")
    for row in table_rows(res.results):
        table.add_row(*row)
    Console().print(table)


@app.command("eval-edit")
def eval_edit_cmd(
    run_dir: Annotated[
        Path | None, typer.Argument(help="A train-gen run folder (edit): edit with it.")
    ] = None,
    edits: Annotated[
        Path | None,
        typer.Option(help="Edits .jsonl (Shapes rows or natural: source, instruction, ...)."),
    ] = None,
    images: Annotated[
        Path | None, typer.Option(help="Score edited images made elsewhere: DIR/<row:05d>.png.")
    ] = None,
    num_edits: Annotated[int, typer.Option(help="Built-in Shapes edits (no --edits).")] = 140,
    limit: Annotated[int | None, typer.Option(help="Only the first N edits.")] = None,
    clip_model: Annotated[
        str | None, typer.Option(help="CLIP hub id or folder (default ViT-B/32, MagicBrush).")
    ] = None,
    dino_model: Annotated[
        str | None, typer.Option(help="DINO hub id or folder (default facebook/dino-vits16).")
    ] = None,
    lpips: Annotated[str, typer.Option(help="LPIPS net outside the mask: alex, vgg, none.")] = (
        "alex"
    ),
    lpips_weights: Annotated[str | None, typer.Option(help="LPIPS backbone file/folder.")] = None,
    lpips_random_backbone: Annotated[
        bool, typer.Option(help="Offline demo: LPIPS heads on a random backbone (named so).")
    ] = False,
    judge: Annotated[
        str | None, typer.Option(help="Reward-model judge (registry name); off by default.")
    ] = None,
    checkpoint: Annotated[
        str | None, typer.Option(help="Step, folder, or 'init' (untrained); default: last.")
    ] = None,
    sample_steps: Annotated[int | None, typer.Option(help="Override the run's steps.")] = None,
    guidance: Annotated[float | None, typer.Option(help="Override the run's guidance.")] = None,
    seed: Annotated[int, typer.Option(help="Shapes edit set and sampling noise.")] = 1000,
    batch_size: Annotated[int, typer.Option()] = 16,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, ...")] = None,
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
    bars = _Bars(quiet)
    try:
        res = run_eval_edit(
            cfg, run_dir=run_dir, images=images, out=out, progress=bars, overwrite=overwrite
        )
    finally:
        bars.close()
    if as_json:
        print_json({k: v for k, v in res.results.items() if k != "config"})
        return
    shapes = res.results["kind"] == "shapes"
    cols = ("category", "edits", "success", "l1 out", "psnr out", "lpips out")
    table = Table(
        *(cols if shapes else ("metric", "mean", "edits")), title=f"eval-edit -> {res.path}"
    )
    for row in table_rows(res.results):
        table.add_row(*row)
    Console().print(table)


@app.command("report")
def report_cmd(
    run_dirs: Annotated[
        list[Path], typer.Argument(help="Run folders, or folders of run folders (train-gen --out).")
    ],
    out: Annotated[Path, typer.Option(help="Report folder to write (replaced when complete).")],
    title: Annotated[str | None, typer.Option(help="Page title.")] = None,
    overwrite: Overwrite = False,
) -> None:
    """Compare runs: index.html (self-contained), README.md, metrics.csv, figures/."""
    from latentbench.report import write_report

    summary = write_report(run_dirs, out, title=title, overwrite=overwrite)
    for skipped in summary.skipped:
        console.print(f"not read: {skipped}", highlight=False, soft_wrap=True, markup=False)
    console.print(
        f"report of {summary.runs} run(s): {summary.tables} table(s), {summary.figures} "
        f"figure(s), {summary.metrics} numbers -> {out / 'index.html'}",
        highlight=False,
        soft_wrap=True,
    )


@app.command("run")
def run_cmd(
    experiment: Annotated[
        str, typer.Argument(help="A shipped experiment (quickstart, smoke, ...) or a .yaml file.")
    ],
    overwrite: Annotated[
        bool,
        typer.Option(help="Write the out: and report: folders even when they hold other files."),
    ] = False,
    quiet: Quiet = False,
) -> None:
    """Run a whole experiment file; steps already done are skipped, killed ones resume."""
    from latentbench.experiment import run_experiment

    report = run_experiment(
        experiment,
        quiet=quiet,
        echo=lambda m: console.print(m, highlight=False, soft_wrap=True, markup=False),
        overwrite=overwrite,
    )
    console.print(f"report: {report / 'index.html'}", highlight=False, soft_wrap=True)


def fail(message: str) -> None:
    """A user's mistake: one line on stderr, exit code 2."""
    from rich.markup import escape

    line = " ".join(part.strip() for part in message.splitlines() if part.strip())
    console.print(f"[red]error:[/red] {escape(line)}", highlight=False, soft_wrap=True)
    sys.exit(2)


def main() -> None:
    import pydantic

    try:
        app(standalone_mode=False)
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
