"""Rebuild a trained generator (and its space) from a ``train-gen`` run folder or a saved one.

A run folder written by :func:`latentbench.bench.generation.train_generator` holds the final EMA
generator as ``generator/`` (``config.json`` + ``model.safetensors``:
:class:`~latentbench.gen.generator.Generator` ``.save_pretrained``) and its checkpoints
``checkpoints/step_*/ema.safetensors`` (falling back to ``model.safetensors``). Run folders
written before ``generator/`` existed are rebuilt from their ``manifest.json``
(:func:`legacy_generator_config`); ``latentbench convert-run RUN_DIR`` adds ``generator/`` to
them. :func:`load_generator` also takes a ``generator/`` folder or a hub id alone: the space is
then rebuilt from the generator's ``space`` record. It exposes two calls:

- :meth:`TrainedGenerator.text_to_image`: prompts -> images (B, 3, S, S) in [-1, 1];
- :meth:`TrainedGenerator.edit`: source images + instructions -> edited images.

Sampling settings default to the run's own (steps, sampler, shift, guidance; ``SamplingOptions``
overrides them); sample ``i`` of a call draws its noise from a generator seeded by ``(seed, i)``
(the harness's ``generate``), so results do not depend on the batch size.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from latentbench.bench.generation import make_space
from latentbench.bench.generator_folder import GENERATOR_DIR, save_generator, space_record
from latentbench.config import NonNegativeFloat, PositiveFloat, PositiveInt, config
from latentbench.errors import UserError
from latentbench.files import load_safetensors, read_json_object
from latentbench.gen.dit import EditLayout
from latentbench.gen.flow import FlowConfig, Sampler
from latentbench.gen.generator import (
    AnyGenerator,
    TaskKind,
    generator_class,
    make_generator,
)
from latentbench.gen.qwen import PAPER_PRESET
from latentbench.gen.sampling import Conditions, decode, generate
from latentbench.spaces.base import LatentSpace


@config
class SamplingOptions:
    """Overrides of the run's sampling settings (None: the run's value)."""

    steps: PositiveInt | None = None
    guidance: NonNegativeFloat | None = None
    shift: PositiveFloat | None = None
    sampler: Sampler | None = None
    batch_size: PositiveInt = 16


UNTRAINED = "init"  # checkpoint name meaning "the DiT's seeded initialisation, no weights"


def find_checkpoint(run_dir: Path, checkpoint: str | Path | None = None) -> Path:
    """The checkpoint folder to load: ``checkpoint`` (a folder or a step number), else the last."""
    ckpts = run_dir / "checkpoints"
    if checkpoint is not None:
        p = Path(checkpoint)
        if not p.is_dir() and str(checkpoint).isdigit():
            p = ckpts / f"step_{int(checkpoint):08d}"
        if not p.is_dir():
            raise UserError(f"checkpoint not found: {checkpoint}")
        return p
    found = sorted(p for p in ckpts.glob("step_*") if (p / "state.json").is_file())
    if not found:
        raise UserError(f"{run_dir}: no checkpoints/step_*/ (is it a train-gen run folder?)")
    return found[-1]


class TrainedGenerator:
    """A trained generator with its space, and where it came from."""

    def __init__(
        self,
        generator: AnyGenerator,
        space: LatentSpace,
        *,
        run_dir: Path,
        checkpoint: Path,
        weights: str,
        step: int,
    ) -> None:
        self.generator, self.space = generator, space
        self.run_dir, self.checkpoint, self.weights, self.step = run_dir, checkpoint, weights, step

    @property
    def kind(self) -> TaskKind:
        return self.generator.kind

    @property
    def image_size(self) -> int:
        return int(self.space.spec.image_size)

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def variant(
        self, options: SamplingOptions = SamplingOptions(), seed: int = 0
    ) -> dict[str, Any]:
        """What produced the samples: run, checkpoint, weights, sampler settings, seed."""
        flow = self._flow(options)
        return {
            "run_dir": str(self.run_dir),
            "checkpoint": self.checkpoint.name,
            "step": self.step,
            "weights": self.weights,
            "task": self.kind.value,
            "image_size": self.image_size,
            "sample_steps": flow.sample_steps,
            "sampler": flow.sampler.value,
            "guidance": flow.guidance,
            "sample_shift": flow.sample_shift or self.generator.shift,
            "seed": seed,
            "noise": "sample i of a call: torch.Generator seeded by mix_seed(seed, i)",
        }

    def _flow(self, options: SamplingOptions) -> FlowConfig:
        overrides = {
            "sample_steps": options.steps,
            "guidance": options.guidance,
            "sample_shift": options.shift,
            "sampler": options.sampler,
        }
        return replace(self.generator.flow, **{k: v for k, v in overrides.items() if v is not None})

    def _run(
        self, conditions: Conditions, options: SamplingOptions, seed: int, indices: list[int]
    ) -> Tensor:
        with torch.inference_mode():
            z = generate(
                self.generator,
                conditions,
                indices,
                seed=seed,
                flow=self._flow(options),
                device=self.device,
                batch_size=options.batch_size,
            )
            return decode(self.space, self.generator, z, options.batch_size)

    def text_to_image(
        self,
        prompts: Sequence[str],
        *,
        seed: int = 0,
        options: SamplingOptions = SamplingOptions(),
        noise_indices: Sequence[int] | None = None,
    ) -> Tensor:
        """Prompts -> images (N, 3, S, S) in [-1, 1] on the CPU.

        Image i's noise is seeded by ``(seed, noise_indices[i])`` (default ``(seed, i)``), so a
        caller can sample any subset of a large suite and get the images a single call over the
        whole suite would give.
        """
        if self.kind is not TaskKind.T2I:
            raise UserError(f"{self.run_dir} holds a {self.kind.value} generator, not t2i")
        idx = _noise_index_list(noise_indices, len(prompts), "prompts")
        if not idx:
            return torch.empty(0, 3, self.image_size, self.image_size)
        captions = [""] * (max(idx) + 1)
        for i, p in zip(idx, prompts):
            captions[i] = str(p)
        return self._run(Conditions(captions=captions, num=len(captions)), options, seed, idx)

    def edit(
        self,
        sources: Tensor,
        instructions: Sequence[str],
        *,
        seed: int = 0,
        options: SamplingOptions = SamplingOptions(),
        noise_indices: Sequence[int] | None = None,
    ) -> Tensor:
        """Sources (N, 3, S, S) in [-1, 1] at the space's size + instructions -> edited images
        (N, 3, S, S) on the CPU; edit i's noise is seeded by ``(seed, noise_indices[i])``."""
        if self.kind is not TaskKind.EDIT:
            raise UserError(f"{self.run_dir} holds a {self.kind.value} generator, not edit")
        if len(sources) != len(instructions):
            raise ValueError(f"{len(sources)} sources but {len(instructions)} instructions")
        idx = _noise_index_list(noise_indices, len(sources), "sources")
        if not idx:
            return torch.empty(0, 3, self.image_size, self.image_size)
        bs = options.batch_size
        with torch.inference_mode():
            z = torch.cat(
                [
                    self.space.encode(sources[s : s + bs].to(self.space.device)).float().cpu()
                    for s in range(0, len(sources), bs)
                ]
            )  # (N, C, h, w) raw latents
        size = max(idx) + 1
        placed = torch.zeros(size, *z.shape[1:])  # (size, C, h, w): edit i at idx[i]
        placed[idx] = z
        captions = [""] * size
        for i, text in zip(idx, instructions):
            captions[i] = str(text)
        return self._run(
            Conditions(captions=captions, sources=placed, num=size), options, seed, idx
        )


