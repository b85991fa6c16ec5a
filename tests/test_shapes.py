"""The Shapes world: palette, geometry, scenes, rendering, captions, GenEval prompts, datasets."""

from __future__ import annotations

import itertools
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from latentbench.data.shapes import (
    BackgroundColor,
    Color,
    Region,
    Scene,
    SceneConfig,
    Shape,
    ShapeObject,
    ShapesDataset,
    ShapesRenderer,
    Texture,
    caption,
    geneval_suite,
    item_rng,
    oracle_scene,
    sample_scene,
)
from latentbench.data.shapes.geometry import boxes_clash, region_of, shape_extent
from latentbench.data.shapes.vocabulary import BACKGROUND_PAINT, COLOR_PAINT
from latentbench.errors import UserError
from latentbench.geneval import (
    GenevalTask,
    Relation,
    Skipped,
    check_entry,
    read_entries,
    relative_position,
)

# -- palette and geometry -----------------------------------------------------------------------


def _references() -> list[tuple[str, np.ndarray]]:
    refs = []
    for name, paint in [*COLOR_PAINT.items(), *BACKGROUND_PAINT.items()]:
        refs += [
            (name.value, np.array(paint.base, float)),
            (name.value, np.array(paint.tone, float)),
        ]
    return refs


def test_palette_names_are_far_apart_and_texture_mixtures_stay_in_their_name() -> None:
    refs = _references()
    bg = {b.value for b in BackgroundColor}
    for (n1, c1), (n2, c2) in itertools.combinations(refs, 2):
        if n1 != n2 and not (n1 in bg and n2 in bg):
            assert np.linalg.norm(c1 - c2) >= 55, (n1, c1, n2, c2)
    points = np.stack([c for _, c in refs])
    for name, paint in [*COLOR_PAINT.items(), *BACKGROUND_PAINT.items()]:
        for t in np.linspace(0, 1, 21):
            mix = (1 - t) * np.array(paint.base) + t * np.array(paint.tone)
            assert refs[int(np.linalg.norm(points - mix, axis=1).argmin())][0] == name.value
    assert [c.value for c in Color] == [
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
    ]


def test_shape_extents() -> None:
    assert shape_extent(Shape.CIRCLE) == (1.0, 1.0) and shape_extent(Shape.CROSS) == pytest.approx(
        (1.0, 1.0)
    )
    assert shape_extent(Shape.TRIANGLE) == pytest.approx((1.0, np.sqrt(3) / 2))
    assert shape_extent(Shape.HEXAGON) == pytest.approx((np.sqrt(3) / 2, 1.0))
    w, h = shape_extent(Shape.STAR)
    assert w == pytest.approx(1.0) and h == pytest.approx(
        (1 + np.cos(np.pi / 5)) / (2 * np.cos(np.pi / 10))
    )
    assert Shape.CROSS.plural == "crosses" and Shape.STAR.plural == "stars"


def test_regions() -> None:
    assert region_of(0.1, 0.1) is Region.TOP_LEFT and region_of(0.5, 0.5) is Region.CENTER
    assert region_of(0.9, 0.5) is Region.RIGHT and region_of(0.5, 0.95) is Region.BOTTOM
    assert region_of(0.34, 0.5) is None  # within the margin of a border
    assert Region.TOP.bounds == pytest.approx((1 / 3, 0, 2 / 3, 1 / 3))


# -- scenes and rendering -----------------------------------------------------------------------


def test_scenes_are_deterministic_valid_and_varied() -> None:
    cfg = SceneConfig()
    scenes = [sample_scene(item_rng(0, i, 0)) for i in range(300)]
    assert scenes == [sample_scene(item_rng(0, i, 0)) for i in range(300)]
    assert scenes != [sample_scene(item_rng(1, i, 0)) for i in range(300)]
    for s in scenes:
        assert cfg.min_objects <= len(s.objects) <= cfg.max_objects
        lo, hi = cfg.size_range(len(s.objects))
        for o in s.objects:
            assert lo <= o.size <= hi
            x0, y0, x1, y1 = o.box
            assert min(x0, y0) >= cfg.margin - 1e-9 and max(x1, y1) <= 1 - cfg.margin + 1e-9
        for a, b in itertools.combinations(s.objects, 2):
            assert not boxes_clash(a.box, b.box, cfg.gap)
    seen = {(o.shape, o.color, o.texture) for s in scenes for o in s.objects}
    assert {k[0] for k in seen} == set(Shape) and {k[1] for k in seen} == set(Color)
    assert {k[2] for k in seen} == set(Texture) and {s.background for s in scenes} == set(
        BackgroundColor
    )
    assert (
        Scene.from_dict(json.loads(json.dumps(scenes[0].to_dict()))).objects[0].shape
        is scenes[0].objects[0].shape
    )


