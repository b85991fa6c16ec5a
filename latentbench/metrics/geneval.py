"""GenEval judges and scoring: what turns an image into the detections GenEval's rules read.

A judge (:class:`Judge`) detects the objects of one image for a prompt's metadata entry; the
rules (:func:`latentbench.geneval.evaluate_entry`) then say whether the image is right. Two
judges: :class:`~latentbench.metrics.shapes_judge.ShapesJudge` (the analytic Shapes detector,
exact) and :class:`NeuralJudge` (an open detector from transformers, with GenEval's CLIP colour
classifier for the prompts that name a colour). :func:`score_prompts` scores every image of a
GenEval layout with a judge, :func:`summarise_rows` turns the rows into per-task scores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from latentbench.data import DEFAULT_MAX_PIXELS
from latentbench.data.decode import UnreadableImage, open_rgb
from latentbench.errors import UserError
from latentbench.geneval import (
    Detection,
    GenevalRules,
    GenSuite,
    PromptImages,
    Skipped,
    evaluate_entry,
    group_detections,
    summarise,
)
from latentbench.metrics.detectors import ObjectDetector

Progress = Callable[[int], None]  # called with the number of images just done


class Judge(Protocol):
    """Turns one image into the detections GenEval's rules read."""

    name: str
    label: str
    rules: GenevalRules
    variant: dict[str, Any]

    def detections(
        self, image: Image.Image, entry: dict[str, Any]
    ) -> tuple[list[Detection], list[dict[str, Any]]]:
        """(detections for the rules, JSON rows describing them)."""
        ...


class ColorNamer(Protocol):
    variant: dict[str, Any]

    def classify(
        self, image: Image.Image, cls: str, boxes: Sequence[Any], masks: Sequence[Any] | None
    ) -> list[str]: ...


class NeuralJudge:
    """An open detector plus GenEval's CLIP colour classifier.

    Colours are classified, as in GenEval, only for the objects of a class that an ``include``
    clause names with a colour, after the task's score threshold and the per-class cap.
    """

    def __init__(
        self,
        detector: ObjectDetector,
        colors: ColorNamer | None,
        rules: GenevalRules,
        vocabulary: Sequence[str],
    ) -> None:
        self.detector, self.colors, self.rules = detector, colors, rules
        self.vocabulary = list(dict.fromkeys(vocabulary))
        self.name = detector.name
        self.label = f"GenEval-style ({detector.name})"
        closed = getattr(detector, "classes", None)  # a closed-set detector's names
        self.variant = {
            "detector": detector.variant,
            "colors": colors.variant if colors is not None else None,
            "vocabulary": len(self.vocabulary),
            # suite classes the detector can never name: their prompts cannot pass
            "unreachable_classes": [c for c in self.vocabulary if c not in closed]
            if closed is not None
            else None,
        }

    def detections(
        self, image: Image.Image, entry: dict[str, Any]
    ) -> tuple[list[Detection], list[dict[str, Any]]]:
        objects = self.detector.detect(image, self.vocabulary)
        need = {r["class"] for r in entry.get("include", []) if "color" in r}
        plain = [o.to_detection() for o in objects]
        kept = group_detections(plain, str(entry.get("tag", "")), self.rules)
        colored: dict[int, str] = {}
        if need and self.colors is None:
            raise UserError("this prompt needs colours, and no colour classifier is configured")
        for cls in need & set(kept):
            ids = [i for i, d in enumerate(plain) if d in kept[cls]]
            names = self.colors.classify(  # type: ignore[union-attr]
                image,
                cls,
                [objects[i].box for i in ids],
                [objects[i].mask for i in ids],
            )
            colored.update(zip(ids, names))
        dets = [o.to_detection(colored.get(i)) for i, o in enumerate(objects)]
        rows = [{**o.to_dict(), "color": colored.get(i)} for i, o in enumerate(objects)]
        return dets, rows


def suite_vocabulary(entries: Iterable[dict[str, Any]]) -> list[str]:
    """Every class a suite's include/exclude clauses name, in first-seen order."""
    names: dict[str, None] = {}
    for e in entries:
        for req in list(e.get("include", [])) + list(e.get("exclude", [])):
            names[str(req["class"])] = None
    return list(names)


