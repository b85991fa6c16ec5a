"""One registry type for spaces, feature extractors and metrics.

Entries are registered three ways:
- eagerly, with the ``@REGISTRY.register("name")`` decorator;
- lazily, as a ``"module:attr"`` string (built-ins: listing them imports nothing heavy);
- by third-party packages, through an entry-point group (e.g. ``latentbench.spaces``).

A plugin cannot take a built-in's name, nor a name a command line could not select (a comma, a
slash, a name the registry's owner reserves such as ``all``): it is ignored with a note. A name
two distributions register is refused when used, naming both. A plugin that fails to import
is one UserError line naming its distribution, for that name only.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from latentbench.errors import UserError, unknown_choice
from latentbench.files import note

T = TypeVar("T")
PLUGIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # what a --space value can name


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
    version: str | None = None  # a plugin's distribution version
    problem: str | None = None  # why the entry cannot be used (two plugins register its name)

    @property
    def origin(self) -> str:
        """Where the entry's code comes from: ``builtin``, or ``plugin:<distribution> <version>``
        (what a result records of a plugin space)."""
        return f"{self.source} {self.version}" if self.version else self.source

    def load(self) -> T:
        if isinstance(self.target, str):
            self.target = import_object(self.target)  # type: ignore[assignment]
        return self.target  # type: ignore[return-value]


class Registry(Generic[T]):
    """Name -> object, with lazy built-ins and entry-point plugins."""

    def __init__(
        self,
        kind: str,
        entry_point_group: str | None = None,
        reserved: frozenset[str] = frozenset(),
    ) -> None:
        self.kind = kind
        self.group = entry_point_group
        self.reserved = reserved  # names with a meaning of their own (``--space all``)
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
            source = f"plugin:{ep.dist.name if ep.dist is not None else '?'}"
            found = self._entries.get(ep.name)
            if found is not None and not found.source.startswith("plugin:"):
                why = f"a {found.source} {self.kind} has that name"  # built-ins win
            elif not PLUGIN_NAME.match(ep.name) or ep.name in self.reserved:
                taken = "".join(f", not {n!r}" for n in sorted(self.reserved))
                why = f"a command line cannot select it (letters, digits, '.', '_', '-'{taken})"
            elif found is not None:
                found.problem = f"registered by both {found.source} and {source}: uninstall one"
                continue
            else:
                version = ep.dist.version if ep.dist is not None else None
                self._entries[ep.name] = Entry(ep.name, ep.value, source, version=version)
                continue
            note(f"{source}'s {self.kind} {ep.name!r} is ignored: {why}")

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
        if entry.problem:
            raise UserError(f"{self.kind} {name!r} is {entry.problem}")
        try:
            return entry.load()
        except ImportError as e:
            raise UserError(f"{self.kind} {name!r} cannot be imported: {e}") from e
        except Exception as e:  # a plugin's module or attribute: its fault, one line
            if not entry.source.startswith("plugin:"):
                raise
            raise UserError(
                f"{self.kind} {name!r} ({entry.source}) cannot be loaded: {type(e).__name__}: {e}"
            ) from e

    def __contains__(self, name: str) -> bool:
        self._load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
