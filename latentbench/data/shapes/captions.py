"""Text about scenes: noun phrases and captions, every statement true of the scene."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from latentbench.data.shapes.geometry import strict_relations
from latentbench.data.shapes.scene import Scene, ShapeObject, choice
from latentbench.data.shapes.vocabulary import BackgroundColor, Color, Shape, Texture

# fmt: off
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                "ten")
# fmt: on


def with_article(phrase: str) -> str:
    """GenEval's rule: 'an' before a vowel, else 'a'."""
    return f"an {phrase}" if phrase[0] in "aeiou" else f"a {phrase}"


def counted(count: int, noun: str, plural: str) -> str:
    """'a red circle', 'two red circles'."""
    return with_article(noun) if count == 1 else f"{NUMBER_WORDS[count]} {plural}"


def background_phrase(color: BackgroundColor, texture: Texture) -> str:
    """'plain teal', 'striped navy', ..."""
    return f"{texture.adjective} {color.value}"


def _groups(objects: Sequence[ShapeObject], with_texture: bool) -> list[tuple[int, ShapeObject]]:
    """Objects grouped by (texture?, color, shape), in order of first appearance, with counts."""
    keyed: dict[tuple[Any, ...], list[ShapeObject]] = {}
    for o in objects:
        key = (o.texture if with_texture else None, o.color, o.shape)
        keyed.setdefault(key, []).append(o)
    return [(len(v), v[0]) for v in keyed.values()]


def _needs_texture(objects: Sequence[ShapeObject]) -> bool:
    """Texture words are needed when two objects share color and shape but not texture."""
    seen: dict[tuple[Color, Shape], set[Texture]] = {}
    for o in objects:
        seen.setdefault((o.color, o.shape), set()).add(o.texture)
    return any(len(t) > 1 for t in seen.values())


def _object_list(objects: Sequence[ShapeObject], with_texture: bool) -> str:
    phrases = []
    for count, o in _groups(objects, with_texture):
        noun = o.noun(texture=with_texture)
        phrases.append(counted(count, noun, noun[: -len(o.shape.value)] + o.shape.plural))
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


SHORT_CAPTION_P = 0.3  # share of captions that name shapes only, in GenEval's phrasing


def short_caption(scene: Scene, rng: np.random.Generator) -> str:
    """'a photo of two circles and a star', 'a photo of a star left of a circle': shapes and
    counts (or one relation) only, as web alt-text and GenEval's prompts are phrased."""
    objs = scene.objects
    if len(objs) == 2 and objs[0].shape != objs[1].shape:
        rels = sorted(strict_relations(objs[0].box, objs[1].box), key=lambda r: r.value)
        if rels and rng.random() < 0.5:
            a, b = (with_article(o.shape.value) for o in objs)
            return f"a photo of {a} {choice(rng, rels).value} {b}"
    counts: dict[Shape, int] = {}
    for o in objs:
        counts[o.shape] = counts.get(o.shape, 0) + 1
    phrases = [counted(n, shape.value, shape.plural) for shape, n in counts.items()]
    listing = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    return f"a photo of {listing}"


def caption(scene: Scene, rng: np.random.Generator) -> str:
    """A caption at one of two levels of detail, in one of several templates. Every statement
    in it holds in ``scene``: counts, colors, textures (named when mentioned at all), the
    background, relations (only when they hold with a margin) and regions (only when
    unambiguous). ``SHORT_CAPTION_P`` of them are :func:`short_caption` (shapes only)."""
    objs = scene.objects
    bg = background_phrase(scene.background, scene.background_texture)
    if not objs:
        return f"an empty {bg} background"
    if rng.random() < SHORT_CAPTION_P:
        return short_caption(scene, rng)
    with_texture = _needs_texture(objs) or bool(rng.random() < 0.5)
    listing = _object_list(objs, with_texture)
    count_phrase = f"{NUMBER_WORDS[len(objs)]} object{'s' * (len(objs) > 1)}"
    templates: list[Callable[[], str]] = [
        lambda: f"{listing} on a {bg} background",
        lambda: f"a photo of {listing}",
        lambda: f"a {bg} background with {listing}",
        lambda: f"{count_phrase}: {listing}, on a {bg} background",
    ]
    if len(objs) == 2 and objs[0].noun(texture=with_texture) != objs[1].noun(texture=with_texture):
        rels = sorted(strict_relations(objs[0].box, objs[1].box), key=lambda r: r.value)
        if rels:
            rel = choice(rng, rels)
            a, b = (with_article(o.noun(texture=with_texture)) for o in objs)
            templates.append(lambda: f"{a} {rel.value} {b}, on a {bg} background")
    if all(o.region is not None for o in objs) and len({o.region for o in objs}) == len(objs):
        parts = [f"{with_article(o.noun(texture=with_texture))} {o.region.at_phrase}" for o in objs]  # type: ignore[union-attr]
        templates.append(lambda: ", ".join(parts) + f", on a {bg} background")
    return choice(rng, templates)()
