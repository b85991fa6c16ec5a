"""Open detectors on tiny random Mask2Former / OWLv2 models loaded from local folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.ops import box_iou

from latentbench.errors import UserError
from latentbench.geneval import (
    COCO_TO_GENEVAL,
    GenevalRules,
    evaluate_entry,
    geneval_name,
)
from latentbench.metrics.detectors import (
    DetectorKind,
    Mask2FormerDetector,
    Owlv2Detector,
    build_detector,
    mask_box,
)
from latentbench.testing.standins import write_detector_standin

CLASSES = ["cat", "dog", "bird"]
# GenEval's prompts/object_names.txt (djghosh13/geneval), in its order: every class its
# evaluation_metadata.jsonl names is one of these 80.
GENEVAL_OBJECT_NAMES = [
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "computer mouse",
    "tv remote",
    "computer keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("detectors")
    return {
        k.value: write_detector_standin(k, root / k.value, CLASSES, seed=1) for k in DetectorKind
    }


def _image(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_mask_box() -> None:
    m = np.zeros((10, 12), bool)
    m[2:5, 3:9] = True
    assert mask_box(m) == (3.0, 2.0, 9.0, 5.0)
    assert mask_box(np.zeros((4, 4), bool)) is None


def test_mask2former_instances_have_masks_and_tight_boxes(folders: dict[str, Path]) -> None:
    det = build_detector("mask2former", str(folders["mask2former"]), device="cpu")
    assert isinstance(det, Mask2FormerDetector) and det.default_rules == GenevalRules()
    found = det.detect(_image(48, 40))
    assert found, "the stand-in's queries give instances at threshold 0"
    for o in found:
        assert o.name in CLASSES and 0 <= o.score <= 1
        assert o.mask is not None and o.mask.shape == (40, 48)
        assert o.box == mask_box(o.mask)
        assert o.to_detection("red").color == "red"
    assert det.detect(_image(48, 40)) == found  # deterministic
    assert det.variant["weights"]["folder"] and det.variant["num_queries"] == 10


def test_owlv2_boxes_are_clipped_and_deduplicated(folders: dict[str, Path]) -> None:
    det = build_detector(DetectorKind.OWLV2, str(folders["owlv2"]), device="cpu")
    assert isinstance(det, Owlv2Detector) and det.default_rules.threshold == 0.1
    det.min_score = 0.0
    found = det.detect(_image(60, 36), ["cat", "dog"])
    assert found and {o.name for o in found} <= {"cat", "dog"}
    for o in found:
        x0, y0, x1, y1 = o.box
        assert 0 <= x0 < x1 <= 60 and 0 <= y0 < y1 <= 36 and o.mask is None
    for name in ("cat", "dog"):
        boxes = torch.tensor([o.box for o in found if o.name == name]).reshape(-1, 4)
        iou = box_iou(boxes, boxes).fill_diagonal_(0)
        assert (iou <= det.nms_iou + 1e-6).all()
    assert det.detect(_image(60, 36), []) == []


def test_detector_errors_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="mask2former, owlv2"):
        build_detector("yolo")
    with pytest.raises(UserError, match="local folder"):
        build_detector("owlv2", "google/owlv2-not-here")
    with pytest.raises(UserError):
        build_detector("mask2former", str(tmp_path))


def test_coco_labels_map_one_to_one_onto_genevals_object_names() -> None:
    assert len(GENEVAL_OBJECT_NAMES) == len(set(GENEVAL_OBJECT_NAMES)) == 80
    # GenEval names a detection by its list at the COCO class index: the same map, by name
    assert list(COCO_TO_GENEVAL.values()) == GENEVAL_OBJECT_NAMES
    assert len(COCO_TO_GENEVAL) == 80  # 80 distinct COCO names onto 80 distinct GenEval names
    renamed = {k: v for k, v in COCO_TO_GENEVAL.items() if k != v}
    assert renamed == {
        "mouse": "computer mouse",
        "remote": "tv remote",
        "keyboard": "computer keyboard",
    }
    assert all(geneval_name(v) == v for v in GENEVAL_OBJECT_NAMES)  # already GenEval's: kept
    assert geneval_name("potted_plant") == "potted plant" and geneval_name("unicorn") == "unicorn"


def test_a_keyboard_detection_satisfies_a_computer_keyboard_prompt(tmp_path: Path) -> None:
    folder = write_detector_standin("mask2former", tmp_path / "m2f", ["keyboard"], seed=1)
    det = build_detector("mask2former", str(folder), device="cpu")
    assert det.classes == ["computer keyboard"]
    found = det.detect(_image(48, 40))
    assert found and {o.name for o in found} == {"computer keyboard"}
    entry = {
        "tag": "single_object",
        "prompt": "a photo of a computer keyboard",
        "include": [{"class": "computer keyboard", "count": 1}],
    }
    rules = GenevalRules(threshold=0.0)  # the stand-in's scores are meaningless
    assert evaluate_entry([o.to_detection() for o in found], entry, rules)[0]
