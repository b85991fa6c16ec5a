"""The words of the Shapes world: shapes, colors and their paint, textures, regions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Any

from latentbench.errors import unknown_choice
from latentbench.geneval import Box

RGB = tuple[int, int, int]


class Shape(str, Enum):
    CIRCLE = "circle"
    SQUARE = "square"
    TRIANGLE = "triangle"
    STAR = "star"
    HEXAGON = "hexagon"
    CROSS = "cross"

    @property
    def plural(self) -> str:
        """GenEval's plural rule: names ending in 's' take 'es'."""
        return self.value + ("es" if self.value.endswith("s") else "s")


class Color(str, Enum):
    """Object colors, named as GenEval names them (its ten ``COLORS``)."""

    RED = "red"
    ORANGE = "orange"
    YELLOW = "yellow"
    GREEN = "green"
    BLUE = "blue"
    PURPLE = "purple"
    PINK = "pink"
    BROWN = "brown"
    BLACK = "black"
    WHITE = "white"


class BackgroundColor(str, Enum):
    """Background colors: chosen away from every object color so they never read as objects."""

    GRAY = "gray"
    TEAL = "teal"
    NAVY = "navy"
    KHAKI = "khaki"
    SKY = "sky"


class Texture(str, Enum):
    PLAIN = "plain"
    STRIPES = "stripes"
    CHECKS = "checks"
    DOTS = "dots"

    @property
    def adjective(self) -> str:
        return _TEXTURE_ADJECTIVE[self]


_TEXTURE_ADJECTIVE = MappingProxyType(
    {
        Texture.PLAIN: "plain",
        Texture.STRIPES: "striped",
        Texture.CHECKS: "checkered",
        Texture.DOTS: "dotted",
    }
)


class Region(str, Enum):
    """A cell of the 3x3 grid over the image, by (row, column)."""

    TOP_LEFT = "top left"
    TOP = "top"
    TOP_RIGHT = "top right"
    LEFT = "left"
    CENTER = "center"
    RIGHT = "right"
    BOTTOM_LEFT = "bottom left"
    BOTTOM = "bottom"
    BOTTOM_RIGHT = "bottom right"

    @property
    def cell(self) -> tuple[int, int]:
        """(row, column) in 0..2."""
        i = list(Region).index(self)
        return i // 3, i % 3

    @property
    def bounds(self) -> Box:
        row, col = self.cell
        return col / 3, row / 3, (col + 1) / 3, (row + 1) / 3

    @property
    def at_phrase(self) -> str:
        """Where something is: 'in the top left', 'at the top', 'on the left', ..."""
        if self in (Region.TOP, Region.BOTTOM):
            return f"at the {self.value}"
        if self in (Region.LEFT, Region.RIGHT):
            return f"on the {self.value}"
        return f"in the {self.value}"

    @property
    def to_phrase(self) -> str:
        """Where something goes: 'to the top left', 'to the center', ..."""
        return f"to the {self.value}"


REGION_MARGIN = 0.04  # a centre this close to a cell border has no region in text


@dataclass(frozen=True)
class Paint:
    """The two tones of one color name: ``base`` fills, ``tone`` draws the texture pattern."""

    base: RGB
    tone: RGB


# Chosen so that every pair of references with different names is >= 55 apart in RGB and the
# base-tone mixtures of anti-aliased texture edges stay nearest to their own name
# (tests/test_shapes.py checks both).
COLOR_PAINT: Mapping[Color, Paint] = MappingProxyType(
    {
        Color.RED: Paint((215, 35, 35), (165, 20, 25)),
        Color.ORANGE: Paint((245, 135, 20), (250, 170, 70)),
        Color.YELLOW: Paint((245, 220, 40), (248, 238, 105)),
        Color.GREEN: Paint((40, 165, 60), (20, 115, 40)),
        Color.BLUE: Paint((35, 80, 225), (80, 125, 245)),
        Color.PURPLE: Paint((135, 45, 190), (95, 25, 130)),
        Color.PINK: Paint((245, 125, 195), (210, 90, 160)),
        Color.BROWN: Paint((135, 80, 35), (95, 50, 15)),
        Color.BLACK: Paint((15, 15, 15), (60, 60, 60)),
        Color.WHITE: Paint((245, 245, 245), (205, 205, 205)),
    }
)
BACKGROUND_PAINT: Mapping[BackgroundColor, Paint] = MappingProxyType(
    {
        BackgroundColor.GRAY: Paint((128, 128, 128), (155, 155, 155)),
        BackgroundColor.TEAL: Paint((25, 135, 135), (55, 165, 165)),
        BackgroundColor.NAVY: Paint((25, 35, 95), (45, 60, 130)),
        BackgroundColor.KHAKI: Paint((165, 160, 80), (185, 180, 105)),
        BackgroundColor.SKY: Paint((120, 195, 235), (150, 215, 245)),
    }
)


def parse_enum(kind: type[Enum], value: str | Enum) -> Any:
    """Parse a value of a vocabulary enum, or raise a UserError naming the valid ones."""
    if isinstance(value, kind):
        return value
    try:
        return kind(str(value).strip().lower())
    except ValueError:
        raise unknown_choice(kind.__name__.lower(), str(value), [m.value for m in kind]) from None
