"""An analytic detector for the Shapes world: colors, connected components, contour geometry.

1. Color segmentation: every pixel goes to the nearest reference color of the world (each
   object color's base and tone, each background color's base and tone) when it is within
   ``max_color_distance`` (RGB, 0-255) of it, else to nothing. A 64^3 lookup table makes this
   one indexing operation per image.
2. Connected components (8-connected) of each object color. A component counts as an object
   when it has at least ``min_area_fraction`` of the image's pixels, a solid 3x3 core (this
   drops the one-pixel rings that anti-aliased edges leave between two colors), and is crisp:
   at least ``min_crispness`` of its core is exact paint (within ``crisp_distance`` of its
   color's base-tone segment) and so is the ring two pixels outside it (any paint). Drawn
   shapes have one-pixel anti-aliased edges; blurred blobs are mixtures, and are rejected.
3. Shape from contour geometry: a feature vector (bounding-box fill, solidity = area / convex
   hull area, and the normalised complex moments sum(z^n) / sum(|z|^n), n = 2..6, of the pixel
   positions z about the centroid; shapes are upright, so the moments' phases are kept) is
   matched to the nearest template. Templates are the world's own shapes rendered at 14-80 px
   when the detector is built. A component farther than ``reject_distance`` from every template
   is not an object; the detection score is ``1 - distance / reject_distance``.
4. Texture: inside the component shrunk by one pixel, the fraction of pixels painted in the
   color's tone (plain), whether tone/base agree along the stripe direction more than across
   it (stripes), and whether the tone map flips one check side away (checks, else dots), with
   lags taken from the component's size, so the rules hold at any resolution. The background
   gets the same treatment.

The thresholds (defaults of :class:`ShapesDetector`) were set by measuring rendered scenes at
64-256 px against the same scenes blurred or noised, with wide margins on both sides; the tests
hold them to exact reading of rendered scenes and to chance on broken ones. Guaranteed range:
images of the world at >= 64 px (objects >= 16 px). Larger images are box-downsampled to
``max_size`` before detection; boxes are reported in input pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from latentbench.data.shapes import BackgroundColor, Color, Shape, ShapesRenderer, Texture
from latentbench.data.shapes.render import BACKGROUND_PATTERN_SCALE, CHECK_SIDE, STRIPE_PERIOD
from latentbench.data.shapes.vocabulary import BACKGROUND_PAINT, COLOR_PAINT
from latentbench.geneval import Box, Detection

_NONE = 255  # label of pixels near no reference color
_N_COLORS = len(Color)
_STRUCTURE8 = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class DetectedObject:
    shape: Shape
    color: Color
    texture: Texture | None  # None when the object is too small to tell
    box: Box  # (x0, y0, x1, y1) in input pixels
    score: float
    area: int  # pixels, at the working resolution

    @property
    def center(self) -> tuple[float, float]:
        return (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2

    def to_detection(self) -> Detection:
        return Detection(self.shape.value, self.box, self.color.value, self.score)

    def to_dict(self) -> dict[str, Any]:
        return {
            "shape": self.shape.value,
            "color": self.color.value,
            "texture": self.texture.value if self.texture else None,
            "box": [round(v, 2) for v in self.box],
            "score": round(self.score, 4),
        }


@dataclass(frozen=True)
class DetectedScene:
    objects: tuple[DetectedObject, ...]
    background: BackgroundColor | None
    background_texture: Texture | None
    size: tuple[int, int]  # (height, width) of the input image

    def detections(self) -> list[Detection]:
        return [o.to_detection() for o in self.objects]

    def to_dict(self) -> dict[str, Any]:
        return {
            "objects": [o.to_dict() for o in self.objects],
            "background": self.background.value if self.background else None,
            "background_texture": self.background_texture.value
            if self.background_texture
            else None,
        }


def rgb_array(image: Any) -> np.ndarray:
    """PIL image, (H, W, 3) uint8 array or (3, H, W) float in [-1, 1] -> (H, W, 3) uint8."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().float().numpy()
    arr = np.asarray(image)
    if arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[-1] == 3:
        return arr
    if arr.ndim == 3 and arr.shape[0] == 3:
        return np.round((np.clip(arr, -1, 1) + 1) * 127.5).astype(np.uint8).transpose(1, 2, 0)
    raise ValueError(
        "expected an RGB image (H, W, 3) uint8 or (3, H, W) in [-1, 1], "
        f"got {arr.dtype} {arr.shape}"
    )


