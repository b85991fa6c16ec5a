"""The Shapes judge: GenEval's rules on the analytic Shapes detector's exact detections.

The analytic :class:`~latentbench.metrics.shapes_detector.ShapesDetector` already rejects what
is not an object, so its detections pass with thresholds of 0 (:data:`ANALYTIC_RULES`; the
official 0.3 / 0.9 are calibrated for Mask2Former's scores). It names colours and boxes exactly,
so the judge needs no colour classifier. Used by ``eval-gen --suite geneval-shapes`` and by the
generator's training-time evaluation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from PIL import Image

from latentbench.data.shapes import Shape
from latentbench.errors import UserError
from latentbench.geneval import Detection, GenevalRules
from latentbench.metrics.shapes_detector import ShapesDetector

ANALYTIC_RULES = GenevalRules(threshold=0.0, counting_threshold=0.0)


def check_shapes_classes(entries: Iterable[Mapping[str, Any]]) -> None:
    """UserError unless every class the prompts name is a shape of the world."""
    valid = {s.value for s in Shape}
    for entry in entries:
        for req in list(entry["include"]) + list(entry.get("exclude", [])):
            if req["class"] not in valid:
                raise UserError(
                    f"prompt {entry.get('prompt')!r}: class {req['class']!r} is not a shape of "
                    f"the Shapes world (valid: {', '.join(sorted(valid))}); --suite "
                    "geneval-shapes scores Shapes prompts only"
                )


class ShapesJudge:
    """The analytic Shapes detector (exact colours and boxes) under :data:`ANALYTIC_RULES`."""

    name = "shapes-analytic"
    label = "GenEval on Shapes (analytic detector)"

    def __init__(self, detector: ShapesDetector | None = None) -> None:
        self.detector, self.rules = detector or ShapesDetector(), ANALYTIC_RULES
        self.variant = {"detector": self.name, "colors": "analytic (exact paint)"}

    def detections(
        self, image: Image.Image, entry: dict[str, Any]
    ) -> tuple[list[Detection], list[dict[str, Any]]]:
        """(detections for the rules, JSON rows describing them)."""
        scene = self.detector.detect(np.asarray(image.convert("RGB")))
        return list(scene.detections()), [o.to_dict() for o in scene.objects]
