"""The paper's toy experiment C0: the same flow model on a 2-D "PS" set, in 2-D and in 8-D.

The data: points on the strokes of the letters P and S (uniform in arc length, plus small noise),
in R^2, and the same points embedded in R^8 by a fixed orthonormal map Q (8 x 2, from the QR of a
seeded Gaussian). One MLP velocity model (3 hidden layers of ``width`` = 256, SiLU; input x and t)
learns rectified flow (x_t = (1 - t) x_0 + t eps, target eps - x_0) in each space with the same
seed, optimiser and steps, in the project's training loop (:class:`~latentbench.train.loop.
TrainLoop`: one run folder per space, ``2d/`` and ``8d/``); samples come from ``sample_steps``
Euler steps from t = 1 to 0 of the generator's sampler (:func:`latentbench.gen.flow.sample`).

The tail metric (docs/method.md, C0): the mean distance to the data manifold (a dense noiseless
sampling of the strokes, embedded alike) of the 5% of samples farthest from it. Measured every
``eval_every`` steps, with the same noise seed. C0 says the 8-D model converges slower and keeps
more samples off the manifold: its tail distance stays above the 2-D model's.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import torch
from pydantic import Field
from torch import Tensor, nn

from latentbench.atomic import atomic_path
from latentbench.config import (
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Probability,
    SampleSteps,
    config,
)
from latentbench.gen.flow import Sampler, interpolate, sample, velocity_target
from latentbench.runs import OutputKind, RunDir, claim_output, staged_dir
from latentbench.stats import Interval
from latentbench.train.loop import Callback, LoopConfig, StepContext, TrainLoop, eval_mode


@config
class ToyConfig:
    steps: PositiveInt = 3000
    eval_every: PositiveInt = 250
    ambient_dim: Annotated[int, Field(ge=2)] = 8
    width: PositiveInt = 256
    batch_size: PositiveInt = 512
    lr: PositiveFloat = 1e-3
    num_data: PositiveInt = 8192
    noise: NonNegativeFloat = 0.01  # data jitter around the strokes
    num_samples: PositiveInt = 2000
    num_reference: PositiveInt = 20_000  # dense noiseless points standing in for the manifold
    sample_steps: SampleSteps = 50
    tail_fraction: Probability = 0.05
    seed: NonNegativeInt = 0


def ps_curve(n: int, generator: torch.Generator) -> Tensor:
    """(n, 2) points uniform in arc length on the strokes of "P" (left) and "S" (right)."""
    # Each stroke: (kind, params); lines (x0, y0, x1, y1), arcs (cx, cy, r, a0, a1).
    strokes: list[tuple[str, tuple[float, ...]]] = [
        ("line", (-1.0, -1.0, -1.0, 1.0)),  # P's stem
        ("arc", (-1.0, 0.5, 0.5, -math.pi / 2, math.pi / 2)),  # P's bowl
        ("arc", (0.6, 0.5, 0.5, 0.0, 1.5 * math.pi)),  # S, upper three quarters
        ("arc", (0.6, -0.5, 0.5, math.pi / 2, -math.pi)),  # S, lower three quarters
    ]
    lengths = torch.tensor(
        [
            math.dist(p[:2], p[2:]) if kind == "line" else abs(p[4] - p[3]) * p[2]
            for kind, p in strokes
        ]
    )
    which = torch.multinomial(lengths / lengths.sum(), n, replacement=True, generator=generator)
    u = torch.rand(n, generator=generator)
    out = torch.empty(n, 2)
    for i, (kind, p) in enumerate(strokes):
        m = which == i
        s = u[m]
        if kind == "line":
            out[m, 0] = p[0] + s * (p[2] - p[0])
            out[m, 1] = p[1] + s * (p[3] - p[1])
        else:
            a = p[3] + s * (p[4] - p[3])
            out[m, 0] = p[0] + p[2] * torch.cos(a)
            out[m, 1] = p[1] + p[2] * torch.sin(a)
    return out / 0.8  # roughly unit scale


def embedding(dim: int, seed: int) -> Tensor:
    """(dim, 2) matrix with orthonormal columns (Q of a seeded Gaussian's QR)."""
    g = torch.Generator().manual_seed(seed + 1)
    q, _ = torch.linalg.qr(torch.randn(dim, 2, generator=g))
    return q


class VelocityMLP(nn.Module):
    """(B, d) x, (B,) t -> (B, d) velocity; 3 hidden layers of ``width``."""

    def __init__(self, dim: int, width: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim + 1, width),
            nn.SiLU(),
            nn.Linear(width, width),
            nn.SiLU(),
            nn.Linear(width, width),
            nn.SiLU(),
            nn.Linear(width, dim),
        )

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return self.net(torch.cat([x, t[:, None]], 1))


