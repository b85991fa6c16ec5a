"""One registry type for spaces, feature extractors and metrics.

Entries are registered three ways:
- eagerly, with the ``@REGISTRY.register("name")`` decorator;
- lazily, as a ``"module:attr"`` string (built-ins: listing them imports nothing heavy);
- by third-party packages, through an entry-point group (e.g. ``latentbench.spaces``).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from latentbench.errors import UserError, unknown_choice

T = TypeVar("T")


def import_object(target: str) -> object:
    """Import ``"package.module:attr"``."""
    module_name, _, attr = target.partition(":")
    if not attr:
        raise ValueError(f"expected 'module:attr', got {target!r}")
    obj: object = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass
class Entry(Generic[T]):
    name: str
    target: T | str  # the object, or a lazy "module:attr" reference to it
    source: str  # "builtin", "plugin:<distribution>" or "runtime"
    meta: Any = None  # what the registry's owner knows about the entry without loading it

    def load(self) -> T:
        if isinstance(self.target, str):
            self.target = import_object(self.target)  # type: ignore[assignment]
        return self.target  # type: ignore[return-value]


class Registry(Generic[T]):
    """Name -> object, with lazy built-ins and entry-point plugins."""

    def __init__(self, kind: str, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self.group = entry_point_group
        self._entries: dict[str, Entry[T]] = {}
        self._plugins_loaded = entry_point_group is None

    def register(
        self,
        name: str,
        target: T | str | None = None,
        *,
        source: str = "runtime",
        meta: Any = None,
    ):
        """Register ``target`` under ``name``; without ``target``, works as a decorator.
        ``meta``: what the registry's owner records about the entry (e.g. a space's SpaceInfo)."""
        if target is not None:
            self._add(Entry(name, target, source, meta))
            return target

        def decorator(obj: T) -> T:
            self._add(Entry(name, obj, source, meta))
            return obj

        return decorator

    def _add(self, entry: Entry[T]) -> None:
        if entry.name in self._entries:
            raise ValueError(f"{self.kind} {entry.name!r} is already registered")
        self._entries[entry.name] = entry

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for ep in entry_points(group=self.group):
            if ep.name in self._entries:
                continue  # built-ins win; a plugin cannot shadow them
            dist = ep.dist.name if ep.dist is not None else "?"
            self._entries[ep.name] = Entry(ep.name, ep.value, f"plugin:{dist}")

    def entries(self) -> list[Entry[T]]:
        self._load_plugins()
        return [self._entries[k] for k in sorted(self._entries)]

    def names(self) -> list[str]:
        return [e.name for e in self.entries()]

    def entry(self, name: str) -> Entry[T]:
        self._load_plugins()
        if name not in self._entries:
            raise unknown_choice(self.kind, name, self._entries)
        return self._entries[name]

    def get(self, name: str) -> T:
        entry = self.entry(name)
        try:
            return entry.load()
        except ImportError as e:
            raise UserError(f"{self.kind} {name!r} cannot be imported: {e}") from e

    def __contains__(self, name: str) -> bool:
        self._load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