def test_rendering_is_deterministic_antialiased_and_scales() -> None:
    scene = sample_scene(item_rng(0, 5, 0))
    for size in (64, 128, 256):
        a, b = ShapesRenderer(size).render(scene), ShapesRenderer(size).render(scene)
        assert a.shape == (size, size, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    image = ShapesRenderer(64).render(scene)
    paints = {
        tuple(c)
        for p in [*COLOR_PAINT.values(), *BACKGROUND_PAINT.values()]
        for c in (p.base, p.tone)
    }
    mixed = ~np.array([[tuple(px) in paints for px in row] for row in image])
    assert 0.02 < mixed.mean() < 0.5  # anti-aliased edges, but mostly exact paint


def test_coverage_areas_match_geometry() -> None:
    r = ShapesRenderer(128)
    for shape, area in [
        (Shape.CIRCLE, np.pi / 4),
        (Shape.SQUARE, 1.0),
        (Shape.CROSS, 5 / 9),
        (Shape.TRIANGLE, np.sqrt(3) / 4),
        (Shape.HEXAGON, 3 * np.sqrt(3) / 8),
    ]:
        cov = r.coverage(shape, 0.5, 0.5, 0.5)
        assert cov.sum() / (0.5 * 128) ** 2 == pytest.approx(area, rel=0.03), shape


def test_renderer_rejects_tiny_images() -> None:
    with pytest.raises(UserError, match="too small"):
        ShapesRenderer(8)


# -- captions -----------------------------------------------------------------------------------

_NUM = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4}
_TEX = {t.adjective: t for t in Texture}
_SHAPES = "|".join(s.value for s in Shape)
_COLORS = "|".join(c.value for c in Color)
_MENTION = (
    rf"\b(a|an|one|two|three|four) (?:({'|'.join(_TEX)}) )?(?:({_COLORS}) )?({_SHAPES})(?:e?s)?\b"
)
_REL = "|".join(r.value for r in Relation)
_AT = "|".join(re.escape(r.at_phrase) for r in Region)


def _matching(scene: Scene, m: re.Match) -> list[ShapeObject]:
    _, tex, color, shape = m.groups()
    return [
        o
        for o in scene.objects
        if o.shape.value == shape
        and (color is None or o.color.value == color)
        and (tex is None or o.texture is _TEX[tex])
    ]


def check_caption(text: str, scene: Scene) -> None:
    """Every claim of the caption holds in the scene (counts, colors, textures, background,
    relations by GenEval's rule, regions); together the mentions cover all objects."""
    mentions = list(re.finditer(_MENTION, text))
    assert mentions, text
    for m in mentions:
        objs = _matching(scene, m)
        at = re.match(rf" ({_AT})\b", text[m.end() :])
        if at:  # "a red circle in the top left": count those in that region
            objs = [o for o in objs if o.region is not None and o.region.at_phrase == at.group(1)]
        assert len(objs) == _NUM[m.group(1)], (text, m.group(0))
    assert sum(_NUM[m.group(1)] for m in mentions) == len(scene.objects), text
    bg = re.search(
        rf"\b({'|'.join(_TEX)}) ({'|'.join(b.value for b in BackgroundColor)}) background", text
    )
    if bg:
        assert (bg.group(1), bg.group(2)) == (
            scene.background_texture.adjective,
            scene.background.value,
        ), text
    for rel in re.finditer(rf"({_MENTION}) ({_REL}) ({_MENTION})", text):
        a, b = (_matching(scene, re.match(_MENTION, rel.group(i))) for i in (1, 7))
        assert len(a) == len(b) == 1 and Relation(rel.group(6)) in relative_position(
            a[0].box, b[0].box
        ), text


def test_captions_are_deterministic_and_never_contradict_the_scene() -> None:
    data = ShapesDataset(400, 64, seed=2)
    texts = [data.caption(i) for i in range(400)]
    assert texts == [ShapesDataset(400, 64, seed=2).caption(i) for i in range(400)]
    for i, text in enumerate(texts):
        check_caption(text, data.scene(i))
    assert len({t.split()[0] for t in texts}) > 4  # several templates
    assert any(re.search(f" ({_REL}) ", t) for t in texts) and any(re.search(_AT, t) for t in texts)
    # GenEval's phrasing: shapes only ("a photo of two circles and a star"), some with a relation
    short = [t for t in texts if not re.search(f"({_COLORS}) ", t) and "background" not in t]
    assert 0.2 < len(short) / len(texts) < 0.4
    assert all(t.startswith("a photo of ") for t in short)
    assert any(re.search(f" ({_REL}) ", t) for t in short)


def test_caption_check_catches_a_contradiction() -> None:
    scene = Scene(
        (
            ShapeObject(Shape.STAR, Color.RED, Texture.DOTS, 0.3, 0.3, 0.3),
            ShapeObject(Shape.CIRCLE, Color.BLUE, Texture.PLAIN, 0.7, 0.7, 0.3),
        )
    )
    check_caption(caption(scene, np.random.default_rng(0)), scene)
    for wrong in [
        "a blue star and a blue circle",
        "a red star right of a blue circle",
        "a red star and a blue circle on a plain teal background",
        "a red star on the right, a blue circle at the bottom",
        "a red star, a blue circle, a green cross",
    ]:
        with pytest.raises(AssertionError):
            check_caption(wrong, scene)


# -- GenEval prompts and their oracle scenes ----------------------------------------------------

