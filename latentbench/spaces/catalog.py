"""What latentbench knows about each registered space before building it.

Every built-in space has one :class:`SpaceInfo` row below: the factory that builds it, its
family, whether it needs ``latentbench train-tokenizer`` before use (its recipes per stage),
whether it takes ``image_size``, and, where it is fixed, its latent channels and stride. The
registry (:data:`latentbench.spaces.SPACES`) carries each row on its entry, so listing spaces,
``--space all`` and "which spaces train" read this table and import nothing heavy.

A plugin space (entry-point group ``latentbench.spaces``) has no row: its info is derived from
its factory's signature (:func:`plugin_info`).

:func:`space_factory` marks a factory function with its registered name, so a space built by
calling the factory directly carries the same name, config and fingerprint as one built through
the registry.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

import pydantic

from latentbench.config import validation_message
from latentbench.errors import UserError
from latentbench.registry import Registry

F = TypeVar("F", bound=Callable[..., Any])


class Family(str, Enum):
    PIXEL = "pixel"
    VAE = "vae"  # diffusers AutoencoderKL
    TAESD = "taesd"  # tiny distilled autoencoders
    RAE = "rae"  # frozen / fine-tuned encoder + trained ViT decoder
    SEMREC = "semrec"  # semantic-pixel tokenizers and their controls
    PLUGIN = "plugin"


@dataclass(frozen=True)
class StaticSpec:
    """The part of a :class:`~latentbench.spaces.base.LatentSpec` fixed by the name alone."""

    channels: int
    stride: int


@dataclass(frozen=True)
class SpaceInfo:
    """One registered space. ``recipes``: train-tokenizer stage -> recipe name (empty: the space
    is usable as built, e.g. from pretrained weights)."""

    name: str
    target: str  # "module:attr" of the factory
    family: Family
    recipes: dict[int, str] = field(default_factory=dict)
    takes_image_size: bool = True
    spec: StaticSpec | None = None  # None: depends on the options (or unknown for a plugin)

    @property
    def needs_training(self) -> bool:
        """Built from its name it has random (decoder) weights: train it, then use the folder."""
        return bool(self.recipes)

    def describe(self) -> dict[str, Any]:
        """JSON-able, for ``latentbench spaces``."""
        return {
            "family": self.family.value,
            "needs_training": self.needs_training,
            "recipes": {str(k): v for k, v in self.recipes.items()},
            "takes_image_size": self.takes_image_size,
        }


_SEMREC_STAGES = {1: "svae", 2: "psvae"}

BUILTIN_SPACES: tuple[SpaceInfo, ...] = (
    SpaceInfo("pixel", "latentbench.spaces.pixel:pixel_space", Family.PIXEL, spec=StaticSpec(3, 1)),
    SpaceInfo("vae", "latentbench.spaces.vae:vae_space", Family.VAE),
    *(
        SpaceInfo(name, f"latentbench.spaces.vae:{attr}", Family.VAE, spec=StaticSpec(ch, 8))
        for name, attr, ch in (
            ("sd-vae", "sd_vae", 4),
            ("sdxl-vae", "sdxl_vae", 4),
            ("sd3-vae", "sd3_vae", 16),
            ("flux-vae", "flux_vae", 16),
        )
    ),
    *(
        SpaceInfo(name, f"latentbench.spaces.taesd:{name}", Family.TAESD, spec=StaticSpec(ch, 8))
        for name, ch in (("taesd", 4), ("taesdxl", 4), ("taesd3", 16), ("taef1", 16), ("taef2", 32))
    ),
    SpaceInfo("rae", "latentbench.spaces.rae:rae_space", Family.RAE, {1: "rae"}),
    SpaceInfo("rae-hd", "latentbench.spaces.rae:rae_hd_space", Family.RAE, {1: "rae-hd"}),
    SpaceInfo("semrec", "latentbench.spaces.semrec:semrec_space", Family.SEMREC, _SEMREC_STAGES),
    SpaceInfo("svae", "latentbench.spaces.semrec:svae_space", Family.SEMREC, {1: "svae"}),
    SpaceInfo("pvae", "latentbench.spaces.semrec:pvae_space", Family.SEMREC, {1: "pvae"}),
    SpaceInfo(
        "semrec-mlp", "latentbench.spaces.semrec:semrec_mlp_space", Family.SEMREC, _SEMREC_STAGES
    ),
    SpaceInfo(
        "semrec-ds", "latentbench.spaces.semrec:semrec_ds_space", Family.SEMREC, _SEMREC_STAGES
    ),
)


# Built-ins (lazy: listing them imports nothing heavy) and plugins; each entry's ``meta`` is its
# SpaceInfo (a plugin's is derived on first use, see resolve.space_info).
SPACES: Registry = Registry(
    "space",
    entry_point_group="latentbench.spaces",
    reserved=frozenset({"all"}),  # --space all
)
for _info in BUILTIN_SPACES:
    SPACES.register(_info.name, _info.target, source="builtin", meta=_info)


def factory_takes(factory: Callable[..., Any], option: str) -> bool:
    """Does ``factory`` accept the keyword ``option`` (by name or through ``**kwargs``)?"""
    params = inspect.signature(factory).parameters
    return option in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def plugin_info(name: str, target: str, factory: Callable[..., Any]) -> SpaceInfo:
    """A plugin's info, from its factory: never trained by latentbench, no static spec."""
    return SpaceInfo(
        name, target, Family.PLUGIN, takes_image_size=factory_takes(factory, "image_size")
    )


