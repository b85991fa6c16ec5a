"""GenEval, low level: its vocabulary, rules, metadata and folder layout; no detector, no model.

GenEval (Ghosh et al., 2023) scores a text-to-image model by detecting the objects of its
images and checking each prompt's metadata entry. What does not depend on how objects are
detected lives here, below both the Shapes world (:mod:`latentbench.data.shapes`, which writes
prompt suites and their ground truth) and the judges (:mod:`latentbench.metrics.geneval`):

- :mod:`~latentbench.geneval.vocabulary`: suites, the six tasks, relations, colours, names;
- :mod:`~latentbench.geneval.rules`: GenEval's rules on a list of :class:`Detection`, and the
  per-task summary;
- :mod:`~latentbench.geneval.metadata`: the metadata entry's schema and ``.jsonl`` files;
- :mod:`~latentbench.geneval.layout`: ``DIR/<index:05d>/metadata.jsonl`` +
  ``samples/<k:04d>.png``, read and written.
"""

from latentbench.geneval.layout import PromptImages, sample_path, scan_folder, write_prompt
from latentbench.geneval.metadata import (
    Skipped,
    check_entry,
    read_entries,
    validate_entry,
    write_metadata,
)
from latentbench.geneval.rules import (
    Box,
    Detection,
    GenevalRules,
    GenevalSummary,
    TaskScore,
    evaluate_entry,
    group_detections,
    relative_position,
    summarise,
)
from latentbench.geneval.vocabulary import (
    COCO_TO_GENEVAL,
    GENEVAL_COLORS,
    GenevalTask,
    GenSuite,
    Relation,
    geneval_name,
)

__all__ = [
    "COCO_TO_GENEVAL",
    "GENEVAL_COLORS",
    "Box",
    "Detection",
    "GenSuite",
    "GenevalRules",
    "GenevalSummary",
    "GenevalTask",
    "PromptImages",
    "Relation",
    "Skipped",
    "TaskScore",
    "check_entry",
    "evaluate_entry",
    "geneval_name",
    "group_detections",
    "read_entries",
    "relative_position",
    "sample_path",
    "scan_folder",
    "summarise",
    "validate_entry",
    "write_metadata",
    "write_prompt",
]
