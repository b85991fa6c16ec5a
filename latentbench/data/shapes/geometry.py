"""Shape outlines and extents, boxes, the 3x3 regions, relations that hold with a margin."""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np

from latentbench.data.shapes.vocabulary import REGION_MARGIN, Region, Shape
from latentbench.geneval import Box, Relation, relative_position


def _regular_polygon(n: int, radius: float, start_deg: float) -> list[tuple[float, float]]:
    """Vertices counter-clockwise from ``start_deg`` (0 = right, 90 = up), in y-down coordinates."""
    angles = np.radians(start_deg + 360.0 * np.arange(n) / n)
    return [(radius * math.cos(a), -radius * math.sin(a)) for a in angles]


def _centre_box(points: list[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    """Shift points so their bounding box is centred on the origin; scale its long side to 1."""
    xs, ys = zip(*points, strict=True)
    ox, oy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    scale = max(max(xs) - min(xs), max(ys) - min(ys))
    return tuple(((x - ox) / scale, (y - oy) / scale) for x, y in points)


def _star_outline(points: int = 5, inner_ratio: float = 0.45) -> list[tuple[float, float]]:
    angles = np.radians(90.0 + 180.0 / points * np.arange(2 * points))
    radii = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner_ratio)
    return [(r * math.cos(a), -r * math.sin(a)) for r, a in zip(radii, angles, strict=True)]


def _cross_outline(arm: float = 1 / 3) -> list[tuple[float, float]]:
    a = arm / 2
    return [
        (-a, -0.5),
        (a, -0.5),
        (a, -a),
        (0.5, -a),
        (0.5, a),
        (a, a),
        (a, 0.5),
        (-a, 0.5),
        (-a, a),
        (-0.5, a),
        (-0.5, -a),
        (-a, -a),
    ]


# Outlines in units of the object's size, bounding box centred on the origin (None = the circle).
SHAPE_OUTLINE: Mapping[Shape, tuple[tuple[float, float], ...] | None] = MappingProxyType(
    {
        Shape.CIRCLE: None,
        Shape.SQUARE: _centre_box([(-1, -1), (1, -1), (1, 1), (-1, 1)]),
        Shape.TRIANGLE: _centre_box(_regular_polygon(3, 1.0, 90.0)),
        Shape.STAR: _centre_box(_star_outline()),
        Shape.HEXAGON: _centre_box(_regular_polygon(6, 1.0, 90.0)),
        Shape.CROSS: _centre_box(_cross_outline()),
    }
)


def _outline_extent(outline: tuple[tuple[float, float], ...] | None) -> tuple[float, float]:
    if outline is None:
        return 1.0, 1.0
    xs, ys = zip(*outline, strict=True)
    return max(xs) - min(xs), max(ys) - min(ys)


_SHAPE_EXTENT = MappingProxyType({s: _outline_extent(o) for s, o in SHAPE_OUTLINE.items()})


def shape_extent(shape: Shape) -> tuple[float, float]:
    """(width, height) of the shape's bounding box in units of its size (long side = 1)."""
    return _SHAPE_EXTENT[shape]


def boxes_clash(a: Box, b: Box, gap: float) -> bool:
    """True when boxes a and b are closer than ``gap`` on both axes (i.e. they overlap)."""
    return a[0] < b[2] + gap and b[0] < a[2] + gap and a[1] < b[3] + gap and b[1] < a[3] + gap


def box_at(shape: Shape, size: float, cx: float, cy: float) -> Box:
    w, h = shape_extent(shape)
    return cx - w * size / 2, cy - h * size / 2, cx + w * size / 2, cy + h * size / 2


def region_of(cx: float, cy: float, margin: float = REGION_MARGIN) -> Region | None:
    """The 3x3 cell holding (cx, cy), or None when the point is within ``margin`` of a border."""
    col, row = min(int(cx * 3), 2), min(int(cy * 3), 2)
    fx, fy = cx * 3 - col, cy * 3 - row  # position inside the cell, in cell units
    m = margin * 3
    inner_x = (col == 0 or fx >= m) and (col == 2 or fx <= 1 - m)
    inner_y = (row == 0 or fy >= m) and (row == 2 or fy <= 1 - m)
    if not (inner_x and inner_y and 0 <= cx <= 1 and 0 <= cy <= 1):
        return None
    return list(Region)[row * 3 + col]


def strict_relations(box_a: Box, box_b: Box) -> set[Relation]:
    """Relations of A to B that hold with a safety margin over GenEval's rule.

    Uses GenEval's ``relative_position`` with a 0.15 (not 0.1) size margin and a 0.6 (not 0.5)
    direction cut-off, so they still hold when a detector's boxes are off by a pixel.
    """
    return relative_position(box_a, box_b, threshold=0.15, cutoff=0.6)
