"""The configs that ship with latentbench (package data), found by name from any folder.

- ``spaces/``: tokenizer presets of ``train-tokenizer --preset`` (``tiny``, ``quickstart``,
  ``paper``).
- ``gen/``: train-gen settings for ``train-gen --config`` (``tiny`` ... ``xl``).
- ``experiments/``: experiment files of ``latentbench run`` (``quickstart``, ``smoke``, ...).

:func:`config_path` is the one lookup: a value ending in ``.yaml`` / ``.yml`` is a file path,
anything else the name of a shipped config.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from latentbench.errors import UserError, did_you_mean

ROOT = Path(__file__).resolve().parent
YAML_SUFFIXES = (".yaml", ".yml")


class ConfigKind(str, Enum):
    """The folders of shipped configs, and what each is called in messages."""

    SPACES = "spaces"
    GEN = "gen"
    EXPERIMENTS = "experiments"

    @property
    def label(self) -> str:
        return {"spaces": "preset", "gen": "train-gen config", "experiments": "experiment"}[
            self.value
        ]


def is_yaml_path(value: str | Path) -> bool:
    """Whether ``value`` names a YAML file (by its suffix) rather than a shipped config."""
    return str(value).lower().endswith(YAML_SUFFIXES)


def shipped_configs(kind: ConfigKind) -> dict[str, Path]:
    """{name: path} of the shipped configs of ``kind``, sorted by name."""
    return {p.stem: p for p in sorted((ROOT / kind.value).glob("*.yaml"))}


def config_path(kind: ConfigKind, name_or_path: str | Path) -> Path:
    """A YAML file path (must exist), or the name of a shipped config of ``kind``.

    An unknown name or a missing file is a UserError naming the valid names.
    """
    value = str(name_or_path)
    shipped = shipped_configs(kind)
    valid = f"valid: {', '.join(shipped) or 'none'} or a .yaml path"
    if is_yaml_path(value):
        path = Path(value).expanduser()
        if not path.is_file():
            raise UserError(f"{kind.label} file not found: {path} ({valid})")
        return path
    if value not in shipped:
        raise UserError(f"{kind.label} {value!r} not found{did_you_mean(value, shipped)}; {valid}")
    return shipped[value]
