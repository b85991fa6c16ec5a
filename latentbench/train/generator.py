"""Generator training as a :class:`~latentbench.train.loop.TrainTask`, and its evaluation callback.

The task trains a :class:`~latentbench.gen.dit.DiT` with rectified flow on cached, normalised
latents. Randomness that the loss draws (noise, time, condition dropout) comes from a generator
seeded by ``(seed, step, global sample index)``: the global batch a step sees is fixed by the
loop's :class:`StepBatchSampler`, so a run on N processes draws exactly the numbers a run on one
process draws, and the result matches up to float reduction order.

The evaluation callback samples a fixed set of conditions with fixed noise (seeded by the sample
index) from the EMA model, decodes them with the space, and logs into metrics.jsonl:
- ``fd_<extractor>``: Frechet distance between the samples and the data in the extractor's
  features (FID with the Inception extractor), with the extractor's ``variant``;
- t2i: ``geneval`` (overall) and ``geneval/<task>`` on a Shapes GenEval prompt suite, scored by
  the analytic Shapes detector with the rules of :mod:`latentbench.metrics.shapes_judge`;
- edit: ``edit/success`` (the edit is visible, by the Shapes detector) and fidelity outside the
  edit mask (``edit/psnr_outside``, ``edit/l1_outside``), from :mod:`latentbench.metrics.editing`;
- a sample grid ``images/step_<step>.png`` of the first samples.
Sampling is sharded over processes (sample i on rank i % world); feature statistics and scores
are gathered across ranks (``FeatureStats.merge``).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from latentbench.gen.dit import Condition, CondKind, DiT
from latentbench.gen.flow import FlowConfig, logit_normal_time, sample, velocity_target
from latentbench.gen.text import FrozenTextEncoder, WordTokenizer
from latentbench.spaces.base import LatentSpace, LatentStats
from latentbench.train.loop import StepContext, TrainLoop, eval_mode


class TaskKind(str, enum.Enum):
    CLASS = "class"
    T2I = "t2i"
    EDIT = "edit"


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers (order matters), stable across processes and runs."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = (h ^ (int(p) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


@dataclass
class LatentBatch:
    latents: Tensor  # (B, C, h, w) raw (un-normalised) latents, float32
    sources: Tensor | None  # (B, C, h, w) raw source latents (editing)
    labels: Tensor  # (B,) long
    captions: list[str]


def collate_latents(items: Sequence[dict[str, Any]]) -> LatentBatch:
    has_source = items[0].get("source") is not None
    return LatentBatch(
        latents=torch.stack([it["latent"] for it in items]),
        sources=torch.stack([it["source"] for it in items]) if has_source else None,
        labels=torch.tensor([int(it["label"]) for it in items], dtype=torch.long),
        captions=[str(it["caption"]) for it in items],
    )


@dataclass
class Draws:
    noise: Tensor  # (B, C, h, w)
    normal: Tensor  # (B,) standard normal, mapped to t
    drop: Tensor  # (B,) bool: train on the null condition


def per_sample_draws(
    shape: tuple[int, ...],
    seed: int,
    step: int,
    positions: Sequence[int],
    p_drop: float,
    device: torch.device | None = None,
) -> Draws:
    """Noise, time and dropout of each sample from its own generator (seed, step, position),
    created on ``device`` (CPU and CUDA generators draw different numbers; every process of a
    run uses the same kind). ``drop`` stays on the CPU."""
    device = torch.device(device or "cpu")
    noise, normal, drop = [], [], []
    for pos in positions:
        g = torch.Generator(device=device).manual_seed(mix_seed(seed, step, pos))
        noise.append(torch.randn(shape, generator=g, device=device))
        normal.append(torch.randn((), generator=g, device=device))
        drop.append(torch.rand((), generator=g, device=device) < p_drop)
    return Draws(torch.stack(noise), torch.stack(normal), torch.stack(drop).cpu())


class GeneratorTask:
    """Rectified-flow training of ``model`` on normalised latents (the loop's TrainTask)."""

    def __init__(
        self,
        model: DiT,
        stats: LatentStats,
        flow: FlowConfig,
        shift: float,
        task: TaskKind,
        text: WordTokenizer | FrozenTextEncoder | None = None,
    ) -> None:
        self.model, self.flow, self.shift, self.kind, self.text = model, flow, shift, task, text
        self.mean = torch.tensor(stats.mean, dtype=torch.float32)[None, :, None, None]
        self.std = torch.tensor(stats.std, dtype=torch.float32)[None, :, None, None]
        if task is not TaskKind.CLASS and text is None:
            raise ValueError(f"task {task.value} needs a text encoder")

    # -- normalisation (the space's per-channel stats) -------------------------------------------
    def normalize(self, z: Tensor) -> Tensor:
        return (z - self.mean.to(z.device)) / self.std.to(z.device)

    def denormalize(self, z: Tensor) -> Tensor:
        return z * self.std.to(z.device) + self.mean.to(z.device)

    # -- conditions ------------------------------------------------------------------------------
    def condition(
        self,
        labels: Tensor | None,
        captions: list[str] | None,
        sources: Tensor | None,
        drop: Tensor,
        device: torch.device,
    ) -> Condition:
        """Condition of a batch; where ``drop`` (B,) is True, the null condition (label
        ``num_classes`` or the empty caption). Sources (normalised) are never dropped."""
        spec = self.model.cond_spec
        if spec.kind is CondKind.CLASS:
            assert labels is not None
            y = torch.where(drop, torch.full_like(labels, spec.num_classes), labels)
            return Condition(labels=y.to(device))
        assert captions is not None and self.text is not None
        caps = ["" if d else c for c, d in zip(captions, drop.tolist())]
        tb = self.text(caps, device)
        return Condition(
            tokens=tb.ids,
            features=tb.features,
            mask=tb.mask,
            source=sources.to(device) if sources is not None else None,
        )

    # -- the loss --------------------------------------------------------------------------------
    def loss(
        self, model: torch.nn.Module, batch: LatentBatch, ctx: StepContext
    ) -> dict[str, Tensor]:
        x0 = self.normalize(batch.latents.to(ctx.device))  # (B, C, h, w)
        b = x0.shape[0]
        positions = [ctx.rank + j * ctx.world_size for j in range(b)]  # in the global batch
        d = per_sample_draws(
            tuple(x0.shape[1:]), ctx.seed, ctx.step, positions, self.flow.cond_dropout, ctx.device
        )
        eps = d.noise  # (B, C, h, w)
        t = logit_normal_time(d.normal, self.flow.logit_mean, self.flow.logit_std, self.shift)
        xt = x0 + t[:, None, None, None] * (eps - x0)
        src = self.normalize(batch.sources.to(ctx.device)) if batch.sources is not None else None
        cond = self.condition(batch.labels, batch.captions, src, d.drop, ctx.device)
        v = model(xt, t, cond)  # (B, C, h, w)
        mse = F.mse_loss(v.float(), velocity_target(x0, eps).float())
        return {"loss": mse, "mse": mse}


# -- sampling ---------------------------------------------------------------------------------
@dataclass
class EvalSet:
    """The fixed conditions sampled at every evaluation (sample i: noise seeded by i)."""

    labels: Tensor | None = None  # (N,) long
    captions: list[str] | None = None
    sources: Tensor | None = None  # (N, C, h, w) raw source latents
    entries: list[dict[str, Any]] = field(default_factory=list)  # GenEval metadata (t2i)
    edits: list[Any] = field(default_factory=list)  # Shapes Edit records (editing)
    num: int = 0

    def __len__(self) -> int:
        return self.num


@torch.no_grad()
def generate(
    model: DiT,
    task: GeneratorTask,
    eval_set: EvalSet,
    indices: Sequence[int],
    *,
    seed: int,
    flow: FlowConfig,
    device: torch.device,
    batch_size: int = 32,
) -> Tensor:
    """Normalised latents (len(indices), C, h, w) for the given eval-set samples.

    Noise of sample i comes from a generator seeded by (seed, i), so a sample does not depend
    on the batch or process it lands in. Guidance ``flow.guidance`` over all channels, with the
    conditional and null batches in one forward pass.
    """
    shape = (model.channels, model.latent_size, model.latent_size)
    out = []
    sample_shift = flow.sample_shift or task.shift
    guidance = flow.guidance
    for start in range(0, len(indices), batch_size):
        idx = list(indices[start : start + batch_size])
        gens = [torch.Generator().manual_seed(mix_seed(seed, i)) for i in idx]
        noise = torch.stack([torch.randn(shape, generator=g) for g in gens]).to(device)
        labels = eval_set.labels[idx] if eval_set.labels is not None else None
        captions = [eval_set.captions[i] for i in idx] if eval_set.captions else None
        src = eval_set.sources[idx].to(device) if eval_set.sources is not None else None
        src = task.normalize(src) if src is not None else None
        keep = torch.zeros(len(idx), dtype=torch.bool)
        cond = task.condition(labels, captions, src, keep, device)
        if guidance != 1.0:
            both = cond.cat(task.condition(labels, captions, src, ~keep, device))

            def velocity(x: Tensor, t: Tensor, both: Condition = both) -> Tensor:
                v_c, v_u = model(torch.cat([x, x]), torch.cat([t, t]), both).chunk(2)
                return v_u + guidance * (v_c - v_u)
        else:

            def velocity(x: Tensor, t: Tensor, cond: Condition = cond) -> Tensor:
                return model(x, t, cond)

        out.append(sample(velocity, noise, flow.sample_steps, sample_shift, flow.sampler).float())
    return torch.cat(out) if out else torch.empty(0, *shape)


def decode(space: LatentSpace, task: GeneratorTask, z: Tensor, batch_size: int = 32) -> Tensor:
    """Normalised latents -> images (N, 3, S, S) in [-1, 1] on CPU."""
    out = []
    with torch.inference_mode():
        for s in range(0, len(z), batch_size):
            zz = task.denormalize(z[s : s + batch_size].to(space.device, torch.float32))
            out.append(space.decode(zz).float().cpu())
    size = space.spec.image_size
    return torch.cat(out) if out else torch.empty(0, 3, size, size)


def save_grid(images: Tensor, path: Any, nrow: int = 8) -> None:
    """(N, 3, S, S) in [-1, 1] -> one PNG grid."""
    from PIL import Image
    from torchvision.utils import make_grid

    grid = make_grid((images.clamp(-1, 1) + 1) / 2, nrow=nrow, padding=2, pad_value=1.0)
    arr = (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(arr).save(path)


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


# -- the evaluation callback ------------------------------------------------------------------
class GenerationEval:
    """Sample the eval set with the EMA model, decode, score, log (see the module docstring)."""

    def __init__(
        self,
        *,
        space: LatentSpace,
        task: GeneratorTask,
        eval_set: EvalSet,
        flow: FlowConfig,
        seed: int,
        extractor: Any | None,
        reference: Any | None,
        extractor_name: str,
        batch_size: int = 32,
        grid_size: int = 16,
    ) -> None:
        self.space, self.task, self.eval_set, self.flow = space, task, eval_set, flow
        self.seed, self.extractor, self.reference = seed, extractor, reference
        self.extractor_name, self.batch_size, self.grid_size = extractor_name, batch_size, grid_size
        self.history: list[dict[str, float]] = []
        self._detector: Any = None  # built on first use
        self._scorer: Any = None

    def __call__(self, loop: TrainLoop, step: int) -> None:
        metrics = self.evaluate(loop, step)
        self.history.append({"step": step, **metrics})

    def evaluate(self, loop: TrainLoop, step: int) -> dict[str, float]:
        from accelerate.utils import gather_object

        from latentbench.metrics.uncertainty import log_rows

        rank, world = loop.accelerator.process_index, loop.accelerator.num_processes
        mine = list(range(rank, len(self.eval_set), world))
        model = loop.eval_model
        with eval_mode(model), loop.accelerator.autocast():
            z = generate(
                model,
                self.task,
                self.eval_set,
                mine,
                seed=self.seed,
                flow=self.flow,
                device=loop.device,
                batch_size=self.batch_size,
            )
        images = decode(self.space, self.task, z, self.batch_size)  # (n_mine, 3, S, S)
        parts: dict[str, Any] = {"scores": self._score(images, mine)}
        if self.extractor is not None:
            parts["stats"] = self._feature_stats(images)
        parts["grid"] = [(i, im) for i, im in zip(mine, images) if i < self.grid_size]
        gathered = gather_object([parts]) if world > 1 else [parts]
        metrics: dict[str, float] = {}
        if loop.is_main:
            metrics = self._combine(gathered)
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
        kind = self.task.kind
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
        if self.task.kind is not TaskKind.T2I or not self.eval_set.entries:
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
        if self.task.kind is TaskKind.T2I and rows:
            metrics.update(geneval_keys(rows, "geneval"))
        if self.task.kind is TaskKind.EDIT and rows:
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
