"""Edit scoring: was the instruction carried out, and how much changed outside the edit mask.

Two independent parts:

- :func:`masked_fidelity` (any images): L1 and PSNR between output and source over the pixels
  outside the mask (images as [0, 1]; PSNR capped at ``max_psnr`` = 100 dB for identical
  regions), and optionally LPIPS through a callable, on the output with the masked region
  pasted back from the source, so that only changes outside the mask count.
- :func:`check_edit` (the Shapes world): the analytic detector's reading of the output must be
  the target scene: every target object found once with its shape and color, no other object,
  each untouched or recolored/re-textured/replaced object within a quarter of its size of where
  it was, an added or moved object inside the region the instruction names, the new texture on
  a texture edit, the new background (color and texture) on a background edit and the old
  background color on any other edit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from latentbench.data.shapes import Edit, EditCategory, Region, ShapeObject, ShapesRenderer
from latentbench.data.shapes.edits import edit_mask
from latentbench.metrics.shapes_detector import (
    DetectedObject,
    DetectedScene,
    ShapesDetector,
    rgb_array,
)

# (B, 3, H, W) output, (B, 3, H, W) reference, both in [-1, 1] -> (B,) distances
LpipsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _float01(image: Any) -> np.ndarray:
    """(H, W, 3) float64 in [0, 1]."""
    return rgb_array(image).astype(np.float64) / 255.0


def masked_fidelity(
    output: Any,
    source: Any,
    mask: np.ndarray,
    *,
    lpips: LpipsFn | None = None,
    max_psnr: float = 100.0,
) -> dict[str, float | None]:
    """L1 / PSNR (data range 1) / LPIPS between ``output`` and ``source`` outside ``mask``.

    Images: (H, W, 3) uint8, (3, H, W) in [-1, 1] or PIL; ``mask`` (H, W) bool, True = may change.
    NaN when the mask covers the whole image; ``lpips_outside`` is None without ``lpips``.
    """
    out, src = _float01(output), _float01(source)
    if out.shape != src.shape:
        raise ValueError(f"output {out.shape} and source {src.shape} differ in size")
    mask = np.asarray(mask, dtype=bool).reshape(out.shape[:2])
    keep = ~mask
    result: dict[str, float | None] = {
        "l1_outside": math.nan,
        "psnr_outside": math.nan,
        "lpips_outside": None,
    }
    if keep.any():
        diff = (out - src)[keep]  # (N, 3)
        mse = float((diff**2).mean())
        result["l1_outside"] = float(np.abs(diff).mean())
        result["psnr_outside"] = max_psnr if mse == 0 else min(max_psnr, 10 * math.log10(1.0 / mse))
    if lpips is not None:
        pasted = np.where(mask[..., None], src, out)  # (H, W, 3): changes inside do not count
        with torch.no_grad():
            result["lpips_outside"] = float(lpips(_batch(pasted), _batch(src)).reshape(-1)[0])
    return result


def _batch(image01: np.ndarray) -> torch.Tensor:
    """(H, W, 3) in [0, 1] -> (1, 3, H, W) float32 in [-1, 1]."""
    return torch.from_numpy(image01.transpose(2, 0, 1)[None].astype(np.float32) * 2 - 1)


def _matches(det: DetectedObject, obj: ShapeObject) -> bool:
    return det.shape is obj.shape and det.color is obj.color


def _placed(det: DetectedObject, obj: ShapeObject, region: Region | None, h: int, w: int) -> bool:
    """Is the detection where ``obj`` should be: inside ``region`` when one is named, else
    within a quarter of the object's size of its centre?"""
    x, y = det.center
    if region is not None:
        x0, y0, x1, y1 = region.bounds
        return x0 * w <= x <= x1 * w and y0 * h <= y <= y1 * h
    return math.hypot(x - obj.cx * w, y - obj.cy * h) <= 0.25 * obj.size * max(h, w)


