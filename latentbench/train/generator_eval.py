"""The evaluation callback of generator training.

Every ``eval_every`` steps it samples a fixed set of conditions (:class:`EvalSet`) with fixed
noise (seeded by the sample index) from the EMA generator, decodes them with the space, and logs
into metrics.jsonl:
- ``fd_<extractor>``: Frechet distance between the samples and the data in the extractor's
  features (FID with the Inception extractor), with the extractor's ``variant``;
- t2i: ``geneval`` (overall) and ``geneval/<task>`` on a Shapes GenEval prompt suite
  (:mod:`latentbench.train.generator_scores`);
- edit: ``edit/success`` (the edit is visible, by the Shapes detector) and fidelity outside the
  edit mask (``edit/psnr_outside``, ``edit/l1_outside``), from :mod:`latentbench.metrics.editing`;
- a sample grid ``images/step_<step>.png`` of the first samples.
Sampling is sharded over processes (sample i on rank i % world); feature statistics and scores
are gathered across ranks (``FeatureStats.merge``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from latentbench.gen.flow import FlowConfig
from latentbench.gen.generator import TaskKind
from latentbench.gen.sampling import Conditions, decode, generate
from latentbench.spaces.base import LatentSpace
from latentbench.train.generator_scores import (
    geneval_ceiling,
    shapes_geneval_rows,
)
from latentbench.train.loop import TrainLoop, eval_mode


@dataclass
class EvalSet(Conditions):
    """The fixed conditions sampled at every evaluation (sample i: noise seeded by i), with what
    scores them."""

    entries: list[dict[str, Any]] = field(default_factory=list)  # GenEval metadata (t2i)
    edits: list[Any] = field(default_factory=list)  # Shapes Edit records (editing)


def save_grid(images: Tensor, path: Any, nrow: int = 8) -> None:
    """(N, 3, S, S) in [-1, 1] -> one PNG grid."""
    from PIL import Image
    from torchvision.utils import make_grid

    grid = make_grid((images.clamp(-1, 1) + 1) / 2, nrow=nrow, padding=2, pad_value=1.0)
    arr = (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(arr).save(path)


# -- the evaluation callback ------------------------------------------------------------------
class GenerationEval:
    """Sample the eval set with the EMA model, decode, score, log (see the module docstring)."""

    def __init__(
        self,
        *,
        space: LatentSpace,
        kind: TaskKind,
        eval_set: EvalSet,
        flow: FlowConfig,
        seed: int,
        extractor: Any | None,
        reference: Any | None,
        extractor_name: str,
        batch_size: int = 32,
        grid_size: int = 16,
    ) -> None:
        self.space, self.kind, self.eval_set, self.flow = space, TaskKind(kind), eval_set, flow
        self.seed, self.extractor, self.reference = seed, extractor, reference
        self.extractor_name, self.batch_size, self.grid_size = extractor_name, batch_size, grid_size
        self.history: list[dict[str, float]] = []
        self._detector: Any = None  # built on first use
        self._scorer: Any = None

    def __call__(self, loop: TrainLoop, step: int) -> None:
        metrics = self.evaluate(loop, step)
        self.history.append({"step": step, **metrics})

    def evaluate(self, loop: TrainLoop, step: int, log: bool = True) -> dict[str, float]:
        """The metrics of the EMA model at ``step``; ``log``: also into metrics.jsonl and the
        image grid (the main process)."""
        from accelerate.utils import gather_object

        from latentbench.metrics.uncertainty import log_rows

        rank, world = loop.accelerator.process_index, loop.accelerator.num_processes
        mine = list(range(rank, len(self.eval_set), world))
        model = loop.eval_model
        with eval_mode(model), loop.accelerator.autocast():
            z = generate(
                model,
                self.eval_set,
                mine,
                seed=self.seed,
                flow=self.flow,
                device=loop.device,
                batch_size=self.batch_size,
            )
        images = decode(self.space, model, z, self.batch_size)  # (n_mine, 3, S, S)
        parts: dict[str, Any] = {"scores": self._score(images, mine)}
        if self.extractor is not None:
            parts["stats"] = self._feature_stats(images)
        parts["grid"] = [(i, im) for i, im in zip(mine, images) if i < self.grid_size]
        gathered = gather_object([parts]) if world > 1 else [parts]
        metrics: dict[str, float] = {}
        if loop.is_main:
            metrics = self._combine(gathered)
        if loop.is_main and log:
            variant = getattr(self.extractor, "variant", self.extractor_name)
            for name, (value, interval) in log_rows(metrics).items():
                extra: dict[str, Any] = {"num_samples": len(self.eval_set), **interval}
                if name.startswith("fd_"):
                    extra["extractor"] = variant
                loop.run.log(step, name, value, **extra)
            grid = sorted((g for p in gathered for g in p["grid"]), key=lambda x: x[0])
            if grid:
                path = loop.run.file("images", f"step_{step:08d}.png")
                save_grid(torch.stack([g[1] for g in grid]), path)
        loop.accelerator.wait_for_everyone()
        return metrics

    # -- pieces ----------------------------------------------------------------------------------
    def _feature_stats(self, images: Tensor) -> Any:
        """This process's feature statistics, in groups for the FD interval (None when it
        sampled nothing)."""
        from latentbench.metrics.fid import GroupedFeatureStats

        stats = None
        with torch.inference_mode():
            for s in range(0, len(images), self.batch_size):
                feats = self.extractor(images[s : s + self.batch_size].to(self.extractor.device))
                stats = stats or GroupedFeatureStats(feats.shape[1])
                stats.update(feats)
        return stats

    def _score(self, images: Tensor, indices: list[int]) -> list[Any]:
        """Per-sample scores: GenEval rows (tag, correct, prompt index) or edit results."""
        kind = self.kind
        if kind is TaskKind.T2I and self.eval_set.entries:
            return shapes_geneval_rows(self.detector, images, self.eval_set.entries, indices)
        if kind is TaskKind.EDIT and self.eval_set.edits:
            from latentbench.metrics.editing import EditScorer

            self._scorer = self._scorer or EditScorer()
            edits = self.eval_set.edits
            return [self._scorer.score(im, edits[i]) for i, im in zip(indices, images)]
        return []

    def ceiling(self) -> dict[str, float]:
        """:func:`geneval_ceiling` of the eval prompts (t2i on Shapes; else empty)."""
        if self.kind is not TaskKind.T2I or not self.eval_set.entries:
            return {}
        entries = self.eval_set.entries
        return geneval_ceiling(self.space, entries, self.seed, self.batch_size, self.detector)

    @property
    def detector(self) -> Any:
        """The analytic Shapes detector, built on first use (it renders its shape templates)."""
        if self._detector is None:
            from latentbench.metrics.shapes_detector import ShapesDetector

            self._detector = ShapesDetector()
        return self._detector

    def _combine(self, gathered: list[dict[str, Any]]) -> dict[str, Any]:
        """Scores of all processes -> metrics with their 95% intervals
        (:mod:`latentbench.metrics.uncertainty`) and ``warnings`` (an FD on few samples)."""
        from latentbench.metrics.fid import fd_metrics
        from latentbench.metrics.uncertainty import geneval_keys, success_interval

        metrics: dict[str, Any] = {}
        rows = [r for p in gathered for r in p["scores"]]
        if self.kind is TaskKind.T2I and rows:
            metrics.update(geneval_keys(rows, "geneval"))
        if self.kind is TaskKind.EDIT and rows:
            from latentbench.metrics.editing import summarise_edits

            edit = summarise_edits(rows)
            for key in ("success", "psnr_outside", "l1_outside", "lpips_outside"):
                if edit.get(key) is not None:
                    metrics[f"edit/{key}"] = float(edit[key])
            success = success_interval([r.success for r in rows])
            metrics.update(success.to_keys("edit/success") if success else {})
        if self.extractor is not None and self.reference is not None:
            parts = [p["stats"] for p in gathered if p.get("stats") is not None]
            stats = parts[0]
            for other in parts[1:]:
                stats.merge(other)
            fd, warnings = fd_metrics(f"fd_{self.extractor_name}", self.reference, stats)
            metrics.update(fd)
            if warnings:
                metrics["warnings"] = warnings
        return metrics
