"""Shapes edits: determinism, instructions that match the scenes, masks, and edit scoring."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch

from latentbench.data.shapes import (
    BackgroundColor,
    Color,
    Edit,
    EditCategory,
    Region,
    Scene,
    Shape,
    ShapesEditsDataset,
    ShapesRenderer,
    Texture,
    item_rng,
    sample_edit,
)
from latentbench.data.shapes.captions import background_phrase
from latentbench.data.shapes.edits import edit_mask
from latentbench.metrics.editing import EditResult, EditScorer, masked_fidelity, summarise_edits
from latentbench.metrics.shapes_detector import ShapesDetector

CATEGORIES = list(EditCategory)
_TEX = {t.adjective: t for t in Texture}
_AT = "|".join(re.escape(r.at_phrase) for r in Region)
_REF = (
    rf"the (?:({'|'.join(_TEX)}) )?(?:({'|'.join(c.value for c in Color)}) )?"
    rf"({'|'.join(s.value for s in Shape)})(?: ({_AT}))?\b"
)


@pytest.fixture(scope="module")
def scorer() -> EditScorer:
    return EditScorer(ShapesDetector())


def edits(n: int, seed: int = 0) -> list[Edit]:
    return [sample_edit(item_rng(seed, i, 2), CATEGORIES[i % len(CATEGORIES)]) for i in range(n)]


def referred(edit: Edit) -> list[int]:
    """Indices of the source objects that the instruction's 'the ...' phrase picks out."""
    m = re.search(_REF, edit.instruction)
    assert m, edit.instruction
    tex, color, shape, at = m.groups()
    return [
        i
        for i, o in enumerate(edit.source.objects)
        if o.shape.value == shape
        and (color is None or o.color.value == color)
        and (tex is None or o.texture is _TEX[tex])
        and (at is None or (o.region and o.region.at_phrase == at))
    ]


def only_difference(a: Scene, b: Scene) -> set[str]:
    """Names of the fields that differ between two scenes with the same objects count."""
    diff = {f for f in ("background", "background_texture") if getattr(a, f) != getattr(b, f)}
    for oa, ob in zip(a.objects, b.objects, strict=True):
        diff |= {
            f.name for f in dataclasses.fields(oa) if getattr(oa, f.name) != getattr(ob, f.name)
        }
    return diff


def test_edits_are_deterministic_per_seed() -> None:
    assert edits(28) == edits(28) and edits(28) != edits(28, seed=1)
    assert [e.category for e in edits(14)] == CATEGORIES * 2
    assert Edit.from_dict(edits(5)[4].to_dict()) == edits(5)[4]


def test_instructions_never_contradict_source_and_target() -> None:
    for e in edits(700, seed=3):
        src, tgt, i, text = e.source, e.target, e.index, e.instruction
        if e.category is EditCategory.ADD:
            assert len(tgt.objects) == len(src.objects) + 1 and tgt.objects[:-1] == src.objects
            new = tgt.objects[i]
            assert new.region is e.region and e.region.at_phrase in text
            assert f"{new.color.value} {new.shape.value}" in text
            assert (new.texture.adjective in text) == (new.texture is not Texture.PLAIN)
            continue
        if e.category is EditCategory.BACKGROUND:
            assert (
                only_difference(src, tgt) <= {"background", "background_texture"}
                and src.background != tgt.background
            )
            assert background_phrase(tgt.background, tgt.background_texture) in text
            continue
        assert referred(e) == [i], text  # the phrase picks out the edited object alone
        tail = text[re.search(_REF, text).end() :]
        if e.category is EditCategory.REMOVE:
            assert tgt.objects == src.objects[:i] + src.objects[i + 1 :]
        elif e.category is EditCategory.COLOR:
            assert (
                only_difference(src, tgt) == {"color"}
                and tgt.objects[i].color.value in tail.split()
            )
        elif e.category is EditCategory.REPLACE:
            assert only_difference(src, tgt) == {"shape"} and tgt.objects[i].shape.value in tail
        elif e.category is EditCategory.TEXTURE:
            assert only_difference(src, tgt) == {"texture"}
            words = {
                "plain": ["plain", "remove the pattern"],
                "striped": ["striped", "stripes"],
                "checkered": ["checkered"],
                "dotted": ["dotted", "dots"],
            }
            assert any(w in text for w in words[tgt.objects[i].texture.adjective])
        elif e.category is EditCategory.MOVE:
            assert only_difference(src, tgt) <= {"cx", "cy"} and tgt.objects[i].region is e.region
            assert e.region.value in tail and src.objects[i].region is not e.region


def test_masks_cover_exactly_what_changes() -> None:
    r = ShapesRenderer(64)
    for e in edits(70, seed=4):
        a, b = r.render(e.source), r.render(e.target)
        mask = edit_mask(a, b)
        changed = np.any(a != b, axis=-1)
        assert changed.any() and (mask >= changed).all() and np.array_equal(a[~mask], b[~mask])
        if e.category is EditCategory.BACKGROUND:
            assert mask.mean() > 0.4
            continue
        allowed = np.zeros_like(mask)  # the edited object's boxes before and after, + 2 px
        scenes = {EditCategory.ADD: [e.target], EditCategory.REMOVE: [e.source]}
        for scene in scenes.get(e.category, [e.source, e.target]):
            x0, y0, x1, y1 = (int(v) for v in np.multiply(scene.objects[e.index].box, 64))
            allowed[max(y0 - 2, 0) : y1 + 3, max(x0 - 2, 0) : x1 + 3] = True
        assert not (mask & ~allowed).any(), e.instruction


