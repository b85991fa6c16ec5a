"""Writing Shapes folders: ``latentbench data shapes`` (and its ``--geneval`` ground truth)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from latentbench.data.shapes.captions import caption
from latentbench.data.shapes.datasets import (
    CAPTION_STREAM,
    ShapesDataset,
    ShapesEditsDataset,
    item_rng,
)
from latentbench.data.shapes.edits import edit_mask
from latentbench.data.shapes.render import ShapesRenderer
from latentbench.data.shapes.scene import SceneConfig
from latentbench.data.shapes.suites import geneval_suite, oracle_rng, oracle_scene
from latentbench.data.shapes.vocabulary import Shape
from latentbench.errors import UserError
from latentbench.geneval import sample_path, write_metadata, write_prompt


@dataclass
class WriteSummary:
    out: Path
    images: int = 0
    edits: int = 0
    prompts: int = 0


def _save_png(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG")


def write_dataset(
    out: Path,
    *,
    n: int,
    image_size: int,
    seed: int = 0,
    n_edits: int | None = None,
    prompts_per_task: int = 100,
    progress: Callable[[int], None] | None = None,
) -> WriteSummary:
    """Write ``n`` images + captions.jsonl, ``n_edits`` (default n) edits + edits.jsonl, and the
    GenEval prompt suite (evaluation_metadata.jsonl) into ``out`` (which must be empty or new;
    the caller stages it so nothing half-written is left). ``progress(k)`` is called per file."""
    n_edits = n if n_edits is None else n_edits
    if n_edits < 0:
        raise UserError(f"number of edits must be >= 0, got {n_edits}")
    data = ShapesDataset(n, image_size, seed)
    summary = WriteSummary(out)
    lines = []
    for i in range(n):
        scene = data.scene(i)
        key = f"images/{i:06d}.png"
        _save_png(data.renderer.render(scene), out / key)
        text = caption(scene, item_rng(seed, i, CAPTION_STREAM))
        lines.append(
            {
                "image": key,
                "caption": text,
                "label": list(Shape).index(scene.objects[0].shape),
                "scene": scene.to_dict(),
            }
        )
        summary.images += 1
        if progress:
            progress(1)
    (out / "captions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    rows = []
    if n_edits:
        edits = ShapesEditsDataset(n_edits, image_size, seed)
        for i in range(n_edits):
            edit = edits.edit(i)
            src, tgt = edits.renderer.render(edit.source), edits.renderer.render(edit.target)
            stem = f"edits/{i:06d}"
            _save_png(src, out / f"{stem}_source.png")
            _save_png(tgt, out / f"{stem}_target.png")
            _save_png((edit_mask(src, tgt) * 255).astype(np.uint8), out / f"{stem}_mask.png")
            rows.append(
                {
                    "source": f"{stem}_source.png",
                    "target": f"{stem}_target.png",
                    "mask": f"{stem}_mask.png",
                    **edit.to_dict(),
                }
            )
            summary.edits += 1
            if progress:
                progress(1)
    (out / "edits.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    suite = geneval_suite(prompts_per_task, seed)
    write_metadata(out / "evaluation_metadata.jsonl", suite)
    summary.prompts = len(suite)
    return summary


def write_oracle_layout(
    out: str | Path,
    *,
    prompts_per_task: int = 100,
    samples_per_prompt: int = 4,
    image_size: int = 64,
    seed: int = 0,
    entries: Sequence[dict[str, Any]] | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write ground-truth images of a prompt suite (default: :func:`geneval_suite`) in GenEval's
    layout into ``out``, plus ``out/evaluation_metadata.jsonl``: the "oracle generator", which
    scores ~1.0 on every task. Returns the number of images."""
    if samples_per_prompt < 1:
        raise UserError(f"samples per prompt must be >= 1, got {samples_per_prompt}")
    entries = list(entries) if entries is not None else geneval_suite(prompts_per_task, seed)
    renderer, config = ShapesRenderer(image_size), SceneConfig()
    out = Path(out)
    for index, entry in enumerate(entries):
        write_prompt(out, index, entry)
        for k in range(samples_per_prompt):
            scene = oracle_scene(entry, oracle_rng(seed, index, k), config)
            Image.fromarray(renderer.render(scene)).save(sample_path(out, index, k))
            if progress:
                progress(1)
    write_metadata(out / "evaluation_metadata.jsonl", entries)
    return len(entries) * samples_per_prompt
