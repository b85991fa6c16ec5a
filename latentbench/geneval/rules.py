"""GenEval's rules, detector-agnostic: is an image's list of detections right for its prompt?

GenEval (Ghosh et al., 2023) scores a text-to-image model by detecting objects in its images
and checking each prompt's metadata entry::

    {"tag": "position", "prompt": "a photo of a star left of a circle",
     "include": [{"class": "circle", "count": 1},
                 {"class": "star", "count": 1, "position": ["left of", 0]}]}

The rules here re-implement the official ``evaluate`` of ``evaluation/evaluate_images.py`` on a
plain list of :class:`Detection` (class name, box, color, score), so any detector can feed them:
the analytic Shapes detector now, a neural detector + color classifier later.

- ``include`` clauses combine with AND: at least ``count`` detections of the class; when a
  color is required, at least ``count`` of the ``count`` most confident ones have it; when a
  position is required, every one of them stands in that relation to every object that the
  target clause matched (GenEval's ``relative_position`` with a 0.1 size margin).
- ``exclude`` clauses combine with OR: ``count`` or more detections of the class fail the image.
- Detections at or below ``threshold`` (``counting_threshold`` for the counting task) are
  dropped, at most ``max_objects`` are kept per class, most confident first.
- A task's score is the fraction of its images judged correct; the overall score is the mean of
  the task scores (as in the official ``summary_scores.py``).

Official defaults: threshold 0.3, counting threshold 0.9, max 16 objects, position margin 0.1.
A detector whose scores are not calibrated like Mask2Former's should pass its own thresholds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from latentbench.geneval.vocabulary import GenevalTask, Relation

Box = tuple[float, float, float, float]  # (x0, y0, x1, y1), y down (pixels or image fractions)


@dataclass(frozen=True)
class Detection:
    """One detected object. ``color`` is None when the detector does not name colors."""

    name: str
    box: Box
    color: str | None = None
    score: float = 1.0


@dataclass(frozen=True)
class GenevalRules:
    """The thresholds of GenEval's rules (official defaults)."""

    threshold: float = 0.3
    counting_threshold: float = 0.9
    max_objects: int = 16
    position_threshold: float = 0.1


def relative_position(
    box_a: Sequence[float], box_b: Sequence[float], threshold: float = 0.1, cutoff: float = 0.5
) -> set[Relation]:
    """Where A is relative to B, GenEval's rule: the centre offset, shrunk on each axis by
    ``threshold`` x (sum of the two boxes' extents on that axis), divided by the unshrunk offset
    length; a component beyond ``cutoff`` names a relation. Empty when the boxes nearly coincide."""
    a, b = np.asarray(box_a[:4], dtype=float), np.asarray(box_b[:4], dtype=float)
    offset = (a[:2] + a[2:]) / 2 - (b[:2] + b[2:]) / 2
    dims = np.abs(a[2:] - a[:2]) + np.abs(b[2:] - b[:2])
    revised = np.maximum(np.abs(offset) - threshold * dims, 0) * np.sign(offset)
    if np.all(np.abs(revised) < 1e-3):
        return set()
    dx, dy = revised / np.linalg.norm(offset)
    rels = set()
    if dx < -cutoff:
        rels.add(Relation.LEFT_OF)
    if dx > cutoff:
        rels.add(Relation.RIGHT_OF)
    if dy < -cutoff:
        rels.add(Relation.ABOVE)
    if dy > cutoff:
        rels.add(Relation.BELOW)
    return rels


def group_detections(
    detections: Iterable[Detection], tag: str, rules: GenevalRules = GenevalRules()
) -> dict[str, list[Detection]]:
    """Class name -> detections above the task's threshold, most confident first (stable)."""
    cut = rules.counting_threshold if tag == GenevalTask.COUNTING.value else rules.threshold
    groups: dict[str, list[Detection]] = {}
    for d in sorted(detections, key=lambda d: -d.score):
        if d.score > cut and len(groups.setdefault(d.name, [])) < rules.max_objects:
            groups[d.name].append(d)
    return {k: v for k, v in groups.items() if v}


