"""Generator inference: classifier-free guidance, sampling a set of conditions, decoding.

- :func:`guided_velocity`: the one CFG of the project, ``v = v_u + w (v_c - v_u)`` over all
  channels, the conditional and null batches in one forward pass (``w = 1``: the conditional
  velocity alone, one forward);
- :func:`generate`: normalised latents for chosen samples of a :class:`Conditions` set; sample
  ``i`` draws its noise from a generator seeded by ``mix_seed(seed, i)``, so a sample does not
  depend on the batch or the process it lands in;
- :func:`decode`: normalised latents -> images through the space's decoder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from latentbench.gen.dit import Condition
from latentbench.gen.flow import FlowConfig, VelocityFn, sample
from latentbench.gen.generator import AnyGenerator

ConditionalVelocity = Callable[[Tensor, Tensor, Condition], Tensor]  # (x, t, cond) -> v


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers (order matters), stable across processes and runs."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = (h ^ (int(p) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


def guided_velocity(
    model: ConditionalVelocity, cond: Condition, null: Condition, scale: float
) -> VelocityFn:
    """Classifier-free guidance: ``v_u + scale (v_c - v_u)`` with ``v_c`` under ``cond`` and
    ``v_u`` under ``null``, both in one batch of 2B; ``scale == 1``: ``model(x, t, cond)``."""
    if scale == 1.0:
        return lambda x, t: model(x, t, cond)
    both = cond.cat(null)

    def velocity(x: Tensor, t: Tensor) -> Tensor:
        v_c, v_u = model(torch.cat([x, x]), torch.cat([t, t]), both).chunk(2)
        return v_u + scale * (v_c - v_u)

    return velocity


@dataclass
class Conditions:
    """Conditions to sample, indexed by sample: class labels, captions (prompts or edit
    instructions) and, for editing, raw (un-normalised) source latents."""

    labels: Tensor | None = None  # (N,) long
    captions: list[str] | None = None
    sources: Tensor | None = None  # (N, C, h, w) raw source latents
    num: int = 0

    def __len__(self) -> int:
        return self.num


@torch.no_grad()
def generate(
    generator: AnyGenerator,
    conditions: Conditions,
    indices: Sequence[int],
    *,
    seed: int,
    flow: FlowConfig | None = None,
    device: torch.device | None = None,
    batch_size: int = 32,
    model: ConditionalVelocity | None = None,
) -> Tensor:
    """Normalised latents (len(indices), C, h, w) of the given samples of ``conditions``.

    ``flow``: the sampling settings (default: the generator's own); the sampling shift falls
    back to the generator's training shift. ``model``: the module to call (default
    ``generator``; e.g. a compiled or wrapped copy of it).
    """
    flow = flow or generator.flow
    device = device or generator.latent_mean.device
    model = model or generator
    shape = (generator.channels, generator.latent_size, generator.latent_size)
    shift = flow.sample_shift or generator.shift
    out = []
    for start in range(0, len(indices), batch_size):
        idx = list(indices[start : start + batch_size])
        gens = [torch.Generator().manual_seed(mix_seed(seed, i)) for i in idx]
        noise = torch.stack([torch.randn(shape, generator=g) for g in gens]).to(device)
        labels = conditions.labels[idx] if conditions.labels is not None else None
        captions = [conditions.captions[i] for i in idx] if conditions.captions else None
        src = conditions.sources[idx].to(device) if conditions.sources is not None else None
        src = generator.normalize(src) if src is not None else None
        keep = torch.zeros(len(idx), dtype=torch.bool)
        cond = generator.condition(labels, captions, src, keep, device)
        guided = flow.guidance != 1.0
        null = generator.condition(labels, captions, src, ~keep, device) if guided else cond
        velocity = guided_velocity(model, cond, null, flow.guidance)
        out.append(sample(velocity, noise, flow.sample_steps, shift, flow.sampler).float())
    return torch.cat(out) if out else torch.empty(0, *shape)


class Decoder(Protocol):
    """What :func:`decode` needs of a latent space."""

    device: torch.device
    spec: Any  # .image_size

    def decode(self, z: Tensor) -> Tensor: ...


def decode(space: Decoder, generator: AnyGenerator, z: Tensor, batch_size: int = 32) -> Tensor:
    """Normalised latents (N, C, h, w) -> images (N, 3, S, S) in [-1, 1] on the CPU."""
    out = []
    with torch.inference_mode():
        for s in range(0, len(z), batch_size):
            zz = generator.denormalize(z[s : s + batch_size].to(space.device, torch.float32))
            out.append(space.decode(zz).float().cpu())
    size = space.spec.image_size
    return torch.cat(out) if out else torch.empty(0, 3, size, size)
