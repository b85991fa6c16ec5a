"""GenEval on the Shapes world: the runner behind ``latentbench eval-gen --suite geneval-shapes``.

It reads a folder in GenEval's output layout::

    DIR/<index:05d>/metadata.jsonl      one metadata entry (JSON object)
    DIR/<index:05d>/samples/<k:04d>.png generated images for that prompt

detects the objects of every sample with the analytic :class:`ShapesDetector`, applies GenEval's
rules (:mod:`latentbench.metrics.geneval`) and writes the per-task scores. The analytic detector
already rejects what is not an object, so its detections pass with thresholds of 0 (the
official 0.3 / 0.9 are calibrated for Mask2Former's scores).

:func:`write_oracle_layout` writes the ground truth of a prompt suite in the same layout: the
"oracle generator", which must score ~1.0 on every task.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from latentbench.data.shapes import SceneConfig, Shape, ShapesRenderer, geneval_suite, oracle_scene
from latentbench.errors import UserError
from latentbench.metrics.geneval import (
    GenevalRules,
    GenevalSummary,
    evaluate_entry,
    summarise,
    validate_entry,
    write_metadata,
)
from latentbench.metrics.shapes_detector import ShapesDetector
from latentbench.runs import atomic_write_json

ANALYTIC_RULES = GenevalRules(threshold=0.0, counting_threshold=0.0)
_SAMPLE = re.compile(r"^\d+\.png$")
_ORACLE_STREAM = 7
SUITE = "geneval-shapes"  # the suite this runner scores (``eval-gen --suite``)


@dataclass(frozen=True)
class PromptFolder:
    index: int
    path: Path
    entry: dict[str, Any]
    samples: tuple[Path, ...]


def scan_layout(images_dir: str | Path) -> list[PromptFolder]:
    """The prompt folders of a GenEval output layout, by index; UserError if there are none."""
    root = Path(images_dir)
    if not root.is_dir():
        raise UserError(f"images folder not found: {root}")
    folders = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and p.name.isdigit()):
        meta = sub / "metadata.jsonl"
        if not meta.is_file():
            raise UserError(
                f"{sub}: no metadata.jsonl (GenEval layout: DIR/<index>/metadata.jsonl)"
            )
        text = meta.read_text().strip()
        try:
            entry = json.loads(text.splitlines()[0] if text else "")
        except (json.JSONDecodeError, IndexError):
            raise UserError(f"{meta}: not a JSON metadata entry") from None
        validate_entry(entry, str(meta))
        samples_dir = sub / "samples"
        samples = (
            tuple(sorted(p for p in samples_dir.iterdir() if _SAMPLE.match(p.name)))
            if samples_dir.is_dir()
            else ()
        )
        folders.append(PromptFolder(int(sub.name), sub, entry, samples))
    if not folders:
        raise UserError(
            f"{root}: no prompt folders "
            "(expected DIR/<index:05d>/metadata.jsonl + samples/<k:04d>.png)"
        )
    if not any(f.samples for f in folders):
        raise UserError(f"{root}: no images in any <index>/samples/ folder")
    return folders


def check_shapes_classes(folders: Sequence[PromptFolder]) -> None:
    """UserError unless every class the prompts name is a shape of the world."""
    valid = {s.value for s in Shape}
    for f in folders:
        for req in list(f.entry["include"]) + list(f.entry.get("exclude", [])):
            if req["class"] not in valid:
                raise UserError(
                    f"{f.path / 'metadata.jsonl'}: class {req['class']!r} is not a shape of the "
                    f"Shapes world (valid: {', '.join(sorted(valid))}); --suite geneval-shapes "
                    "scores Shapes prompts only"
                )


@dataclass
class GenevalReport:
    suite: str
    images_dir: str
    summary: GenevalSummary
    rules: GenevalRules
    rows: list[dict[str, Any]] = field(default_factory=list)
    unreadable: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "images_dir": self.images_dir,
            "detector": "shapes-analytic",
            "rules": asdict(self.rules),
            **self.summary.to_dict(),
            "unreadable": self.unreadable,
            "per_image": self.rows,
        }

    def table_rows(self) -> list[tuple[str, str, str]]:
        """(task, correct/total, score) per task, then the overall mean."""
        rows = [
            (t, f"{s.correct}/{s.total}", f"{s.score:.4f}") for t, s in self.summary.tasks.items()
        ]
        rows.append(
            (
                "overall",
                f"{sum(s.correct for s in self.summary.tasks.values())}/{self.summary.images}",
                f"{self.summary.overall:.4f}",
            )
        )
        return rows


def evaluate_layout(
    images_dir: str | Path,
    *,
    detector: ShapesDetector | None = None,
    rules: GenevalRules = ANALYTIC_RULES,
    progress: Callable[[int], None] | None = None,
) -> GenevalReport:
    """Score every sample of a GenEval layout of Shapes prompts. ``progress(1)`` per image."""
    folders = scan_layout(images_dir)
    check_shapes_classes(folders)
    detector = detector or ShapesDetector()
    root = Path(images_dir)
    rows: list[dict[str, Any]] = []
    unreadable = 0
    for f in folders:
        for path in f.samples:
            row = {
                "filename": str(path.relative_to(root)),
                "index": f.index,
                "tag": f.entry["tag"],
                "prompt": f.entry["prompt"],
            }
            try:
                with Image.open(path) as im:
                    image = np.asarray(im.convert("RGB"))
            except (OSError, UnidentifiedImageError, ValueError) as e:
                unreadable += 1
                rows.append(
                    {**row, "correct": False, "reason": f"unreadable image: {e}", "detections": []}
                )
                continue
            scene = detector.detect(image)
            correct, reason = evaluate_entry(scene.detections(), f.entry, rules)
            rows.append(
                {
                    **row,
                    "correct": correct,
                    "reason": reason,
                    "detections": [o.to_dict() for o in scene.objects],
                }
            )
            if progress:
                progress(1)
    summary = summarise((r["tag"], r["correct"], r["index"]) for r in rows)
    return GenevalReport(SUITE, str(root), summary, rules, rows, unreadable)


def write_report(report: GenevalReport, path: str | Path) -> None:
    atomic_write_json(path, report.to_dict())


def oracle_rng(seed: int, index: int, sample: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(index), int(sample), _ORACLE_STREAM])


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
    layout into ``out``, plus ``out/evaluation_metadata.jsonl``. Returns the number of images."""
    if samples_per_prompt < 1:
        raise UserError(f"samples per prompt must be >= 1, got {samples_per_prompt}")
    entries = list(entries) if entries is not None else geneval_suite(prompts_per_task, seed)
    renderer, config = ShapesRenderer(image_size), SceneConfig()
    out = Path(out)
    n = 0
    for index, entry in enumerate(entries):
        folder = out / f"{index:05d}"
        (folder / "samples").mkdir(parents=True, exist_ok=True)
        (folder / "metadata.jsonl").write_text(json.dumps(entry) + "\n")
        for k in range(samples_per_prompt):
            scene = oracle_scene(entry, oracle_rng(seed, index, k), config)
            Image.fromarray(renderer.render(scene)).save(folder / "samples" / f"{k:04d}.png")
            n += 1
            if progress:
                progress(1)
    write_metadata(out / "evaluation_metadata.jsonl", entries)
    return n
