"""Open object detectors from transformers, for GenEval-style scoring of natural images.

GenEval's judge is mmdetection's Mask2Former (Swin-S, COCO instance segmentation). latentbench
uses detectors that transformers ships, so results are labelled "GenEval-style (<detector>)":

- ``mask2former``: :class:`Mask2FormerForUniversalSegmentation`, COCO instance segmentation
  (default ``facebook/mask2former-swin-small-coco-instance``, the closest to GenEval's). Its
  queries are post-processed by the image processor's ``post_process_instance_segmentation``
  (score = class probability x mean mask probability, as mmdetection scores Mask2Former
  instances), with no score cut there: GenEval's rules apply the thresholds. Boxes are the
  tight boxes of the binary masks (as mmdetection derives them). Official GenEval thresholds
  apply (0.3, counting 0.9). Its COCO labels are renamed to GenEval's object names
  (:data:`~latentbench.geneval.COCO_TO_GENEVAL`: "keyboard" -> "computer keyboard", ...),
  as the official evaluation names a detection by GenEval's list at the class index.
- ``owlv2``: :class:`Owlv2ForObjectDetection`, open vocabulary (default
  ``google/owlv2-base-patch16-ensemble``), queried with "a photo of a {class}" for the classes
  of the prompt suite. Its scores are not calibrated like Mask2Former's: default thresholds 0.1
  (counting 0.3; a choice the paper leaves open) and class-wise NMS at IoU 0.3; no masks.

Both take a hub id or a local folder holding the model and its processor (``save_pretrained``)
and return :class:`ObjectDetection` records (class name, box in pixels (x0, y0, x1, y1), score,
optional (H, W) bool mask), which :meth:`ObjectDetection.to_detection` turns into the
:class:`~latentbench.geneval.Detection` of GenEval's rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image

from latentbench.config import parse_choice
from latentbench.geneval import Box, Detection, GenevalRules, geneval_name
from latentbench.hub import load_pretrained, pretrained_source


class DetectorKind(str, Enum):
    MASK2FORMER = "mask2former"
    OWLV2 = "owlv2"


OPTION = "--detector-model FOLDER"
DEFAULT_MODELS = {
    DetectorKind.MASK2FORMER: "facebook/mask2former-swin-small-coco-instance",
    DetectorKind.OWLV2: "google/owlv2-base-patch16-ensemble",
}
OWLV2_RULES = GenevalRules(threshold=0.1, counting_threshold=0.3)


@dataclass(frozen=True)
class ObjectDetection:
    name: str
    box: Box  # (x0, y0, x1, y1) pixels
    score: float
    mask: np.ndarray | None = field(default=None, compare=False, repr=False)  # (H, W) bool

    def to_detection(self, color: str | None = None) -> Detection:
        return Detection(self.name, self.box, color, self.score)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "box": [round(v, 2) for v in self.box], "score": self.score}


class ObjectDetector(Protocol):
    name: str
    variant: dict[str, Any]
    default_rules: GenevalRules

    def detect(self, image: Image.Image, classes: Sequence[str]) -> list[ObjectDetection]:
        """Objects in ``image``; ``classes`` is the vocabulary (closed-set detectors ignore it)."""
        ...


def mask_box(mask: np.ndarray) -> Box | None:
    """Tight box (x0, y0, x1, y1) of a (H, W) bool mask, x1/y1 exclusive; None when empty."""
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return None
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def _device(device: str | torch.device | None) -> torch.device:
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


class Mask2FormerDetector:
    """COCO instance segmentation with Mask2Former (closed set: the model's ``id2label``)."""

    default_rules = GenevalRules()

    def __init__(
        self,
        model: str | None = None,
        *,
        device: str | torch.device | None = None,
        mask_threshold: float = 0.5,
    ) -> None:
        from transformers import AutoImageProcessor, Mask2FormerForUniversalSegmentation

        model = model or DEFAULT_MODELS[DetectorKind.MASK2FORMER]
        path, weights = pretrained_source(model)
        net = load_pretrained(
            Mask2FormerForUniversalSegmentation, path, "Mask2Former model", option=OPTION
        )
        self.processor = load_pretrained(
            AutoImageProcessor, path, "Mask2Former processor", option=OPTION
        )
        self.device = _device(device)
        self.model = net.eval().requires_grad_(False).to(self.device)
        self.labels = {int(k): geneval_name(str(v)) for k, v in net.config.id2label.items()}
        self.classes = sorted(set(self.labels.values()))  # what it can name (closed set)
        self.mask_threshold = mask_threshold
        self.name = f"mask2former:{short_name(model)}"
        self.variant = {
            "name": DetectorKind.MASK2FORMER.value,
            "model": "transformers Mask2FormerForUniversalSegmentation",
            "weights": weights,
            "resize": _size_of(self.processor),
            "num_queries": int(net.config.num_queries),
            "postprocess": "post_process_instance_segmentation(threshold=0, mask_threshold="
            f"{mask_threshold}); box = tight box of the mask",
        }

    @torch.no_grad()
    def detect(self, image: Image.Image, classes: Sequence[str] = ()) -> list[ObjectDetection]:
        image = image.convert("RGB")
        w, h = image.size
        inputs = self.processor(images=[image], return_tensors="pt")
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        out = self.model(**inputs)
        result = self.processor.post_process_instance_segmentation(
            out,
            threshold=0.0,
            mask_threshold=self.mask_threshold,
            target_sizes=[(h, w)],
            return_binary_maps=True,
        )[0]
        seg, infos = result["segmentation"], result["segments_info"]
        found = []
        for k, info in enumerate(infos):
            mask = (seg[k] > 0).cpu().numpy() if seg is not None and seg.dim() == 3 else None
            if mask is None:
                continue
            box = mask_box(mask)
            if box is None:
                continue
            name = self.labels.get(int(info["label_id"]), str(info["label_id"]))
            found.append(ObjectDetection(name, box, float(info["score"]), mask))
        return found


class Owlv2Detector:
    """Open-vocabulary detection with OWLv2, queried with the suite's class names."""

    default_rules = OWLV2_RULES

    def __init__(
        self,
        model: str | None = None,
        *,
        device: str | torch.device | None = None,
        template: str = "a photo of a {}",
        nms_iou: float = 0.3,
        min_score: float = 0.05,
    ) -> None:
        from transformers import Owlv2ForObjectDetection, Owlv2Processor

        model = model or DEFAULT_MODELS[DetectorKind.OWLV2]
        path, weights = pretrained_source(model)
        net = load_pretrained(Owlv2ForObjectDetection, path, "OWLv2 model", option=OPTION)
        self.processor = load_pretrained(Owlv2Processor, path, "OWLv2 processor", option=OPTION)
        self.device = _device(device)
        self.model = net.eval().requires_grad_(False).to(self.device)
        self.template, self.nms_iou, self.min_score = template, nms_iou, min_score
        self.name = f"owlv2:{short_name(model)}"
        self.variant = {
            "name": DetectorKind.OWLV2.value,
            "model": "transformers Owlv2ForObjectDetection",
            "weights": weights,
            "resize": _size_of(self.processor.image_processor) + " (padded to a square first)",
            "query_template": template,
            "nms_iou": nms_iou,
            "min_score": min_score,
        }

    @torch.no_grad()
    def detect(self, image: Image.Image, classes: Sequence[str]) -> list[ObjectDetection]:
        from torchvision.ops import batched_nms

        if not classes:
            return []
        image = image.convert("RGB")
        w, h = image.size
        side = max(w, h)  # OWLv2 pads to a square (bottom/right), boxes are relative to it
        queries = [self.template.format(c) for c in classes]
        max_len = int(self.model.config.text_config.max_position_embeddings)
        inputs = self.processor(
            text=[queries],
            images=[image],
            return_tensors="pt",
            padding="max_length",
            truncation=True,
            max_length=max_len,
        )
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        out = self.model(**inputs)
        res = self.processor.image_processor.post_process_object_detection(
            out, threshold=self.min_score, target_sizes=[(side, side)]
        )[0]
        boxes, scores, labels = res["boxes"].float(), res["scores"].float(), res["labels"]
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        boxes, scores, labels = boxes[valid], scores[valid], labels[valid]
        if self.nms_iou < 1.0 and len(boxes):
            keep = batched_nms(boxes, scores, labels, self.nms_iou)
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        return [
            ObjectDetection(classes[int(lab)], tuple(float(v) for v in b), float(s))  # type: ignore[arg-type]
            for b, s, lab in zip(boxes.cpu(), scores.cpu(), labels.cpu())
        ]


def short_name(model: str) -> str:
    """The last part of a hub id or folder, for labels ("mask2former-swin-small-coco-instance")."""
    return str(model).rstrip("/").split("/")[-1]


def _size_of(processor: Any) -> str:
    size = getattr(processor, "size", None)
    return f"processor size {dict(size) if hasattr(size, 'keys') else size}"


def build_detector(
    kind: DetectorKind | str, model: str | None = None, *, device: str | torch.device | None = None
) -> Mask2FormerDetector | Owlv2Detector:
    """A detector by kind (``mask2former`` or ``owlv2``), from a hub id or a local folder."""
    kind = parse_choice(DetectorKind, kind, "--detector") if isinstance(kind, str) else kind
    if kind is DetectorKind.MASK2FORMER:
        return Mask2FormerDetector(model, device=device)
    return Owlv2Detector(model, device=device)