# -- the generator's config -------------------------------------------------------------------
def legacy_generator_config(run_dir: Path) -> dict[str, Any]:
    """The :class:`Generator` arguments of a run folder written before ``generator/`` existed,
    read back from its ``manifest.json`` (UserError when it is not a train-gen manifest)."""
    try:
        config = json.loads((run_dir / "manifest.json").read_text())["config"]
        space = config["space"]
        # runs written before DiTConfig.edit_layout existed put the text first
        legacy = {"edit_layout": EditLayout.TEXT_SOURCE_NOISY.value}
        train_gen = config["train_gen"]
        paper = str(train_gen.get("arch") or train_gen.get("preset", "")).lower() == PAPER_PRESET
        return {
            "dit": config["dit"] if paper else {**legacy, **config["dit"]},
            "cond": config["cond"],
            "channels": int(space["spec"]["channels"]),
            "latent_size": int(space["spec"]["latent_size"]),
            "latent_mean": [float(v) for v in space["stats"]["mean"]],
            "latent_std": [float(v) for v in space["stats"]["std"]],
            "shift": float(config["shift"]),
            "flow": config["flow"],
            "text_encoder": config.get("text_encoder"),
            "space": space_record(
                space["name"],
                int(config["train_preset"]["image_size"]),
                config["train_gen"].get("space_options") or {},
                space.get("fingerprint"),
            ),
        }
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as e:
        raise UserError(
            f"{run_dir}/manifest.json is not a train-gen manifest ({type(e).__name__}: {e})"
        ) from None


def run_generator_config(run_dir: Path) -> dict[str, Any]:
    """The :class:`Generator` arguments of a run folder: ``generator/config.json``, else (older
    runs, or a run stopped before its end) the manifest's."""
    saved = run_dir / GENERATOR_DIR / "config.json"
    return read_json_object(saved) if saved.is_file() else legacy_generator_config(run_dir)


