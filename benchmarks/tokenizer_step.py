"""Tokenizer training steps: recomputing the constant inputs in every step vs reading them from
the feature cache (``cache_features``), at the same settings, in one run.

Two recipes of a preset (default ``quickstart``: Shapes at 64 px): ``rae`` decoder training and
``semrec`` stage 1 (S-VAE). "Recompute" is training as it was before the cache: every step renders
its Shapes items, runs the frozen encoder and the perceptual net on the target images. "Cached"
reads images, encoder features and perceptual levels from the cache built once before (its cost
is written too). Both paths run the same ``TokenizerTask.loss``, backward, clipping and AdamW
step. The two paths alternate in blocks of steps, so a load change on a shared machine hits both.

    .venv/bin/python benchmarks/tokenizer_step.py [--preset quickstart] [--steps 24] [--threads 2]

Writes benchmarks/results/tokenizer_step.json (images/s of both paths, their ratio, the git
commit, the load average).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from latentbench.atomic import atomic_write_json
from latentbench.bench.tokenizer import load_preset
from latentbench.data import collate_images, open_images
from latentbench.runs import device_info, git_hash, package_versions
from latentbench.spaces import build_space
from latentbench.train.loop import StepBatchSampler, StepContext
from latentbench.train.tokenizer import (
    CacheFeatures,
    TokenizerTask,
    cached_constants,
    collate_constants,
    recipe_for,
)

RECIPES = (("rae", 1), ("semrec", 1))


def measure(space_name: str, stage: int, preset: str, images: int, steps: int, block: int) -> dict:
    cfg = load_preset(space_name, preset, stage)
    torch.manual_seed(0)
    space = build_space(space_name, **cfg.space)
    task = TokenizerTask(space, recipe_for(space_name, stage), cfg.loss)
    task.model.train()
    data = open_images(f"shapes:{images}", space.spec.image_size, seed=0)
    t0 = time.perf_counter()
    cached = cached_constants(task, data, CacheFeatures.ON)
    build_s = time.perf_counter() - t0
    batch = cfg.loop.batch_size
    opt = torch.optim.AdamW([p for p in task.model.parameters() if p.requires_grad], lr=1e-4)

    def loader(dataset, collate):
        sampler = StepBatchSampler(len(dataset), batch, 0, 0, 10**6, 0, 1)
        return iter(DataLoader(dataset, batch_sampler=sampler, collate_fn=collate))

    paths = {
        "recompute": loader(data, collate_images),
        "cached": loader(cached, collate_constants),
    }
    seconds = dict.fromkeys(paths, 0.0)
    counts = dict.fromkeys(paths, 0)
    ctx = StepContext(0, 0, 0, 1, torch.device("cpu"))

    def run(name: str, n: int) -> None:
        start = time.perf_counter()
        for _ in range(n):
            loss = task.loss(task.model, next(paths[name]), ctx)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(task.model.parameters(), 1.0)
            opt.step()
        seconds[name] += time.perf_counter() - start
        counts[name] += n

    for name in paths:  # warm-up, not timed
        run(name, 1)
    seconds = dict.fromkeys(paths, 0.0)
    counts = dict.fromkeys(paths, 0)
    for _ in range(max(1, steps // block)):
        for name in paths:
            run(name, block)
    rate = {name: batch * counts[name] / seconds[name] for name in paths}
    return {
        "recipe": task.recipe.value,
        "batch": batch,
        "image_size": space.spec.image_size,
        "steps_each": counts["cached"],
        "recompute_images_per_s": round(rate["recompute"], 1),
        "cached_images_per_s": round(rate["cached"], 1),
        "speedup": round(rate["cached"] / rate["recompute"], 2),
        "cache_build_s": round(build_s, 1),
        "cache_items": len(cached),
        "trainable_params": sum(p.numel() for p in task.model.parameters() if p.requires_grad),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="quickstart")
    ap.add_argument("--images", type=int, default=256, help="Shapes training images")
    ap.add_argument("--steps", type=int, default=24, help="timed steps per path and recipe")
    ap.add_argument("--block", type=int, default=4, help="steps per alternation block")
    ap.add_argument("--threads", type=int, default=2)
    default_out = Path(__file__).parent / "results" / "tokenizer_step.json"
    ap.add_argument("--out", default=str(default_out))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ["LATENTBENCH_CACHE"] = tempfile.mkdtemp(prefix="lb-tokenizer-step-")
    load_before, commit = os.getloadavg(), git_hash()  # the code that runs: HEAD at the start
    results = {
        f"{space}-stage{stage}": measure(
            space, stage, args.preset, args.images, args.steps, args.block
        )
        for space, stage in RECIPES
    }
    result = {
        "benchmark": "tokenizer_step",
        "what": "training images/s: constants recomputed every step vs read from the cache",
        "preset": args.preset,
        "images": args.images,
        "results": results,
        "git": commit,  # the commit measured ('+dirty': with uncommitted changes)
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "torch_threads": torch.get_num_threads(),
        "device": device_info(),
        "versions": package_versions(),
    }
    atomic_write_json(args.out, result)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
