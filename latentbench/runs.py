"""Run folders: manifest (command, config, seed, git, versions, device), metrics, atomic writes.

A run folder holds ``manifest.json``, ``metrics.json`` (final scalars), ``metrics.jsonl`` (time
series: step, name, value), ``per_image.csv``, ``images/`` and ``checkpoints/``. Every file is
written to a temporary name and renamed, so a killed process never leaves a half-written file.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

TRACKED_PACKAGES = (
    "latentbench",
    "torch",
    "torchvision",
    "numpy",
    "diffusers",
    "transformers",
    "timm",
    "accelerate",
    "safetensors",
    "torch-fidelity",
    "lpips",
    "scikit-image",
)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    tmp_path.chmod(0o644)  # mkstemp makes 0600; results are meant to be shared
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def _finite(obj: Any) -> Any:
    """JSON has no NaN/Inf: write them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def dumps(obj: Any) -> str:
    return json.dumps(_finite(obj), indent=2, sort_keys=False, default=_json_default) + "\n"


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, dumps(obj))


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def git_hash() -> str | None:
    """Commit of the latentbench source tree (with '+dirty' when it has changes), if any."""
    src = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def device_info() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def manifest(command: str, config: dict[str, Any], seed: int | None) -> dict[str, Any]:
    return {
        "command": command,
        "argv": sys.argv,
        "config": config,
        "seed": seed,
        "git": git_hash(),
        "versions": package_versions(),
        "device": device_info(),
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


class RunDir:
    """One run folder. Create with :meth:`create` (fresh) or :meth:`open` (resume)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def create(
        cls, path: str | Path, command: str, config: dict[str, Any], seed: int | None = None
    ) -> RunDir:
        run = cls(path)
        run.path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run.path / "manifest.json", manifest(command, config, seed))
        return run

    def resume(
        self, command: str, config: dict[str, Any], seed: int | None, from_step: int | None
    ) -> None:
        """Record a resumed start at checkpoint ``from_step`` (None: none yet): the manifest takes
        this start's config (e.g. more steps), each earlier start moves to its ``history`` with
        the step it was resumed from, and metrics.jsonl drops the rows the resumed run rewrites."""
        old = self.manifest
        history = old.pop("history", [])
        history.append({**old, "resumed_from_step": from_step})
        atomic_write_json(
            self.path / "manifest.json", {**manifest(command, config, seed), "history": history}
        )
        self.trim_log(from_step if from_step is not None else -1)

    # -- files ---------------------------------------------------------------------------------
    def file(self, *parts: str) -> Path:
        p = self.path.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    @property
    def manifest(self) -> dict[str, Any]:
        return json.loads((self.path / "manifest.json").read_text())

    def read_metrics(self) -> dict[str, Any]:
        p = self.path / "metrics.json"
        return json.loads(p.read_text()) if p.exists() else {}

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        atomic_write_json(self.path / "metrics.json", metrics)

    def log(self, step: int, name: str, value: float, **extra: Any) -> None:
        """Append one point of a time series to metrics.jsonl (one line, flushed)."""
        row = {"step": int(step), "name": name, "value": float(value), **extra}
        with open(self.path / "metrics.jsonl", "a") as f:
            f.write(json.dumps(_finite(row), default=_json_default) + "\n")
            f.flush()

    def trim_log(self, max_step: int) -> None:
        """Drop metrics.jsonl rows after ``max_step``: a resumed run writes them again."""
        path = self.path / "metrics.jsonl"
        if not path.is_file():
            return

        def step(line: str) -> int:
            try:
                return int(json.loads(line)["step"])
            except (ValueError, KeyError, TypeError):
                return 1 << 62  # a line cut by a kill

        keep = [line for line in path.read_text().splitlines() if line.strip()]
        with atomic_path(path) as tmp:
            tmp.write_text("".join(line + "\n" for line in keep if step(line) <= max_step))

    def read_log(self) -> list[dict[str, Any]]:
        p = self.path / "metrics.jsonl"
        if not p.exists():
            return []
        rows = []
        for line in p.read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):  # a line cut by a kill
                rows.append(json.loads(line))
        return rows


@contextlib.contextmanager
def staged_dir(path: str | Path) -> Iterator[Path]:
    """Build a folder under a temporary name and move it into place only on success.

    A failed or interrupted command leaves nothing at ``path``; an existing folder at
    ``path`` is replaced only once the new one is complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
