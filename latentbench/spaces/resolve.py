"""From a space's name (or saved folder, or hub id) to a built space: the one place that decides.

- :func:`space_info`: what is known about a registered space without building it (catalog).
- :func:`space_names`: what a list of ``--space`` values means (``all``: every ready space).
- :func:`options_for`: which of the common options (image size, weights, ``-o KEY=VALUE``) a
  space takes.
- :func:`build_space`: build a registered space, or load a saved one.
- :func:`try_space` / :func:`build_spaces`: build with a skip reason instead of an error, for
  ``--space all`` (a space whose weights are absent here is skipped with a note).
- :func:`load_space`: rebuild a saved space from its folder or hub id.

Each space is built once: a caller that probes availability keeps the space it got.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latentbench.errors import UserError
from latentbench.runs import space_label
from latentbench.spaces.base import LatentSpace
from latentbench.spaces.catalog import SPACES, SpaceInfo, call_factory, factory_takes, plugin_info
from latentbench.spaces.saved import is_saved_space

ALL = "all"


# -- what is known without building --------------------------------------------------------------
def space_info(name: str) -> SpaceInfo:
    """The catalog row of registered space ``name`` (a plugin's: derived from its factory)."""
    entry = SPACES.entry(name)
    if entry.meta is None:
        target = entry.target if isinstance(entry.target, str) else repr(entry.target)
        entry.meta = plugin_info(name, target, SPACES.get(name))
    return entry.meta


def _needs_training(name: str) -> bool | None:
    """Whether ``name`` needs train-tokenizer first; None for a plugin that cannot be loaded."""
    try:
        return space_info(name).needs_training
    except UserError:
        return None


def ready_space_names() -> list[str]:
    """What ``--space all`` means: every registered space usable without training (a plugin
    that cannot be loaded too: building it gives the note that it is skipped)."""
    return [n for n in SPACES.names() if not _needs_training(n)]


def trainable_space_names() -> list[str]:
    """The spaces ``latentbench train-tokenizer`` trains."""
    return [n for n in SPACES.names() if _needs_training(n)]


def space_names(spaces: Sequence[str]) -> list[str]:
    """``--space`` values -> names and folders (``all`` alone: :func:`ready_space_names`)."""
    return ready_space_names() if list(spaces) == [ALL] else list(spaces)


def takes_option(name: str, option: str) -> bool:
    """Does registered space ``name`` take ``option``? A saved folder or hub id takes none."""
    if is_saved_space(name) or name not in SPACES:
        return False
    if option == "image_size":
        return space_info(name).takes_image_size
    return factory_takes(SPACES.get(name), option)


def options_for(
    name: str,
    *,
    image_size: int | None = None,
    weights: str | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The options ``name`` takes among ``image_size``, ``weights`` and ``options`` (the
    ``-o KEY=VALUE`` given to every space: each space takes the ones it knows)."""
    out = {k: v for k, v in (options or {}).items() if takes_option(name, k)}
    if image_size is not None and takes_option(name, "image_size"):
        out.setdefault("image_size", image_size)
    if weights and takes_option(name, "weights"):
        out["weights"] = weights
    return out


def unused_options(names: Sequence[str], options: dict[str, Any]) -> list[str]:
    """The keys of ``options`` that none of ``names`` takes (a typo, usually)."""
    return sorted(k for k in options if not any(takes_option(n, k) for n in names))


# -- building --------------------------------------------------------------------------------
def build_space(name: str, **options: Any) -> LatentSpace:
    """Build a registered space, or load a saved one when ``name`` is a saved-space folder.

    Options the factory does not take are a UserError that names the valid ones.
    """
    if is_saved_space(name):
        return load_space(name, device=options.get("device"))
    device = options.pop("device", None)
    space = call_factory(name, options)
    if not isinstance(space, LatentSpace):
        raise UserError(f"space {name!r}: factory returned {type(space).__name__}, not LatentSpace")
    return space.to(device) if device is not None else space


def try_space(name: str, **options: Any) -> tuple[LatentSpace | None, str | None]:
    """``(space, None)``, or ``(None, why)`` when it cannot be built here (weights absent
    offline, a bad option, ...)."""
    try:
        return build_space(name, **options), None
    except UserError as e:
        return None, f"{name}: skipped: {e}"


@dataclass
class BuiltSpaces:
    """Spaces by label, and a note per space that was skipped."""

    spaces: dict[str, LatentSpace] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def build_spaces(
    spaces: Sequence[str],
    *,
    image_size: int | None = None,
    weights: str | None = None,
    options: dict[str, Any] | None = None,
) -> BuiltSpaces:
    """Build each of ``spaces`` (``all`` expanded) once, labelled by :func:`space_label`.

    With ``all`` a space that cannot be built is skipped with a note; one named explicitly must
    build. An option that no space takes is a UserError, and so is having no space at all.
    """
    names, explicit = space_names(spaces), list(spaces) != [ALL]
    unused = unused_options(names, options or {})
    if unused:
        raise UserError(f"no space here takes the option(s) {', '.join(unused)}")
    built = BuiltSpaces()
    for name in names:
        opts = options_for(name, image_size=image_size, weights=weights, options=options)
        if explicit:
            space, why = build_space(name, **opts), None
        else:
            space, why = try_space(name, **opts)
        if space is None:
            built.notes.append(str(why))
            continue
        label = space_label(name)
        while label in built.spaces:
            label += "'"
        built.spaces[label] = space
    if not built.spaces:
        raise UserError("no space could be built: " + "; ".join(built.notes))
    return built


# -- saved spaces ------------------------------------------------------------------------------
def load_space(
    source: str | Path, device: Any = None, *, revision: str | None = None
) -> LatentSpace:
    """Rebuild a saved space from its folder (either format, see :mod:`.saved`) or a hub id:
    :meth:`LatentSpace.from_pretrained`."""
    return LatentSpace.from_pretrained(source, device=device, revision=revision)
