"""Shapes GenEval scores of generated images during training: rows judged by the analytic Shapes
detector under GenEval's rules (:data:`latentbench.metrics.shapes_judge.ANALYTIC_RULES`), their
summary, and the ceiling the space's own decoder allows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from latentbench.spaces.base import LatentSpace


def shapes_geneval_rows(
    detector: Any, images: Tensor, entries: Sequence[dict[str, Any]], indices: Sequence[int]
) -> list[tuple[str, bool, int]]:
    """GenEval rows (tag, correct, prompt index) of ``images[k]`` for ``entries[indices[k]]``,
    judged by the analytic Shapes ``detector`` under GenEval's rules."""
    from latentbench.geneval import evaluate_entry
    from latentbench.metrics.shapes_judge import ANALYTIC_RULES

    rows = []
    for i, image in zip(indices, images):
        ok, _ = evaluate_entry(detector.detect(image).detections(), entries[i], ANALYTIC_RULES)
        rows.append((entries[i]["tag"], bool(ok), i))
    return rows


def geneval_metrics(rows: Sequence[tuple[str, bool, int]], prefix: str) -> dict[str, float]:
    """``prefix`` (the overall score) and ``prefix/<task>`` of GenEval rows."""
    from latentbench.geneval import summarise

    summary = summarise(rows)
    return {prefix: summary.overall, **{f"{prefix}/{t}": v.score for t, v in summary.tasks.items()}}


def geneval_ceiling(
    space: LatentSpace,
    entries: Sequence[dict[str, Any]],
    seed: int,
    batch_size: int = 32,
    detector: Any | None = None,
) -> dict[str, float]:
    """Shapes GenEval of the space's own reconstruction of each prompt's ground-truth scene.

    The most a generator in this space can score with the analytic detector: a lossless space
    gets 1.0; a lossy decoder that softens edges or shifts paint loses objects before any
    generator is trained. The scenes are the oracle's (``latentbench data shapes --geneval``
    renders the same ones). Keys ``geneval_ceiling`` and ``geneval_ceiling/<task>``.
    """
    from latentbench.data.shapes import ShapesRenderer, oracle_rng, oracle_scene
    from latentbench.metrics.shapes_detector import ShapesDetector

    renderer, detector = ShapesRenderer(space.spec.image_size), detector or ShapesDetector()
    rows = []
    for s in range(0, len(entries), batch_size):
        indices = range(s, min(s + batch_size, len(entries)))
        truth = torch.stack(
            [
                renderer.render_tensor(oracle_scene(entries[i], oracle_rng(seed, i, 0)))
                for i in indices
            ]
        )  # (b, 3, S, S)
        with torch.inference_mode():
            recon = space.decode(space.encode(truth.to(space.device))).float().cpu()
        rows += shapes_geneval_rows(detector, recon, entries, indices)
    return geneval_metrics(rows, "geneval_ceiling")