# -- scoring ------------------------------------------------------------------------------------
def _read_samples(
    p: PromptImages, skipped: Skipped, progress: Progress | None, max_pixels: int | None
) -> tuple[list[Image.Image], list[Path]]:
    """The readable sample images of one prompt (RGB) and their paths; the others are skipped
    and counted."""
    images, paths = [], []
    for path in p.samples:
        try:
            images.append(open_rgb(path, max_pixels))
            paths.append(path)
        except UnreadableImage as e:
            skipped.add(f"{p.index:05d}: unreadable image {path.name}: {e}", images=1)
        if progress:
            progress(1)
    return images, paths


def _score_prompt(
    p: PromptImages,
    judge: Judge,
    root: Path,
    images: list[Image.Image],
    paths: list[Path],
    scores: np.ndarray | None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(per-image rows, the per-prompt row) of one prompt's readable images."""
    rows = []
    for k, (im, path) in enumerate(zip(images, paths)):
        dets, described = judge.detections(im, p.entry)
        ok, reason = evaluate_entry(dets, p.entry, judge.rules)
        row = {
            "filename": str(path.relative_to(root)) if path.is_relative_to(root) else str(path),
            "index": p.index,
            "tag": p.entry["tag"],
            "prompt": p.entry["prompt"],
            "correct": bool(ok),
            "reason": reason,
            "size": list(im.size),  # (W, H) as scored: detectors resize it themselves
            "detections": described,
        }
        if scores is not None:
            row["clipscore"] = float(scores[k])
        rows.append(row)
    correct = sum(r["correct"] for r in rows)
    prompt_row = {
        "index": p.index,
        "tag": p.entry["tag"],
        "prompt": p.entry["prompt"],
        "samples": len(images),
        "correct": correct,
        "accuracy": correct / len(images),
        "clipscore": float(scores.mean()) if scores is not None else None,
    }
    return rows, prompt_row


def score_prompts(
    prompts: Sequence[PromptImages],
    judge: Judge,
    root: Path,
    skipped: Skipped,
    *,
    clip: Any | None = None,
    progress: Progress | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(per-image rows, per-prompt rows). Unreadable images, and images of more than
    ``max_pixels`` pixels, are skipped and counted. With ``clip``, each image's CLIPScore
    against its prompt is in its row."""
    from latentbench.metrics.clip import clip_score

    rows: list[dict[str, Any]] = []
    per_prompt: list[dict[str, Any]] = []
    for p in prompts:
        images, paths = _read_samples(p, skipped, progress, max_pixels)
        if not images:
            continue
        scores = clip_score(clip, images, [p.entry["prompt"]] * len(images)) if clip else None
        image_rows, prompt_row = _score_prompt(p, judge, root, images, paths, scores)
        rows += image_rows
        per_prompt.append(prompt_row)
    return rows, per_prompt


def summarise_rows(
    rows: Sequence[dict[str, Any]], judge: Judge, skipped: Skipped, suite: GenSuite
) -> dict[str, Any]:
    """results.json content (without the per-image rows)."""
    if not rows:
        raise UserError(f"nothing could be scored ({skipped.images} image(s) skipped)")
    summary = summarise((r["tag"], r["correct"], r["index"]) for r in rows)
    out: dict[str, Any] = {
        "suite": suite.value,
        "label": judge.label,
        "detector": judge.name,
        "judge": judge.variant,
        "rules": asdict(judge.rules),
        **summary.to_dict(),
        "detections_per_image": float(np.mean([len(r["detections"]) for r in rows])),
        "image_sizes": sorted({tuple(r["size"]) for r in rows}),
        "skipped_prompts": skipped.prompts,
        "skipped_images": skipped.images,
        "skipped_reasons": skipped.reasons,
    }
    clip = [r["clipscore"] for r in rows if "clipscore" in r]
    if clip:
        out["clipscore"] = float(np.mean(clip))
        out["clipscore_tasks"] = {
            t: float(np.mean([r["clipscore"] for r in rows if r["tag"] == t]))
            for t in summary.tasks
        }
    return out
