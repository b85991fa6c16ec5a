"""``latentbench eval-edit``: editing metrics for a trained editing generator or for edited images.

Two kinds of edits, one command:

- Shapes edits (the built-in ``shapes-edits`` set, or an ``edits.jsonl`` written by ``latentbench
  data shapes``, whose rows carry ``source_scene`` / ``target_scene``): success per GEdit-Bench
  category by the analytic detector, and preservation outside the edit mask (L1, PSNR, and LPIPS
  when enabled), from :mod:`latentbench.metrics.editing`.
- natural-image edits (an edits ``.jsonl``, one JSON object a line)::

      {"source": "src.png", "instruction": "make the sky pink",
       "target": "tgt.png",            # optional: ground-truth edit (MagicBrush)
       "mask": "mask.png",              # optional: white = region the edit may change (PIE-Bench)
       "target_caption": "...",         # optional: CLIP-T (aliases: output_caption, caption)
       "source_caption": "...",         # optional: the clip-direction judge
       "output": "edited.png"}          # optional: the edited image (scoring outside images)

  Paths are relative to the ``.jsonl``. Metrics: :mod:`latentbench.metrics.edit_natural`.

Edited images come from a trained ``edit`` generator (``RUN_DIR``; sources resized to its image
size, noise of edit i seeded by ``(seed, i)``) or from elsewhere: ``--images DIR`` holding
``<i:05d>.png`` for row i (or each row's ``output``). Rows that lack a source or instruction,
or whose images cannot be read, are skipped and counted; only a missing file, or nothing to
score, is a UserError.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from latentbench.config import (
    Device,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveInt,
    SampleSteps,
    config,
    to_dict,
)
from latentbench.data import DEFAULT_MAX_PIXELS, MaxPixels
from latentbench.data.decode import UnreadableImage, open_rgb
from latentbench.errors import UserError
from latentbench.files import read_nonempty_lines
from latentbench.metrics.uncertainty import add_success_interval
from latentbench.runs import (
    OutputKind,
    claim_output,
    existing_paths,
    mark_output,
    staged_dir,
    write_eval_results,
)

Progress = Callable[[int], None]
CAPTION_KEYS = ("target_caption", "output_caption", "caption")


class EditKind(str, Enum):
    SHAPES = "shapes"
    NATURAL = "natural"


@config
class EvalEditConfig:
    """Settings of one eval-edit run."""

    edits: str | None = None  # edits .jsonl; None: the built-in Shapes edits
    num_edits: PositiveInt = 140  # built-in Shapes edits (20 per category)
    limit: PositiveInt | None = None  # first N rows of --edits
    seed: NonNegativeInt = 1000  # Shapes edit set and sampling noise (not the training seed)
    clip_model: str | None = None  # natural: CLIP-I / CLIP-T (default MagicBrush's ViT-B/32)
    dino_model: str | None = None  # natural: DINO (default facebook/dino-vits16)
    lpips: str = "alex"  # alex | vgg | none
    lpips_weights: str | None = None
    lpips_random_backbone: bool = False  # offline demos and tests only (named in the variant)
    judge: str | None = None  # optional reward model (EDIT_JUDGES name); off by default
    checkpoint: str | None = None
    sample_steps: SampleSteps | None = None
    guidance: NonNegativeFloat | None = None
    batch_size: PositiveInt = 16
    device: Device = None
    max_pixels: MaxPixels = DEFAULT_MAX_PIXELS  # larger images are skipped, not decoded


@dataclass
class Skipped:
    """Rows that could not be scored: how many, and the first reasons."""

    rows: int = 0
    reasons: list[str] = field(default_factory=list)

    def add(self, reason: str) -> None:
        self.rows += 1
        if len(self.reasons) < 50:
            self.reasons.append(reason)


# -- reading ------------------------------------------------------------------------------------
def read_edits(path: str | Path, skipped: Skipped) -> list[tuple[int, dict[str, Any]]]:
    """(row index, row) of each usable line; others skipped and counted."""
    path = Path(path)
    lines = read_nonempty_lines(path, "edits")
    rows = []
    for i, line in enumerate(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            skipped.add(f"{path}:{i + 1}: not valid JSON ({e.msg})")
            continue
        if not isinstance(row, dict):
            skipped.add(f"{path}:{i + 1}: not a JSON object")
            continue
        missing = [k for k in ("instruction",) if not row.get(k)]
        if not row.get("source") and "source_scene" not in row:
            missing.insert(0, "source")
        if missing:
            skipped.add(f"{path}:{i + 1}: no {' or '.join(missing)}")
            continue
        rows.append((i, row))
    if not rows:
        raise UserError(f"{path}: no usable edit ({skipped.rows} row(s) skipped)")
    return rows


def edit_kind(rows: list[tuple[int, dict[str, Any]]]) -> EditKind:
    return EditKind.SHAPES if all("source_scene" in r for _, r in rows) else EditKind.NATURAL


def _load(edits: _Edits, value: Any) -> Image.Image:
    return open_rgb(edits.base / str(value), edits.max_pixels)


def output_path(images: Path, index: int, row: dict[str, Any], base: Path) -> Path:
    if row.get("output"):
        return base / str(row["output"])
    return images / f"{index:05d}.png"


# -- generation ---------------------------------------------------------------------------------
def _to_tensor(images: list[Image.Image], size: int) -> Any:
    """PIL images -> (N, 3, size, size) float in [-1, 1] (bicubic resize to the square)."""
    import torch

    arr = np.stack(
        [
            np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.BICUBIC))
            for im in images
        ]
    )  # (N, S, S, 3) uint8
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 127.5 - 1


def generate_edits(
    generator: Any,
    sources: list[Image.Image],
    instructions: list[str],
    cfg: EvalEditConfig,
    progress: Progress | None = None,
) -> list[Image.Image]:
    """Edited images from a trained editing generator (noise of edit i: (seed, i))."""
    from latentbench.bench.generator_runs import SamplingOptions
    from latentbench.metrics.clip import to_pil

    opts = SamplingOptions(steps=cfg.sample_steps, guidance=cfg.guidance, batch_size=cfg.batch_size)
    out: list[Image.Image] = []
    step = max(1, cfg.batch_size)
    for s in range(0, len(sources), step):
        src = _to_tensor(sources[s : s + step], generator.image_size)
        images = generator.edit(
            src,
            instructions[s : s + step],
            seed=cfg.seed,
            options=opts,
            noise_indices=list(range(s, s + len(src))),
        )
        out.extend(to_pil(images))
        if progress:
            progress(len(src))
    return out


# -- scorers ------------------------------------------------------------------------------------
def build_lpips(cfg: EvalEditConfig) -> Any | None:
    if cfg.lpips.lower() == "none":
        return None
    from latentbench.metrics.pixel import LPIPSMetric

    return LPIPSMetric(
        cfg.lpips, cfg.lpips_weights, allow_random_backbone=cfg.lpips_random_backbone
    ).to(cfg.device or "cpu")


def score_shapes(
    outputs: list[Image.Image | None],
    edits: list[Any],
    keys: list[int],
    cfg: EvalEditConfig,
    skipped: Skipped,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from latentbench.metrics.editing import EditScorer, summarise_edits

    lpips = build_lpips(cfg)
    scorer = EditScorer(lpips=lpips)
    results, rows = [], []
    for key, out, edit in zip(keys, outputs, edits):
        if out is None:
            continue
        arr = np.asarray(out)
        if arr.shape[0] != arr.shape[1]:
            skipped.add(f"edit {key}: Shapes images are square, got {arr.shape[1]}x{arr.shape[0]}")
            continue
        r = scorer.score(arr, edit)
        results.append(r)
        rows.append({"index": key, "instruction": edit.instruction, **r.to_dict()})
    if not results:
        raise UserError(f"no edit could be scored ({skipped.rows} skipped)")
    summary = summarise_edits(results)
    add_success_interval(summary, [r.success for r in results])
    for category, block in summary["categories"].items():
        add_success_interval(block, [r.success for r in results if r.category == category])
    variant = {
        "success": "analytic Shapes detector (metrics.editing.check_edit)",
        "mask": "pixels where source and target renders differ, grown by 1 px",
        "outside_mask": "L1 / PSNR (data range 1, capped 100 dB) over pixels outside the mask; "
        "LPIPS on the output with the mask region pasted from the source",
        "lpips": getattr(lpips, "variant", None),
    }
    return {"summary": summary, "variant": variant}, rows


def score_natural(
    samples: list[Any], keys: list[int], cfg: EvalEditConfig
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from latentbench.metrics.clip import MAGICBRUSH_CLIP, ClipModel
    from latentbench.metrics.edit_natural import (
        DINO_MODEL,
        DinoModel,
        NaturalEditScorer,
        build_judge,
        summarise_natural,
    )

    clip = ClipModel(cfg.clip_model or MAGICBRUSH_CLIP, device=cfg.device)
    dino = DinoModel(cfg.dino_model or DINO_MODEL, device=cfg.device)
    judge = None
    if cfg.judge:  # off by default; the built-in clip-direction judge reuses the CLIP model
        shared = {"clip": clip} if cfg.judge == "clip-direction" else {}
        judge = build_judge(cfg.judge, **shared)
    scorer = NaturalEditScorer(clip, dino, build_lpips(cfg), judge)
    rows = scorer.score(samples)
    rows = [{"index": k, "instruction": s.instruction, **r} for k, s, r in zip(keys, samples, rows)]
    return {"summary": summarise_natural(rows), "variant": scorer.variant}, rows


# -- the runner ---------------------------------------------------------------------------------
@dataclass
class EvalEditResult:
    results: dict[str, Any]
    path: Path


@dataclass
class _Edits:
    """The readable edits: row keys, sources, instructions, and what scoring needs."""

    kind: EditKind
    base: Path  # folder the .jsonl paths are relative to
    name: str
    rows: dict[int, dict[str, Any]]
    max_pixels: int | None = DEFAULT_MAX_PIXELS  # images read from files larger are skipped
    keys: list[int] = field(default_factory=list)
    sources: list[Image.Image | None] = field(default_factory=list)
    instructions: list[str] = field(default_factory=list)
    payload: list[Any] = field(default_factory=list)  # Shapes Edit records, or the rows


def _edits_name(cfg: EvalEditConfig) -> str:
    """The edit set's name: the file's stem, or the built-in Shapes edits' count and seed."""
    if cfg.edits:
        return Path(cfg.edits).stem
    return f"shapes-edits-{cfg.limit or cfg.num_edits}-seed{cfg.seed}"