# -- naming spaces at construction ----------------------------------------------------------------
# Factory options that say where weights are, not what the space is: not part of its config.
LOCATION_OPTIONS = frozenset({"pretrained", "weights"})


def factory_options(factory: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> dict:
    """The options a factory call was given, defaults filled in; None (= "the default") and
    location options dropped. Together with :meth:`LatentSpace.resolved_options` this is the
    space's config."""
    bound = inspect.signature(factory).bind(*args, **kwargs)
    bound.apply_defaults()
    options: dict[str, Any] = {}
    for key, value in bound.arguments.items():
        kind = bound.signature.parameters[key].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            options.update({k: v for k, v in value.items() if v is not None})
        elif key not in LOCATION_OPTIONS and value is not None:
            options[key] = value
    return options


def name_space(space: Any, name: str, options: dict[str, Any]) -> Any:
    """Give a freshly built space its registered name and the options that rebuild it."""
    space.registry_name = name
    space.init_options = options
    return space


def space_factory(name: str) -> Callable[[F], F]:
    """Mark ``factory`` as the one that builds the registered space ``name``: every space it
    returns knows its name and options, however it was called."""

    def decorate(factory: F) -> F:
        @functools.wraps(factory)
        def build(*args: Any, **kwargs: Any) -> Any:
            return name_space(
                factory(*args, **kwargs), name, factory_options(factory, args, kwargs)
            )

        build.registry_name = name  # type: ignore[attr-defined]
        return build  # type: ignore[return-value]

    return decorate


def call_factory(name: str, options: dict[str, Any]) -> Any:
    """The factory registered as ``name`` called with ``options``, each checked against its
    signature and type hints (a UserError naming the valid ones); the space gets its registered
    name and options (a factory without :func:`space_factory` too)."""
    factory = SPACES.get(name)
    _check_options(name, factory, options)
    try:
        space = _call_validated(name, factory, options)
    except Exception as e:  # a plugin's failure is one line naming it
        source = SPACES.entry(name).source
        if isinstance(e, UserError) or not source.startswith("plugin:"):
            raise
        why = f"{type(e).__name__}: {e}"
        raise UserError(f"space {name!r} ({source}) failed to build: {why}") from e
    if getattr(factory, "registry_name", None) != name:  # a plugin's plain factory
        name_space(space, name, factory_options(factory, (), options))
    return space


def space_origin(name: str) -> str:
    """Where registered space ``name``'s code comes from: ``builtin``, or ``plugin:<distribution>
    <version>`` (``unregistered`` for a space built outside the registry)."""
    return SPACES.entry(name).origin if name in SPACES else "unregistered"


def code_identity(name: str, version: str) -> list[str]:
    """What decides a space's computation beside its name, options and weights: a plugin's
    distribution and version, and a spec ``version`` other than "1" (a space's own statement that
    its encoding changed). Part of its fingerprint, so a new release never reuses the latents
    cached by the old one; built-in spaces at version 1 add nothing (their fingerprints are as
    they were)."""
    origin = space_origin(name)
    plugin = [origin] if origin.startswith("plugin:") else []
    return plugin + ([f"spec version {version}"] if version != "1" else [])


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
