"""Typed configs, validated once at the edge.

Every setting a user can give (a command-line flag, a ``--config`` YAML, an experiment step, a
saved space's ``config.json``) lands in a :func:`config` dataclass: a pydantic dataclass that
converts what is unambiguous (``"1e-4"`` -> 1e-4, ``"no"`` -> False, a list -> a tuple), checks
bounds (:data:`PositiveInt`, :data:`PositiveFloat`, ...) and rejects unknown keys and wrong types.
:func:`from_dict` turns a rejection into one :class:`~latentbench.errors.UserError` line that
names where the value came from, the key, the problem and the value.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from collections.abc import Collection
from pathlib import Path
from typing import Annotated, Any, TypeVar

import pydantic
import yaml
from pydantic import AfterValidator, ConfigDict, Field
from pydantic.dataclasses import dataclass as _pydantic_dataclass

from latentbench.errors import UserError, did_you_mean

C = TypeVar("C")

# -- value types with their bounds ---------------------------------------------------------------
# Every integer setting fits in an int64 (what torch and numpy hold; a seed up to this plus a
# small offset is still one torch.manual_seed takes): a larger one is an error at the edge, not an
# overflow deep in a run.
MAX_INT = 2**63 - 1
MAX_IMAGE_SIZE = 16_384  # pixels per side; 16384^2 RGB float32 is 3 GiB per image
MAX_SAMPLE_STEPS = 10_000  # sampler steps; the paper's recipe takes 50
PositiveInt = Annotated[int, Field(gt=0, le=MAX_INT)]
NonNegativeInt = Annotated[int, Field(ge=0, le=MAX_INT)]
ImageSize = Annotated[int, Field(gt=0, le=MAX_IMAGE_SIZE)]
SampleSteps = Annotated[int, Field(gt=0, le=MAX_SAMPLE_STEPS)]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Probability = Annotated[float, Field(ge=0, le=1)]


def check_device(value: str | None) -> str | None:
    """``None`` (the default device), or a torch device string that exists on this machine."""
    if value is None:
        return None
    import torch

    try:
        device = torch.device(value)
    except (RuntimeError, ValueError):
        raise ValueError("not a device; valid: cpu, cuda, cuda:N, mps") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError("CUDA is not available on this machine (use cpu)")
        if device.index is not None and device.index >= count:
            raise ValueError(f"this machine has {count} CUDA device(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("MPS is not available on this machine (use cpu)")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ValueError("valid: cpu, cuda, cuda:N, mps")
    return value


Device = Annotated[str | None, AfterValidator(check_device)]


def check_folder_name(value: str) -> str:
    """A name that becomes one folder under another: no separator, not ``.`` or ``..``."""
    if value in ("", ".", "..") or "/" in value or "\\" in value:
        raise ValueError("must be a plain folder name (no '/' or '\\', not '.' or '..')")
    return value


FolderName = Annotated[str, AfterValidator(check_folder_name)]

_SETTINGS = ConfigDict(extra="forbid", validate_assignment=True)


@typing.dataclass_transform(field_specifiers=(dataclasses.field,))
def config(cls: type[C]) -> type[C]:
    """Decorator: a validated dataclass (unknown keys, wrong types and bad bounds are errors,
    also on assignment)."""
    return _pydantic_dataclass(cls, config=_SETTINGS)  # type: ignore[return-value]


# -- building configs from user input ------------------------------------------------------------
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


def from_dict(cls: type[C], data: Any, where: str | None = None, flags: Collection[str] = ()) -> C:
    """Build config ``cls`` from the mapping ``data``; any problem is one UserError line.

    ``where`` names the source (a file, ``"recon"``...); keys in ``flags`` came from the command
    line and are named as flags (``--batch-size``) in the message.
    """
    where = where or cls.__name__
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a mapping of settings, got {_describe(data)}")
    try:
        return cls(**data)
    except pydantic.ValidationError as e:
        raise UserError(validation_message(e, cls, where, flags)) from None


# A typo makes a key both unknown and missing: say "unknown" first, "missing" last.
_PRIORITY = {"unexpected_keyword_argument": 0, "extra_forbidden": 0, "missing": 2}


def validation_message(
    error: pydantic.ValidationError, cls: type, where: str, flags: Collection[str] = ()
) -> str:
    """One line for a pydantic error: ``where: key: problem (got value)`` (+ how many more)."""
    problems = sorted(error.errors(), key=lambda p: _PRIORITY.get(p["type"], 1))
    first = problems[0]
    loc = tuple(first["loc"])
    name = _loc_name(loc, flags)
    if first["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
        valid = _field_names(_type_at(cls, loc[:-1]))
        key = str(loc[-1])
        text = f"unknown key {key!r}{did_you_mean(key, valid)}; valid: {', '.join(valid)}"
        text = f"{name}: {text}" if len(loc) > 1 else text
    elif first["type"] == "enum" and _is_enum(tp := _type_at(cls, loc)):
        valid = [str(m.value) for m in tp]
        value = str(first.get("input"))
        text = f"{name}: {value!r} is not one of {', '.join(valid)}{did_you_mean(value, valid)}"
    elif first["type"] in ("missing", "missing_argument"):
        text = f"{name}: required setting is missing"
    else:
        msg = first["msg"].removeprefix("Value error, ")
        text = msg[:1].lower() + msg[1:] if msg[1:2].islower() else msg  # not "SSIM", "CUDA"
        if loc:
            text = f"{name}: {text} (got {_describe(first.get('input'))})"
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    return f"{where}: {text}{more}"


def _loc_name(loc: tuple[Any, ...], flags: Collection[str]) -> str:
    if loc and loc[0] in flags:
        head = "--" + str(loc[0]).replace("_", "-")
        return head + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[1:])
    name = ""
    for part in loc:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name


def _describe(value: Any) -> str:
    if isinstance(value, (dict, list)) and len(repr(value)) > 60:
        return f"a {type(value).__name__} of {len(value)} item(s)"
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return repr(value)


def _type_at(cls: Any, loc: tuple[Any, ...]) -> Any:
    """The dataclass type found by following ``loc`` (field names, list indices) from ``cls``."""
    tp = cls
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(part, int):
            args = typing.get_args(tp)
            tp = args[0] if args else Any
        elif dataclasses.is_dataclass(tp):
            tp = typing.get_type_hints(tp, include_extras=True).get(part, Any)
        else:
            return None
    return _unwrap(tp)


def _unwrap(tp: Any) -> Any:
    """``Annotated[X, ...]`` -> X; ``X | None`` -> X."""
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _is_enum(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, enum.Enum)


def _field_names(tp: Any) -> list[str]:
    if dataclasses.is_dataclass(tp):
        return [f.name for f in dataclasses.fields(tp) if f.init]
    return []


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
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read ({e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping at the top level")
    return data
