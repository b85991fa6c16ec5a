"""Generator training from the latent cache vs encoding every batch on the fly.

The space is a representation-encoder space: ``rae`` on the real EfficientNet-Lite0 (112 x 8 x 8
latents at 128 px; only its encoder matters here), or ``taef2`` when rae cannot be built. Images
are rendered into memory first, so "on the fly" pays only for the encoder, not for decoding files.
Both paths run the same tiny class-conditional DiT step (GeneratorTask.loss, AdamW).
Writes images/s of both, the speed-up and the one-off cache build cost to
benchmarks/results/latent_cache.json.

    .venv/bin/python benchmarks/latent_cache.py [--images 256] [--steps 20] [--batch 32]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from latentbench.atomic import atomic_write_json
from latentbench.data.cache import CachedLatents, build_cache
from latentbench.data.shapes import ShapesDataset
from latentbench.errors import UserError
from latentbench.gen.dit import CondKind, CondSpec, preset
from latentbench.gen.flow import dimension_shift
from latentbench.gen.generator import Generator
from latentbench.runs import device_info, git_hash, package_versions
from latentbench.spaces import build_space
from latentbench.train.generator import GeneratorTask, LatentBatch, collate_latents
from latentbench.train.loop import StepContext


def make_space():
    try:
        return build_space("rae", encoder="efficientnet-lite0", image_size=128), "rae(lite0)"
    except UserError as e:
        print(f"rae unavailable ({e}); using taef2")
        return build_space("taef2", image_size=64), "taef2"


def time_training(task, batches, steps: int) -> float:
    """Seconds per step over ``steps`` steps after one warm-up step; ``batches()`` -> batch."""
    opt = torch.optim.AdamW(task.model.parameters(), lr=1e-4)
    ctx = lambda s: StepContext(s, 0, 0, 1, torch.device("cpu"))  # noqa: E731
    for s in range(steps + 1):
        if s == 1:
            start = time.perf_counter()
        loss = task.loss(task.model, batches(s), ctx(s))["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "latent_cache.json"))
    args = ap.parse_args()
    os.environ.setdefault("LATENTBENCH_CACHE", tempfile.mkdtemp(prefix="lb-cache-bench-"))

    space, label = make_space()
    space.eval()
    spec = space.spec
    data = ShapesDataset(args.images, spec.image_size, seed=0)
    items = [data[i] for i in range(len(data))]  # rendered once, in memory
    images = torch.stack([it["image"] for it in items])
    labels = torch.tensor([it["label"] for it in items])

    t0 = time.perf_counter()
    cache = build_cache(space, data, batch_size=args.batch)
    build_s = time.perf_counter() - t0  # includes rendering the images again
    cached = CachedLatents(cache)

    cond = CondSpec(CondKind.CLASS, num_classes=int(labels.max()) + 1)
    dit = preset("tiny")
    model = Generator(
        dit=dit,
        cond=cond,
        channels=spec.channels,
        latent_size=spec.latent_size,
        latent_mean=list(cache.stats.mean),
        latent_std=list(cache.stats.std),
        shift=dimension_shift(spec.channels, spec.latent_size // dit.grid, dit.grid**2),
    )
    task = GeneratorTask(model)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))

    def idx(s: int) -> list[int]:
        return [int(order[(s * args.batch + j) % len(data)]) for j in range(args.batch)]

    def from_cache(s: int) -> LatentBatch:
        return collate_latents([cached[i] for i in idx(s)])

    def on_the_fly(s: int) -> LatentBatch:
        ids = idx(s)
        with torch.inference_mode():
            z = space.encode(images[ids]).float()
        return LatentBatch(z.clone(), None, labels[ids], [""] * len(ids))

    sec_cache = time_training(task, from_cache, args.steps)
    sec_fly = time_training(task, on_the_fly, args.steps)
    result = {
        "space": label,
        "latent": list(spec.latent_shape),
        "image_size": spec.image_size,
        "batch": args.batch,
        "steps": args.steps,
        "generator": "DiT tiny (class-conditional)",
        "from_cache_images_per_s": args.batch / sec_cache,
        "on_the_fly_images_per_s": args.batch / sec_fly,
        "speedup": sec_fly / sec_cache,
        "cache_build_s": build_s,
        "cache_items": len(cache),
        "cache_bytes": sum(p.stat().st_size for p in cache.path.iterdir()),
        "torch_threads": torch.get_num_threads(),
        "git": git_hash(),  # the commit measured ('+dirty': with uncommitted changes)
        "device": device_info(),
        "versions": package_versions(),
    }
    atomic_write_json(args.out, result)
    keys = ("space", "from_cache_images_per_s", "on_the_fly_images_per_s", "speedup")
    print(json.dumps({k: result[k] for k in keys}, indent=2))


if __name__ == "__main__":
    main()
