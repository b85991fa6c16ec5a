"""Load the generator a ``train-gen`` run folder holds and sample from it.

A run folder written by :func:`latentbench.bench.generation.train_generator` records in its
``manifest.json`` everything needed to rebuild the model (DiT architecture, condition spec, text
encoder state, flow settings, the space's name and latent statistics) and holds
``checkpoints/step_*/ema.safetensors`` (falling back to ``model.safetensors``). This module
rebuilds those pieces with the public classes of :mod:`latentbench.gen` and
:mod:`latentbench.train.generator` and exposes two calls:

- :meth:`TrainedGenerator.text_to_image`: prompts -> images (B, 3, S, S) in [-1, 1];
- :meth:`TrainedGenerator.edit`: source images + instructions -> edited images.

Sampling settings default to the run's own (steps, sampler, shift, guidance; ``SamplingOptions``
overrides them); sample ``i`` of a call draws its noise from a generator seeded by ``(seed, i)``
(the harness's ``generate``), so results do not depend on the batch size.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from latentbench.config import (
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    config,
    from_dict,
)
from latentbench.errors import UserError
from latentbench.files import load_safetensors, read_json_object
from latentbench.gen.dit import CondSpec, DiT, DiTConfig, EditLayout
from latentbench.gen.flow import FlowConfig, Sampler
from latentbench.gen.qwen import PAPER_PRESET, QwenGenConfig, QwenGenerator
from latentbench.gen.text import build_text_encoder
from latentbench.spaces.base import LatentSpace, LatentStats
from latentbench.train.generator import EvalSet, GeneratorTask, TaskKind, decode, generate


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
    """A trained generator (EMA weights) with its space, text encoder and flow settings."""

    def __init__(
        self,
        model: DiT,
        task: GeneratorTask,
        space: LatentSpace,
        flow: FlowConfig,
        *,
        run_dir: Path,
        checkpoint: Path,
        weights: str,
        step: int,
    ) -> None:
        self.model, self.task, self.space, self.flow = model, task, space, flow
        self.run_dir, self.checkpoint, self.weights, self.step = run_dir, checkpoint, weights, step

    @property
    def kind(self) -> TaskKind:
        return self.task.kind

    @property
    def image_size(self) -> int:
        return int(self.space.spec.image_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

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
            "sample_shift": flow.sample_shift or self.task.shift,
            "seed": seed,
            "noise": "sample i of a call: torch.Generator seeded by mix_seed(seed, i)",
        }

    def _flow(self, options: SamplingOptions) -> FlowConfig:
        flow = self.flow
        overrides = {
            "sample_steps": options.steps,
            "guidance": options.guidance,
            "sample_shift": options.shift,
            "sampler": options.sampler,
        }
        return replace(flow, **{k: v for k, v in overrides.items() if v is not None})

    def _run(
        self,
        eval_set: EvalSet,
        options: SamplingOptions,
        seed: int,
        indices: Sequence[int] | None = None,
    ) -> Tensor:
        with torch.inference_mode():
            z = generate(
                self.model,
                self.task,
                eval_set,
                list(indices) if indices is not None else list(range(len(eval_set))),
                seed=seed,
                flow=self._flow(options),
                device=self.device,
                batch_size=options.batch_size,
            )
            return decode(self.space, self.task, z, options.batch_size)

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
        idx = list(noise_indices) if noise_indices is not None else list(range(len(prompts)))
        if len(idx) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(idx)} noise indices")
        if not idx:
            return torch.empty(0, 3, self.image_size, self.image_size)
        captions = [""] * (max(idx) + 1)
        for i, p in zip(idx, prompts):
            captions[i] = str(p)
        return self._run(EvalSet(captions=captions, num=len(captions)), options, seed, idx)

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
        idx = list(noise_indices) if noise_indices is not None else list(range(len(sources)))
        if len(idx) != len(sources):
            raise ValueError(f"{len(sources)} sources but {len(idx)} noise indices")
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
        eval_set = EvalSet(captions=captions, sources=placed, num=size)
        return self._run(eval_set, options, seed, idx)


def load_generator(
    run_dir: str | Path,
    *,
    checkpoint: str | Path | None = None,
    device: str | torch.device | None = None,
    use_ema: bool = True,
) -> TrainedGenerator:
    """Rebuild the generator of a ``train-gen`` run folder (EMA weights by default).

    ``checkpoint``: a checkpoint folder, a step number, ``"init"`` (the untrained baseline: the
    same DiT with its seeded initialisation), or None for the last checkpoint.
    """
    from latentbench.bench.generation import make_space

    run_dir = Path(run_dir)
    if not (run_dir / "manifest.json").is_file():
        raise UserError(f"{run_dir}: no manifest.json (not a run folder)")
    try:
        config = json.loads((run_dir / "manifest.json").read_text())["config"]
        # runs written before DiTConfig.edit_layout existed put the text first
        legacy = {"edit_layout": EditLayout.TEXT_SOURCE_NOISY.value}
        paper = str(config["train_gen"].get("preset", "")).lower() == PAPER_PRESET
        arch, fields = (
            (QwenGenConfig, config["dit"]) if paper else (DiTConfig, {**legacy, **config["dit"]})
        )
        dit_cfg = from_dict(arch, fields, "manifest dit")
        cspec = from_dict(CondSpec, config["cond"], "manifest cond")
        flow = from_dict(FlowConfig, config["flow"], "manifest flow")
        kind = TaskKind(config["train_gen"]["task"])
        space_cfg = config["space"]
        stats = LatentStats.from_dict(space_cfg["stats"])
        shift = float(config["shift"])
        image_size = int(config["train_preset"]["image_size"])
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as e:
        raise UserError(
            f"{run_dir}/manifest.json is not a train-gen manifest ({type(e).__name__}: {e})"
        ) from None
    untrained = str(checkpoint) == UNTRAINED
    ckpt = (
        run_dir / "checkpoints" / UNTRAINED if untrained else find_checkpoint(run_dir, checkpoint)
    )
    name = (
        "ema.safetensors"
        if use_ema and (ckpt / "ema.safetensors").is_file()
        else "model.safetensors"
    )
    if untrained:
        name = "seeded initialisation (untrained)"
    elif not (ckpt / name).is_file():
        raise UserError(f"{ckpt}: no {name}")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    space = make_space(space_cfg["name"], image_size, config["train_gen"].get("space_options"))
    space = space.to(dev).eval()
    if space.fingerprint() != space_cfg.get("fingerprint", space.fingerprint()):
        raise UserError(
            f"space {space_cfg['name']!r} rebuilt here differs from the one {run_dir} was "
            "trained on (fingerprint mismatch)"
        )
    text = None
    if config.get("text_encoder"):
        te = config["text_encoder"]
        text = build_text_encoder(
            te["kind"], path=te.get("path"), max_len=int(te["max_len"]), vocab=te.get("vocab")
        )
    model = (QwenGenerator if paper else DiT)(
        dit_cfg, space.spec.channels, space.spec.latent_size, cspec
    )
    if not untrained:
        model.load_state_dict(load_safetensors(ckpt / name))
    model = model.to(dev).eval().requires_grad_(False)
    task = GeneratorTask(model, stats, flow, shift, kind, text)
    step = 0 if untrained else int(read_json_object(ckpt / "state.json").get("step", -1))
    return TrainedGenerator(
        model, task, space, flow, run_dir=run_dir, checkpoint=ckpt, weights=name, step=step
    )
