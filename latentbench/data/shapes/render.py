"""Rendering scenes: hard-edged PIL drawing at ``supersample`` times the size, box-downsampled."""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw

from latentbench.data.shapes.geometry import SHAPE_OUTLINE
from latentbench.data.shapes.scene import Scene, ShapeObject
from latentbench.data.shapes.vocabulary import (
    BACKGROUND_PAINT,
    COLOR_PAINT,
    BackgroundColor,
    Color,
    Shape,
    Texture,
)
from latentbench.errors import UserError

# Pattern geometry, in units of the object's size (objects) or the image side x 0.35 (backgrounds)
STRIPE_PERIOD = 0.30  # spacing of the diagonal stripes, measured across them
CHECK_SIDE = 0.25  # side of one checkerboard square
DOT_SPACING = 0.30  # spacing of the dot lattice
DOT_RADIUS = 0.09
BACKGROUND_PATTERN_SCALE = 0.35


def texture_pattern(texture: Texture, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean tone mask of a texture at pattern coordinates (u, v) (x right, y down)."""
    if texture is Texture.PLAIN:
        return np.zeros(np.broadcast(u, v).shape, dtype=bool)
    if texture is Texture.STRIPES:  # constant along (1, -1): the stripes run up and to the right
        phase = (u + v) / (STRIPE_PERIOD * math.sqrt(2))
        return (phase - np.floor(phase)) < 0.5
    if texture is Texture.CHECKS:
        return ((np.floor(u / CHECK_SIDE) + np.floor(v / CHECK_SIDE)) % 2) == 1
    du = u / DOT_SPACING - np.round(u / DOT_SPACING)
    dv = v / DOT_SPACING - np.round(v / DOT_SPACING)
    return (du * du + dv * dv) * DOT_SPACING**2 < DOT_RADIUS**2


class ShapesRenderer:
    """Renders scenes to (S, S, 3) uint8 arrays, anti-aliased by ``supersample``-fold drawing."""

    def __init__(self, image_size: int, supersample: int = 4) -> None:
        if image_size < 16:
            raise UserError(f"image size {image_size} is too small for the Shapes world; use >= 16")
        if supersample < 1:
            raise UserError(f"supersample must be >= 1, got {supersample}")
        self.image_size = int(image_size)
        self.supersample = int(supersample)
        self._side = self.image_size * self.supersample
        # background tone masks, anchored to the image: (W, W) 'L' images
        centres = (np.arange(self._side) + 0.5) / self._side / BACKGROUND_PATTERN_SCALE
        u, v = np.meshgrid(centres, centres)
        self._background_masks = {
            t: Image.fromarray((texture_pattern(t, u, v) * 255).astype(np.uint8))
            for t in Texture
            if t is not Texture.PLAIN
        }
        # supersampled backgrounds, made on first use (at most 5 x 4 canvases)
        self._backgrounds: dict[tuple[BackgroundColor, Texture], Image.Image] = {}

    def _background(self, color: BackgroundColor, texture: Texture) -> Image.Image:
        key = (color, texture)
        if key not in self._backgrounds:
            paint = BACKGROUND_PAINT[color]
            canvas = Image.new("RGB", (self._side, self._side), paint.base)
            if texture is not Texture.PLAIN:
                canvas.paste(
                    paint.tone, (0, 0, self._side, self._side), self._background_masks[texture]
                )
            self._backgrounds[key] = canvas
        return self._backgrounds[key]

    def render(self, scene: Scene) -> np.ndarray:
        """(S, S, 3) uint8."""
        canvas = self._background(scene.background, scene.background_texture).copy()
        for obj in scene.objects:
            self._draw(canvas, obj)
        if self.supersample > 1:
            canvas = canvas.reduce(self.supersample)
        return np.array(canvas)  # a writable copy

    def render_tensor(self, scene: Scene) -> torch.Tensor:
        """(3, S, S) float32 in [-1, 1]."""
        return to_tensor(self.render(scene))

    def coverage(self, shape: Shape, cx: float, cy: float, size: float) -> np.ndarray:
        """(S, S) float in [0, 1]: the fraction of each pixel that the shape covers."""
        mask = Image.new("L", (self._side, self._side), 0)
        local, (x0, y0) = self._shape_mask(
            ShapeObject(shape, Color.WHITE, Texture.PLAIN, cx, cy, size)
        )
        if local is not None:
            mask.paste(local, (x0, y0))
        if self.supersample > 1:
            mask = mask.reduce(self.supersample)
        return np.asarray(mask, dtype=np.float32) / 255.0

    def _shape_mask(self, obj: ShapeObject) -> tuple[Image.Image | None, tuple[int, int]]:
        """The object's hard mask at supersampled resolution, cropped to its box (clipped)."""
        side = self._side
        x0, y0, x1, y1 = (v * side for v in obj.box)
        ix0, iy0 = max(int(math.floor(x0)) - 1, 0), max(int(math.floor(y0)) - 1, 0)
        ix1, iy1 = min(int(math.ceil(x1)) + 1, side), min(int(math.ceil(y1)) + 1, side)
        if ix1 <= ix0 or iy1 <= iy0:
            return None, (0, 0)
        local = Image.new("L", (ix1 - ix0, iy1 - iy0), 0)
        draw = ImageDraw.Draw(local)
        outline = SHAPE_OUTLINE[obj.shape]
        if outline is None:
            draw.ellipse([x0 - ix0, y0 - iy0, x1 - ix0, y1 - iy0], fill=255)
        else:
            s, cx, cy = obj.size * side, obj.cx * side - ix0, obj.cy * side - iy0
            draw.polygon([(cx + px * s, cy + py * s) for px, py in outline], fill=255)
        return local, (ix0, iy0)

    def _draw(self, canvas: Image.Image, obj: ShapeObject) -> None:
        local, (ix0, iy0) = self._shape_mask(obj)
        if local is None:
            return
        box = (ix0, iy0, ix0 + local.width, iy0 + local.height)
        paint = COLOR_PAINT[obj.color]
        canvas.paste(paint.base, box, local)
        if obj.texture is Texture.PLAIN:
            return
        scale = obj.size * self._side
        u = (np.arange(box[0], box[2]) + 0.5 - obj.cx * self._side) / scale
        v = (np.arange(box[1], box[3]) + 0.5 - obj.cy * self._side) / scale
        pattern = texture_pattern(obj.texture, u[None, :], v[:, None])  # (h, w)
        tone = np.where(pattern, np.asarray(local), 0).astype(np.uint8)
        canvas.paste(paint.tone, box, Image.fromarray(tone))


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """(S, S, 3) uint8 -> (3, S, S) float32 in [-1, 1]."""
    return torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1).float().div(127.5).sub(1.0)
