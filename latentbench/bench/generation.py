"""``latentbench train-gen``: train the same generator on each space and log convergence curves.

For each space: build it, encode the data once into the latent cache, build the generator for
the space's latent shape (same token count, same initialisation), train it with the one loop
(:class:`~latentbench.train.loop.TrainLoop`) and evaluate the EMA model every ``eval_every``
steps (and at step 0, the untrained baseline). One run folder per space under ``out``, ending
with the final EMA generator saved as ``generator/`` (``Generator.save_pretrained``); a summary
``out/metrics.json`` holds every space's final metrics under its name.

Settings and presets: :mod:`latentbench.bench.generation_config`; data, text encoder, eval set
and FD extractor: :mod:`latentbench.bench.generation_data`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from latentbench.atomic import atomic_write_json
from latentbench.bench.generation_config import (
    AUTO,
    TRAIN_PRESETS,
    Resolved,
    TrainGenConfig,
    TrainPreset,
    dit_config,
    load_config,
    resolve,
)
from latentbench.bench.generation_data import (
    cond_spec,
    make_eval_set,
    make_extractor,
    make_text_encoder,
    open_data,
    reference_stats,
)
from latentbench.bench.generator_folder import GENERATOR_DIR, save_generator, space_record
from latentbench.config import to_dict
from latentbench.data import data_paths
from latentbench.data.cache import CachedLatents, LatentCache, build_cache
from latentbench.errors import UserError
from latentbench.gen.flow import dimension_shift
from latentbench.gen.generator import AnyGenerator, generator_class
from latentbench.gen.text import FrozenTextEncoder, WordTokenizer
from latentbench.runs import (
    OutputKind,
    RunDir,
    claim_output,
    existing_paths,
    mark_output,
    space_label,
)
from latentbench.spaces import ALL, LatentSpace, build_space, options_for, space_names
from latentbench.spaces.resolve import unused_options
from latentbench.train.generator import GeneratorTask, collate_latents
from latentbench.train.generator_eval import GenerationEval
from latentbench.train.loop import Callback, TrainLoop, checkpoint_step

__all__ = [
    "ALL",
    "AUTO",
    "TRAIN_PRESETS",
    "TrainGenConfig",
    "TrainPreset",
    "load_config",
    "make_space",
    "resolve",
    "train_generator",
    "train_generators",
]


# -- building blocks --------------------------------------------------------------------------
def make_space(name: str, image_size: int, options: dict[str, Any] | None = None) -> LatentSpace:
    """Build ``name`` with the ``options`` it takes (as recon's ``-o``: the others are for other
    spaces)."""
    return build_space(name, **options_for(name, image_size=image_size, options=options))


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
def build_generator(
    cfg: TrainGenConfig,
    r: Resolved,
    space: LatentSpace,
    cache: LatentCache,
    text: WordTokenizer | FrozenTextEncoder | None,
) -> AnyGenerator:
    """The generator of ``cfg`` for ``space``'s latent shape, untrained (seeded init)."""
    spec = space.spec
    dit = dit_config(cfg)
    if spec.latent_size % dit.grid:
        raise UserError(
            f"latent size {spec.latent_size} is not a multiple of the token grid {dit.grid}: "
            f"pick a preset/grid that divides it"
        )
    patch = spec.latent_size // dit.grid
    stats = space.stats or cache.stats
    generator = generator_class(dit)(
        dit=dit,
        cond=cond_spec(cfg, cache, text),
        channels=spec.channels,
        latent_size=spec.latent_size,
        latent_mean=[float(v) for v in stats.mean],
        latent_std=[float(v) for v in stats.std],
        shift=cfg.shift
        if cfg.shift is not None
        else dimension_shift(spec.channels, patch, dit.grid**2),
        flow=r.flow,
        text_encoder=text.state() if text is not None else None,
        space=space_record(cfg.space, r.train.image_size, cfg.space_options, space.fingerprint()),
    )
    if text is not None:
        generator.use_text_encoder(text)
    return generator


def run_config(
    r: Resolved, space: LatentSpace, cache: LatentCache, generator: AnyGenerator, processes: int
) -> dict[str, Any]:
    """What the run's manifest records."""
    text = generator.text
    return {
        "train_gen": to_dict(r.cfg),
        "train_preset": to_dict(r.train),
        "loop": to_dict(r.loop),
        "flow": to_dict(r.flow),
        "dit": to_dict(generator.cfg),
        "cond": to_dict(generator.cond_spec),
        "text_encoder": text.state() if text is not None else None,
        "space": {
            "name": r.cfg.space,
            "spec": space.spec.to_dict(),
            "fingerprint": space.fingerprint(),
            "stats": (space.stats or cache.stats).to_dict(),
        },
        "cache": str(cache.path),
        "patch": generator.patch,
        "tokens": generator.num_tokens,
        "shift": generator.shift,
        "params": sum(p.numel() for p in generator.parameters()),
        "num_processes": processes,
    }


def open_run(
    run_path: Path, config: dict[str, Any], seed: int, resume: bool, ckpt_step: int | None
) -> RunDir:
    """The run folder: created, or resumed (the main process writes; the others wait)."""
    state = process_state()
    if resume and (run_path / "manifest.json").is_file():
        run = RunDir(run_path)
        if state.is_main_process:
            run.resume("train-gen", config, seed, ckpt_step)
    elif state.is_main_process:
        run = RunDir.create(run_path, "train-gen", config, seed=seed)
    else:
        run = RunDir(run_path)
    state.wait_for_everyone()
    return run


