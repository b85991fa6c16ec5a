"""The space registry: built-ins (lazy), plugins (entry-point group ``latentbench.spaces``)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pydantic

from latentbench.config import validation_message
from latentbench.errors import UserError
from latentbench.registry import Registry
from latentbench.spaces.base import (
    SPACE_JSON,
    LatentSpace,
    LatentSpec,
    LatentStats,
    load_weights,
    read_space_meta,
    read_stats,
)

SPACES: Registry = Registry("space", entry_point_group="latentbench.spaces")

_BUILTINS = {
    "pixel": "latentbench.spaces.pixel:pixel_space",
    "vae": "latentbench.spaces.vae:vae_space",
    "sd-vae": "latentbench.spaces.vae:sd_vae",
    "sdxl-vae": "latentbench.spaces.vae:sdxl_vae",
    "sd3-vae": "latentbench.spaces.vae:sd3_vae",
    "flux-vae": "latentbench.spaces.vae:flux_vae",
    "taesd": "latentbench.spaces.taesd:taesd",
    "taesdxl": "latentbench.spaces.taesd:taesdxl",
    "taesd3": "latentbench.spaces.taesd:taesd3",
    "taef1": "latentbench.spaces.taesd:taef1",
    "taef2": "latentbench.spaces.taesd:taef2",
    "rae": "latentbench.spaces.rae:rae_space",
    "rae-hd": "latentbench.spaces.rae:rae_hd_space",
    "semrec": "latentbench.spaces.semrec:semrec_space",
    "svae": "latentbench.spaces.semrec:svae_space",
    "pvae": "latentbench.spaces.semrec:pvae_space",
    "semrec-mlp": "latentbench.spaces.semrec:semrec_mlp_space",
    "semrec-ds": "latentbench.spaces.semrec:semrec_ds_space",
}
for _name, _target in _BUILTINS.items():
    SPACES.register(_name, _target, source="builtin")


# Spaces whose decoder (and compact latent) exist only after `latentbench train-tokenizer`: built
# from their name they have random decoders, so `--space all` leaves them out; pass the trained
# output folder instead.
NEEDS_TRAINING = frozenset({"rae", "rae-hd", "semrec", "svae", "pvae", "semrec-mlp", "semrec-ds"})


def ready_space_names() -> list[str]:
    """What ``--space all`` means: every registered space usable without training."""
    return [n for n in SPACES.names() if n not in NEEDS_TRAINING]


def space_accepts(name: str, option: str) -> bool:
    """Does the factory of the registered space ``name`` take ``option``? (A saved folder: no.)"""
    if Path(name).is_dir():
        return False
    params = inspect.signature(SPACES.get(name)).parameters
    return option in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def build_space(name: str, **options: Any) -> LatentSpace:
    """Build a registered space, or load a saved one when ``name`` is a folder with space.json.

    Options the factory does not take are a UserError that names the valid ones.
    """
    if Path(name).is_dir() and (Path(name) / SPACE_JSON).is_file():
        return load_space(name, **{k: v for k, v in options.items() if k == "device"})
    factory = SPACES.get(name)
    device = options.pop("device", None)
    _check_options(name, factory, options)
    space = _call_validated(name, factory, options)
    if not isinstance(space, LatentSpace):
        raise UserError(f"space {name!r}: factory returned {type(space).__name__}, not LatentSpace")
    space.registry_name = name
    return space.to(device) if device is not None else space


def _check_options(name: str, factory: Any, options: dict[str, Any]) -> None:
    params = inspect.signature(factory).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    for key in options:
        if key not in params:
            raise UserError(
                f"space {name!r} takes no option {key!r}; valid: {', '.join(params) or 'none'}"
            )


def _call_validated(name: str, factory: Any, options: dict[str, Any]) -> Any:
    """``factory(**options)`` with each option checked against the factory's type hints."""
    try:
        validated = pydantic.validate_call(factory)
    except (pydantic.PydanticUserError, pydantic.PydanticSchemaGenerationError, NameError):
        return factory(**options)  # hints pydantic cannot read (a plugin's): call it as it is
    try:
        return validated(**options)
    except pydantic.ValidationError as e:
        if e.title != getattr(factory, "__name__", None):
            raise  # raised inside the factory, not by its arguments
        raise UserError(validation_message(e, type(None), f"space {name!r}")) from None


def load_space(directory: str | Path, device: Any = None) -> LatentSpace:
    """Rebuild a space saved with :meth:`LatentSpace.save` from its folder alone.

    A damaged folder (truncated or garbage space.json / space.safetensors, missing keys, options
    the space does not take) is one UserError line naming the file.
    """
    meta = read_space_meta(directory)
    name, config = meta["space"], meta["config"]
    try:
        factory = SPACES.get(name)
        _check_options(name, factory, config)
        stats = read_stats(directory, meta)
        space = _call_validated(name, factory, {**config, "pretrained": False})
    except UserError as e:
        raise UserError(f"{Path(directory) / SPACE_JSON}: {e}") from None
    space.registry_name = name
    load_weights(space, directory)
    if stats is not None:
        space.stats = stats
    return space.to(device) if device is not None else space


__all__ = [
    "NEEDS_TRAINING",
    "SPACES",
    "LatentSpace",
    "LatentSpec",
    "LatentStats",
    "build_space",
    "load_space",
    "ready_space_names",
    "space_accepts",
]
