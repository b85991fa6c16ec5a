"""Latent spaces: the contract (:mod:`.base`), what is known of each registered space
(:mod:`.catalog`), building and loading them by name, folder or hub id (:mod:`.resolve`)."""

from __future__ import annotations

from latentbench.spaces.base import LatentSpace, LatentSpec, LatentStats
from latentbench.spaces.catalog import SPACES, Family, SpaceInfo, space_factory, space_origin
from latentbench.spaces.resolve import (
    ALL,
    build_space,
    build_spaces,
    load_space,
    options_for,
    ready_space_names,
    space_info,
    space_names,
    takes_option,
    trainable_space_names,
    try_space,
)
from latentbench.spaces.saved import is_saved_space, saved_fingerprint

__all__ = [
    "ALL",
    "SPACES",
    "Family",
    "LatentSpace",
    "LatentSpec",
    "LatentStats",
    "SpaceInfo",
    "build_space",
    "build_spaces",
    "is_saved_space",
    "load_space",
    "options_for",
    "ready_space_names",
    "saved_fingerprint",
    "space_factory",
    "space_info",
    "space_names",
    "space_origin",
    "takes_option",
    "trainable_space_names",
    "try_space",
]
