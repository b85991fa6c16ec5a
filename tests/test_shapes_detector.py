"""The analytic detector reads rendered scenes exactly and finds nothing in what is not a scene."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from latentbench.data.shapes import (
    BackgroundColor,
    Color,
    Scene,
    Shape,
    ShapeObject,
    ShapesRenderer,
    Texture,
    item_rng,
    sample_scene,
)
from latentbench.data.shapes.render import to_tensor
from latentbench.metrics.shapes_detector import DetectedScene, ShapesDetector, rgb_array


@pytest.fixture(scope="module")
def detector() -> ShapesDetector:
    return ShapesDetector()


def facts(scene: Scene) -> Counter:
    return Counter((o.shape, o.color, o.texture) for o in scene.objects)


def found(d: DetectedScene) -> Counter:
    return Counter((o.shape, o.color, o.texture) for o in d.objects)


def test_every_shape_color_and_texture_at_64px(detector: ShapesDetector) -> None:
    r = ShapesRenderer(64)
    rng = np.random.default_rng(0)
    for shape, color, texture in itertools.product(Shape, Color, Texture):
        size = float(rng.uniform(0.25, 0.5))
        obj = ShapeObject(
            shape, color, texture, float(rng.uniform(0.3, 0.7)), float(rng.uniform(0.3, 0.7)), size
        )
        bg = list(BackgroundColor)[int(rng.integers(5))]
        scene = Scene((obj,), bg, list(Texture)[int(rng.integers(4))])
        d = detector.detect(r.render(scene))
        assert found(d) == facts(scene), (shape, color, texture, bg)
        box, true = np.array(d.objects[0].box), np.multiply(obj.box, 64)
        assert (
            np.abs(box - true).max() <= 2.5
        )  # thin star and triangle tips fall under half coverage
        assert np.abs((box[:2] + box[2:]) / 2 - (true[:2] + true[2:]) / 2).max() <= 1.0
        assert d.background is bg and d.background_texture is scene.background_texture


@pytest.mark.parametrize(("size", "count"), [(64, 300), (128, 40), (256, 15)])
def test_random_scenes_are_read_exactly(size: int, count: int, detector: ShapesDetector) -> None:
    r = ShapesRenderer(size)
    for i in range(count):
        scene = sample_scene(item_rng(size, i, 0))
        d = detector.detect(r.render(scene))
        assert found(d) == facts(scene), i
        assert (d.background, d.background_texture) == (
            scene.background,
            scene.background_texture,
        ), i
        assert all(0 < o.score <= 1 for o in d.objects)


def test_input_formats_and_large_images(detector: ShapesDetector) -> None:
    scene = sample_scene(item_rng(0, 1, 0))
    image = ShapesRenderer(64).render(scene)
    ref = detector.detect(image)
    for other in (Image.fromarray(image), to_tensor(image), to_tensor(image).numpy()):
        assert detector.detect(other) == ref
    assert np.array_equal(rgb_array(to_tensor(image)), image)
    big = ShapesRenderer(512).render(scene)  # box-downsampled to 256 inside, boxes in input pixels
    d = detector.detect(big)
    assert found(d) == facts(scene) and d.size == (512, 512)
    for o in scene.objects:
        nearest = min(
            d.objects, key=lambda q: np.hypot(q.center[0] - o.cx * 512, q.center[1] - o.cy * 512)
        )
        assert np.abs(np.subtract(nearest.box, np.multiply(o.box, 512))).max() <= 3
    with pytest.raises(ValueError, match="expected an RGB image"):
        detector.detect(np.zeros((64, 64), np.uint8))


def test_nothing_is_found_in_what_is_not_a_scene(detector: ShapesDetector) -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        noise = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        assert detector.detect(noise).objects == () and detector.detect(noise).background is None
    red = np.zeros((64, 64, 3), np.uint8) + np.array([215, 35, 35], np.uint8)
    assert detector.detect(red).objects == ()  # one color everywhere is not an object
    blank = ShapesRenderer(64).render(Scene((), BackgroundColor.TEAL, Texture.STRIPES))
    d = detector.detect(blank)
    assert d.objects == () and (d.background, d.background_texture) == (
        BackgroundColor.TEAL,
        Texture.STRIPES,
    )
    smooth = torch.nn.functional.interpolate(
        torch.rand(1, 3, 8, 8) * 2 - 1, size=64, mode="bilinear"
    )[0]
    assert detector.detect(smooth).objects == ()


def test_blurred_shapes_are_not_objects(detector: ShapesDetector) -> None:
    r = ShapesRenderer(64)
    kept = total = 0
    for i in range(100):
        scene = sample_scene(item_rng(1, i, 0))
        blurred = (
            Image.fromarray(r.render(scene))
            .resize((8, 8), Image.BOX)
            .resize((64, 64), Image.BILINEAR)
        )
        kept += len(detector.detect(blurred).objects)
        total += len(scene.objects)
    assert (
        kept <= 0.08 * total
    )  # the few survivors are large objects, and score at chance (test_geneval)
