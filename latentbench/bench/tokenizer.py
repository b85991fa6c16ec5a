"""The runner behind ``latentbench train-tokenizer``: preset -> space -> the loop -> a space folder.

The output folder is both a run folder (manifest.json, metrics.jsonl, metrics.json,
checkpoints/) and a saved space (space.json + space.safetensors with fitted stats), so
``build_space(DIR)`` and ``latentbench recon --space DIR`` load it.

Presets are YAML files (the shipped ``tiny``, ``quickstart`` and ``paper`` in
``latentbench/configs/spaces/``, found by name, or any ``.yaml`` path) with one section per
family: ``semrec`` (semrec, svae, pvae, semrec-mlp) and ``rae`` (rae, rae-hd), each holding
``space`` (build options), ``loss``, ``loop``, ``stats_images`` and optional ``stage2``
overrides, merged key by key.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from latentbench.config import from_dict, load_yaml, to_dict
from latentbench.configs import ConfigKind, config_path
from latentbench.errors import UserError
from latentbench.runs import RunDir
from latentbench.spaces import build_space, load_space
from latentbench.spaces.base import LatentSpace
from latentbench.train.loop import TrainLoop, checkpoint_step
from latentbench.train.tokenizer import (
    Recipe,
    TokenizerConfig,
    TokenizerTask,
    export_space,
    recipe_for,
)

FAMILIES = {
    "semrec": "semrec",
    "svae": "semrec",
    "pvae": "semrec",
    "semrec-mlp": "semrec",
    "rae": "rae",
    "rae-hd": "rae",
}


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


def train_tokenizer(
    space: str,
    data: str,
    *,
    preset: str = "tiny",
    stage: int = 1,
    init: str | Path | None = None,
    steps: int | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    quiet: bool = False,
    eval_data: str | None = None,
    eval_images: int = 1000,
) -> dict[str, Any]:
    """Train ``space`` on ``data`` and save it (with stats) into ``out``. Returns metrics.json."""
    from latentbench.data import collate_images, open_images

    recipe = recipe_for(space, stage)
    if recipe is Recipe.PSVAE and init is None:
        raise UserError("stage 2 (PS-VAE) starts from a stage-1 output: pass --init DIR")
    cfg = load_preset(space, preset, stage)
    if steps is not None:
        cfg.loop.steps = steps
    out = Path(out or f"runs/tokenizers/{space}-stage{stage}")
    record = {
        "space": space,
        "recipe": recipe.value,
        "stage": stage,
        "data": data,
        "init": str(init) if init else None,
        "preset": preset,
        **to_dict(cfg),
    }
    _check_out(out, resume)
    torch.manual_seed(cfg.loop.seed)
    model_space = _initial_space(space, cfg, init)
    model_space.registry_name = space
    dataset = open_images(data, model_space.spec.image_size, seed=cfg.loop.seed)
    task = TokenizerTask(model_space, recipe, cfg.loss)
    # The run folder appears only once everything above was built without error.
    if resume:
        run = RunDir(out)
        run.resume("train-tokenizer", record, cfg.loop.seed, checkpoint_step(out))
    else:
        run = RunDir.create(out, "train-tokenizer", record, cfg.loop.seed)
    loop = TrainLoop(task, dataset, collate_images, cfg.loop, run, quiet=quiet)
    last = loop.fit(resume=resume)

    trained = export_space(loop.eval_model).eval()
    n_stats = min(cfg.stats_images, len(dataset))
    stats_data = open_images(data, trained.spec.image_size, limit=n_stats, seed=cfg.loop.seed)
    trained.fit_stats(_image_batches(stats_data, cfg.loop.batch_size), seed=cfg.loop.seed)
    metrics: dict[str, Any] = {f"train/{k}": v for k, v in last.items()}
    metrics.update(steps=loop.step, num_train_images=len(dataset))
    if eval_data:
        metrics.update(evaluate(trained, eval_data, eval_images, cfg.loop.batch_size))
    trained.save(run.path)
    run.write_metrics(metrics)
    return metrics


def _image_batches(dataset: Any, batch_size: int):
    from latentbench.data import iter_batches

    for batch in iter_batches(dataset, batch_size):
        if len(batch):
            yield batch.images


def evaluate(space: LatentSpace, data: str, limit: int, batch_size: int) -> dict[str, float]:
    """Held-out PSNR and linear probes on ``data`` (first ``limit`` images).

    Probes (top-1, ridge, 80/20 split) on the latent and on the space's encoder features, each
    mean-pooled over the grid (``..._mean``) and flattened (``..._flat``).
    """
    from latentbench.data import iter_batches, open_images
    from latentbench.metrics.latent import decode_all, encode_all, linear_probe, pool_latents
    from latentbench.metrics.pixel import psnr

    dataset = open_images(data, space.spec.image_size, limit=limit)
    batches = [b for b in iter_batches(dataset, batch_size) if len(b)]
    images = torch.cat([b.images for b in batches])  # (N, 3, H, W)
    labels = torch.cat([b.labels for b in batches])  # (N,)
    z = encode_all(space, images, batch_size)
    out = {
        "eval/psnr": float(psnr(decode_all(space, z, batch_size), images).mean()),
        "eval/num_images": float(len(images)),
    }
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
            acc = linear_probe(pool_latents(grid, pool), labels)["accuracy"]
            out[f"eval/probe_{name}_{pool}"] = acc
    return out
