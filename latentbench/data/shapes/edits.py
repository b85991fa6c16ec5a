"""Edits of scenes (GEdit-Bench categories) with instructions and their exact answers."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Any

import numpy as np
from scipy import ndimage

from latentbench.data.shapes.captions import background_phrase, with_article
from latentbench.data.shapes.geometry import box_at, boxes_clash, region_of
from latentbench.data.shapes.scene import (
    Scene,
    SceneConfig,
    ShapeObject,
    choice,
    random_texture,
    sample_centre,
    sample_scene,
)
from latentbench.data.shapes.vocabulary import (
    REGION_MARGIN,
    BackgroundColor,
    Color,
    Region,
    Shape,
    Texture,
    parse_enum,
)


class EditCategory(str, Enum):
    """The GEdit-Bench categories that make sense in this world."""

    COLOR = "color_change"
    REMOVE = "object_removal"
    ADD = "object_addition"
    REPLACE = "object_replacement"
    BACKGROUND = "background_change"
    TEXTURE = "texture_change"
    MOVE = "position_move"


@dataclass(frozen=True)
class Edit:
    """An edit with its exact answer.

    ``index`` is the edited object's index in ``target`` (in ``source`` for removals; None for
    background changes). ``region`` is the 3x3 cell named by additions and moves.
    """

    category: EditCategory
    instruction: str
    source: Scene
    target: Scene
    index: int | None = None
    region: Region | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "category": self.category.value,
            "instruction": self.instruction,
            "index": self.index,
            "region": self.region.value if self.region else None,
            "source_scene": self.source.to_dict(),
            "target_scene": self.target.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Edit:
        return cls(
            category=parse_enum(EditCategory, d["category"]),
            instruction=str(d["instruction"]),
            source=Scene.from_dict(d["source_scene"]),
            target=Scene.from_dict(d["target_scene"]),
            index=d.get("index"),
            region=parse_enum(Region, d["region"]) if d.get("region") else None,
        )


def referring_noun(objects: Sequence[ShapeObject], index: int) -> str | None:
    """The shortest noun phrase that picks out ``objects[index]`` alone, or None.

    Tries 'circle', 'red circle', 'striped red circle', then adds its region
    ('red circle in the top left').
    """
    target = objects[index]
    forms: list[tuple[Callable[[ShapeObject], Any], str]] = [
        (lambda o: o.shape, target.noun(color=False)),
        (lambda o: (o.color, o.shape), target.noun()),
        (lambda o: (o.texture, o.color, o.shape), target.noun(texture=True)),
    ]
    for key, phrase in forms:
        if sum(key(o) == key(target) for o in objects) == 1:
            return phrase
    region = target.region
    if region is not None:
        same = [
            o
            for o in objects
            if (o.texture, o.color, o.shape) == (target.texture, target.color, target.shape)
        ]
        if sum(o.region == region for o in same) == 1:
            return f"{target.noun(texture=True)} {region.at_phrase}"
    return None


_EDIT_OBJECT_COUNTS: Mapping[EditCategory, tuple[int, int]] = MappingProxyType(
    {
        EditCategory.COLOR: (1, 4),
        EditCategory.REMOVE: (1, 4),
        EditCategory.ADD: (1, 3),
        EditCategory.REPLACE: (1, 4),
        EditCategory.BACKGROUND: (1, 4),
        EditCategory.TEXTURE: (1, 4),
        EditCategory.MOVE: (1, 3),
    }
)


def sample_edit(
    rng: np.random.Generator, category: EditCategory, config: SceneConfig = SceneConfig()
) -> Edit:
    """A random edit of the given category, with its instruction, target scene and answer."""
    lo, hi = _EDIT_OBJECT_COUNTS[category]
    for _ in range(config.max_tries):
        source = sample_scene(rng, config, n_objects=int(rng.integers(lo, hi + 1)))
        edit = _EDIT_SAMPLERS[category](rng, source, config)
        if edit is not None:
            return edit
    raise RuntimeError(f"could not sample a {category.value} edit in {config.max_tries} tries")


Sampler = Callable[[np.random.Generator, Scene, SceneConfig], Edit | None]
ObjectEdit = Callable[[np.random.Generator, Scene, SceneConfig, int, str], Edit | None]


def _on_an_object(edit: ObjectEdit) -> Sampler:
    """The sampler that picks a random object of the scene and, when a noun phrase names it
    alone (``ref``), edits object ``i``."""

    def sample(rng: np.random.Generator, source: Scene, config: SceneConfig) -> Edit | None:
        i = int(rng.integers(len(source.objects)))
        ref = referring_noun(source.objects, i)
        return None if ref is None else edit(rng, source, config, i, ref)

    return sample


def _edit_color(
    rng: np.random.Generator, source: Scene, config: SceneConfig, i: int, ref: str
) -> Edit | None:
    old = source.objects[i]
    new = choice(rng, [c for c in Color if c is not old.color])
    text = choice(
        rng,
        [
            f"make the {ref} {new.value}",
            f"change the color of the {ref} to {new.value}",
            f"paint the {ref} {new.value}",
            f"turn the {ref} {new.value}",
            f"recolor the {ref} {new.value}",
        ],
    )
    target = source.with_object(i, dataclasses.replace(old, color=new))
    return Edit(EditCategory.COLOR, text, source, target, i)


def _edit_remove(
    rng: np.random.Generator, source: Scene, config: SceneConfig, i: int, ref: str
) -> Edit | None:
    text = choice(
        rng,
        [
            f"remove the {ref}",
            f"delete the {ref}",
            f"take away the {ref}",
            f"erase the {ref}",
            f"get rid of the {ref}",
        ],
    )
    target = dataclasses.replace(source, objects=source.objects[:i] + source.objects[i + 1 :])
    return Edit(EditCategory.REMOVE, text, source, target, i)


def _place_in_region(
    rng: np.random.Generator,
    shape: Shape,
    size: float,
    region: Region,
    others: Sequence[ShapeObject],
    config: SceneConfig,
) -> tuple[float, float] | None:
    """A centre inside ``region`` (REGION_MARGIN + 0.01 from its borders) clashing with nothing."""
    m = REGION_MARGIN + 0.01
    x0, y0, x1, y1 = region.bounds
    area = (
        x0 + (m if x0 > 0 else 0),
        y0 + (m if y0 > 0 else 0),
        x1 - (m if x1 < 1 else 0),
        y1 - (m if y1 < 1 else 0),
    )
    for _ in range(50):
        c = sample_centre(rng, shape, size, config.margin, area)
        if c is None:
            return None
        box = box_at(shape, size, *c)
        if not any(boxes_clash(box, o.box, config.gap) for o in others):
            return c
    return None


def _edit_add(rng: np.random.Generator, source: Scene, config: SceneConfig) -> Edit | None:
    n = len(source.objects) + 1
    lo, hi = config.size_range(n)
    shape, color = choice(rng, list(Shape)), choice(rng, list(Color))
    texture, size = random_texture(rng, config.object_texture_p), float(rng.uniform(lo, hi))
    for k in rng.permutation(len(Region)):
        region = list(Region)[int(k)]
        c = _place_in_region(rng, shape, size, region, source.objects, config)
        if c is None:
            continue
        new = ShapeObject(shape, color, texture, c[0], c[1], size)
        noun = with_article(new.noun(texture=texture is not Texture.PLAIN))
        text = choice(
            rng,
            [
                f"add {noun} {region.at_phrase}",
                f"put {noun} {region.at_phrase}",
                f"place {noun} {region.at_phrase}",
                f"draw {noun} {region.at_phrase}",
            ],
        )
        target = dataclasses.replace(source, objects=(*source.objects, new))
        return Edit(EditCategory.ADD, text, source, target, len(source.objects), region)
    return None


def _edit_replace(
    rng: np.random.Generator, source: Scene, config: SceneConfig, i: int, ref: str
) -> Edit | None:
    old = source.objects[i]
    others = [o for j, o in enumerate(source.objects) if j != i]
    for k in rng.permutation(len(Shape)):
        shape = list(Shape)[int(k)]
        new = dataclasses.replace(old, shape=shape)
        if shape is old.shape or any(boxes_clash(new.box, o.box, config.gap) for o in others):
            continue
        if not all(0 <= v <= 1 for v in new.box):
            continue
        noun = new.noun(texture=old.texture is not Texture.PLAIN)
        text = choice(
            rng,
            [
                f"replace the {ref} with {with_article(noun)}",
                f"turn the {ref} into {with_article(shape.value)}",
                f"change the {ref} into {with_article(noun)}",
                f"swap the {ref} for {with_article(noun)}",
            ],
        )
        return Edit(EditCategory.REPLACE, text, source, source.with_object(i, new), i)
    return None


def _edit_background(rng: np.random.Generator, source: Scene, config: SceneConfig) -> Edit | None:
    color = choice(rng, [c for c in BackgroundColor if c is not source.background])
    texture = random_texture(rng, config.background_texture_p)
    phrase = background_phrase(color, texture)
    text = choice(
        rng,
        [
            f"change the background to {phrase}",
            f"make the background {phrase}",
            f"replace the background with a {phrase} one",
            f"put the objects on a {phrase} background",
        ],
    )
    target = dataclasses.replace(source, background=color, background_texture=texture)
    return Edit(EditCategory.BACKGROUND, text, source, target, None)


def _edit_texture(
    rng: np.random.Generator, source: Scene, config: SceneConfig, i: int, ref: str
) -> Edit | None:
    old = source.objects[i]
    new = choice(rng, [t for t in Texture if t is not old.texture])
    if new is Texture.PLAIN:
        options = [
            f"make the {ref} plain",
            f"remove the pattern from the {ref}",
            f"fill the {ref} with a plain color",
        ]
    else:
        pattern = {
            Texture.STRIPES: "stripes",
            Texture.CHECKS: "a checkered pattern",
            Texture.DOTS: "dots",
        }[new]
        options = [
            f"make the {ref} {new.adjective}",
            f"give the {ref} {pattern}",
            f"fill the {ref} with {pattern}",
        ]
    target = source.with_object(i, dataclasses.replace(old, texture=new))
    return Edit(EditCategory.TEXTURE, choice(rng, options), source, target, i)


def _edit_move(
    rng: np.random.Generator, source: Scene, config: SceneConfig, i: int, ref: str
) -> Edit | None:
    old = source.objects[i]
    others = [o for j, o in enumerate(source.objects) if j != i]
    here = region_of(old.cx, old.cy, margin=0.0)
    for k in rng.permutation(len(Region)):
        region = list(Region)[int(k)]
        if region is here:
            continue
        c = _place_in_region(rng, old.shape, old.size, region, others, config)
        if c is None:
            continue
        text = choice(
            rng,
            [
                f"move the {ref} {region.to_phrase}",
                f"drag the {ref} {region.to_phrase}",
                f"shift the {ref} {region.to_phrase}",
            ],
        )
        target = source.with_object(i, dataclasses.replace(old, cx=c[0], cy=c[1]))
        return Edit(EditCategory.MOVE, text, source, target, i, region)
    return None


_EDIT_SAMPLERS: Mapping[EditCategory, Sampler] = MappingProxyType(
    {
        EditCategory.COLOR: _on_an_object(_edit_color),
        EditCategory.REMOVE: _on_an_object(_edit_remove),
        EditCategory.ADD: _edit_add,
        EditCategory.REPLACE: _on_an_object(_edit_replace),
        EditCategory.BACKGROUND: _edit_background,
        EditCategory.TEXTURE: _on_an_object(_edit_texture),
        EditCategory.MOVE: _on_an_object(_edit_move),
    }
)


def edit_mask(source: np.ndarray, target: np.ndarray, dilation: int = 1) -> np.ndarray:
    """(S, S) bool: pixels that differ between the two renders, grown by ``dilation`` pixels."""
    changed = np.any(source != target, axis=-1)
    if dilation > 0 and changed.any():
        changed = ndimage.binary_dilation(
            changed, structure=np.ones((3, 3), bool), iterations=dilation
        )
    return changed