def check_edit(scene: DetectedScene, edit: Edit) -> tuple[bool, str]:
    """(success, reason) for a detected output of ``edit`` (rules in the module docstring)."""
    h, w = scene.size
    free = list(scene.objects)
    reasons: list[str] = []
    order = list(range(len(edit.target.objects)))
    edited = edit.index if edit.category is not EditCategory.REMOVE else None
    if edited is not None:
        order.remove(edited)
        order.insert(0, edited)  # match the edited object first
    for i in order:
        obj = edit.target.objects[i]
        cx, cy = obj.cx * w, obj.cy * h
        region = edit.region if i == edited else None  # an added or moved object: its region
        where = region.at_phrase if region else f"at ({cx:.0f}, {cy:.0f})"
        candidates = [d for d in free if _matches(d, obj) and _placed(d, obj, region, h, w)]
        if not candidates:
            reasons.append(f"no {obj.color.value} {obj.shape.value} {where}")
            continue
        best = min(candidates, key=lambda d: math.hypot(d.center[0] - cx, d.center[1] - cy))
        free.remove(best)
        if (
            i == edited
            and edit.category is EditCategory.TEXTURE
            and best.texture is not obj.texture
        ):
            got = best.texture.value if best.texture else "unknown"
            reasons.append(f"{obj.noun()} has texture {got}, expected {obj.texture.value}")
    for d in free:
        reasons.append(
            f"unexpected {d.color.value} {d.shape.value} at ({d.center[0]:.0f}, {d.center[1]:.0f})"
        )
    name = lambda v: v.value if v else "unknown"
    if edit.category is EditCategory.BACKGROUND:
        want = (edit.target.background, edit.target.background_texture)
        got = (scene.background, scene.background_texture)
        if got != want:
            reasons.append(
                f"background is {name(got[1])} {name(got[0])}, "
                f"expected {want[1].value} {want[0].value}"
            )
    elif scene.background is not edit.target.background:
        reasons.append(
            f"background is {name(scene.background)}, expected {edit.target.background.value}"
        )
    return not reasons, "; ".join(reasons)


@dataclass(frozen=True)
class EditResult:
    category: str
    success: bool
    reason: str
    l1_outside: float
    psnr_outside: float
    lpips_outside: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class EditScorer:
    """Scores edited images of the Shapes world against their :class:`Edit`.

    The source image and the mask are rendered from the edit at the output's size (the mask is
    the pixels where source and target renders differ, grown by one pixel).
    """

    def __init__(
        self, detector: ShapesDetector | None = None, lpips: LpipsFn | None = None
    ) -> None:
        self.detector = detector or ShapesDetector()
        self.lpips = lpips
        self._renderers: dict[int, ShapesRenderer] = {}

    def renderer(self, image_size: int) -> ShapesRenderer:
        if image_size not in self._renderers:
            self._renderers[image_size] = ShapesRenderer(image_size)
        return self._renderers[image_size]

    def score(self, output: Any, edit: Edit) -> EditResult:
        out = rgb_array(output)
        h, w = out.shape[:2]
        if h != w:
            raise ValueError(f"Shapes images are square, got {h}x{w}")
        renderer = self.renderer(h)
        source, target = renderer.render(edit.source), renderer.render(edit.target)
        success, reason = check_edit(self.detector.detect(out), edit)
        fid = masked_fidelity(out, source, edit_mask(source, target), lpips=self.lpips)
        return EditResult(
            edit.category.value,
            success,
            reason,
            fid["l1_outside"],
            fid["psnr_outside"],
            fid["lpips_outside"],
        )  # type: ignore[arg-type]


def summarise_edits(results: Iterable[EditResult]) -> dict[str, Any]:
    """Success rate and mean fidelity, overall and per category (categories in enum order)."""
    results = list(results)

    def block(rs: Sequence[EditResult]) -> dict[str, Any]:
        mean = lambda xs: (
            float(np.nanmean(xs)) if len(xs) and not np.all(np.isnan(xs)) else math.nan
        )
        lp = [r.lpips_outside for r in rs if r.lpips_outside is not None]
        return {
            "success": float(np.mean([r.success for r in rs])) if rs else math.nan,
            "l1_outside": mean(np.array([r.l1_outside for r in rs], dtype=float)),
            "psnr_outside": mean(np.array([r.psnr_outside for r in rs], dtype=float)),
            "lpips_outside": float(np.mean(lp)) if lp else None,
            "count": len(rs),
        }

    per = {c.value: block([r for r in results if r.category == c.value]) for c in EditCategory}
    return {**block(results), "categories": {k: v for k, v in per.items() if v["count"]}}