def evaluate_entry(
    detections: Iterable[Detection], entry: Mapping[str, Any], rules: GenevalRules = GenevalRules()
) -> tuple[bool, str]:
    """(correct, reason) for one image and its metadata entry, by GenEval's rules."""
    objects = group_detections(detections, str(entry.get("tag", "")), rules)
    correct = True
    reasons: list[str] = []
    matched: list[list[Detection] | None] = []
    for req in entry.get("include", []):
        name, count = req["class"], int(req["count"])
        found = objects.get(name, [])[:count]
        problem = _include_problem(req, found, matched, rules)
        if problem:
            reasons.append(problem)
        correct &= not problem
        matched.append(None if problem else found)
    for req in entry.get("exclude", []):
        name, count = req["class"], int(req["count"])
        if len(objects.get(name, [])) >= count:
            correct = False
            reasons.append(f"expected {name}<{count}, found {len(objects[name])}")
    return correct, "\n".join(reasons)


def _include_problem(
    req: Mapping[str, Any],
    found: list[Detection],
    matched: list[list[Detection] | None],
    rules: GenevalRules,
) -> str:
    """Why the ``count`` most confident detections ``found`` fail one include clause ("": they
    pass). ``matched``: what each earlier clause matched (None where it failed)."""
    name, count = req["class"], int(req["count"])
    if len(found) < count:
        return f"expected {name}>={count}, found {len(found)}"
    if "color" in req:
        colors = [d.color for d in found]
        if colors.count(req["color"]) < count:
            seen = ", ".join(f"{colors.count(c)} {c}" for c in dict.fromkeys(colors))
            return f"expected {req['color']} {name}>={count}, found {seen}"
    if "position" in req:
        rel, target = req["position"]
        targets = matched[int(target)] if int(target) < len(matched) else None
        if targets is None:
            return f"no target for {name} to be {rel}"
        for d in found:
            for t in targets:
                got = _names(relative_position(d.box, t.box, rules.position_threshold))
                if rel not in got:
                    seen = " and ".join(sorted(got)) or "no relation to"
                    return f"expected {name} {rel} target, found {seen} target"
    return ""


def _names(rels: set[Relation]) -> set[str]:
    return {r.value for r in rels}


# -- scores ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskScore:
    correct: int
    total: int

    @property
    def score(self) -> float:
        return self.correct / self.total if self.total else float("nan")


@dataclass
class GenevalSummary:
    """Per-task scores; ``overall`` is the mean over the tasks present."""

    tasks: dict[str, TaskScore] = field(default_factory=dict)
    images: int = 0
    prompts: int = 0
    prompts_correct: int = 0  # prompts with at least one correct sample

    @property
    def overall(self) -> float:
        scores = [t.score for t in self.tasks.values() if t.total]
        return float(np.mean(scores)) if scores else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "overall": self.overall,
            "tasks": {
                k: {"score": v.score, "correct": v.correct, "total": v.total}
                for k, v in self.tasks.items()
            },
            "num_images": self.images,
            "num_prompts": self.prompts,
            "prompt_accuracy": self.prompts_correct / self.prompts
            if self.prompts
            else float("nan"),
        }


def summarise(rows: Iterable[tuple[str, bool, Any]]) -> GenevalSummary:
    """Summarise (tag, correct, prompt_id) rows; tasks in GenEval's order, unknown tags after."""
    counts: dict[str, list[int]] = {}
    per_prompt: dict[Any, bool] = {}
    n = 0
    for tag, correct, prompt_id in rows:
        c = counts.setdefault(tag, [0, 0])
        c[0] += bool(correct)
        c[1] += 1
        per_prompt[prompt_id] = per_prompt.get(prompt_id, False) or bool(correct)
        n += 1
    order = [t.value for t in GenevalTask] + sorted(set(counts) - {t.value for t in GenevalTask})
    tasks = {t: TaskScore(*counts[t]) for t in order if t in counts}
    return GenevalSummary(tasks, n, len(per_prompt), sum(per_prompt.values()))
