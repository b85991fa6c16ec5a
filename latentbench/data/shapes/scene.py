"""The scene graph (objects on a background) and how random scenes are drawn."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from latentbench.data.shapes.geometry import box_at, boxes_clash, region_of, shape_extent
from latentbench.data.shapes.vocabulary import (
    BackgroundColor,
    Color,
    Region,
    Shape,
    Texture,
    parse_enum,
)
from latentbench.geneval import Box


@dataclass(frozen=True)
class ShapeObject:
    shape: Shape
    color: Color
    texture: Texture
    cx: float
    cy: float
    size: float

    @property
    def box(self) -> Box:
        """Bounding box (x0, y0, x1, y1) in fractions of the image side."""
        w, h = shape_extent(self.shape)
        w, h = w * self.size, h * self.size
        return self.cx - w / 2, self.cy - h / 2, self.cx + w / 2, self.cy + h / 2

    @property
    def region(self) -> Region | None:
        return region_of(self.cx, self.cy)

    def noun(self, *, color: bool = True, texture: bool = False) -> str:
        """'red circle', 'striped red circle' (texture first, then color, then shape)."""
        words = [self.texture.adjective] if texture else []
        words += [self.color.value] if color else []
        return " ".join([*words, self.shape.value])

    def to_dict(self) -> dict[str, Any]:
        return {
            "shape": self.shape.value,
            "color": self.color.value,
            "texture": self.texture.value,
            "cx": self.cx,  # full precision: JSON floats round-trip exactly
            "cy": self.cy,
            "size": self.size,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ShapeObject:
        return cls(
            shape=parse_enum(Shape, d["shape"]),
            color=parse_enum(Color, d["color"]),
            texture=parse_enum(Texture, d.get("texture", "plain")),
            cx=float(d["cx"]),
            cy=float(d["cy"]),
            size=float(d["size"]),
        )


@dataclass(frozen=True)
class Scene:
    objects: tuple[ShapeObject, ...]
    background: BackgroundColor = BackgroundColor.GRAY
    background_texture: Texture = Texture.PLAIN

    def with_object(self, index: int, obj: ShapeObject) -> Scene:
        objects = list(self.objects)
        objects[index] = obj
        return dataclasses.replace(self, objects=tuple(objects))

    def to_dict(self) -> dict[str, Any]:
        return {
            "objects": [o.to_dict() for o in self.objects],
            "background": self.background.value,
            "background_texture": self.background_texture.value,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Scene:
        return cls(
            objects=tuple(ShapeObject.from_dict(o) for o in d["objects"]),
            background=parse_enum(BackgroundColor, d.get("background", "gray")),
            background_texture=parse_enum(Texture, d.get("background_texture", "plain")),
        )


@dataclass(frozen=True)
class SceneConfig:
    """How random scenes are drawn. Sizes are fractions of the image side (long box side).

    The default size floor (0.25 of the side, 16 px at 64 px) is what the analytic detector
    needs to tell a hexagon from a circle reliably at 64 px.
    """

    min_objects: int = 1
    max_objects: int = 4
    # size range for scenes of 1, 2, 3 and 4 objects
    sizes: tuple[tuple[float, float], ...] = (
        (0.30, 0.50),
        (0.26, 0.40),
        (0.25, 0.33),
        (0.25, 0.31),
    )
    gap: float = 0.05  # minimum gap between two bounding boxes
    margin: float = 0.03  # minimum gap between a bounding box and the image border
    object_texture_p: float = 0.5  # probability that an object is textured
    background_texture_p: float = 0.5
    max_tries: int = 2000

    def size_range(self, n_objects: int) -> tuple[float, float]:
        return self.sizes[min(max(n_objects, 1), len(self.sizes)) - 1]


def choice(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    return options[int(rng.integers(len(options)))]


def random_texture(rng: np.random.Generator, p_textured: float) -> Texture:
    if rng.random() >= p_textured:
        return Texture.PLAIN
    return choice(rng, [t for t in Texture if t is not Texture.PLAIN])


def sample_centre(
    rng: np.random.Generator, shape: Shape, size: float, margin: float, area: Box = (0, 0, 1, 1)
) -> tuple[float, float] | None:
    """A centre inside ``area`` that keeps the box ``margin`` inside the image, or None."""
    w, h = shape_extent(shape)
    w, h = w * size, h * size
    lo_x, hi_x = max(area[0], margin + w / 2), min(area[2], 1 - margin - w / 2)
    lo_y, hi_y = max(area[1], margin + h / 2), min(area[3], 1 - margin - h / 2)
    if lo_x > hi_x or lo_y > hi_y:
        return None
    return float(rng.uniform(lo_x, hi_x)), float(rng.uniform(lo_y, hi_y))


def place_objects(
    rng: np.random.Generator,
    items: Sequence[tuple[Shape, float]],
    config: SceneConfig,
    *,
    accept: Callable[[list[Box]], bool] | None = None,
    fixed: Sequence[Box] = (),
) -> list[tuple[float, float]]:
    """Centres for objects (shape, size) that clash with nothing (nor ``fixed``), where
    ``accept(boxes)`` holds. Rejection sampling; raises RuntimeError if no layout is found."""
    for _ in range(config.max_tries):
        centres: list[tuple[float, float]] = []
        boxes = list(fixed)
        for shape, size in items:
            for _ in range(50):
                c = sample_centre(rng, shape, size, config.margin)
                if c is None:
                    break
                box = box_at(shape, size, *c)
                if not any(boxes_clash(box, b, config.gap) for b in boxes):
                    centres.append(c)
                    boxes.append(box)
                    break
            else:
                break
        if len(centres) == len(items) and (accept is None or accept(boxes[len(fixed) :])):
            return centres
    raise RuntimeError(f"no layout found for {len(items)} objects in {config.max_tries} tries")


def sample_scene(
    rng: np.random.Generator,
    config: SceneConfig = SceneConfig(),
    *,
    n_objects: int | None = None,
) -> Scene:
    """A random scene: 1-4 objects of random shape, color, texture, size and position."""
    n = (
        int(rng.integers(config.min_objects, config.max_objects + 1))
        if n_objects is None
        else n_objects
    )
    lo, hi = config.size_range(n)
    shapes = [choice(rng, list(Shape)) for _ in range(n)]
    colors = [choice(rng, list(Color)) for _ in range(n)]
    textures = [random_texture(rng, config.object_texture_p) for _ in range(n)]
    sizes = [float(rng.uniform(lo, hi)) for _ in range(n)]
    centres = place_objects(rng, list(zip(shapes, sizes, strict=True)), config)
    objects = tuple(
        ShapeObject(s, c, t, cx, cy, z)
        for s, c, t, z, (cx, cy) in zip(shapes, colors, textures, sizes, centres, strict=True)
    )
    return Scene(
        objects,
        background=choice(rng, list(BackgroundColor)),
        background_texture=random_texture(rng, config.background_texture_p),
    )
