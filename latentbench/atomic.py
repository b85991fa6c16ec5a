"""Writing files that no reader ever sees half written, after a kill or a power loss.

- :func:`atomic_path` / :func:`atomic_write_text` / :func:`atomic_write_json`: a file is written
  under a temporary name beside its own and renamed onto it only once complete. The file is
  flushed to the disk before the rename and the folder after it (:func:`sync`), so a power loss
  leaves the old file or the new one, never an empty or cut one under the final name.
- :func:`share`: what a file or folder is published with, the mode a plain ``open`` / ``mkdir``
  would give it (0o666 / 0o777 less the umask), where temporary ones are private.
- :func:`dumps`: latentbench's JSON (NaN and infinity, which JSON lacks, written as null).

Folders are built the same way, by :func:`latentbench.runs.staged_dir`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


# -- modes --------------------------------------------------------------------------------------
def umask() -> int:
    """The process umask (read without changing it where /proc tells it)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def share(path: Path) -> Path:
    """Give ``path`` (a folder: and everything in it) the mode a plain ``open`` / ``mkdir``
    would: 0o666 (file) or 0o777 (folder) less the umask. Temporary files and folders are
    private (0o600 / 0o700), and so are some libraries' files (safetensors); every atomic write
    and staged folder passes through here before it takes its final name. Links are left as
    they are."""
    mask = umask()
    for p in [path, *(path.rglob("*") if path.is_dir() else ())]:
        if not p.is_symlink():
            p.chmod((0o777 if p.is_dir() else 0o666) & ~mask)
    return path


# -- durability ---------------------------------------------------------------------------------
def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as e:  # a file system that cannot sync a folder keeps its own order
        if not (path.is_dir() and e.errno in (errno.EINVAL, errno.ENOTSUP)):
            raise
    finally:
        os.close(fd)


def sync(path: Path) -> Path:
    """Flush ``path`` to the disk: a file's bytes, or a folder with everything in it. A rename
    survives a power loss only once what it renamed is on the disk, and then (:func:`sync_name`)
    the folder it renamed it in."""
    for p in [*(path.rglob("*") if path.is_dir() else ()), path]:
        if not p.is_symlink():
            _fsync(p)
    return path


def sync_name(path: Path) -> None:
    """Flush the folder that holds ``path``, so that the name ``path`` survives a power loss."""
    _fsync(path.parent)


# -- files --------------------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(share(sync(tmp_path)), path)
        sync_name(path)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)  # a Path, an enum, anything else JSON cannot write


def _finite(obj: Any) -> Any:
    """JSON has no NaN/Inf: write them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def dumps(obj: Any, indent: int | None = 2) -> str:
    """``obj`` as latentbench writes JSON: one document and a newline (``indent=None``: one
    line, as a row of a ``.jsonl`` file)."""
    return json.dumps(_finite(obj), indent=indent, default=_json_default) + "\n"


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, dumps(obj))
