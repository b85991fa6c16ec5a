"""Typed configs: dataclasses built from dicts / YAML, where unknown keys are errors."""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from latentbench.errors import UserError, did_you_mean

C = TypeVar("C")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert a YAML/JSON value to the annotated type where that is unambiguous."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        if len(args) == 1:
            return _coerce(value, args[0], where)
        return value
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return parse_choice(tp, value, where)
    if dataclasses.is_dataclass(tp) and isinstance(value, dict):
        return from_dict(tp, value, where)
    if tp in (tuple,) or origin is tuple:
        return tuple(value)
    if tp is Path and value is not None:
        return Path(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


E = TypeVar("E", bound=enum.Enum)


def parse_choice(choices: type[E], value: Any, where: str) -> E:
    """``value`` as a member of the enum ``choices``, or a UserError naming the valid ones."""
    try:
        return choices(value)
    except ValueError:
        valid = [str(m.value) for m in choices]
        raise UserError(
            f"{where}: {value!r} is not one of {', '.join(valid)}{did_you_mean(str(value), valid)}"
        ) from None


def from_dict(cls: type[C], data: dict[str, Any] | None, where: str | None = None) -> C:
    """Build dataclass ``cls`` from ``data``; unknown keys raise a UserError naming them."""
    where = where or cls.__name__
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    unknown = [k for k in data if k not in fields]
    if unknown:
        k = unknown[0]
        raise UserError(
            f"{where}: unknown key {k!r}{did_you_mean(k, fields)}; valid: {', '.join(fields)}"
        )
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def to_dict(obj: Any) -> Any:
    """Dataclass -> plain JSON-able dict (enums by value, paths as strings)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping at the top level")
    return data
