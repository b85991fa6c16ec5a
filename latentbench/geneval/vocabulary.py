"""GenEval's vocabulary: its suites, tasks, relations, colours and object names.

The six tasks are named by the ``tag`` of a metadata entry; relations by the ``position`` clause
of one (``["left of", 0]``); colours and object names as GenEval's ``object_names.txt`` and
``COLORS`` spell them.
"""

from __future__ import annotations

from enum import Enum


class GenSuite(str, Enum):
    """The prompt suites ``eval-gen`` scores: GenEval's own metadata (``geneval``), or prompts of
    the Shapes world judged by its analytic detector (``geneval-shapes``)."""

    GENEVAL = "geneval"
    GENEVAL_SHAPES = "geneval-shapes"


class GenevalTask(str, Enum):
    """The six GenEval tasks, by their metadata tags, in GenEval's order."""

    SINGLE_OBJECT = "single_object"
    TWO_OBJECT = "two_object"
    COUNTING = "counting"
    COLORS = "colors"
    POSITION = "position"
    COLOR_ATTR = "color_attr"


class Relation(str, Enum):
    LEFT_OF = "left of"
    RIGHT_OF = "right of"
    ABOVE = "above"
    BELOW = "below"


GENEVAL_COLORS = (
    "red",
    "orange",
    "yellow",
    "green",
    "blue",
    "purple",
    "pink",
    "brown",
    "black",
    "white",
)


# COCO's 80 instance categories as detectors trained on COCO name them (a Mask2Former's
# ``id2label``), in COCO's order -> GenEval's object names (its ``object_names.txt``, in the same
# order: the official evaluation names a detection by class index). Three names differ.
COCO_TO_GENEVAL: dict[str, str] = {
    "person": "person",
    "bicycle": "bicycle",
    "car": "car",
    "motorcycle": "motorcycle",
    "airplane": "airplane",
    "bus": "bus",
    "train": "train",
    "truck": "truck",
    "boat": "boat",
    "traffic light": "traffic light",
    "fire hydrant": "fire hydrant",
    "stop sign": "stop sign",
    "parking meter": "parking meter",
    "bench": "bench",
    "bird": "bird",
    "cat": "cat",
    "dog": "dog",
    "horse": "horse",
    "sheep": "sheep",
    "cow": "cow",
    "elephant": "elephant",
    "bear": "bear",
    "zebra": "zebra",
    "giraffe": "giraffe",
    "backpack": "backpack",
    "umbrella": "umbrella",
    "handbag": "handbag",
    "tie": "tie",
    "suitcase": "suitcase",
    "frisbee": "frisbee",
    "skis": "skis",
    "snowboard": "snowboard",
    "sports ball": "sports ball",
    "kite": "kite",
    "baseball bat": "baseball bat",
    "baseball glove": "baseball glove",
    "skateboard": "skateboard",
    "surfboard": "surfboard",
    "tennis racket": "tennis racket",
    "bottle": "bottle",
    "wine glass": "wine glass",
    "cup": "cup",
    "fork": "fork",
    "knife": "knife",
    "spoon": "spoon",
    "bowl": "bowl",
    "banana": "banana",
    "apple": "apple",
    "sandwich": "sandwich",
    "orange": "orange",
    "broccoli": "broccoli",
    "carrot": "carrot",
    "hot dog": "hot dog",
    "pizza": "pizza",
    "donut": "donut",
    "cake": "cake",
    "chair": "chair",
    "couch": "couch",
    "potted plant": "potted plant",
    "bed": "bed",
    "dining table": "dining table",
    "toilet": "toilet",
    "tv": "tv",
    "laptop": "laptop",
    "mouse": "computer mouse",
    "remote": "tv remote",
    "keyboard": "computer keyboard",
    "cell phone": "cell phone",
    "microwave": "microwave",
    "oven": "oven",
    "toaster": "toaster",
    "sink": "sink",
    "refrigerator": "refrigerator",
    "book": "book",
    "clock": "clock",
    "vase": "vase",
    "scissors": "scissors",
    "teddy bear": "teddy bear",
    "hair drier": "hair drier",
    "toothbrush": "toothbrush",
}


def geneval_name(label: str) -> str:
    """GenEval's object name for a detector's class ``label`` ("keyboard" -> "computer keyboard";
    "potted_plant" -> "potted plant"); a label that is not a COCO category is returned as is."""
    return COCO_TO_GENEVAL.get(label.strip().lower().replace("_", " "), label)
