"""Generator training as a :class:`~latentbench.train.loop.TrainTask`: rectified flow on cached
latents.

The task trains a :class:`~latentbench.gen.generator.Generator` (a DiT that knows its latent
statistics, text encoder and flow settings) on normalised latents. Randomness that the loss draws
(noise, time, condition dropout) comes from a generator seeded by ``(seed, step, global sample
index)``: the global batch a step sees is fixed by the loop's :class:`StepBatchSampler`, so a run
on N processes draws exactly the numbers a run on one process draws, and the result matches up to
float reduction order. Evaluation during training: :mod:`latentbench.train.generator_eval`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from latentbench.gen.flow import interpolate, logit_normal_time, velocity_target
from latentbench.gen.generator import Generator, TaskKind
from latentbench.gen.sampling import mix_seed
from latentbench.train.loop import StepContext

__all__ = [
    "Draws",
    "GeneratorTask",
    "LatentBatch",
    "TaskKind",
    "collate_latents",
    "per_sample_draws",
]


@dataclass
class LatentBatch:
    latents: Tensor  # (B, C, h, w) raw (un-normalised) latents, float32
    sources: Tensor | None  # (B, C, h, w) raw source latents (editing)
    labels: Tensor  # (B,) long
    captions: list[str]


def collate_latents(items: Sequence[dict[str, Any]]) -> LatentBatch:
    has_source = items[0].get("source") is not None
    return LatentBatch(
        latents=torch.stack([it["latent"] for it in items]),
        sources=torch.stack([it["source"] for it in items]) if has_source else None,
        labels=torch.tensor([int(it["label"]) for it in items], dtype=torch.long),
        captions=[str(it["caption"]) for it in items],
    )


@dataclass
class Draws:
    noise: Tensor  # (B, C, h, w)
    normal: Tensor  # (B,) standard normal, mapped to t
    drop: Tensor  # (B,) bool: train on the null condition


def per_sample_draws(
    shape: tuple[int, ...],
    seed: int,
    step: int,
    positions: Sequence[int],
    p_drop: float,
    device: torch.device | None = None,
) -> Draws:
    """Noise, time and dropout of each sample from its own generator (seed, step, position),
    created on ``device`` (CPU and CUDA generators draw different numbers; every process of a
    run uses the same kind). ``drop`` stays on the CPU."""
    device = torch.device(device or "cpu")
    noise, normal, drop = [], [], []
    for pos in positions:
        g = torch.Generator(device=device).manual_seed(mix_seed(seed, step, pos))
        noise.append(torch.randn(shape, generator=g, device=device))
        normal.append(torch.randn((), generator=g, device=device))
        drop.append(torch.rand((), generator=g, device=device) < p_drop)
    return Draws(torch.stack(noise), torch.stack(normal), torch.stack(drop).cpu())


class GeneratorTask:
    """Rectified-flow training of ``model`` on normalised latents (the loop's TrainTask).

    The flow settings (time distribution, condition dropout) and the shift are the generator's.
    """

    def __init__(self, model: Generator) -> None:
        self.model = model

    @property
    def kind(self) -> TaskKind:
        return self.model.kind

    def loss(
        self, model: torch.nn.Module, batch: LatentBatch, ctx: StepContext
    ) -> dict[str, Tensor]:
        g = self.model  # ``model`` is the same module, possibly wrapped (DDP, compile)
        x0 = g.normalize(batch.latents.to(ctx.device))  # (B, C, h, w)
        b = x0.shape[0]
        positions = [ctx.rank + j * ctx.world_size for j in range(b)]  # in the global batch
        d = per_sample_draws(
            tuple(x0.shape[1:]), ctx.seed, ctx.step, positions, g.flow.cond_dropout, ctx.device
        )
        eps = d.noise  # (B, C, h, w)
        t = logit_normal_time(d.normal, g.flow.logit_mean, g.flow.logit_std, g.shift)  # (B,)
        xt = interpolate(x0, eps, t)
        src = g.normalize(batch.sources.to(ctx.device)) if batch.sources is not None else None
        cond = g.condition(batch.labels, batch.captions, src, d.drop, ctx.device)
        v = model(xt, t, cond)  # (B, C, h, w)
        mse = F.mse_loss(v.float(), velocity_target(x0, eps).float())
        return {"loss": mse, "mse": mse}