def shape_features(mask: np.ndarray) -> np.ndarray | None:
    """(12,) features of a binary component (see the module docstring), or None if degenerate."""
    ys, xs = np.nonzero(mask)
    area = xs.size
    if area < 4:
        return None
    extent = area / float((ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1))
    padded = np.pad(mask, 1)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    by, bx = np.nonzero(mask & ~interior)  # boundary pixels
    corners = np.concatenate([np.stack([bx + dx, by + dy], 1) for dx in (0, 1) for dy in (0, 1)])
    try:
        solidity = area / ConvexHull(corners).volume
    except QhullError:
        return None
    z = (xs - xs.mean()) + 1j * (ys - ys.mean())  # (N,) pixel positions about the centroid
    r = np.abs(z)
    feats = [extent, solidity]
    zn, rn = z * z, r * r
    for _ in range(2, 7):
        m = zn.sum() / max(rn.sum(), 1e-9)
        feats += [m.real, m.imag]
        zn, rn = zn * z, rn * r
    return np.asarray(feats, dtype=np.float64)


def classify_texture(
    tone: np.ndarray, region: np.ndarray, scale: float, min_pixels: int = 12
) -> Texture | None:
    """Texture of a region from its tone map (both (h, w) bool); None when too small to tell.

    ``scale`` is the pattern's unit in pixels (the object's size; 0.35 of the image side for
    backgrounds); lags below are fractions of it, so the rules hold at any resolution.
    Plain: under 8% (or over 92%) of the pixels in the tone. Stripes run along (1, -1): half a
    stripe period away, the tone map agrees with itself along the stripes far more than across
    them. Checks flip one check side away (correlation at that lag below -0.27); dots do not.
    """
    if int(region.sum()) < min_pixels:
        return None
    frac = float(tone[region].mean())
    if frac < 0.08 or frac > 0.92:
        return Texture.PLAIN
    d = max(1, round(STRIPE_PERIOD * scale / (2 * np.sqrt(2))))
    along, across = _agreement(tone, region, -d, d), _agreement(tone, region, d, d)
    if np.isnan(along) or np.isnan(across):
        return None
    if along - across > 0.3:
        return Texture.STRIPES
    lag = max(1, round(CHECK_SIDE * scale))
    corr = _correlation(tone, region, [(0, lag), (lag, 0)])
    if np.isnan(corr):
        return Texture.CHECKS if frac >= 0.38 else Texture.DOTS
    return Texture.CHECKS if corr < -0.27 else Texture.DOTS


def _pairs(tone: np.ndarray, region: np.ndarray, dy: int, dx: int) -> tuple[np.ndarray, np.ndarray]:
    """Tone values at p and p + (dy, dx) for every p with both pixels in the region."""
    h, w = tone.shape
    if abs(dy) >= h or abs(dx) >= w:
        return np.zeros(0, bool), np.zeros(0, bool)
    ys, yt = slice(max(0, -dy), h - max(0, dy)), slice(max(0, dy), h - max(0, -dy))
    xs, xt = slice(max(0, -dx), w - max(0, dx)), slice(max(0, dx), w - max(0, -dx))
    both = region[ys, xs] & region[yt, xt]
    return tone[ys, xs][both], tone[yt, xt][both]


def _agreement(tone: np.ndarray, region: np.ndarray, dy: int, dx: int) -> float:
    a, b = _pairs(tone, region, dy, dx)
    return float((a == b).mean()) if a.size >= 4 else float("nan")


def _correlation(tone: np.ndarray, region: np.ndarray, offsets: Sequence[tuple[int, int]]) -> float:
    """Pearson correlation of the tone map with itself at the given offsets (pairs pooled)."""
    pairs = [_pairs(tone, region, dy, dx) for dy, dx in offsets]
    x = np.concatenate([a for a, _ in pairs]).astype(np.float64)
    y = np.concatenate([b for _, b in pairs]).astype(np.float64)
    if x.size < 5 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


