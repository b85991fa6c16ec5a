"""``latentbench train-tokenizer``, ``train-gen`` and ``toy-manifold``: the training commands."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated

import typer

from latentbench.cli.common import (
    AsJson,
    LogWith,
    MaxPixelsFlag,
    Overwrite,
    Quiet,
    Seed,
    Seeds,
    SpaceOptions,
    console,
    echo,
    fmt,
    from_flags,
    max_pixels_or_default,
    parse_options,
    print_json,
    print_metrics_table,
    print_rows,
    split_names,
)

Steps = Annotated[int | None, typer.Option(help="Override the preset's steps.")]


def per_seed(run, run_seeds, seeds: str | None):
    """``run``, or with --seeds ``run_seeds`` over them: one run per seed in OUT/seed_<k>, their
    aggregate in OUT."""
    from latentbench.bench.seeds import parse_seeds

    seed_list = parse_seeds(seeds)
    return functools.partial(run_seeds, seeds=seed_list) if seed_list else run


# -- train-tokenizer -------------------------------------------------------------------------
TokenizerSpace = Annotated[str, typer.Option(help="semrec, svae, pvae, semrec-mlp, rae or rae-hd.")]
TrainingData = Annotated[str, typer.Option(help="Training data SPEC: folder, shapes[:N], ...")]
TokenizerPreset = Annotated[
    str, typer.Option(help="tiny, quickstart, paper (shipped), or a .yaml file.")
]
Stage = Annotated[int, typer.Option(help="semrec: 1 = S-VAE, 2 = PS-VAE (needs --init).")]
Init = Annotated[Path | None, typer.Option(help="Start from this saved space (stage 1's output).")]
TokenizerOut = Annotated[
    Path | None, typer.Option(help="Run + space folder (default runs/tokenizers/...).")
]
EvalData = Annotated[
    str | None, typer.Option(help="Held-out SPEC: PSNR and linear probes into metrics.json.")
]


def train_tokenizer_cmd(
    space: TokenizerSpace,
    data: TrainingData,
    preset: TokenizerPreset = "tiny",
    stage: Stage = 1,
    init: Init = None,
    steps: Steps = None,
    out: TokenizerOut = None,
    resume: Annotated[bool, typer.Option(help="Continue from the last checkpoint.")] = False,
    eval_data: EvalData = None,
    eval_images: Annotated[int, typer.Option(help="Held-out images to use.")] = 1000,
    max_pixels: MaxPixelsFlag = None,
    seeds: Seeds = None,
    log_with: LogWith = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    as_json: AsJson = False,
) -> None:
    """Train a tokenizer space; the output folder loads as a space (recon --space DIR)."""
    from latentbench.bench.seeds import train_tokenizer_seeds
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
        log_with=log_with,
    )
    run = per_seed(train_tokenizer, train_tokenizer_seeds, seeds)
    metrics = run(job, out=out, resume=resume, quiet=quiet, overwrite=overwrite)
    if as_json:
        print_json(metrics)
        return
    rows = [(key, fmt(value)) for key, value in metrics.items()]
    print_rows(("metric", "value"), rows, title=f"train-tokenizer {space} stage {stage}")


# -- toy-manifold ----------------------------------------------------------------------------
ToyOut = Annotated[Path, typer.Option(help="Folder for metrics.json and the plot.")]


def toy_manifold_cmd(
    out: ToyOut = Path("runs/toy-manifold"),
    steps: Annotated[int, typer.Option(help="Training steps per model.")] = 3000,
    seed: Seed = 0,
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


# -- train-gen -------------------------------------------------------------------------------
GenSpaces = Annotated[str, typer.Option(help="Spaces, comma-separated, or 'all'; or a folder.")]
Task = Annotated[
    str | None, typer.Option(help="class, t2i or edit (default: the --config's, else t2i).")
]
GenData = Annotated[str | None, typer.Option(help="Data SPEC (shapes:N; edit: shapes-edits:N).")]
GenPreset = Annotated[str | None, typer.Option(help="tiny, small, base, large, xl.")]
GenArch = Annotated[
    str | None, typer.Option(help="DiT architecture preset (default: the --preset's).")
]
GenConfig = Annotated[
    str | None,
    typer.Option(help="train-gen settings: tiny ... xl (shipped) or a .yaml file; flags win."),
]
EvalEvery = Annotated[int | None, typer.Option(help="Evaluate every N steps.")]
EvalSamples = Annotated[int | None, typer.Option(help="Samples per evaluation.")]
GlobalBatchSize = Annotated[int | None, typer.Option(help="Global batch size.")]
SampleSteps = Annotated[
    int | None, typer.Option(help="Sampling steps of the evaluations (preset's).")
]
Sampler = Annotated[str | None, typer.Option(help="euler (default) or heun.")]
SampleShift = Annotated[
    float | None, typer.Option(help="Sampling time shift (default: the training shift).")
]
Guidance = Annotated[float | None, typer.Option(help="Classifier-free guidance.")]
FdExtractor = Annotated[
    str | None,
    typer.Option(
        help="inception (FID), efficientnet-lite0, dinov2, timm:NAME, none; "
        "default auto: inception, else efficientnet-lite0."
    ),
]
TextEncoder = Annotated[
    str | None, typer.Option(help="learned (default), minilm, or hf (with --text-encoder-path).")
]
TextEncoderPath = Annotated[
    str | None, typer.Option(help="Hub id or local folder of an HF text encoder.")
]
MixedPrecision = Annotated[
    str | None,
    typer.Option(help="no (default), bf16 (GPUs; CPUs with avx512_bf16/AMX) or fp16."),
]
Compile = Annotated[bool | None, typer.Option(help="torch.compile the DiT.")]
GenOut = Annotated[Path, typer.Option(help="One run folder per space under it.")]
GenResume = Annotated[bool, typer.Option(help="Continue each space from its checkpoint.")]


def train_gen_cmd(
    space: GenSpaces,
    task: Task = None,
    data: GenData = None,
    preset: GenPreset = None,
    arch: GenArch = None,
    config: GenConfig = None,
    steps: Steps = None,
    eval_every: EvalEvery = None,
    eval_samples: EvalSamples = None,
    batch_size: GlobalBatchSize = None,
    sample_steps: SampleSteps = None,
    sampler: Sampler = None,
    sample_shift: SampleShift = None,
    guidance: Guidance = None,
    fd_extractor: FdExtractor = None,
    text_encoder: TextEncoder = None,
    text_encoder_path: TextEncoderPath = None,
    mixed_precision: MixedPrecision = None,
    compile: Compile = None,
    seed: Annotated[int | None, typer.Option()] = None,
    max_pixels: MaxPixelsFlag = None,
    option: SpaceOptions = None,
    out: GenOut = Path("runs/gen"),
    resume: GenResume = False,
    seeds: Seeds = None,
    log_with: LogWith = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    as_json: AsJson = False,
) -> None:
    """Train the same flow-matching DiT on each space; convergence curves into metrics.jsonl."""
    from latentbench.bench.generation import load_config, train_generators
    from latentbench.bench.seeds import train_gen_seeds

    cfg = load_config(
        config,
        space="multi",
        task=task,
        data=data,
        preset=preset,
        arch=arch,
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
        log_with=log_with,
    )
    run = per_seed(train_generators, train_gen_seeds, seeds)
    results = run(
        split_names(space), cfg, out=out, resume=resume, quiet=quiet, echo=echo, overwrite=overwrite
    )
    if as_json:
        print_json(results)
        return
    print_metrics_table(results, title=f"train-gen -> {out}")


def convert_run_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A train-gen run folder without generator/.")],
) -> None:
    """Add generator/ (config.json + model.safetensors) to a train-gen run folder of an older
    version, so that Generator.from_pretrained and push_to_hub can use it."""
    from latentbench.bench.generator_runs import convert_run

    console.print(f"wrote {convert_run(run_dir)}", highlight=False)