def _edit_rows(cfg: EvalEditConfig, generator: Any, skipped: Skipped) -> _Edits:
    """The rows of ``--edits``, or the built-in Shapes edits at the generator's size."""
    if cfg.edits:
        rows = read_edits(cfg.edits, skipped)[: cfg.limit or None]
        return _Edits(
            edit_kind(rows), Path(cfg.edits).parent, _edits_name(cfg), dict(rows), cfg.max_pixels
        )
    if generator is None:
        raise UserError("--images needs --edits FILE (the edits the images answer)")
    from latentbench.data.shapes import ShapesEditsDataset

    n = cfg.limit or cfg.num_edits
    if n < 1:
        raise UserError(f"--num-edits must be >= 1, got {n}")
    data = ShapesEditsDataset(n, generator.image_size, seed=cfg.seed)
    rows = {i: {"instruction": data.edit(i).instruction, "_edit": data.edit(i)} for i in range(n)}
    return _Edits(EditKind.SHAPES, Path("."), _edits_name(cfg), rows)


def _read_sources(edits: _Edits, image_size: int | None, skipped: Skipped) -> None:
    """Fill keys / sources / instructions / payload; unreadable rows are skipped and counted.
    Shapes sources are rendered at ``image_size`` (only needed when generating)."""
    from latentbench.data.shapes import Edit, ShapesRenderer

    renderer = ShapesRenderer(image_size) if image_size else None
    for i, row in edits.rows.items():
        try:
            if edits.kind is EditKind.SHAPES:
                edit = row.get("_edit") or Edit.from_dict(row)
                src = Image.fromarray(renderer.render(edit.source)) if renderer else None
                payload: Any = edit
            else:
                src, payload = _load(edits, row["source"]), row
        except (UnreadableImage, OSError, KeyError, ValueError, UserError) as e:
            skipped.add(f"row {i}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            continue
        edits.keys.append(i)
        edits.sources.append(src)
        edits.instructions.append(str(row["instruction"]))
        edits.payload.append(payload)
    if not edits.keys:
        raise UserError(f"no edit could be read ({skipped.rows} skipped)")


def _read_outputs(edits: _Edits, images: Path, skipped: Skipped) -> list[Image.Image | None]:
    outputs: list[Image.Image | None] = []
    for k in edits.keys:
        path = output_path(images, k, edits.rows[k], edits.base)
        try:
            outputs.append(open_rgb(path, edits.max_pixels))
        except UnreadableImage as e:
            skipped.add(f"row {k}: output {path}: {e}")
            outputs.append(None)
    return outputs


def _natural_samples(
    edits: _Edits, outputs: list[Image.Image | None], skipped: Skipped
) -> tuple[list[Any], list[int]]:
    from latentbench.metrics.edit_natural import EditSample, load_mask

    samples, keys = [], []
    for k, out, src, row in zip(edits.keys, outputs, edits.sources, edits.payload):
        if out is None:
            continue
        try:
            target = _load(edits, row["target"]) if row.get("target") else None
            mask = (
                load_mask(edits.base / str(row["mask"]), edits.max_pixels)
                if row.get("mask")
                else None
            )
        except UnreadableImage as e:
            skipped.add(f"row {k}: target/mask: {e}")
            continue
        caption = next((row[c] for c in CAPTION_KEYS if row.get(c)), None)
        instruction = str(row["instruction"])
        samples.append(
            EditSample(out, src, instruction, target, mask, caption, row.get("source_caption"))
        )
        keys.append(k)
    if not samples:
        raise UserError(f"no edit could be scored ({skipped.rows} skipped)")
    return samples, keys


def run_eval_edit(
    cfg: EvalEditConfig,
    *,
    run_dir: str | Path | None = None,
    images: str | Path | None = None,
    out: str | Path | None = None,
    progress: Callable[[int], Progress] | None = None,
    overwrite: bool = False,
) -> EvalEditResult:
    """Edit with ``run_dir``'s generator (or read ``images``), score, write results.

    ``out``: folder for ``results.json``, ``per_edit.jsonl`` and (RUN_DIR) ``images/``;
    default ``RUN_DIR/eval-edit/<edits name>`` or ``DIR/eval-edit``; it must be new, empty or an
    earlier eval-edit output, unless ``overwrite``.
    """
    if (run_dir is None) == (images is None):
        raise UserError("give either RUN_DIR (edit with a trained generator) or --images DIR")
    if out:
        out_dir = Path(out)
    elif run_dir is not None:
        out_dir = Path(run_dir) / "eval-edit" / _edits_name(cfg)
    else:
        out_dir = Path(images) / "eval-edit"  # type: ignore[arg-type]
    inputs = [p for p in (run_dir, images) if p is not None] + existing_paths(cfg.edits)
    kind = OutputKind.EVAL_EDIT
    replaces = ["images"] if run_dir is not None else []
    claim_output(out_dir, kind, inputs=inputs, overwrite=overwrite, replaces=replaces)
    skipped = Skipped()
    generator = None
    if run_dir is not None:
        from latentbench.bench.generator_runs import load_generator

        generator = load_generator(run_dir, checkpoint=cfg.checkpoint, device=cfg.device)
    edits = _edit_rows(cfg, generator, skipped)
    _read_sources(edits, generator.image_size if generator else None, skipped)
    mark_output(out_dir, OutputKind.EVAL_EDIT)
    if generator is not None:
        tick = progress(len(edits.keys)) if progress else None
        made = generate_edits(generator, edits.sources, edits.instructions, cfg, tick)  # type: ignore[arg-type]
        with staged_dir(out_dir / "images") as tmp:
            for k, im in zip(edits.keys, made):
                im.save(tmp / f"{k:05d}.png")
        outputs: list[Image.Image | None] = list(made)
    else:
        outputs = _read_outputs(edits, Path(images), skipped)  # type: ignore[arg-type]

    if edits.kind is EditKind.SHAPES:
        scored, per_edit = score_shapes(outputs, edits.payload, edits.keys, cfg, skipped)
    else:
        samples, keys = _natural_samples(edits, outputs, skipped)
        scored, per_edit = score_natural(samples, keys, cfg)

    results = {
        "kind": edits.kind.value,
        "edits": cfg.edits or edits.name,
        "num_edits": len(per_edit),
        **scored,
        "skipped": skipped.rows,
        "skipped_reasons": skipped.reasons,
        "generator": generator.variant(seed=cfg.seed) if generator is not None else None,
        "seed": cfg.seed,
        "config": to_dict(cfg),
    }
    path = out_dir / "results.json"
    write_eval_results(
        path,
        results,
        ("per_edit.jsonl", "".join(json.dumps(r) + "\n" for r in per_edit)),
        run_dir if out is None else None,  # with --out, the run folder is left untouched
        headline_metrics(edits.kind, results["summary"]),
    )
    return EvalEditResult(results, path)


def headline_metrics(kind: EditKind, summary: dict[str, Any]) -> dict[str, Any]:
    """``eval_edit/<metric>`` (and per-category success for Shapes), for the run's metrics.json."""
    metrics: dict[str, Any] = {}
    for k, v in summary.items():
        if isinstance(v, (int, float)) and not k.endswith("_count"):
            metrics[f"eval_edit/{kind.value}/{k}"] = v
    for cat, block in (summary.get("categories") or {}).items():
        for k, v in block.items():
            if k.startswith("success"):  # success and its interval
                metrics[f"eval_edit/{kind.value}/{cat}/{k}"] = v
    return metrics


def table_rows(results: dict[str, Any]) -> list[tuple[str, ...]]:
    """Shapes: (category, count, success, l1, psnr, lpips) per category then all;
    natural: (metric, value, edits)."""
    s = results["summary"]
    fmt = lambda v: "" if v is None else f"{v:.4f}"  # noqa: E731
    if results["kind"] == EditKind.SHAPES.value:
        rows = [
            (
                c,
                str(b["count"]),
                fmt(b["success"]),
                fmt(b["l1_outside"]),
                fmt(b["psnr_outside"]),
                fmt(b["lpips_outside"]),
            )
            for c, b in s["categories"].items()
        ]
        rows.append(
            (
                "all",
                str(s["count"]),
                fmt(s["success"]),
                fmt(s["l1_outside"]),
                fmt(s["psnr_outside"]),
                fmt(s["lpips_outside"]),
            )
        )
        return rows
    from latentbench.metrics.edit_natural import METRICS

    return [(m, fmt(s.get(m)), str(s.get(f"{m}_count", 0))) for m in (*METRICS, "judge")]