def sample_points(model: VelocityMLP, noise: Tensor, steps: int) -> Tensor:
    """Euler from t = 1 (noise) to t = 0 (data), with the generator's sampler."""
    return sample(model, noise, steps, shift=1.0, sampler=Sampler.EULER)


def manifold_distances(samples: Tensor, manifold: Tensor) -> Tensor:
    """(N,) distance of each sample (N, d) to its nearest point of ``manifold`` (M, d)."""
    return torch.cdist(samples, manifold).min(1).values


def tail_count(n: int, fraction: float) -> int:
    """How many of ``n`` samples the tail holds (at least one)."""
    return max(1, int(round(fraction * n)))


def tail_of(distances: Tensor, fraction: float) -> float:
    """The mean of the ``fraction`` largest ``distances`` (N,)."""
    return float(distances.topk(tail_count(len(distances), fraction)).values.mean())


def tail_interval(
    distances: Tensor, fraction: float, seed: int = 0, n_resamples: int = 2000
) -> Interval:
    """The tail distance of ``distances`` (N,) with a 95% percentile-bootstrap interval over the
    samples (the final samples are i.i.d. draws of the trained model: resampling them says how
    much the tail of N draws moves)."""
    d = distances.double()
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(d), (n_resamples, len(d)), generator=g)  # (R, N)
    boot = d[idx].topk(tail_count(len(d), fraction), dim=1).values.mean(1)  # (R,)
    low, high = torch.quantile(boot, torch.tensor([0.025, 0.975], dtype=d.dtype)).tolist()
    method = f"percentile bootstrap over the {len(d)} samples ({n_resamples} resamples)"
    return Interval(tail_of(d, fraction), low, high, len(d), method)


class ToyFlowTask:
    """Rectified flow on points (the loop's TrainTask): ``x_t = (1 - t) x0 + t eps``, target
    ``eps - x0``, t uniform; noise and times from the loop's per-step seeded global RNG."""

    def __init__(self, model: VelocityMLP) -> None:
        self.model = model

    def loss(self, model: nn.Module, batch: Tensor, ctx: StepContext) -> dict[str, Tensor]:
        x0 = batch.to(ctx.device)  # (B, d)
        eps = torch.randn(x0.shape).to(ctx.device)
        t = torch.rand(len(x0)).to(ctx.device)  # (B,)
        loss = (model(interpolate(x0, eps, t), t) - velocity_target(x0, eps)).square().mean()
        return {"loss": loss}


