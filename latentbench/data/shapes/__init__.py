"""Shapes: a procedural compositional world with exact ground truth for generation and editing.

A scene is 1-4 flat objects (6 shapes x 10 GenEval colors x 4 textures) on a plain or textured
background. Captions, GenEval prompts and edit instructions are all derived from the scene
graph, so every question about an image has an exact answer, and the analytic detector in
:mod:`latentbench.metrics.shapes_detector` checks generated images without any download.

Conventions
-----------
- Coordinates are fractions of the image side: x to the right, y down, (0, 0) the top-left
  corner. An object's ``size`` is the longer side of its bounding box; (cx, cy) is the centre of
  that box. Shapes are drawn upright (no rotation): the triangle and the star point up, the
  hexagon has a vertex at the top, the cross is a plus sign with arms 1/3 of its size wide.
- Textures are two-tone: the base paint and a "tone" of the same color name (a darker or
  lighter shade), in diagonal stripes, a checkerboard or a dot lattice. An object's pattern is
  anchored to the object and scales with it (about 3 stripe periods across an object); a
  background pattern is anchored to the image.
- Objects never overlap: bounding boxes keep a gap of ``SceneConfig.gap`` (0.05 of the image
  side) so that the detector sees them as separate components at 64 px.
- Regions are the nine cells of a 3x3 grid over object centres ("top left" ... "bottom right");
  captions and instructions name a region only when the centre is at least
  ``REGION_MARGIN`` away from the cell's borders.
- Randomness: every sampler takes a ``numpy.random.Generator``. Datasets seed one generator per
  item from ``(seed, index, stream)``, so an item never depends on the order items are read in.

Rendering draws each scene at ``supersample`` (default 4) times the target size with hard edges
(PIL) and box-downsamples it, which anti-aliases edges and textures; it is deterministic.

Modules, by concern: :mod:`.vocabulary` (shapes, colors, paint, textures, regions),
:mod:`.geometry` (outlines, boxes, regions, relations), :mod:`.scene` (the scene graph and random
scenes), :mod:`.render`, :mod:`.captions`, :mod:`.suites` (GenEval prompt suites and their
oracle scenes), :mod:`.edits`, :mod:`.datasets` (the data interface) and :mod:`.writer`
(``latentbench data shapes``). The names below are the world's public API.
"""

from latentbench.data.shapes.captions import caption
from latentbench.data.shapes.datasets import (
    ShapesDataset,
    ShapesEditsDataset,
    item_rng,
    single_object_dataset,
)
from latentbench.data.shapes.edits import Edit, EditCategory, sample_edit
from latentbench.data.shapes.render import ShapesRenderer
from latentbench.data.shapes.scene import Scene, SceneConfig, ShapeObject, sample_scene
from latentbench.data.shapes.suites import geneval_suite, oracle_rng, oracle_scene
from latentbench.data.shapes.vocabulary import BackgroundColor, Color, Region, Shape, Texture
from latentbench.data.shapes.writer import WriteSummary, write_dataset, write_oracle_layout

__all__ = [
    "BackgroundColor",
    "Color",
    "Edit",
    "EditCategory",
    "Region",
    "Scene",
    "SceneConfig",
    "Shape",
    "ShapeObject",
    "ShapesDataset",
    "ShapesEditsDataset",
    "ShapesRenderer",
    "Texture",
    "WriteSummary",
    "caption",
    "geneval_suite",
    "item_rng",
    "oracle_rng",
    "oracle_scene",
    "sample_edit",
    "sample_scene",
    "single_object_dataset",
    "write_dataset",
    "write_oracle_layout",
]