_TEMPLATES = {
    "single_object": rf"a photo of an? ({_SHAPES})",
    "two_object": rf"a photo of an? ({_SHAPES}) and an? ({_SHAPES})",
    "counting": rf"a photo of (two|three|four) ({_SHAPES})e?s",
    "colors": rf"a photo of an? \w+ ({_SHAPES})",
    "position": rf"a photo of an? ({_SHAPES}) ({_REL}) an? ({_SHAPES})",
    "color_attr": rf"a photo of an? \w+ ({_SHAPES}) and an? \w+ ({_SHAPES})",
}


def test_geneval_suite_is_deterministic_and_in_the_official_format() -> None:
    suite = geneval_suite(50, seed=0)
    assert suite == geneval_suite(50, seed=0) and suite != geneval_suite(50, seed=1)
    assert [e["tag"] for e in suite] == [t.value for t in GenevalTask for _ in range(50)]
    for e in suite:
        assert check_entry(e, "suite") is None
        assert re.fullmatch(_TEMPLATES[e["tag"]], e["prompt"]), e
        assert "an orange" in e["prompt"] or "a orange" not in e["prompt"]
    pos = next(e for e in suite if e["tag"] == "position")
    assert json.loads(json.dumps(pos))["include"][1]["position"][1] == 0
    with pytest.raises(UserError, match="prompts per task"):
        geneval_suite(0)


def test_oracle_scenes_satisfy_their_entries_exactly() -> None:
    suite = geneval_suite(60, seed=1)
    for i, e in enumerate(suite):
        scene = oracle_scene(e, item_rng(1, i, 9))
        groups = []
        for req in e["include"]:
            objs = [
                o
                for o in scene.objects
                if o.shape.value == req["class"]
                and ("color" not in req or o.color.value == req["color"])
            ]
            assert len(objs) == req["count"], e
            groups.append(objs)
            if "position" in req:
                rel, target = req["position"]
                for a, b in itertools.product(objs, groups[target]):
                    assert Relation(rel) in relative_position(a.box, b.box), e
        assert len(scene.objects) == sum(r["count"] for r in e["include"])
    with pytest.raises(UserError, match="class 'dog' is not a shape"):
        oracle_scene(
            {"tag": "single_object", "prompt": "", "include": [{"class": "dog", "count": 1}]},
            item_rng(0, 0, 0),
        )


# -- datasets and the CLI -----------------------------------------------------------------------


def test_dataset_keeps_the_data_interface() -> None:
    data = ShapesDataset(10, 64, seed=0)
    assert data.spec == "shapes:10" and data.image_size == 64 and len(data) == 10
    assert data.label_names == [s.value for s in Shape]
    item = data[3]
    assert set(item) == {"image", "key", "label", "caption", "error"}
    image = item["image"]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32
    assert -1 <= image.min() < image.max() <= 1
    assert item["key"] == "images/000003.png" and item["error"] is None
    assert item["label"] == list(Shape).index(data.scene(3).objects[0].shape)
    assert torch.equal(
        ShapesDataset(10, 64, seed=0)[3]["image"], image
    )  # independent of read order
    assert not torch.equal(ShapesDataset(10, 64, seed=1)[3]["image"], image)
    with pytest.raises(IndexError):
        data[10]
    with pytest.raises(UserError, match=">= 1"):
        ShapesDataset(0, 64)


def test_cli_writes_a_dataset_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from latentbench.cli import main
    from latentbench.data.shapes import Edit

    out = tmp_path / "shapes"
    argv = [
        "latentbench",
        "data",
        "shapes",
        "--out",
        str(out),
        "--n",
        "6",
        "--image-size",
        "64",
        "--seed",
        "3",
        "--edits",
        "7",
        "--prompts-per-task",
        "2",
        "-q",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    main()
    assert "wrote 6 images, 7 edits, 12 GenEval prompts" in capsys.readouterr().err
    data = ShapesDataset(6, 64, seed=3)
    rows = [json.loads(line) for line in (out / "captions.jsonl").read_text().splitlines()]
    assert [r["caption"] for r in rows] == [data.caption(i) for i in range(6)]
    png = np.asarray(Image.open(out / rows[2]["image"]))
    assert np.array_equal(png, data.renderer.render(data.scene(2)))
    edits = [json.loads(line) for line in (out / "edits.jsonl").read_text().splitlines()]
    assert len(edits) == 7 and (out / edits[6]["mask"]).is_file()
    assert Edit.from_dict(edits[0]).category.value == "color_change"
    skipped = Skipped()
    assert len(read_entries(out / "evaluation_metadata.jsonl", skipped)) == 12
    assert skipped.prompts == 0
    assert not list(tmp_path.glob(".shapes*"))  # nothing staged is left behind
    monkeypatch.setattr(sys, "argv", [*argv, "--overwrite"])
    main()
    monkeypatch.setattr(sys, "argv", argv[:-1] + ["--image-size", "8", "--overwrite", "-q"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2 and "too small" in capsys.readouterr().err
    assert (out / "captions.jsonl").is_file()  # the failed run left the old folder in place
