"""Rectified flow: the path, the time distribution, the shift rule, samplers, guidance.

- Path: ``x_t = (1 - t) x0 + t eps`` with ``t = 0`` data and ``t = 1`` noise; the model predicts
  the velocity ``eps - x0`` (so ``dx/dt = v`` and sampling integrates from t = 1 to t = 0).
- Training times: logit-normal ``t = sigmoid(m + s n)``, ``n ~ N(0, 1)`` (defaults m = 0,
  s = 1, as in SD3), then shifted ``t' = a t / (1 + (a - 1) t)``.
- Shift ``a = sqrt(N C p^2 / 4096)`` unless overridden (docs/method.md): the dimension rule, with
  N latent tokens of C channels and patch p, i.e. ``sqrt(D / 4096)`` for the D = N C p^2 numbers
  of a latent. At the paper's 16x16 token grid (N = 256) it is the paper's ``sqrt(C p^2 / 16)``;
  on an 8x8 grid it is half that. a > 1 moves probability mass towards noise, which
  high-dimensional latents need.
- Sampling: Euler or Heun over a uniform grid in t shifted by the sampling shift (default: the
  training shift; the paper samples with 3 at its scale); classifier-free guidance
  ``v = v_u + w (v_c - v_u)`` on all channels is :func:`latentbench.gen.sampling.guided_velocity`.
  Sampling stays on the space's normalised scale;
  callers decode with ``space.decode(space.denormalize(z))``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable

import torch
from torch import Tensor

from latentbench.config import (
    FiniteFloat,
    NonNegativeFloat,
    PositiveFloat,
    Probability,
    SampleSteps,
    config,
)

VelocityFn = Callable[[Tensor, Tensor], Tensor]  # (x (B, ...), t (B,)) -> v (B, ...)


class Sampler(str, enum.Enum):
    EULER = "euler"
    HEUN = "heun"


@config
class FlowConfig:
    """Flow-matching settings. ``shift=None`` applies the dimension rule automatically."""

    shift: PositiveFloat | None = None
    logit_mean: FiniteFloat = 0.0
    logit_std: PositiveFloat = 1.0
    sample_steps: SampleSteps = 50
    sampler: Sampler = Sampler.EULER
    sample_shift: PositiveFloat | None = None  # None: same as the training shift (the paper: 3)
    guidance: NonNegativeFloat = 1.0  # 1.0: no guidance (the paper uses 6.5 at its scale)
    cond_dropout: Probability = 0.1  # probability of training on the null condition (enables CFG)


def dimension_shift(channels: int, patch: int, tokens: int) -> float:
    """``sqrt(N C p^2 / 4096)`` for ``tokens`` = N latent tokens of ``channels`` x ``patch``^2.

    At N = 256 (the paper's 16x16 grid): 16ch p2 -> 2, 768ch p1 -> 6.93, 96ch p1 -> 2.45; at
    N = 64 (8x8) half of each.
    """
    return math.sqrt(tokens * channels * patch**2 / 4096)


def shift_time(t: Tensor, shift: float) -> Tensor:
    """``s t / (1 + (s - 1) t)``; maps [0, 1] onto [0, 1], identity for s = 1."""
    return shift * t / (1 + (shift - 1) * t)


def logit_normal_time(normal: Tensor, mean: float, std: float, shift: float) -> Tensor:
    """Times from standard-normal draws ``normal`` (B,): sigmoid(mean + std n), then shifted."""
    return shift_time(torch.sigmoid(mean + std * normal), shift)


def interpolate(x0: Tensor, eps: Tensor, t: Tensor) -> Tensor:
    """``(1 - t) x0 + t eps`` with t (B,) broadcast over the other dims."""
    t = t.reshape(-1, *([1] * (x0.ndim - 1))).to(x0.dtype)
    return x0 + t * (eps - x0)


def velocity_target(x0: Tensor, eps: Tensor) -> Tensor:
    return eps - x0


def time_grid(steps: int, shift: float, device: torch.device | None = None) -> Tensor:
    """(steps + 1,) decreasing times from 1 to 0, uniform before the shift."""
    return shift_time(
        torch.linspace(1.0, 0.0, steps + 1, device=device, dtype=torch.float64), shift
    )


@torch.no_grad()
def sample(
    velocity: VelocityFn,
    noise: Tensor,
    steps: int = 50,
    shift: float = 1.0,
    sampler: Sampler = Sampler.EULER,
) -> Tensor:
    """Integrate ``dx/dt = velocity(x, t)`` from t = 1 (``noise``) to t = 0; returns x0."""
    sampler = Sampler(sampler)
    ts = time_grid(steps, shift, noise.device)
    x = noise
    for t_cur, t_next in zip(ts[:-1], ts[1:]):
        dt = float(t_next - t_cur)  # negative
        tb = torch.full((x.shape[0],), float(t_cur), device=x.device)
        v = velocity(x, tb)
        x_next = x + dt * v
        if sampler is Sampler.HEUN and float(t_next) > 0:
            v2 = velocity(x_next, torch.full_like(tb, float(t_next)))
            x_next = x + dt * 0.5 * (v + v2)
        x = x_next
    return x
