"""``latentbench train-gen``: train the same generator on each space and log convergence curves.

For each space: build it, encode the data once into the latent cache, build the DiT for the
space's latent shape (same token count, same initialisation), train it with the one loop
(:class:`~latentbench.train.loop.TrainLoop`) and evaluate the EMA model every ``eval_every``
steps (and at step 0, the untrained baseline). One run folder per space under ``out``; a summary
``out/metrics.json`` holds every space's final metrics under its name.

Training presets (``TRAIN_PRESETS``) set the defaults the paper leaves open at each scale; the
architecture presets are :data:`latentbench.gen.dit.PRESETS`.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from latentbench.config import (
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Probability,
    config,
    to_dict,
)
from latentbench.data import DEFAULT_MAX_PIXELS, MaxPixels
from latentbench.data.cache import CachedLatents, LatentCache, build_cache
from latentbench.errors import UserError, unknown_choice
from latentbench.gen.dit import CondKind, CondSpec
from latentbench.gen.flow import FlowConfig, Sampler, dimension_shift
from latentbench.gen.qwen import build_generator, generator_grid
from latentbench.gen.text import (
    FrozenTextEncoder,
    TextEncoderKind,
    WordTokenizer,
    build_text_encoder,
)
from latentbench.runs import (
    OutputKind,
    RunDir,
    atomic_write_json,
    claim_output,
    existing_paths,
    mark_output,
)
from latentbench.spaces import ALL, LatentSpace, build_space, options_for, space_names
from latentbench.spaces.resolve import unused_options
from latentbench.train.generator import (
    EvalSet,
    GenerationEval,
    GeneratorTask,
    TaskKind,
    collate_latents,
)
from latentbench.train.loop import (
    Callback,
    LoopConfig,
    MixedPrecision,
    Tracker,
    TrainLoop,
    checkpoint_step,
)

AUTO = "auto"


@dataclass(frozen=True)
class TrainPreset:
    image_size: int
    steps: int
    batch_size: int
    lr: float
    warmup_steps: int
    ema_decay: float
    eval_every: int
    eval_samples: int
    sample_steps: int
    guidance: float
    checkpoint_every: int
    reference_images: int
    sample_shift: float | None = None  # None: the training shift


TRAIN_PRESETS: dict[str, TrainPreset] = {
    # CPU: 64 px Shapes, 8x8 tokens; minutes per space.
    "tiny": TrainPreset(64, 600, 32, 1e-3, 50, 0.99, 200, 60, 25, 2.0, 200, 500),
    "small": TrainPreset(
        256, 100_000, 256, 1e-4, 1000, 0.9999, 10_000, 2000, 50, 3.0, 5000, 10_000
    ),
    "base": TrainPreset(256, 200_000, 512, 1e-4, 1000, 0.9999, 10_000, 5000, 50, 4.0, 5000, 50_000),
    "large": TrainPreset(
        256, 200_000, 512, 1e-4, 1000, 0.9999, 10_000, 5000, 50, 4.0, 5000, 50_000
    ),
    # the paper's recipe: batch 730, 50 Euler steps, sampling shift 3, guidance 6.5
    "xl": TrainPreset(
        256, 200_000, 730, 1e-4, 1000, 0.9999, 10_000, 5000, 50, 6.5, 5000, 50_000, 3.0
    ),
}
TRAIN_PRESETS["paper"] = TRAIN_PRESETS["xl"]  # the Qwen2 generator (latentbench.gen.qwen)


@config
class TrainGenConfig:
    """One generator run. ``None`` fields take the training preset's value."""

    space: str
    task: TaskKind = TaskKind.T2I
    data: str = "shapes:2000"
    preset: str = "tiny"
    image_size: PositiveInt | None = None
    steps: PositiveInt | None = None
    batch_size: PositiveInt | None = None
    lr: PositiveFloat | None = None
    eval_every: PositiveInt | None = None
    eval_samples: PositiveInt | None = None
    checkpoint_every: PositiveInt | None = None
    seed: NonNegativeInt = 0
    max_pixels: MaxPixels = DEFAULT_MAX_PIXELS  # image files larger than this are skipped
    fd_extractor: str = AUTO  # "auto": inception when it loads, else efficientnet-lite0; "none"
    reference_images: PositiveInt | None = None
    text_encoder: TextEncoderKind = TextEncoderKind.LEARNED
    text_encoder_path: str | None = None
    max_text_len: PositiveInt = 32
    flip: bool = False
    shift: PositiveFloat | None = (
        None  # None: sqrt(N C p^2 / 4096), N tokens (flow.dimension_shift)
    )
    guidance: NonNegativeFloat | None = None  # None: the preset's (xl: 6.5, the paper's)
    sample_steps: PositiveInt | None = None  # None: the preset's (tiny: 25, else 50)
    sampler: Sampler = Sampler.EULER
    sample_shift: PositiveFloat | None = None  # None: the preset's (xl: 3, the paper's), else shift
    cond_dropout: Probability = 0.1
    mixed_precision: MixedPrecision = MixedPrecision.NO  # bf16 on GPUs (and avx512_bf16 CPUs)
    compile: bool = False
    num_workers: NonNegativeInt = 0
    log_with: Tracker | None = None  # also log to tensorboard / wandb (accelerate's trackers)
    space_options: dict[str, Any] = field(default_factory=dict)
    dit: dict[str, Any] = field(default_factory=dict)  # overrides of the DiT preset (width, ...)