class ShapesDetector:
    """Detects the objects and background of a Shapes-world image. See the module docstring.

    Defaults: ``max_color_distance`` 60 (RGB units), ``reject_distance`` 0.4 (feature units),
    ``min_area_fraction`` 0.003 of the image, ``max_size`` 256 px, ``crisp_distance`` 20 (RGB
    units), ``min_crispness`` 0.5.
    """

    def __init__(
        self,
        *,
        max_color_distance: float = 60.0,
        reject_distance: float = 0.4,
        min_area_fraction: float = 0.003,
        max_size: int = 256,
        crisp_distance: float = 20.0,
        min_crispness: float = 0.5,
    ) -> None:
        self.max_color_distance = float(max_color_distance)
        self.reject_distance = float(reject_distance)
        self.min_area_fraction = float(min_area_fraction)
        self.max_size = int(max_size)
        self.crisp_distance = float(crisp_distance)
        self.min_crispness = float(min_crispness)
        self._lut, self._name_of, self._is_tone = self._color_table()
        self._paint = self._paint_table()
        self._templates, self._template_shapes = self._shape_templates()

    # -- setup -----------------------------------------------------------------------------------
    def _color_table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """LUT (64^3,) uint8 of reference index; reference -> color-name label; -> is-tone."""
        paints = [COLOR_PAINT[c] for c in Color] + [BACKGROUND_PAINT[b] for b in BackgroundColor]
        refs = [rgb for p in paints for rgb in (p.base, p.tone)]  # K = 2 x paints
        names = [i for i in range(len(paints)) for _ in range(2)]  # object colors, then backgrounds
        tones = [False, True] * len(paints)
        ref = np.asarray(refs, dtype=np.float32)  # (K, 3)
        q = np.arange(64, dtype=np.float32) * 4 + 1.5  # bin centres of 6-bit channels
        grid = np.stack(np.meshgrid(q, q, q, indexing="ij"), -1).reshape(-1, 3)  # (64^3, 3)
        lut = np.empty(len(grid), dtype=np.uint8)
        for s in range(0, len(grid), 65536):
            d = ((grid[s : s + 65536, None, :] - ref[None]) ** 2).sum(-1)  # (chunk, K)
            best = d.argmin(1)
            far = d[np.arange(len(best)), best] > self.max_color_distance**2
            lut[s : s + 65536] = np.where(far, _NONE, best)
        name_of = np.full(256, _NONE, dtype=np.uint8)
        name_of[: len(names)] = names
        is_tone = np.zeros(256, dtype=bool)
        is_tone[: len(tones)] = tones
        return lut, name_of, is_tone

    def _paint_table(self) -> np.ndarray:
        """(64^3,) uint8: the color-name label of the paint (base-tone segment, which
        anti-aliased textures mix along) within ``crisp_distance`` of the bin, else _NONE."""
        q = np.arange(64, dtype=np.float32) * 4 + 1.5
        grid = np.stack(np.meshgrid(q, q, q, indexing="ij"), -1).reshape(-1, 3)  # (64^3, 3)
        paints = [COLOR_PAINT[c] for c in Color] + [BACKGROUND_PAINT[b] for b in BackgroundColor]
        best = np.full(len(grid), np.inf, dtype=np.float32)
        label = np.full(len(grid), _NONE, dtype=np.uint8)
        for i, paint in enumerate(paints):
            a, b = np.asarray(paint.base, np.float32), np.asarray(paint.tone, np.float32)
            t = np.clip((grid - a) @ (b - a) / float((b - a) @ (b - a)), 0, 1)  # (64^3,)
            d = ((grid - (a + t[:, None] * (b - a))) ** 2).sum(-1)
            closer = d < best
            best[closer], label[closer] = d[closer], i
        return np.where(best <= self.crisp_distance**2, label, _NONE).astype(np.uint8)

    def _shape_templates(self) -> tuple[np.ndarray, np.ndarray]:
        feats, labels = [], []
        for px in (14, 18, 24, 32, 48, 80):
            side = max(2 * px, 64)
            renderer = ShapesRenderer(side)
            for k, shape in enumerate(Shape):
                for off in (0.0, 0.25, 0.5):
                    c = 0.5 + off / side
                    f = shape_features(renderer.coverage(shape, c, c, px / side) >= 0.5)
                    if f is not None:
                        feats.append(f), labels.append(k)
        return np.stack(feats), np.asarray(labels)

    # -- detection ---------------------------------------------------------------------------------
    def detect(self, image: Any) -> DetectedScene:
        """Objects (most confident first) and background of one image."""
        rgb = rgb_array(image)
        h0, w0 = rgb.shape[:2]
        scale = 1.0
        if max(h0, w0) > self.max_size:
            factor = int(np.ceil(max(h0, w0) / self.max_size))
            rgb = np.asarray(Image.fromarray(rgb).reduce(factor))
            scale = w0 / rgb.shape[1]
        idx = (
            (rgb[..., 0].astype(np.int32) >> 2) << 12
            | (rgb[..., 1].astype(np.int32) >> 2) << 6
            | (rgb[..., 2] >> 2)
        )
        ref = self._lut[idx]  # (H, W) reference index
        names = self._name_of[ref]  # (H, W) 0..9 object colors, 10.. backgrounds, 255 none
        tone = self._is_tone[ref]
        paint = self._paint[idx]  # (H, W) label of the exact paint, 255 for mixtures
        objects = self._objects(names, tone, paint, scale)
        background, background_texture = self._background(names, tone)
        objects.sort(key=lambda o: (-o.score, -o.area))
        return DetectedScene(tuple(objects), background, background_texture, (h0, w0))

    def _objects(
        self, names: np.ndarray, tone: np.ndarray, paint: np.ndarray, scale: float
    ) -> list[DetectedObject]:
        h, w = names.shape
        min_area = max(6, int(self.min_area_fraction * h * w))
        counts = np.bincount(names.ravel(), minlength=256)
        found: list[DetectedObject] = []
        for c in np.nonzero(counts[:_N_COLORS] >= min_area)[0]:
            labels, n = ndimage.label(names == c, structure=_STRUCTURE8)
            for k, sl in enumerate(ndimage.find_objects(labels), 1):
                if sl is None:
                    continue
                comp = labels[sl] == k
                area = int(comp.sum())
                if area < min_area:
                    continue
                core = ndimage.binary_erosion(comp, structure=_STRUCTURE8)
                if not core.any():
                    continue  # no solid 3x3 core: an anti-aliasing ring or noise
                if comp.shape[0] >= 0.95 * h and comp.shape[1] >= 0.95 * w:
                    continue  # spans the image: not an object of this world
                if (paint[sl][core] == c).mean() < self.min_crispness:
                    continue  # inside, mostly mixtures: a soft blob (e.g. blurred), not a shape
                if self._edge_crispness(labels, k, paint, sl) < self.min_crispness:
                    continue  # no clean edge: a soft blob, not a drawn shape
                shape, score = self._classify_shape(comp)
                if shape is None:
                    continue
                y0, x0 = sl[0].start, sl[1].start
                box = (
                    x0 * scale,
                    y0 * scale,
                    (x0 + comp.shape[1]) * scale,
                    (y0 + comp.shape[0]) * scale,
                )
                texture = classify_texture(tone[sl] & core, core, max(comp.shape))
                found.append(DetectedObject(shape, list(Color)[c], texture, box, score, area))
        return found

    def _edge_crispness(
        self, labels: np.ndarray, k: int, paint: np.ndarray, sl: tuple[slice, ...]
    ) -> float:
        """Fraction of the pixels two pixels outside the component that are exact paint of
        something (background or another object): drawn shapes have one-pixel anti-aliased
        edges, blurred blobs a halo of mixtures."""
        h, w = paint.shape
        ys = slice(max(sl[0].start - 3, 0), min(sl[0].stop + 3, h))
        xs = slice(max(sl[1].start - 3, 0), min(sl[1].stop + 3, w))
        inner = ndimage.binary_dilation(labels[ys, xs] == k, structure=_STRUCTURE8)
        ring = ndimage.binary_dilation(inner, structure=_STRUCTURE8) & ~inner
        return float((paint[ys, xs][ring] != _NONE).mean()) if ring.sum() >= 4 else 1.0

    def _classify_shape(self, comp: np.ndarray) -> tuple[Shape | None, float]:
        f = shape_features(comp)
        if f is None:
            return None, 0.0
        d = np.linalg.norm(self._templates - f, axis=1)
        best = int(d.argmin())
        if d[best] > self.reject_distance:
            return None, 0.0
        return list(Shape)[int(self._template_shapes[best])], float(
            1.0 - d[best] / self.reject_distance
        )

    def _background(
        self, names: np.ndarray, tone: np.ndarray
    ) -> tuple[BackgroundColor | None, Texture | None]:
        is_bg = (names >= _N_COLORS) & (names != _NONE)
        counts = np.bincount(names[is_bg] - _N_COLORS, minlength=len(BackgroundColor))
        if counts.max() < 0.3 * names.size:
            return None, None  # no background covers 30% of the image (objects cover < 40%)
        color = list(BackgroundColor)[int(counts.argmax())]
        region = ndimage.binary_erosion(
            names == _N_COLORS + int(counts.argmax()), structure=_STRUCTURE8
        )
        scale = BACKGROUND_PATTERN_SCALE * max(names.shape)
        return color, classify_texture(tone & region, region, scale)