def make_evaluator(
    r: Resolved,
    space: LatentSpace,
    cache: LatentCache,
    data: Dataset,
    generator: AnyGenerator,
    extractor: Any | None,
    echo: Callable[[str], None],
) -> GenerationEval:
    """The evaluation callback: eval set, FD extractor (built unless given) and its reference."""
    cfg, device = r.cfg, space.device
    if extractor is not None and cfg.fd_extractor == "none":
        raise UserError("an FD extractor was given, but fd_extractor is 'none' (no FD)")
    if extractor is None and cfg.fd_extractor != "none":
        extractor, ex_name = make_extractor(cfg.fd_extractor, echo)
    else:
        ex_name = getattr(extractor, "name", cfg.fd_extractor)
    reference = None
    if extractor is not None:
        extractor = extractor.to(device).eval()
        reference = reference_stats(
            extractor, data, r.train.reference_images, r.train.batch_size, device
        )
    return GenerationEval(
        space=space,
        kind=generator.kind,
        eval_set=make_eval_set(r, space, cache, generator.cond_spec.num_classes),
        flow=r.flow,
        seed=cfg.seed,
        extractor=extractor,
        reference=reference,
        extractor_name=ex_name,
        batch_size=min(64, r.train.batch_size),
    )


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
    r = resolve(cfg)
    ckpt_step = checkpoint_step(run_path)
    if not resume and ckpt_step is not None:
        raise UserError(f"{run_path} already holds a run: pass --resume, or another --out")
    if space is None:
        space = make_space(cfg.space, r.train.image_size, cfg.space_options)
    space = space.to(state.device).eval()
    if dataset is None:
        dataset = open_data(cfg.data, cfg.task, r.train.image_size, cfg.seed, cfg.max_pixels)
    quiet_cache = quiet or not state.is_main_process
    cache = build_cache(
        space, dataset, flip=cfg.flip, quiet=quiet_cache, label=space_label(cfg.space)
    )
    generator = build_generator(cfg, r, space, cache, make_text_encoder(cfg, cache))
    config = run_config(r, space, cache, generator, state.num_processes)
    note = echo if state.is_main_process else lambda m: None
    # before open_run: an extractor that cannot be built leaves no manifest behind
    evaluator = make_evaluator(r, space, cache, dataset, generator, extractor, note)
    run = open_run(run_path, config, cfg.seed, resume, ckpt_step)
    timer = _EvalTimer(evaluator)
    loop = TrainLoop(
        GeneratorTask(generator),
        CachedLatents(cache),
        collate_latents,
        r.loop,
        run,
        callbacks=[Callback(r.train.eval_every, timer)],
        quiet=quiet,
    )
    if not resume or ckpt_step is None:
        timer(loop, 0)  # the untrained baseline
    t0 = time.perf_counter()
    last = loop.fit(resume=resume)
    if not evaluator.history or evaluator.history[-1]["step"] != loop.step:
        # Resumed from the final checkpoint, which is written after the final evaluation: that
        # evaluation's rows are in metrics.jsonl, its results died with the killed process.
        # Computed again (it depends only on the EMA weights), not logged twice.
        evaluator.history.append({"step": loop.step, **evaluator.evaluate(loop, loop.step, False)})
    done, wall = loop.step - (ckpt_step or 0), time.perf_counter() - t0
    metrics = final_metrics(r, space, generator, evaluator, loop, cache)
    metrics["train_loss"] = last.get("loss")
    metrics["train_images_per_s"] = (
        done * r.loop.batch_size / max(wall - timer.seconds_in_fit, 1e-9) if done else None
    )
    if state.is_main_process:
        save_generator(loop.eval_model, run.path / GENERATOR_DIR)
        run.write_metrics(metrics)
    state.wait_for_everyone()
    return metrics


def final_metrics(
    r: Resolved,
    space: LatentSpace,
    generator: AnyGenerator,
    evaluator: GenerationEval,
    loop: TrainLoop,
    cache: LatentCache,
) -> dict[str, Any]:
    """The last evaluation, the space's GenEval ceiling and what the run was."""
    final = evaluator.history[-1] if evaluator.history else {}
    metrics: dict[str, Any] = {k: v for k, v in final.items() if k != "step"}
    if process_state().is_main_process:
        metrics.update(evaluator.ceiling())  # what the space's own decoder allows
    flow = r.flow
    return {
        **metrics,
        "steps": loop.step,
        "params": sum(p.numel() for p in generator.parameters()),
        "tokens": generator.num_tokens,
        "patch": generator.patch,
        "shift": generator.shift,
        "sample_steps": flow.sample_steps,
        "sampler": flow.sampler.value,
        "sample_shift": flow.sample_shift or generator.shift,
        "guidance": flow.guidance,
        "latent_channels": space.spec.channels,
        "latent_size": space.spec.latent_size,
        "fd_extractor": getattr(evaluator.extractor, "variant", None),
        "num_train_images": len(cache),
        "num_eval_samples": len(evaluator.eval_set),
    }


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
    data = data_paths(cfg.data)
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
            grid = dit_config(base).grid
            if space.spec.latent_size % grid:
                raise UserError(
                    f"latent size {space.spec.latent_size} is not a multiple of the "
                    f"{grid}x{grid} token grid of preset {base.arch or base.preset!r}"
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