def rebuild_space(generator: AnyGenerator, source: str | Path) -> LatentSpace:
    """The space ``generator`` was trained on, from its ``space`` record (fingerprint checked)."""
    info = generator.space_info
    if not info.get("name"):
        raise UserError(f"{source}: the generator does not record its space")
    space = make_space(info["name"], int(info["image_size"]), info.get("options"))
    if info.get("fingerprint") and space.fingerprint() != info["fingerprint"]:
        raise UserError(
            f"space {info['name']!r} rebuilt here differs from the one {source} was trained on "
            "(fingerprint mismatch)"
        )
    return space


# -- loading ----------------------------------------------------------------------------------
def load_generator(
    source: str | Path,
    *,
    checkpoint: str | Path | None = None,
    device: str | torch.device | None = None,
    use_ema: bool = True,
) -> TrainedGenerator:
    """Rebuild a trained generator and its space.

    ``source``: a ``train-gen`` run folder (EMA weights by default), or a saved generator
    (a ``generator/`` folder or a hub id, loaded with ``Generator.from_pretrained``).
    ``checkpoint`` (run folders only): a checkpoint folder, a step number, ``"init"`` (the
    untrained baseline: the same DiT with its seeded initialisation), or None for the last.
    """
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    run_dir = Path(source)
    if not (run_dir / "manifest.json").is_file():
        if checkpoint is not None:
            raise UserError(f"{source}: --checkpoint needs a train-gen run folder")
        generator = _from_pretrained(source)
        space = rebuild_space(generator, source).to(dev).eval()
        folder = run_dir if run_dir.is_dir() else Path(str(source))
        return TrainedGenerator(
            generator.to(dev).requires_grad_(False),
            space,
            run_dir=folder,
            checkpoint=folder,
            weights="model.safetensors",
            step=-1,
        )
    generator = make_generator(**run_generator_config(run_dir))
    untrained = str(checkpoint) == UNTRAINED
    if untrained:
        ckpt, name, step = run_dir / "checkpoints" / UNTRAINED, "seeded initialisation", 0
    else:
        ckpt = find_checkpoint(run_dir, checkpoint)
        ema = use_ema and (ckpt / "ema.safetensors").is_file()
        name = "ema.safetensors" if ema else "model.safetensors"
        if not (ckpt / name).is_file():
            raise UserError(f"{ckpt}: no {name}")
        generator.load_state_dict(load_safetensors(ckpt / name))
        step = int(read_json_object(ckpt / "state.json").get("step", -1))
    space = rebuild_space(generator, run_dir).to(dev).eval()
    generator = generator.to(dev).eval().requires_grad_(False)
    return TrainedGenerator(
        generator, space, run_dir=run_dir, checkpoint=ckpt, weights=name, step=step
    )


def _from_pretrained(source: str | Path) -> AnyGenerator:
    """``Generator.from_pretrained`` of a folder or a hub id, failing in one line."""
    path = Path(source)
    if path.is_dir() and not (path / "config.json").is_file():
        raise UserError(
            f"{source}: no manifest.json or config.json (neither a train-gen run folder nor a "
            "saved generator)"
        )
    hub_id = not path.exists() and re.fullmatch(r"[\w.-]+/[\w.-]+", str(source))
    if not path.exists() and not hub_id:
        raise UserError(
            f"{source}: not found (a train-gen run folder, a saved generator or a hub id)"
        )
    try:
        if path.is_dir():
            config = read_json_object(path / "config.json")
        else:
            from huggingface_hub import hf_hub_download

            config = read_json_object(Path(hf_hub_download(str(source), "config.json")))
        return generator_class(config.get("dit")).from_pretrained(str(source))
    except (OSError, ValueError) as e:  # hub errors: not found, offline, no such file
        raise UserError(f"{source}: cannot load the generator ({type(e).__name__}: {e})") from None


def convert_run(run_dir: str | Path, checkpoint: str | Path | None = None) -> Path:
    """Add ``generator/`` (config.json + model.safetensors of the last checkpoint's EMA weights)
    to a run folder written before train-gen saved it; returns that folder."""
    run_dir = Path(run_dir)
    if not (run_dir / "manifest.json").is_file():
        raise UserError(f"{run_dir}: no manifest.json (not a run folder)")
    out = run_dir / GENERATOR_DIR
    if (out / "config.json").is_file():
        raise UserError(f"{out} already exists: {run_dir} needs no conversion")
    if out.is_symlink() or out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} holds files latentbench did not write; move them, then convert")
    generator = make_generator(**legacy_generator_config(run_dir))
    ckpt = find_checkpoint(run_dir, checkpoint)
    name = "ema.safetensors" if (ckpt / "ema.safetensors").is_file() else "model.safetensors"
    generator.load_state_dict(load_safetensors(ckpt / name))
    return save_generator(generator, out)


def _noise_index_list(noise_indices: Sequence[int] | None, n: int, what: str) -> list[int]:
    """The noise index of each of ``n`` ``what`` (default 0 .. n-1), checked to be ``n``."""
    idx = list(noise_indices) if noise_indices is not None else list(range(n))
    if len(idx) != n:
        raise ValueError(f"{n} {what} but {len(idx)} noise indices")
    return idx
