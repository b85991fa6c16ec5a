"""The runner behind ``latentbench train-tokenizer``: preset -> space -> the loop -> a space folder.

The output folder is both a run folder (manifest.json, metrics.jsonl, metrics.json,
checkpoints/) and a saved space (config.json + model.safetensors with fitted stats), so
``build_space(DIR)`` and ``latentbench recon --space DIR`` load it.

Presets are YAML files (the shipped ``tiny``, ``quickstart`` and ``paper`` in
``latentbench/configs/spaces/``, found by name, or any ``.yaml`` path) with one section per
family: ``semrec`` (semrec, svae, pvae, semrec-mlp) and ``rae`` (rae, rae-hd), each holding
``space`` (build options), ``loss``, ``loop``, ``stats_images`` and optional ``stage2``
overrides, merged key by key.

Stage 2 (PS-VAE) starts from stage 1 (S-VAE): ``--init`` must be a ``train-tokenizer`` output
trained with the ``svae`` recipe at stage 1 on the encoder the stage-2 preset names (so its
encoder is still the original, which becomes the frozen teacher). The stage-2 run records that
space's fingerprint, space, recipe and stage (``init_space`` in its manifest, ``init_*`` in its
metrics).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any

import torch
from pydantic import Field

from latentbench.config import NonNegativeInt, PositiveInt, config, from_dict, load_yaml, to_dict
from latentbench.configs import ConfigKind, config_path
from latentbench.data import DEFAULT_MAX_PIXELS, MaxPixels, data_paths
from latentbench.errors import UserError
from latentbench.runs import OutputKind, RunDir, claim_output, existing_paths
from latentbench.spaces import build_space, load_space, space_info, trainable_space_names
from latentbench.spaces.backbones import resolve_backbone
from latentbench.spaces.base import LatentSpace
from latentbench.spaces.semrec import PAPER_ENCODER
from latentbench.train.loop import Tracker, TrainLoop, checkpoint_step
from latentbench.train.tokenizer import (
    Recipe,
    TokenizerConfig,
    TokenizerTask,
    cached_constants,
    collate_constants,
    export_space,
    recipe_for,
)

# trainable space -> its family (a stage-2 init must be of the same family): from the catalog
FAMILIES = {name: space_info(name).family.value for name in trainable_space_names()}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_preset(space: str, preset: str, stage: int) -> TokenizerConfig:
    """The :class:`TokenizerConfig` for ``space`` at ``stage`` from preset name or YAML path."""
    if space not in FAMILIES:
        raise UserError(f"train-tokenizer trains {', '.join(FAMILIES)}; got {space!r}")
    path = config_path(ConfigKind.SPACES, preset)
    family = FAMILIES[space]
    section = load_yaml(path).get(family)
    if not isinstance(section, dict):
        raise UserError(f"{path}: no section {family!r} (for space {space!r})")
    section = dict(section)
    stage2 = section.pop("stage2", {}) or {}
    if stage == 2:
        section = _merge(section, stage2)
    return from_dict(TokenizerConfig, section, f"{path.name}:{family}")


def _check_out(out: Path, resume: bool) -> None:
    has_ckpt = (out / "checkpoints").is_dir() and any((out / "checkpoints").glob("step_*"))
    if resume and not (out / "manifest.json").is_file():
        raise UserError(f"--resume: no run to resume in {out}")
    if not resume and has_ckpt:
        raise UserError(f"{out} already holds checkpoints; pass --resume or choose another --out")


def _initial_space(space: str, cfg: TokenizerConfig, init: str | Path | None) -> LatentSpace:
    if init is None:
        return build_space(space, **cfg.space)
    loaded = load_space(init)
    family = FAMILIES.get(loaded.registry_name)
    if family != FAMILIES[space]:
        raise UserError(
            f"--init {init} holds a {loaded.registry_name!r} space; {space!r} needs one of the "
            f"{FAMILIES[space]!r} family"
        )
    return loaded


@config
class TrainTokenizerConfig:
    """What ``latentbench train-tokenizer`` trains (also an experiment's ``tokenizers:`` step)."""

    space: str  # semrec, svae, pvae, semrec-mlp, rae, rae-hd
    data: str
    preset: str = "tiny"  # a preset name or a YAML path
    stage: Annotated[int, Field(ge=1, le=2)] = 1  # semrec: 1 = S-VAE, 2 = PS-VAE (needs init)
    init: str | None = None  # stage 2: the stage-1 output folder
    steps: PositiveInt | None = None  # None: the preset's
    eval_data: str | None = None  # held-out PSNR and linear probes into metrics.json
    eval_images: PositiveInt = 1000
    max_pixels: MaxPixels = DEFAULT_MAX_PIXELS  # larger image files are skipped, not decoded
    space_options: dict[str, Any] = field(default_factory=dict)  # over the preset's (channels)
    seed: NonNegativeInt | None = None  # None: the preset's (`--seeds` sets one per run)
    log_with: Tracker | None = None  # also log to tensorboard / wandb (accelerate's trackers)


def _encoder_identity(spec: Any, input_size: int | None = None) -> dict[str, Any]:
    """What names an encoder (kind, name, input size, weights, ...), without its HF config."""
    cfg = to_dict(resolve_backbone(spec, input_size))
    cfg.pop("hf_config", None)
    return cfg


def stage1_origin(init: str | Path, cfg: TokenizerConfig, loaded: LatentSpace) -> dict[str, Any]:
    """What stage 2 starts from (fingerprint, space, recipe, stage, encoder); a UserError unless
    ``init`` is a stage-1 semrec output (recipe svae) of the encoder the preset ``cfg`` names."""
    want = "stage 2 starts from a stage-1 semrec output (train-tokenizer --stage 1)"
    try:
        manifest = json.loads((Path(init) / "manifest.json").read_text())
        rec = manifest["config"]
        origin = {
            "space": loaded.registry_name,
            "recipe": rec["recipe"],
            "stage": int(rec["stage"]),
        }
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"--init {init}: not a train-tokenizer run folder; {want}") from None
    if manifest.get("command") != "train-tokenizer" or (origin["recipe"], origin["stage"]) != (
        Recipe.SVAE.value,
        1,
    ):
        raise UserError(
            f"--init {init} is a {origin['space']} stage-{origin['stage']} output (recipe "
            f"{origin['recipe']}); {want}"
        )
    encoder = _encoder_identity(loaded.config()["encoder"])
    preset = _encoder_identity(
        cfg.space.get("encoder", PAPER_ENCODER), cfg.space.get("encoder_input_size")
    )
    if encoder != preset:
        raise UserError(
            f"--init {init} was trained on encoder {encoder['name'] or encoder['kind']} at "
            f"{encoder['input_size']} px; this preset's is {preset['name'] or preset['kind']} at "
            f"{preset['input_size']} px (stage 2 fine-tunes the encoder stage 1 was trained on)"
        )
    return {**origin, "path": str(init), "fingerprint": loaded.fingerprint(), "encoder": encoder}


