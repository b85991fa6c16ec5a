"""Shapes world throughput on one core: rendering, full dataset items, and the analytic detector.

For each image size (64, 128, 256 px) it measures, in one process and one thread:
- render: images/s of ``ShapesRenderer.render`` on pre-sampled scenes (4x supersampling);
- item: items/s of ``ShapesDataset[i]`` (sample the scene, render, caption, to a tensor);
- detect: images/s of ``ShapesDetector.detect`` on rendered scenes.
Each figure is the best of ``--repeats`` timed passes over ``--images`` images (the machine may
be shared; the best pass is the least disturbed). Writes benchmarks/results/shapes_render.json.

    .venv/bin/python benchmarks/shapes_render.py [--images 500] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from latentbench.atomic import atomic_write_json
from latentbench.data.shapes import ShapesDataset, ShapesRenderer, item_rng, sample_scene
from latentbench.metrics.shapes_detector import ShapesDetector
from latentbench.runs import device_info, git_hash, package_versions

SIZES = (64, 128, 256)


def best_rate(fn: Callable[[int], object], n: int, repeats: int) -> float:
    """Best items/s over ``repeats`` passes of fn(0..n-1)."""
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(n):
            fn(i)
        best = max(best, n / (time.perf_counter() - start))
    return best


def measure(sizes: Sequence[int], n: int, repeats: int) -> dict[str, dict[str, float]]:
    detector = ShapesDetector()
    scenes = [sample_scene(item_rng(0, i, 0)) for i in range(n)]
    results = {}
    for size in sizes:
        renderer = ShapesRenderer(size)
        data = ShapesDataset(n, size, seed=0)
        images = [renderer.render(s) for s in scenes]
        results[str(size)] = {
            "render_images_per_s": round(
                best_rate(lambda i, r=renderer: r.render(scenes[i]), n, repeats), 1
            ),
            "item_per_s": round(best_rate(data.__getitem__, n, repeats), 1),
            "detect_images_per_s": round(
                best_rate(lambda i, im=images: detector.detect(im[i]), n, repeats), 1
            ),
        }
        print(size, results[str(size)], flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "shapes_render.json"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = measure(SIZES, args.images, args.repeats)
    atomic_write_json(
        args.out,
        {
            "benchmark": "shapes_render",
            "what": "images/s on one core: render (4x supersampled), dataset item, detector",
            "images": args.images,
            "repeats": args.repeats,
            "sizes": results,
            "load_average": os.getloadavg(),
            "git": git_hash(),  # the commit measured ('+dirty': with uncommitted changes)
            "device": device_info(),
            "versions": package_versions(),
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
