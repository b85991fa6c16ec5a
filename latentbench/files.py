"""Reading files a user can hand latentbench, safely: one :class:`UserError` line per damage.

- Weights are read only as safetensors or with ``torch.load(weights_only=True)``: a file that
  holds pickled Python objects is refused (nothing in it runs), with one line naming the file.
- A truncated, empty or garbage file (JSON, safetensors, torch) is one line naming the file, never
  a traceback. :func:`safetensors_problem` checks a safetensors file cheaply but for real: its
  header parses and its tensors cover the file exactly (so a truncated file is caught).
- :func:`note` tells the user what latentbench did about a damaged file it owns (a cache entry
  rebuilt, a checkpoint skipped).
- :func:`read_jsonl` reads a time series latentbench appends to, skipping a last line a kill cut.
"""

from __future__ import annotations

import json
import pickle
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import Tensor

from latentbench.errors import UserError

_JSON_NAMES: dict[type, str] = {  # bool first: a bool is an int too
    bool: "a boolean",
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    type(None): "null",
}
_UNSAFE_GLOBAL = re.compile(r"Unsupported global: GLOBAL (\S+)")


def first_line(e: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    text = str(e).strip()
    return text.splitlines()[0][:limit] if text else type(e).__name__


def note(message: str) -> None:
    """One ``note:`` line on stderr (the CLI's error and progress stream)."""
    print(f"note: {message}", file=sys.stderr, flush=True)


def _json_type(value: Any) -> str:
    return next((name for t, name in _JSON_NAMES.items() if isinstance(value, t)), "a value")


def read_json_object(
    path: str | Path, required: Mapping[str, type | tuple[type, ...]] | None = None
) -> dict[str, Any]:
    """The JSON object in ``path``; ``required`` maps keys that must be present to their types.

    Unreadable, truncated, empty or non-object files, and missing or mistyped keys, are one
    UserError line naming the file.
    """
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise UserError(f"{path}: cannot be read ({first_line(e)})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a JSON file (binary content)") from None
    except json.JSONDecodeError as e:
        what = "empty" if not e.doc.strip() else f"not valid JSON ({e.msg}, line {e.lineno})"
        raise UserError(f"{path}: {what}; the file is damaged or truncated") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path}: expected a JSON object, found {_json_type(obj)}")
    for key, kind in (required or {}).items():
        if key not in obj:
            raise UserError(f"{path}: missing key {key!r}")
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if not isinstance(obj[key], kinds) or (isinstance(obj[key], bool) and bool not in kinds):
            wanted = " or ".join(_JSON_NAMES.get(k, k.__name__) for k in kinds)
            raise UserError(f"{path}: {key!r} is {_json_type(obj[key])}, expected {wanted}")
    return obj


def read_nonempty_lines(path: str | Path, what: str) -> list[str]:
    """The non-empty lines of the text file ``path`` (a JSON-lines file, say); a missing or
    unreadable file is one UserError line that names it as ``what``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} file not found: {path}")
    try:
        return [line for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read {what} file {path}: {e}") from None


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The JSON objects of a time series latentbench appends to (``metrics.jsonl``), one per
    line; [] when there is no file. A line cut by a kill, or one that is not an object, is
    skipped: a run killed mid-write still reads up to its last whole row."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_bytes().splitlines():
        try:
            row = json.loads(line.decode("utf-8"))
        except ValueError:  # JSONDecodeError, or UnicodeDecodeError: a damaged (binary) line
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


# -- weights --------------------------------------------------------------------------------------
def safetensors_problem(path: str | Path) -> str | None:
    """Why ``path`` is not a complete safetensors file, or None when it is.

    Reads the header only: safetensors parses it and checks that the tensors it lists cover the
    rest of the file exactly, so a truncated, empty or garbage file is caught without loading it.
    """
    try:
        with safe_open(str(path), framework="pt") as f:
            f.keys()
    except (SafetensorError, OSError) as e:
        return first_line(e)
    return None


def load_safetensors(path: str | Path, device: str = "cpu") -> dict[str, Tensor]:
    """``safetensors.torch.load_file`` with one UserError line naming a damaged file."""
    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OSError) as e:
        raise UserError(
            f"{path}: not a readable safetensors file ({first_line(e)}); it is damaged or truncated"
        ) from None


def torch_load(path: str | Path, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``; what it refuses or cannot read is one UserError.

    A file holding pickled Python objects (anything but tensors and plain containers) is refused,
    never unpickled: only the class names are reported.
    """
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        found = _UNSAFE_GLOBAL.search(str(e))
        if found is None:  # not a pickle at all: garbage bytes
            raise UserError(f"{path}: not a readable torch state dict ({first_line(e)})") from None
        raise UserError(
            f"{path}: refused, not a plain torch state dict: it holds pickled Python objects "
            f"({found.group(1)}); latentbench reads weights with torch.load(weights_only=True) "
            "only (save a plain state dict of tensors, or safetensors)"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable torch state dict ({first_line(e)})") from None


def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """A state dict of tensors from ``.safetensors`` or a torch file (``{"state_dict": ...}`` is
    unwrapped); anything else is one UserError line naming the file."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_safetensors(path)
    state = torch_load(path)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise UserError(f"{path}: expected a state dict of tensors")
    return state