def train_tokenizer(
    job: TrainTokenizerConfig,
    out: str | Path | None = None,
    *,
    resume: bool = False,
    quiet: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train ``job.space`` on ``job.data`` and save it (with stats) into ``out``.

    ``out`` must be new, empty or a train-tokenizer run folder, unless ``overwrite``. Returns the
    metrics written to metrics.json.
    """
    from latentbench.data import open_images

    space, data, preset, stage, init = job.space, job.data, job.preset, job.stage, job.init
    eval_data, eval_images, max_pixels = job.eval_data, job.eval_images, job.max_pixels
    recipe = recipe_for(space, stage)
    if recipe is Recipe.PSVAE and init is None:
        raise UserError("stage 2 (PS-VAE) starts from a stage-1 output: pass --init DIR")
    cfg = load_preset(space, preset, stage)
    cfg.space = {**cfg.space, **job.space_options}
    _override_loop(cfg.loop, job)
    out = Path(out or f"runs/tokenizers/{space}-stage{stage}")
    claim_output(
        out,
        OutputKind.TRAIN_TOKENIZER,
        inputs=existing_paths(init),
        data=data_paths(data, eval_data),
        overwrite=overwrite,
    )
    record = _record(job, recipe, cfg)
    _check_out(out, resume)
    torch.manual_seed(cfg.loop.seed)
    model_space = _initial_space(space, cfg, init)
    origin = None
    if recipe is Recipe.PSVAE:
        origin = stage1_origin(init, cfg, model_space)  # type: ignore[arg-type]
        record["init_space"] = origin
    model_space.registry_name = space
    dataset = open_images(
        data, model_space.spec.image_size, seed=cfg.loop.seed, max_pixels=max_pixels
    )
    task = TokenizerTask(model_space, recipe, cfg.loss)
    train_data, collate = _training_data(task, dataset, cfg, quiet)
    record["cached_constants"] = collate is collate_constants  # precomputed encoder/perceptual
    # The run folder appears only once everything above was built without error.
    if resume:
        run = RunDir(out)
        run.resume("train-tokenizer", record, cfg.loop.seed, checkpoint_step(out))
    else:
        run = RunDir.create(out, "train-tokenizer", record, cfg.loop.seed)
    loop = TrainLoop(task, train_data, collate, cfg.loop, run, quiet=quiet)
    last = loop.fit(resume=resume)

    trained = export_space(loop.eval_model).eval()
    _fit_stats(trained, data, min(cfg.stats_images, len(dataset)), cfg, max_pixels)
    metrics: dict[str, Any] = {f"train/{k}": v for k, v in last.items()}
    metrics.update(steps=loop.step, num_train_images=len(dataset))
    if origin is not None:
        metrics.update({f"init_{k}": origin[k] for k in ("fingerprint", "recipe", "stage")})
    if eval_data:
        batch = cfg.loop.batch_size
        metrics.update(
            evaluate(
                trained,
                eval_data,
                eval_images,
                batch,
                seed=record["eval_seed"],
                max_pixels=max_pixels,
            )
        )
    trained.save(run.path)
    run.write_metrics(metrics)
    return metrics


def _record(job: TrainTokenizerConfig, recipe: Recipe, cfg: TokenizerConfig) -> dict[str, Any]:
    """The run's config in its manifest: the job, the preset as resolved, the held-out scoring."""
    return {
        "space": job.space,
        "recipe": recipe.value,
        "stage": job.stage,
        "data": job.data,
        "init": str(job.init) if job.init else None,
        "preset": job.preset,
        "max_pixels": job.max_pixels,
        **to_dict(cfg),
        # held out: scored after training, at the training seed + 1 (images not trained on)
        "eval_data": job.eval_data,
        "eval_images": job.eval_images if job.eval_data else None,
        "eval_seed": cfg.loop.seed + 1 if job.eval_data else None,
    }


def _fit_stats(
    space: LatentSpace, data: str, n: int, cfg: TokenizerConfig, max_pixels: int | None
) -> None:
    """Fit the trained space's latent stats on the first ``n`` training images."""
    from latentbench.data import open_images

    seed = cfg.loop.seed
    images = open_images(data, space.spec.image_size, limit=n, seed=seed, max_pixels=max_pixels)
    space.fit_stats(_image_batches(images, cfg.loop.batch_size), seed=seed)


def _training_data(
    task: TokenizerTask, dataset: Any, cfg: TokenizerConfig, quiet: bool
) -> tuple[Any, Callable[[list[Any]], Any]]:
    """The loop's data and collate: the images, or the cached constants (cache_features)."""
    from latentbench.data import collate_images

    constants = cached_constants(task, dataset, cfg.cache_features, quiet=quiet)
    return (dataset, collate_images) if constants is None else (constants, collate_constants)


def _override_loop(loop: Any, job: TrainTokenizerConfig) -> None:
    """The job's steps, seed and tracker over the preset's loop settings (where given)."""
    loop.steps = job.steps if job.steps is not None else loop.steps
    loop.seed = job.seed if job.seed is not None else loop.seed
    loop.log_with = job.log_with or loop.log_with


def _image_batches(dataset: Any, batch_size: int):
    from latentbench.data import iter_batches

    for batch in iter_batches(dataset, batch_size):
        if len(batch):
            yield batch.images


def evaluate(
    space: LatentSpace,
    data: str,
    limit: int,
    batch_size: int,
    *,
    seed: int,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> dict[str, Any]:
    """Held-out PSNR and linear probes on ``data`` drawn at ``seed`` (first ``limit`` images;
    larger than ``max_pixels`` skipped). At the training seed, a generated set of the training
    data's kind would be the training images themselves: callers pass another (seed + 1).

    Probes (top-1, ridge, 80/20 split) on the latent and on the space's encoder features, each
    mean-pooled over the grid (``..._mean``) and flattened (``..._flat``). Each value has its
    95% interval (PSNR: bootstrap over images; probes: Wilson over the held-out split) and a
    small held-out split a line in ``warnings``.
    """
    from latentbench.data import iter_batches, open_images
    from latentbench.metrics.latent import decode_all, encode_all, linear_probe, pool_latents
    from latentbench.metrics.pixel import psnr
    from latentbench.stats import mean_interval

    dataset = open_images(
        data, space.spec.image_size, limit=limit, seed=seed, max_pixels=max_pixels
    )
    batches = [b for b in iter_batches(dataset, batch_size) if len(b)]
    images = torch.cat([b.images for b in batches])  # (N, 3, H, W)
    labels = torch.cat([b.labels for b in batches])  # (N,)
    z = encode_all(space, images, batch_size)
    per_image = psnr(decode_all(space, z, batch_size), images)  # (N,)
    out = {**mean_interval(per_image.double().numpy()).to_keys("eval/psnr")}
    out["eval/num_images"] = float(len(images))
    if (labels >= 0).sum() < 4 or len(labels[labels >= 0].unique()) < 2:
        return out
    grids = {"latent": z}
    encoder = getattr(space, "encoder", None)
    if encoder is not None:
        with torch.inference_mode():
            chunks = [
                encoder(images[i : i + batch_size]) for i in range(0, len(images), batch_size)
            ]
        grids["encoder"] = torch.cat(chunks).float()  # (N, D, h, w)
    for name, grid in grids.items():
        for pool in ("mean", "flatten"):
            probe = linear_probe(pool_latents(grid, pool), labels)
            key = f"eval/probe_{name}_{pool}"
            out.update({key + k[8:]: v for k, v in probe.items() if k.startswith("accuracy")})
            if probe["warnings"]:
                out.setdefault("warnings", []).extend(f"{key}: {w}" for w in probe["warnings"])
    return out
