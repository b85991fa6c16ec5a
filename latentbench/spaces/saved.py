"""The files of a saved space, in either format, and their checks.

- ``config.json`` + ``model.safetensors``: what :meth:`LatentSpace.save_pretrained` writes (the
  huggingface_hub layout; also what a hub repo of a space holds).
- ``space.json`` + ``space.safetensors``: the format before it, still read. Both JSON files hold
  the same object: ``space`` (the registered factory), ``config`` (its options), ``spec``,
  ``stats`` (or null), ``fingerprint``. To convert an old folder, load it and save it again:
  ``latentbench.load_space(OLD).save_pretrained(NEW)``.

A ``config.json`` counts only when it names a space (a diffusers model folder has one too).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from latentbench.errors import UserError
from latentbench.files import load_safetensors, read_json_object

CONFIG_JSON = "config.json"  # save_pretrained's (huggingface_hub's names)
WEIGHTS_FILE = "model.safetensors"
SPACE_JSON = "space.json"  # the format before save_pretrained; still read
SPACE_WEIGHTS = "space.safetensors"


@dataclass(frozen=True)
class SavedSpace:
    """A folder holding a saved space: its JSON file and its weights file."""

    folder: Path
    meta_file: Path
    weights_file: Path


def find_saved(folder: str | Path) -> SavedSpace | None:
    """The saved space in ``folder`` (new format first), or None when it holds none."""
    folder = Path(folder)
    new = SavedSpace(folder, folder / CONFIG_JSON, folder / WEIGHTS_FILE)
    if new.meta_file.is_file() and _is_space_config(new):
        return new
    if (folder / SPACE_JSON).is_file():
        return SavedSpace(folder, folder / SPACE_JSON, folder / SPACE_WEIGHTS)
    return None


def is_saved_space(path: str | Path) -> bool:
    return Path(path).is_dir() and find_saved(path) is not None


def _is_space_config(saved: SavedSpace) -> bool:
    """A config.json naming a space; or a damaged one beside ``model.safetensors`` (so that
    loading names the damage)."""
    try:
        meta = json.loads(saved.meta_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        meta = None
    if isinstance(meta, dict) and "space" in meta:
        return True
    return saved.weights_file.is_file() and not (isinstance(meta, dict) and _is_model(meta))


def _is_model(meta: dict[str, Any]) -> bool:
    """The config of a transformers / diffusers model, not of a space."""
    return any(k in meta for k in ("model_type", "_class_name", "architectures"))


def saved_fingerprint(folder: str | Path) -> str | None:
    """The fingerprint a saved space recorded (None: not a saved space)."""
    saved = find_saved(folder) if Path(folder).is_dir() else None
    return read_meta(saved).get("fingerprint") if saved else None


def read_meta(saved: SavedSpace) -> dict[str, Any]:
    """The JSON object of a saved space, checked: ``space`` names the factory, ``config`` holds
    its options, ``stats`` (optional) is an object or null. A damaged file is one UserError line
    naming it."""
    meta = read_json_object(saved.meta_file, {"space": str, "config": dict})
    if not isinstance(meta.get("stats"), (dict, type(None))):
        raise UserError(f"{saved.meta_file}: 'stats' must be an object or null")
    return meta


def load_weights(space: nn.Module, saved: SavedSpace) -> None:
    path = saved.weights_file
    if not path.is_file():
        raise UserError(f"not a saved space (no {path.name}): {saved.folder}")
    try:
        missing, unexpected = space.load_state_dict(load_safetensors(path), strict=False)
    except RuntimeError as e:  # shape mismatches; one line of torch's list
        raise UserError(
            f"{path}: weights do not fit the architecture ({' '.join(str(e).split())[:300]})"
        ) from None
    if missing or unexpected:
        raise UserError(
            f"{path}: weights do not match the architecture "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