def train_flow(
    data: Tensor, manifold: Tensor, cfg: ToyConfig, run: RunDir, quiet: bool = True
) -> tuple[VelocityMLP, list[int], list[float], Tensor]:
    """Train one velocity model on ``data`` (N, d) with the project's training loop (Adam, no
    clipping, no EMA, logs in ``run``); the tail distance every ``eval_every`` steps, and the
    last evaluation's distances to the manifold (num_samples,)."""
    dim = data.shape[1]
    torch.manual_seed(cfg.seed)
    model = VelocityMLP(dim, cfg.width)
    eval_noise = torch.randn(
        cfg.num_samples, dim, generator=torch.Generator().manual_seed(cfg.seed + 3)
    )
    steps, tails = [], []
    last = torch.empty(0)

    def evaluate(loop: TrainLoop, step: int) -> None:
        nonlocal last
        with eval_mode(loop.eval_model) as m, torch.no_grad():
            samples = sample_points(m, eval_noise.to(loop.device), cfg.sample_steps).cpu()
        last = manifold_distances(samples, manifold)
        steps.append(step)
        tails.append(tail_of(last, cfg.tail_fraction))
        loop.run.log(step, "tail", tails[-1])

    loop_cfg = LoopConfig(
        steps=cfg.steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        grad_clip=None,
        ema_decay=None,
        seed=cfg.seed,
        log_every=max(1, cfg.eval_every // 5),
        checkpoint_every=cfg.steps,
        keep_checkpoints=1,
    )
    callbacks = [Callback(cfg.eval_every, evaluate)]
    loop = TrainLoop(ToyFlowTask(model), data, None, loop_cfg, run, callbacks, quiet=quiet)
    loop.fit()
    return model, steps, tails, last


def run_toy(cfg: ToyConfig, out: Path, quiet: bool = True) -> dict[str, Any]:
    """Both models, trained in run folders ``out/2d`` and ``out/<D>d``; returns the tail curves,
    the final samples (2-D coordinates) and the data."""
    g = torch.Generator().manual_seed(cfg.seed)
    data2 = ps_curve(cfg.num_data, g)
    data2 = data2 + cfg.noise * torch.randn(data2.shape, generator=g)
    manifold2 = ps_curve(cfg.num_reference, torch.Generator().manual_seed(cfg.seed + 4))
    q = embedding(cfg.ambient_dim, cfg.seed)  # (D, 2)
    result: dict[str, Any] = {"config": asdict(cfg)}
    curves = {}
    for name, data, manifold in (
        ("2d", data2, manifold2),
        (f"{cfg.ambient_dim}d", data2 @ q.T, manifold2 @ q.T),
    ):
        run = RunDir.create(out / name, "toy-manifold", {"space": name, **asdict(cfg)}, cfg.seed)
        model, steps, tails, last = train_flow(data, manifold, cfg, run, quiet)
        noise = torch.randn(
            cfg.num_samples, data.shape[1], generator=torch.Generator().manual_seed(7)
        )
        with torch.no_grad():
            final = sample_points(model.cpu().eval(), noise, cfg.sample_steps)
        curves[name] = (steps, tails, final if name == "2d" else final @ q)
        result[f"tail_{name}"] = tails
        # final_tail_<name> = tails[-1], with its interval over the last evaluation's samples
        result.update(
            tail_interval(last, cfg.tail_fraction, cfg.seed).to_keys(f"final_tail_{name}")
        )
    result["steps"] = curves["2d"][0]
    result["_samples"] = {k: v[2] for k, v in curves.items()}
    result["_data"] = data2
    return result


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims = [k for k in result["_samples"]]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for k in dims:
        axes[0].plot(result["steps"], result[f"tail_{k}"], marker="o", label=f"flow in {k.upper()}")
    axes[0].set(xlabel="training step", ylabel="tail distance (worst 5%)", yscale="log")
    axes[0].legend()
    axes[0].set_title("off-manifold tail")
    data = result["_data"]
    for ax, k in zip(axes[1:], dims):
        s = result["_samples"][k]
        ax.scatter(data[:, 0], data[:, 1], s=1, c="lightgray", label="data")
        ax.scatter(s[:, 0], s[:, 1], s=1, c="tab:red", label="samples")
        ax.set(title=f"samples, model in {k.upper()} (projected to 2-D)", aspect="equal")
        ax.set_xlim(-2.2, 2.2)
        ax.set_ylim(-2.0, 2.0)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def run_toy_manifold(
    cfg: ToyConfig, out: str | Path, quiet: bool = False, overwrite: bool = False
) -> dict[str, Any]:
    """``latentbench toy-manifold``: metrics.json, metrics.jsonl and tail.png in ``out``
    (replaced when complete: new, empty or an earlier toy-manifold run, unless ``overwrite``)."""
    claim_output(out, OutputKind.TOY_MANIFOLD, overwrite=overwrite)
    with staged_dir(out, OutputKind.TOY_MANIFOLD) as tmp:
        result = run_toy(cfg, tmp, quiet=quiet)
        public = {k: v for k, v in result.items() if not k.startswith("_")}
        run = RunDir.create(tmp, "toy-manifold", asdict(cfg), seed=cfg.seed)
        for k in result["_samples"]:
            for step, value in zip(result["steps"], result[f"tail_{k}"]):
                run.log(step, f"tail_{k}", value)
        plot(result, run.path / "tail.png")
        run.write_metrics(public)
    return public