@dataclass
class Resolved:
    """The config with every preset default filled in (what the manifest records)."""

    cfg: TrainGenConfig
    train: TrainPreset
    loop: LoopConfig
    flow: FlowConfig


def load_config(path: str | Path | None, **overrides: Any) -> TrainGenConfig:
    """A YAML file of :class:`TrainGenConfig` fields (a path, or a shipped config's name such as
    ``tiny``; unknown keys are errors), then the non-None ``overrides`` (command-line flags)."""
    from latentbench.config import from_dict, load_yaml
    from latentbench.configs import ConfigKind, config_path

    flags = {k: v for k, v in overrides.items() if v is not None}
    from_dict(TrainGenConfig, {"space": "pixel", **flags}, "train-gen", flags=flags)
    data = load_yaml(config_path(ConfigKind.GEN, path)) if path else {}
    for key, value in flags.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}  # e.g. space_options: flags win key by key
        else:
            data[key] = value
    data.setdefault("space", "pixel")
    return from_dict(TrainGenConfig, data, where=str(path) if path else "train-gen")


def resolve(cfg: TrainGenConfig) -> Resolved:
    if cfg.preset.lower() not in TRAIN_PRESETS:
        raise unknown_choice("generator preset", cfg.preset, TRAIN_PRESETS)
    tp = TRAIN_PRESETS[cfg.preset.lower()]
    pick = lambda v, d: d if v is None else v  # noqa: E731
    tp = replace(
        tp,
        image_size=pick(cfg.image_size, tp.image_size),
        steps=pick(cfg.steps, tp.steps),
        batch_size=pick(cfg.batch_size, tp.batch_size),
        lr=pick(cfg.lr, tp.lr),
        eval_every=pick(cfg.eval_every, tp.eval_every),
        eval_samples=pick(cfg.eval_samples, tp.eval_samples),
        checkpoint_every=pick(cfg.checkpoint_every, tp.checkpoint_every),
        guidance=pick(cfg.guidance, tp.guidance),
        sample_steps=pick(cfg.sample_steps, tp.sample_steps),
        sample_shift=pick(cfg.sample_shift, tp.sample_shift),
        reference_images=pick(cfg.reference_images, tp.reference_images),
    )
    for name in ("steps", "batch_size", "eval_every", "eval_samples", "checkpoint_every"):
        if getattr(tp, name) < 1:
            raise UserError(f"{name.replace('_', '-')} must be >= 1, got {getattr(tp, name)}")
    loop = LoopConfig(
        steps=tp.steps,
        batch_size=tp.batch_size,
        lr=tp.lr,
        warmup_steps=min(tp.warmup_steps, tp.steps // 10),
        ema_decay=tp.ema_decay,
        mixed_precision=MixedPrecision(cfg.mixed_precision),
        compile=cfg.compile,
        seed=cfg.seed,
        log_every=max(1, min(10, tp.steps // 20)),
        checkpoint_every=tp.checkpoint_every,
        num_workers=cfg.num_workers,
        log_with=cfg.log_with,
    )
    flow = FlowConfig(
        shift=cfg.shift,
        sample_steps=tp.sample_steps,
        sampler=Sampler(cfg.sampler),
        sample_shift=tp.sample_shift,
        guidance=tp.guidance,
        cond_dropout=cfg.cond_dropout,
    )
    return Resolved(cfg, tp, loop, flow)


# -- building blocks --------------------------------------------------------------------------
def make_space(name: str, image_size: int, options: dict[str, Any] | None = None) -> LatentSpace:
    """Build ``name`` with the ``options`` it takes (as recon's ``-o``: the others are for other
    spaces)."""
    return build_space(name, **options_for(name, image_size=image_size, options=options))


def open_data(
    spec: str,
    task: TaskKind,
    image_size: int,
    seed: int,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> Dataset:
    """The training data: edits for ``edit`` (``shapes[:N]`` means Shapes edits), else images
    (files of more than ``max_pixels`` pixels skipped)."""
    if task is TaskKind.EDIT:
        m = re.fullmatch(r"shapes(?:-edits)?(?::(\d+))?", spec.strip())
        if not m:
            raise UserError(f"task edit needs Shapes edits data (shapes-edits[:N]), got {spec!r}")
        from latentbench.data.shapes import ShapesEditsDataset

        return ShapesEditsDataset(int(m.group(1) or 1000), image_size, seed)
    from latentbench.data import open_images

    return open_images(spec, image_size, seed=seed, max_pixels=max_pixels)


def make_text_encoder(
    cfg: TrainGenConfig, cache: LatentCache
) -> WordTokenizer | FrozenTextEncoder | None:
    if cfg.task is TaskKind.CLASS:
        return None
    captions = list(cache.meta["captions"])
    if not any(captions):
        raise UserError(f"task {cfg.task.value} needs captions, and {cfg.data!r} has none")
    return build_text_encoder(
        cfg.text_encoder, captions, cfg.text_encoder_path, max_len=cfg.max_text_len
    )


def cond_spec(
    cfg: TrainGenConfig, cache: LatentCache, text: WordTokenizer | FrozenTextEncoder | None
) -> CondSpec:
    if cfg.task is TaskKind.CLASS:
        labels = [lab for lab in cache.meta["labels"] if lab >= 0]
        if not labels:
            raise UserError(f"task class needs labels, and {cfg.data!r} has none")
        return CondSpec(CondKind.CLASS, num_classes=max(labels) + 1)
    edit = cfg.task is TaskKind.EDIT
    if isinstance(text, WordTokenizer):
        return CondSpec(
            CondKind.TOKENS, vocab_size=text.vocab_size, max_len=text.max_len, edit=edit
        )
    assert isinstance(text, FrozenTextEncoder)
    return CondSpec(CondKind.FEATURES, text_dim=text.dim, max_len=text.max_len, edit=edit)


def make_eval_set(r: Resolved, space: LatentSpace, cache: LatentCache, num_classes: int) -> EvalSet:
    """Fixed conditions: class labels in turn; Shapes GenEval prompts (or the data's first
    captions for other data); held-out Shapes edits (seed + 1)."""
    cfg, n = r.cfg, r.train.eval_samples
    if cfg.task is TaskKind.CLASS:
        return EvalSet(labels=torch.arange(n) % num_classes, num=n)
    if cfg.task is TaskKind.T2I:
        if cfg.data.strip().startswith("shapes"):
            from latentbench.data.shapes import geneval_suite

            entries = geneval_suite(prompts_per_task=math.ceil(n / 6), seed=cfg.seed)
            return EvalSet(
                captions=[e["prompt"] for e in entries], entries=entries, num=len(entries)
            )
        caps = list(cache.meta["captions"])[:n]
        return EvalSet(captions=caps, num=len(caps))
    from latentbench.data.shapes import ShapesEditsDataset

    edits = ShapesEditsDataset(n, space.spec.image_size, seed=cfg.seed + 1)
    items = [edits[i] for i in range(n)]
    sources = torch.stack([it["source"] for it in items])
    with torch.inference_mode():
        z = torch.cat([space.encode(sources[s : s + 32]).float().cpu() for s in range(0, n, 32)])
    return EvalSet(
        captions=[it["instruction"] for it in items],
        sources=z,
        edits=[edits.edit(i) for i in range(n)],
        num=n,
    )


def make_extractor(name: str, echo: Callable[[str], None]) -> tuple[Any | None, str]:
    """(extractor, name); ``auto`` falls back from Inception to EfficientNet-Lite0 with a note
    (:func:`~latentbench.metrics.features.build_fd_extractor`, as ``recon --fd auto``)."""
    if name == "none":
        return None, "none"
    from latentbench.metrics.features import build_fd_extractor

    extractor, auto = build_fd_extractor(name)
    if auto is not None:
        echo(f"note: {auto.note()}")
    return extractor, auto.chosen if auto else name


def reference_stats(
    extractor: Any, dataset: Dataset, n: int, batch_size: int, device: torch.device
) -> Any:
    """Feature statistics of the first ``n`` real images of ``dataset`` (cached on disk)."""
    from latentbench.data import iter_batches
    from latentbench.metrics.fid import cached_reference_stats, reference_stats_key

    n = min(n, len(dataset))
    subset = torch.utils.data.Subset(dataset, range(n))
    for attr in ("spec", "image_size", "label_names"):
        setattr(subset, attr, getattr(dataset, attr, None))
    preprocessing = getattr(dataset, "preprocessing", "center-crop+resize")
    key = reference_stats_key(dataset.spec, dataset.image_size, n, preprocessing, extractor)

    def images():
        return (b.images.to(device) for b in iter_batches(subset, batch_size))

    return cached_reference_stats(None, key, extractor, images)


def space_label(name: str) -> str:
    return Path(name).name if Path(name).is_dir() else re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def process_state() -> Any:
    """accelerate's process state. Launched as several processes (torchrun, accelerate launch)
    on a machine without GPUs, accelerate needs ``cpu=True`` (and the loop's Accelerator reads
    ``ACCELERATE_USE_CPU``) to form a gloo process group instead of running N copies alone."""
    from accelerate import PartialState

    world = int(os.environ.get("WORLD_SIZE", "1"))
    cpu = world > 1 and not torch.cuda.is_available()
    if cpu:
        os.environ["ACCELERATE_USE_CPU"] = "true"
    return PartialState(cpu=cpu)


# -- one run ----------------------------------------------------------------------------------
def train_generator(
    cfg: TrainGenConfig,
    run_path: str | Path,
    *,
    resume: bool = False,
    quiet: bool = True,
    echo: Callable[[str], None] = print,
    space: LatentSpace | None = None,
    dataset: Dataset | None = None,
    extractor: Any | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train the generator of ``cfg`` on one space; returns the final metrics.

    ``space``, ``dataset`` and ``extractor`` may be given directly (tests, notebooks); by
    default they are built from ``cfg``. ``run_path`` must be new, empty or a train-gen run
    folder, unless ``overwrite``.
    """
    run_path = _claim(run_path, cfg, overwrite)
    state = process_state()
    device = state.device
    r = resolve(cfg)
    ckpt_step = checkpoint_step(run_path)
    if not resume and ckpt_step is not None:
        raise UserError(f"{run_path} already holds a run: pass --resume, or another --out")

    space = (
        space if space is not None else make_space(cfg.space, r.train.image_size, cfg.space_options)
    )
    space = space.to(device).eval()
    data = (
        dataset
        if dataset is not None
        else open_data(cfg.data, cfg.task, r.train.image_size, cfg.seed, cfg.max_pixels)
    )
    cache = build_cache(space, data, flip=cfg.flip, quiet=quiet or not state.is_main_process)
    stats = space.stats or cache.stats
    spec = space.spec
    text = make_text_encoder(cfg, cache)
    cspec = cond_spec(cfg, cache, text)
    model = build_generator(cfg.preset, cfg.dit, spec.channels, spec.latent_size, cspec, cfg.seed)
    dit_cfg = model.cfg
    shift = (
        cfg.shift
        if cfg.shift is not None
        else dimension_shift(spec.channels, model.patch, model.num_tokens)
    )
    task = GeneratorTask(model, stats, r.flow, shift, cfg.task, text)

    config = {
        "train_gen": to_dict(cfg),
        "train_preset": to_dict(r.train),
        "loop": to_dict(r.loop),
        "flow": to_dict(r.flow),
        "dit": to_dict(dit_cfg),
        "cond": to_dict(cspec),
        "text_encoder": text.state() if text is not None else None,
        "space": {
            "name": cfg.space,
            "spec": spec.to_dict(),
            "fingerprint": space.fingerprint(),
            "stats": stats.to_dict(),
        },
        "cache": str(cache.path),
        "patch": model.patch,
        "tokens": model.num_tokens,
        "shift": shift,
        "params": sum(p.numel() for p in model.parameters()),
        "num_processes": state.num_processes,
    }
    if resume and (run_path / "manifest.json").is_file():
        run = RunDir(run_path)
        if state.is_main_process:
            run.resume("train-gen", config, cfg.seed, ckpt_step)
    elif state.is_main_process:
        run = RunDir.create(run_path, "train-gen", config, seed=cfg.seed)
    else:
        run = RunDir(run_path)
    state.wait_for_everyone()

    if extractor is None and cfg.fd_extractor != "none":
        extractor, ex_name = make_extractor(
            cfg.fd_extractor, echo if state.is_main_process else lambda m: None
        )
    else:
        ex_name = getattr(extractor, "name", cfg.fd_extractor)
    reference = None
    if extractor is not None:
        extractor = extractor.to(device).eval()
        reference = reference_stats(
            extractor, data, r.train.reference_images, r.train.batch_size, device
        )
    eval_set = make_eval_set(r, space, cache, cspec.num_classes)
    evaluator = GenerationEval(
        space=space,
        task=task,
        eval_set=eval_set,
        flow=r.flow,
        seed=cfg.seed,
        extractor=extractor,
        reference=reference,
        extractor_name=ex_name,
        batch_size=min(64, r.train.batch_size),
    )
    timer = _EvalTimer(evaluator)
    loop = TrainLoop(
        task,
        CachedLatents(cache),
        collate_latents,
        r.loop,
        run,
        callbacks=[Callback(r.train.eval_every, timer)],
        quiet=quiet,
    )
    if not resume or ckpt_step is None:
        timer(loop, 0)  # the untrained baseline
    start_step = ckpt_step or 0
    t0 = time.perf_counter()
    last = loop.fit(resume=resume)
    wall = time.perf_counter() - t0
    train_s = max(wall - timer.seconds_in_fit, 1e-9)
    done = loop.step - start_step

    metrics: dict[str, Any] = {}
    final = evaluator.history[-1] if evaluator.history else {}
    metrics.update({k: v for k, v in final.items() if k != "step"})
    if state.is_main_process:
        metrics.update(evaluator.ceiling())  # what the space's own decoder allows
    metrics.update(
        {
            "steps": loop.step,
            "train_loss": last.get("loss"),
            "train_images_per_s": done * r.loop.batch_size / train_s if done else None,
            "params": config["params"],
            "tokens": model.num_tokens,
            "patch": model.patch,
            "shift": shift,
            "sample_steps": r.flow.sample_steps,
            "sampler": r.flow.sampler.value,
            "sample_shift": r.flow.sample_shift or shift,
            "guidance": r.flow.guidance,
            "latent_channels": spec.channels,
            "latent_size": spec.latent_size,
            "fd_extractor": getattr(extractor, "variant", None),
            "num_train_images": len(cache),
            "num_eval_samples": len(eval_set),
        }
    )
    if state.is_main_process:
        run.write_metrics(metrics)
    state.wait_for_everyone()
    return metrics


class _EvalTimer:
    """Wraps the evaluator to keep eval time out of the training throughput."""

    def __init__(self, evaluator: GenerationEval) -> None:
        self.evaluator, self.seconds_in_fit = evaluator, 0.0

    def __call__(self, loop: TrainLoop, step: int) -> None:
        t0 = time.perf_counter()
        self.evaluator(loop, step)
        if step > 0:
            self.seconds_in_fit += time.perf_counter() - t0


def _claim(
    out: str | Path, cfg: TrainGenConfig, overwrite: bool, spaces: Sequence[str] = ()
) -> Path:
    inputs = existing_paths(cfg.space, *spaces, cfg.text_encoder_path, *cfg.space_options.values())
    data = existing_paths(cfg.data)
    kind = OutputKind.TRAIN_GEN
    return claim_output(out, kind, inputs=inputs, data=data, overwrite=overwrite, cache=True)


# -- many spaces ------------------------------------------------------------------------------
def resolve_space_names(spaces: list[str]) -> list[str]:
    return space_names(spaces)


def train_generators(
    spaces: list[str],
    base: TrainGenConfig,
    out: str | Path,
    *,
    resume: bool = False,
    quiet: bool = True,
    echo: Callable[[str], None] = print,
    overwrite: bool = False,
) -> dict[str, Any]:
    """One run folder per space under ``out``; ``all`` skips spaces that cannot be built here
    (with a note). Writes ``out/metrics.json`` with each space's final metrics. ``out`` must be
    new, empty or an earlier train-gen ``out``, unless ``overwrite``."""
    out = _claim(out, base, overwrite, spaces)
    names = resolve_space_names(spaces)
    unused = unused_options(names, base.space_options)
    if unused:
        raise UserError(f"no space here takes the option(s) {', '.join(sorted(unused))}")
    image_size = resolve(base).train.image_size
    results: dict[str, Any] = {}
    notes: list[str] = []
    for name in names:
        try:
            space = make_space(name, image_size, base.space_options)
            grid = generator_grid(base.preset, base.dit)
            if space.spec.latent_size % grid:
                raise UserError(
                    f"latent size {space.spec.latent_size} is not a multiple of the "
                    f"{grid}x{grid} token grid of preset {base.preset!r}"
                )
        except UserError as e:
            if spaces != [ALL]:
                raise
            notes.append(f"{name}: skipped: {e}")
            echo(f"note: {name}: skipped: {e}")
            continue
        cfg = replace(base, space=name)
        label = space_label(name)
        if process_state().is_main_process:
            mark_output(out, OutputKind.TRAIN_GEN)
        results[label] = train_generator(
            cfg,
            out / label,
            resume=resume,
            quiet=quiet,
            echo=echo,
            space=space,
            overwrite=overwrite,
        )
    if not results:
        raise UserError("no space could be trained: " + "; ".join(notes))
    if process_state().is_main_process:
        atomic_write_json(out / "metrics.json", {**results, **({"notes": notes} if notes else {})})
    return results
