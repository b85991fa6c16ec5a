"""GenEval prompt suites of Shapes (official metadata format) and their oracle scenes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from latentbench.data.shapes.captions import NUMBER_WORDS, with_article
from latentbench.data.shapes.geometry import strict_relations
from latentbench.data.shapes.scene import (
    Scene,
    SceneConfig,
    ShapeObject,
    choice,
    place_objects,
    random_texture,
)
from latentbench.data.shapes.vocabulary import BackgroundColor, Color, Shape, parse_enum
from latentbench.errors import UserError, unknown_choice
from latentbench.geneval import Box, GenevalTask, Relation

ORACLE_STREAM = 7  # the last seed word of oracle scenes (datasets use 0-2)


def geneval_entry(task: GenevalTask, rng: np.random.Generator) -> dict[str, Any]:
    """One random prompt of a GenEval task, in the official metadata format and phrasing."""
    shapes, colors = list(Shape), list(Color)
    if task is GenevalTask.SINGLE_OBJECT:
        s = choice(rng, shapes)
        return {
            "tag": task.value,
            "include": [{"class": s.value, "count": 1}],
            "prompt": f"a photo of {with_article(s.value)}",
        }
    if task is GenevalTask.TWO_OBJECT:
        a, b = (shapes[i] for i in rng.choice(len(shapes), size=2, replace=False))
        return {
            "tag": task.value,
            "include": [{"class": a.value, "count": 1}, {"class": b.value, "count": 1}],
            "prompt": f"a photo of {with_article(a.value)} and {with_article(b.value)}",
        }
    if task is GenevalTask.COUNTING:
        s, n = choice(rng, shapes), int(rng.integers(2, 5))
        return {
            "tag": task.value,
            "include": [{"class": s.value, "count": n}],
            "exclude": [{"class": s.value, "count": n + 1}],
            "prompt": f"a photo of {NUMBER_WORDS[n]} {s.plural}",
        }
    if task is GenevalTask.COLORS:
        s, c = choice(rng, shapes), choice(rng, colors)
        return {
            "tag": task.value,
            "include": [{"class": s.value, "count": 1, "color": c.value}],
            "prompt": f"a photo of {with_article(c.value)} {s.value}",
        }
    if task is GenevalTask.POSITION:
        a, b = (shapes[i] for i in rng.choice(len(shapes), size=2, replace=False))
        rel = choice(rng, list(Relation))
        return {
            "tag": task.value,
            "include": [
                {"class": b.value, "count": 1},
                {"class": a.value, "count": 1, "position": [rel.value, 0]},
            ],
            "prompt": f"a photo of {with_article(a.value)} {rel.value} {with_article(b.value)}",
        }
    if task is GenevalTask.COLOR_ATTR:
        a, b = (shapes[i] for i in rng.choice(len(shapes), size=2, replace=False))
        ca, cb = (colors[i] for i in rng.choice(len(colors), size=2, replace=False))
        return {
            "tag": task.value,
            "include": [
                {"class": a.value, "count": 1, "color": ca.value},
                {"class": b.value, "count": 1, "color": cb.value},
            ],
            "prompt": f"a photo of {with_article(f'{ca.value} {a.value}')} and "
            f"{with_article(f'{cb.value} {b.value}')}",
        }
    raise AssertionError(task)


def geneval_suite(prompts_per_task: int = 100, seed: int = 0) -> list[dict[str, Any]]:
    """``prompts_per_task`` entries for each of the six tasks, in GenEval's task order.

    Unlike GenEval's generator this does not de-duplicate: the world has 6 shapes, so prompts
    repeat (e.g. 'a photo of a circle'); each entry is still a separate sample.
    """
    if prompts_per_task < 1:
        raise UserError(f"prompts per task must be >= 1, got {prompts_per_task}")
    rng = np.random.default_rng([seed, 0x6E7A])
    return [geneval_entry(task, rng) for task in GenevalTask for _ in range(prompts_per_task)]


def oracle_scene(
    entry: Mapping[str, Any], rng: np.random.Generator, config: SceneConfig = SceneConfig()
) -> Scene:
    """A scene that satisfies a GenEval metadata entry exactly (the "oracle generator").

    Every ``include`` clause gets exactly ``count`` objects of its class (with its color when
    given, else a random one); position clauses hold with a margin; nothing else is drawn, so
    ``exclude`` clauses of the official form (count + 1) hold too.
    """
    items: list[tuple[Shape, Color, int]] = []
    position: dict[int, tuple[Relation, int]] = {}
    for g, req in enumerate(entry.get("include", [])):
        shape = _entry_shape(req["class"])
        color = _entry_color(req["color"]) if "color" in req else None
        for _ in range(int(req.get("count", 1))):
            items.append((shape, color if color is not None else choice(rng, list(Color)), g))
        if "position" in req:
            rel, target = req["position"]
            position[g] = (parse_enum(Relation, rel), int(target))
    if not items:
        raise UserError(f"GenEval entry {entry.get('prompt')!r} includes no object")
    lo, hi = config.size_range(len(items))
    sizes = [float(rng.uniform(lo, hi)) for _ in items]
    groups = [g for _, _, g in items]

    def accept(boxes: list[Box]) -> bool:
        for g, (rel, target) in position.items():
            for i, box_a in enumerate(boxes):
                for j, box_b in enumerate(boxes):
                    if (
                        groups[i] == g
                        and groups[j] == target
                        and rel not in strict_relations(box_a, box_b)
                    ):
                        return False
        return True

    centres = place_objects(
        rng, [(s, z) for (s, _, _), z in zip(items, sizes, strict=True)], config, accept=accept
    )
    objects = tuple(
        ShapeObject(s, c, random_texture(rng, config.object_texture_p), cx, cy, z)
        for (s, c, _), z, (cx, cy) in zip(items, sizes, centres, strict=True)
    )
    return Scene(
        objects,
        background=choice(rng, list(BackgroundColor)),
        background_texture=random_texture(rng, config.background_texture_p),
    )


def oracle_rng(seed: int, index: int, sample: int) -> np.random.Generator:
    """The generator of sample ``sample`` of prompt ``index``'s oracle scene."""
    return np.random.default_rng([int(seed), int(index), int(sample), ORACLE_STREAM])


def _entry_shape(name: str) -> Shape:
    try:
        return Shape(name)
    except ValueError:
        raise UserError(
            f"class {name!r} is not a shape of the Shapes world; "
            f"valid: {', '.join(s.value for s in Shape)}"
        ) from None


def _entry_color(name: str) -> Color:
    try:
        return Color(name)
    except ValueError:
        raise unknown_choice("color", name, [c.value for c in Color]) from None