def test_edit_dataset_items() -> None:
    data = ShapesEditsDataset(14, 64, seed=0)
    assert data.spec == "shapes-edits:14" and data.label_names == [c.value for c in EditCategory]
    item = data[9]
    assert item["source"].shape == item["image"].shape == (3, 64, 64) and item["mask"].shape == (
        1,
        64,
        64,
    )
    assert (
        item["category"] == CATEGORIES[2].value
        and item["label"] == 2
        and item["caption"] == item["instruction"]
    )
    outside = item["mask"][0] == 0
    assert torch.equal(item["source"][:, outside], item["image"][:, outside])
    assert torch.equal(ShapesEditsDataset(14, 64, seed=0)[9]["image"], item["image"])


# -- scoring ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "per_category", [pytest.param(100), pytest.param(500, marks=pytest.mark.slow)]
)
def test_oracle_edits_succeed(per_category: int, scorer: EditScorer) -> None:
    r = ShapesRenderer(64)
    results = [
        scorer.score(r.render(e.target), e) for e in edits(per_category * len(CATEGORIES), seed=5)
    ]
    summary = summarise_edits(results)
    assert set(summary["categories"]) == {c.value for c in CATEGORIES}
    for name, block in summary["categories"].items():
        assert block["count"] == per_category and block["success"] >= 0.99, (name, block)
        assert block["psnr_outside"] == 100.0 and block["l1_outside"] == 0.0


def test_wrong_edits_fail(scorer: EditScorer) -> None:
    r = ShapesRenderer(64)
    rng = np.random.default_rng(0)
    for e in edits(70, seed=6):
        assert not scorer.score(r.render(e.source), e).success, e.instruction  # nothing done
        noise = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        assert not scorer.score(noise, e).success
        if (
            e.category is EditCategory.COLOR
        ):  # the right change on the wrong object, or a wrong color
            others = [j for j in range(len(e.source.objects)) if j != e.index]
            wrong = e.source.with_object(
                e.index,
                dataclasses.replace(
                    e.source.objects[e.index],
                    color=Color(
                        next(
                            c
                            for c in Color
                            if c
                            not in (
                                e.source.objects[e.index].color,
                                e.target.objects[e.index].color,
                            )
                        )
                    ),
                ),
            )
            assert not scorer.score(r.render(wrong), e).success
            if others:
                j = others[0]
                moved = e.source.with_object(
                    j,
                    dataclasses.replace(e.source.objects[j], color=e.target.objects[e.index].color),
                )
                assert (
                    not scorer.score(r.render(moved), e).success
                    or moved.objects[j] == e.target.objects[j]
                )
        if e.category is EditCategory.BACKGROUND:
            other = next(
                b for b in BackgroundColor if b not in (e.source.background, e.target.background)
            )
            assert not scorer.score(
                r.render(dataclasses.replace(e.target, background=other)), e
            ).success


def test_masked_fidelity() -> None:
    src = np.full((32, 32, 3), 100, np.uint8)
    mask = np.zeros((32, 32), bool)
    mask[:8] = True
    out = src.copy()
    out[:8] = 250  # inside the mask: free
    fid = masked_fidelity(out, src, mask)
    assert fid == {"l1_outside": 0.0, "psnr_outside": 100.0, "lpips_outside": None}
    out[8:] = 110
    fid = masked_fidelity(torch.from_numpy(out).permute(2, 0, 1).float() / 127.5 - 1, src, mask)
    assert fid["l1_outside"] == pytest.approx(10 / 255) and fid["psnr_outside"] == pytest.approx(
        20 * np.log10(25.5)
    )
    seen = []

    def fake_lpips(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        seen.append((a.shape, float(a.min()), float(a.max())))
        return (a - b).abs().mean(dim=(1, 2, 3))

    fid = masked_fidelity(out, src, mask, lpips=fake_lpips)
    assert seen[0][0] == (1, 3, 32, 32) and -1 <= seen[0][1] <= seen[0][2] <= 1
    assert fid["lpips_outside"] == pytest.approx(
        2 * 10 / 255 * 24 / 32, rel=1e-4
    )  # the masked rows do not count
    assert np.isnan(masked_fidelity(out, src, np.ones((32, 32), bool))["l1_outside"])


def test_summarise_edits() -> None:
    rs = [
        EditResult("color_change", True, "", 0.0, 100.0, None),
        EditResult("color_change", False, "x", 0.1, 20.0, None),
        EditResult("object_removal", True, "", 0.0, 100.0, 0.5),
    ]
    s = summarise_edits(rs)
    assert s["success"] == pytest.approx(2 / 3) and s["count"] == 3 and s["lpips_outside"] == 0.5
    assert (
        s["categories"]["color_change"]["success"] == 0.5
        and "background_change" not in s["categories"]
    )
