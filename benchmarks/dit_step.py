"""Training-step throughput: latentbench's DiT vs diffusers' DiTTransformer2DModel.

Same run, same settings: width 256 (4 heads x 64), depth 6, 64 latent tokens (4 x 16 x 16
latents, patch 2), batch 32, class-conditional (1000 classes), AdamW; on a CPU in fp32 and with
bf16 autocast (fast where the CPU has avx512_bf16/AMX), on a GPU with bf16 autocast. Writes
images/s of both and their ratio, per precision, to benchmarks/results/dit_step.json.

    .venv/bin/python benchmarks/dit_step.py [--steps 20] [--warmup 3] [--threads N] [--compile]

A class label enters latentbench's DiT through adaLN only (as in DiT), so both models attend over
the same 64 tokens. On a CPU in bf16, latentbench computes attention as an explicit product with an
fp32 softmax instead of SDPA's flash kernel, which is slow there for short sequences.

On a shared CPU, wall-clock rates swing with other load; ``images_per_cpu_s`` (images per second
of this process's CPU time, meaningful with ``--threads 1``) and ``speedup_cpu_time`` do not.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from latentbench.atomic import atomic_write_json
from latentbench.gen.dit import Condition, CondKind, CondSpec, DiT, DiTConfig
from latentbench.runs import device_info, git_hash, package_versions

WIDTH, DEPTH, HEADS, CHANNELS, LATENT, PATCH, BATCH, CLASSES = 256, 6, 4, 4, 16, 2, 32, 1000


def ours() -> torch.nn.Module:
    cfg = DiTConfig(width=WIDTH, depth=DEPTH, heads=HEADS, grid=LATENT // PATCH)
    model = DiT(cfg, CHANNELS, LATENT, CondSpec(CondKind.CLASS, num_classes=CLASSES))

    def step(x, t, y):
        return model(x, t, Condition(labels=y))

    return model, step


def diffusers_dit() -> torch.nn.Module:
    from diffusers import DiTTransformer2DModel

    model = DiTTransformer2DModel(
        num_attention_heads=HEADS,
        attention_head_dim=WIDTH // HEADS,
        in_channels=CHANNELS,
        num_layers=DEPTH,
        sample_size=LATENT,
        patch_size=PATCH,
        num_embeds_ada_norm=CLASSES,
    )

    def step(x, t, y):
        return model(x, timestep=(t * 999).long(), class_labels=y).sample

    return model, step


def time_steps(
    build, steps: int, warmup: int, device: torch.device, compile_: bool, bf16: bool
) -> dict:
    torch.manual_seed(0)
    model, fwd = build()
    model.to(device).train()
    if compile_:
        fwd = torch.compile(fwd)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, CHANNELS, LATENT, LATENT, generator=g).to(device)
    y = torch.randint(0, CLASSES, (BATCH,), generator=g).to(device)
    t = torch.rand(BATCH, generator=g).to(device)
    amp = torch.autocast(device.type, torch.bfloat16, enabled=bf16)

    def one() -> None:
        with amp:
            loss = F.mse_loss(fwd(x, t, y).float(), x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        one()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(steps):
        one()
    if device.type == "cuda":
        torch.cuda.synchronize()
    sec, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    params = sum(p.numel() for p in model.parameters())
    return {
        "images_per_s": BATCH * steps / sec,
        "step_s": sec / steps,
        "images_per_cpu_s": BATCH * steps / cpu,  # robust on a shared machine (1 thread)
        "params": params,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3, help="alternate the two models this often")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--precision", default="fp32,bf16", help="CPU: fp32, bf16 or both")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "dit_step.json"))
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    precisions = ["bf16"] if device.type == "cuda" else args.precision.split(",")
    result: dict = {
        "setting": {
            "width": WIDTH,
            "depth": DEPTH,
            "heads": HEADS,
            "tokens": (LATENT // PATCH) ** 2,
            "batch": BATCH,
            "latent": [CHANNELS, LATENT, LATENT],
            "patch": PATCH,
            "classes": CLASSES,
            "optimizer": "AdamW",
            "steps": args.steps,
            "rounds": args.rounds,
            "compile": args.compile,
        },
        "torch_threads": torch.get_num_threads(),
    }
    for precision in precisions:
        bf16 = precision == "bf16"
        runs: dict[str, list[dict]] = {"latentbench": [], "diffusers": []}
        for _ in range(args.rounds):  # interleave so both see the same machine state
            for name, build in (("latentbench", ours), ("diffusers", diffusers_dit)):
                runs[name].append(
                    time_steps(build, args.steps, args.warmup, device, args.compile, bf16)
                )
        best = {k: max(v, key=lambda r: r["images_per_s"]) for k, v in runs.items()}
        best_cpu = {k: max(r["images_per_cpu_s"] for r in v) for k, v in runs.items()}
        result[precision] = {
            "latentbench": best["latentbench"],
            "diffusers": best["diffusers"],
            "speedup": best["latentbench"]["images_per_s"] / best["diffusers"]["images_per_s"],
            "speedup_cpu_time": best_cpu["latentbench"] / best_cpu["diffusers"],
            "all_rounds": runs,
        }
    if "fp32" in result and "bf16" in result:  # each at its best precision
        result["latentbench_bf16_vs_diffusers_fp32"] = (
            result["bf16"]["latentbench"]["images_per_s"]
            / result["fp32"]["diffusers"]["images_per_s"]
        )
    result.update(git=git_hash(), device=device_info(), versions=package_versions())
    atomic_write_json(args.out, result)
    keys = ("latentbench", "diffusers", "speedup", "speedup_cpu_time")
    print(json.dumps({p: {k: result[p][k] for k in keys} for p in precisions}, indent=2))


if __name__ == "__main__":
    main()
