"""Run folders: manifest (command, config, seed, git, versions, device), metrics, staged folders;
claiming an output folder before any work.

A run folder holds ``manifest.json``, ``metrics.json`` (final scalars), ``metrics.jsonl`` (time
series: step, name, value), ``per_image.csv``, ``images/`` and ``checkpoints/``. Every file is
written by :mod:`latentbench.atomic` (a temporary name, flushed to the disk, renamed), so neither
a kill nor a power loss leaves a half-written file.

Output folders: every command that writes a folder first calls :func:`claim_output`, before any
work. It refuses (one line, :class:`~latentbench.errors.UserError`) a folder that holds anything
but an earlier output of the same command (``--overwrite`` allows that), a folder that is an
input of the command or holds one, and a folder or cache it cannot write to. An output's marker
is ``.latentbench.json`` (``{"kind": COMMAND}``) or, for run folders, ``manifest.json``'s
``command``. Folders are built under ``.NAME.<pid>-XXXX.partial`` (:func:`staged_dir`); such
leftovers of killed processes are removed when the same output is written again. Files and
folders get the modes a plain ``open`` / ``mkdir`` would (0o666 / 0o777 less the umask).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import enum
import hashlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from latentbench.atomic import (
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    dumps,
    share,
    sync,
    sync_name,
)
from latentbench.errors import UserError
from latentbench.files import read_json_object

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


def package_versions() -> dict[str, str]:
    """Python's version, the tracked packages' and every installed plugin's (a distribution that
    registers a space)."""
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    for ep in metadata.entry_points(group="latentbench.spaces"):
        if ep.dist is not None:
            versions.setdefault(ep.dist.name, ep.dist.version)
    return versions


def latentbench_version() -> str:
    """latentbench's installed version ('unknown' where it is not installed)."""
    return package_versions().get("latentbench", "unknown")


def git_hash(package: Path = Path(__file__).resolve().parent) -> str | None:
    """Commit of the checkout that holds the ``package`` folder (latentbench's own), with '+dirty'
    when a tracked file under that folder has uncommitted changes; None outside a git checkout.
    Changes elsewhere in the checkout (a report written into it, a README) leave the code clean.
    """
    git = ["git", "-C", str(package)]
    try:
        head = subprocess.run(
            [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no", "--", "."],
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


def provenance() -> dict[str, Any]:
    """Where and how a result was made: command line, commit, package versions, device, time."""
    return {
        "argv": sys.argv,
        "git": git_hash(),
        "versions": package_versions(),
        "device": device_info(),
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def manifest(command: str, config: dict[str, Any], seed: int | None) -> dict[str, Any]:
    return {"command": command, "config": config, "seed": seed, **provenance()}


# Settings a resume may change: how long the run goes and how often it evaluates, logs and
# checkpoints (the warmup and log interval follow the steps); how data is loaded and logged, where
# the latent cache lies and the statistics computed from it (a cache rebuilt on a GPU may differ in
# the last bits); what a tokenizer is scored on once trained. Any other change would continue the
# run as a different one.
_CADENCE = ("steps", "eval_every", "log_every", "checkpoint_every", "keep_checkpoints")
_AFTER = ("eval_data", "eval_images", "eval_seed")  # a tokenizer's held-out scoring, after training
RESUMABLE = frozenset(
    (*_CADENCE, *_AFTER, "warmup_steps", "num_workers", "log_with", "cache", "stats")
)


def config_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``key: old -> new`` for every setting (a dotted path into nested dicts) that differs
    between a recorded config ``old`` and ``new``, except those :data:`RESUMABLE` names."""
    new = json.loads(dumps(new))
    changes = _differences(old, new, "")
    return sorted(changes, key=lambda change: change.split(":")[0].count("."))  # outer first


def _differences(old: Any, new: Any, path: str) -> list[str]:
    if old == new or path.rsplit(".", 1)[-1] in RESUMABLE:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(old.keys() | new.keys())
        return [d for k in keys for d in _differences(old.get(k), new.get(k), f"{path}.{k}")]
    return [f"{path.lstrip('.')}: {old!r} -> {new!r}"]


class RunDir:
    """One run folder. Create with :meth:`create` (fresh) or :meth:`open` (resume)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # Wall-clock seconds of the run so far, written as `seconds` beside `step` in every
        # metrics.jsonl row (the train loop sets it; resume-aware).
        self.clock: Callable[[], float] | None = None
        self.listeners: list[Callable[[dict[str, Any]], None]] = []  # e.g. a tracker

    @classmethod
    def create(
        cls, path: str | Path, command: str, config: dict[str, Any], seed: int | None = None
    ) -> RunDir:
        run = cls(path)
        run.path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run.path / "manifest.json", manifest(command, config, seed))
        (run.path / "metrics.jsonl").unlink(missing_ok=True)  # a killed start's rows
        return run

    def resume(
        self, command: str, config: dict[str, Any], seed: int | None, from_step: int | None
    ) -> None:
        """Record a resumed start at checkpoint ``from_step`` (None: none yet): the manifest takes
        this start's config (e.g. more steps), each earlier start moves to its ``history`` with
        the step it was resumed from, and metrics.jsonl drops the rows the resumed run rewrites.

        A UserError, before anything is written, when the config differs from the run's in a
        setting a resume may not change (:data:`RESUMABLE`) or in the seed."""
        path = self.path / "manifest.json"
        old = read_json_object(path, {"config": dict})
        if from_step is not None:
            changed = config_changes(
                {"seed": old.get("seed"), **old["config"]}, {"seed": seed, **config}
            )
            if changed:
                more = f"; and {len(changed) - 4} more" if len(changed) > 4 else ""
                raise UserError(
                    f"--resume {self.path}: this command changes what the run was started with "
                    f"({'; '.join(changed[:4])}{more}); a resume may change only "
                    f"{', '.join(sorted(RESUMABLE))}: give the run's settings again, or start a "
                    "new run in another --out"
                )
        history = old.pop("history", [])
        if not isinstance(history, list):
            raise UserError(f"{path}: 'history' is not a list; the file is damaged")
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
        return read_json_object(self.path / "manifest.json")

    def read_metrics(self) -> dict[str, Any]:
        p = self.path / "metrics.json"
        return json.loads(p.read_text()) if p.exists() else {}

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        atomic_write_json(self.path / "metrics.json", metrics)

    def merge_metrics(self, updates: dict[str, Any]) -> None:
        """Add ``updates`` to metrics.json; a key already there takes the new value."""
        metrics = self.read_metrics()
        metrics.update(updates)
        self.write_metrics(metrics)

    def log(self, step: int, name: str, value: float, **extra: Any) -> None:
        """Append one point of a time series to metrics.jsonl (one line, flushed)."""
        row: dict[str, Any] = {"step": int(step)}
        if self.clock is not None:
            row["seconds"] = round(self.clock(), 3)
        row.update(name=name, value=float(value), **extra)
        with open(self.path / "metrics.jsonl", "a") as f:
            f.write(dumps(row, indent=None))
            f.flush()
        for listener in self.listeners:
            listener(row)

    def sync_log(self) -> None:
        """Flush metrics.jsonl to the disk: a checkpoint written after it resumes, even after a
        power loss, to a log that holds every row up to its step."""
        if (self.path / "metrics.jsonl").is_file():
            sync(self.path / "metrics.jsonl")

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


# -- output folders -------------------------------------------------------------------------------
MARKER = ".latentbench.json"
PARTIAL, OLD = ".partial", ".old"


class OutputKind(str, enum.Enum):
    """What wrote an output folder: the command (its marker's ``kind``)."""

    RECON = "recon"
    TRAIN_GEN = "train-gen"
    TRAIN_TOKENIZER = "train-tokenizer"
    TOY_MANIFOLD = "toy-manifold"
    EVAL_GEN = "eval-gen"
    EVAL_EDIT = "eval-edit"
    REPORT = "report"
    SHAPES = "data shapes"
    EXPORT = "data export"
    EXPERIMENT = "run"
    PLAN = "plan"

    @property
    def replaces(self) -> bool:
        """Whether the command replaces the folder whole (else it writes into it)."""
        return self in _REPLACED


_REPLACED = {
    OutputKind.RECON,
    OutputKind.TOY_MANIFOLD,
    OutputKind.REPORT,
    OutputKind.SHAPES,
    OutputKind.EXPORT,
}


CACHE_ENV = "LATENTBENCH_CACHE"
WEIGHTS_ENV = "LATENTBENCH_WEIGHTS"  # the user's folder of weight files (latentbench.hub)


def space_label(name: object) -> str:
    """How every result names a space (recon's keys, train-gen's run folders, the report's
    rows): a registered name as it is, a saved space's folder path by its last component. From
    the text alone, so that a report reads the same label where the folder is absent (but
    ``.`` and ``..``, which name the folder they resolve to)."""
    last = str(name).replace("\\", "/").rstrip("/").rpartition("/")[2]
    return Path(str(name)).resolve().name if last in ("", ".", "..") else last


def cache_root() -> Path:
    """The one root of latentbench's caches: ``$LATENTBENCH_CACHE``, default
    ``~/.cache/latentbench``. Under it: ``latents/`` (encoded datasets), ``fid/`` (statistics of
    real images), ``weights/`` (downloaded weight files)."""
    return Path(os.environ.get(CACHE_ENV) or "~/.cache/latentbench").expanduser()


def cache_digest(key: Any, length: int = 20) -> str:
    """The one cache-key function: sha256 of ``key``'s canonical JSON (sorted keys; objects
    JSON cannot write by ``str``), cut to ``length`` hex digits. Names cache entries."""
    blob = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def output_kind(folder: str | Path) -> str | None:
    """The command that wrote ``folder``: its marker's kind, else its manifest's command."""
    for name, key in ((MARKER, "kind"), ("manifest.json", "command")):
        with contextlib.suppress(OSError, ValueError):
            data = json.loads((Path(folder) / name).read_text())
            if isinstance(data, dict) and isinstance(data.get(key), str):
                return data[key]
    return None


def mark_output(folder: str | Path, kind: OutputKind) -> Path:
    """Create ``folder`` (if needed) with its marker; for commands that write into a folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if output_kind(folder) != kind.value:
        atomic_write_json(folder / MARKER, {"kind": kind.value})
    return folder


def write_eval_results(
    path: Path,
    results: dict[str, Any],
    rows: tuple[str, str],
    run_dir: str | Path | None,
    headline: dict[str, Any],
) -> None:
    """An evaluation's ``results.json`` at ``path`` (with its ``provenance``: command line,
    commit, package versions, device, time), its per-row file ``rows`` (name, text) beside it,
    and, when it evaluated the run folder ``run_dir`` (None: with --out, or images made
    elsewhere), its ``headline`` metrics merged into that run's metrics.json."""
    atomic_write_json(path, {**results, "provenance": provenance()})
    atomic_write_text(path.parent / rows[0], rows[1])
    if run_dir is not None:
        RunDir(run_dir).merge_metrics(headline)


def existing_paths(*values: object) -> list[Path]:
    """The values that name an existing file or folder: the inputs among data SPECs, spaces,
    weights, model options (a built-in name such as ``shapes:8`` names none)."""
    found = []
    for v in values:
        if isinstance(v, (str, Path)) and str(v) and Path(v).expanduser().exists():
            found.append(Path(v).expanduser())
    return found


def claim_output(
    path: str | Path,
    kind: OutputKind,
    *,
    inputs: Iterable[str | Path] = (),
    data: Iterable[str | Path] = (),
    overwrite: bool = False,
    cache: bool = False,
    replaces: Iterable[str] = (),
) -> Path:
    """Check, before any work, that command ``kind`` may write the folder ``path``; return it.

    UserError (one line) when ``path`` is a file; when it is or holds one of ``inputs`` or
    ``data`` (or lies inside a ``data`` folder, whose files it would become); when the command
    replaces it whole and it is or holds the working folder or the home folder; when it exists,
    is not empty and is not an earlier output of ``kind`` (unless ``overwrite``); when, not
    being such an output, it holds one of the subfolders ``replaces`` names (which the command
    replaces whole), even with ``overwrite``; when it, its parent or (``cache``) the cache folder
    is not writable. Nothing is created.
    """
    path = Path(path).expanduser()
    target = path.resolve()
    if path.exists() and not path.is_dir():
        raise UserError(f"output {path} is a file, not a folder")
    for given, inside_too in [(p, False) for p in inputs] + [(p, True) for p in data]:
        source = Path(given).expanduser().resolve()
        if target == source or target in source.parents:
            verb = "is" if target == source else "holds"
            raise UserError(f"output {path} {verb} the input {given}; pick another folder")
        if inside_too and source in target.parents and source.is_dir():
            raise UserError(f"output {path} is inside the data folder {given}; pick another")
    kept = [(f"latentbench's cache ${CACHE_ENV}", cache_root())]
    if os.environ.get(WEIGHTS_ENV):
        kept.append((f"the weights folder ${WEIGHTS_ENV}", Path(os.environ[WEIGHTS_ENV])))
    if kind.replaces:
        kept += [("the working folder", Path.cwd()), ("your home", Path.home())]
    for name, folder in kept:
        folder = folder.expanduser().resolve()
        if target == folder or (kind.replaces and target in folder.parents):
            verb = "is" if target == folder else "holds"
            raise UserError(f"output {path} {verb} {name}; pick another folder")
    if path.is_dir() and not overwrite:
        found = output_kind(path)
        if found != kind.value and any(p.name != MARKER for p in path.iterdir()):
            what = f"a {found} output" if found else "files latentbench did not write"
            action = "replace it" if kind.replaces else "write into it anyway"
            raise UserError(
                f"output {path} holds {what}, not a {kind.value} output; pass --overwrite to "
                f"{action}, or pick another folder"
            )
    if path.is_dir() and output_kind(path) != kind.value:
        for name in replaces:
            if (path / name).exists() or (path / name).is_symlink():
                raise UserError(
                    f"output {path} holds {name}/, which latentbench did not write and "
                    f"{kind.value} would replace whole; pick another folder"
                )
    _check_writable(path, "output")
    if kind.replaces:  # the new folder is built beside it
        _check_writable(path.parent, "output")
    if cache:
        _check_writable(cache_root(), "cache folder", " (set $LATENTBENCH_CACHE)")
    return path


def _check_writable(path: Path, what: str, hint: str = "") -> None:
    """UserError when ``path`` (or, if it does not exist yet, its nearest existing parent) is not
    a folder this process may write in. A folder without any write bit counts as read-only even
    for root, as for ``rm``."""
    probe = path.expanduser().absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{what} {path}: {probe} is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK) or not probe.stat().st_mode & 0o222:
        where = "" if probe == path.expanduser().absolute() else f" ({probe} is read-only)"
        raise UserError(f"{what} {path} is not writable{where}{hint}")


# The tag staged_dir gives its folders: the pid, then tempfile.mkdtemp's 8 random characters.
_STAGED_TAG = re.compile(r"^(\d+)-[a-z0-9_]{8}$")


def remove_stale(path: str | Path) -> list[Path]:
    """Remove the ``.NAME.<pid>-XXXXXXXX.partial`` / ``.old`` folders beside ``path`` whose
    process is gone or started after the folder was last written (its pid was reused); returns
    them. The leftovers of a live process are never touched, nor a folder of another name (a
    user's ``.NAME.2023.old``); an untagged ``.NAME.old`` (older versions) only with a marker."""
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    for sib in path.parent.iterdir():
        if not sib.name.startswith(f".{path.name}.") or not sib.name.endswith((PARTIAL, OLD)):
            continue
        stem = sib.name.removesuffix(PARTIAL).removesuffix(OLD)
        head, _, tag = stem.rpartition(".")
        legacy = sib.name == f".{path.name}{OLD}" and output_kind(sib) is not None
        match = _STAGED_TAG.match(tag) if head == f".{path.name}" else None
        if legacy or (match and not _owner_alive(int(match.group(1)), sib)):
            _remove(sib)
            removed.append(sib)
    return removed


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of ``path`` itself (a link is not followed); None when nothing is there."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def _remove(path: Path) -> None:
    """Delete a leftover folder (or a link or file in its place; never a link's target)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _owner_alive(pid: int, leftover: Path) -> bool:
    import psutil

    try:
        started = psutil.Process(pid).create_time()
        written = leftover.lstat().st_mtime
    except (psutil.NoSuchProcess, FileNotFoundError):
        return False
    except (psutil.Error, OSError):  # not ours to inspect: leave it
        return True
    return started <= written + 1.0  # 1 s for the clocks' resolution


@contextlib.contextmanager
def staged_dir(path: str | Path, kind: OutputKind | None = None) -> Iterator[Path]:
    """Build a folder under a temporary name and move it into place only on success.

    A failed or interrupted command leaves nothing at ``path``; an existing folder at
    ``path`` is replaced only once the new one is complete, and flushed to the disk (a power
    loss leaves the old folder or the new one). Call :func:`claim_output` first
    for a command's output. ``kind`` writes the output's marker.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    prefix = f".{path.name}.{os.getpid()}-"
    tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=PARTIAL, dir=path.parent))
    claimed = _identity(path)  # what the claim checked: replaced only if it is still that
    try:
        if kind is not None:
            atomic_write_json(tmp / MARKER, {"kind": kind.value})
        yield tmp
        share(sync(tmp))
        now = _identity(path)
        if now is not None and now != claimed:
            kept = path.with_name(f"{path.name}.{os.getpid()}.new")
            os.replace(tmp, kept)
            raise UserError(
                f"output {path} was created or replaced by something else while this command "
                f"ran; it is left as it is, and this command's result is in {kept}"
            )
        if now is not None:
            old = Path(tempfile.mkdtemp(prefix=prefix, suffix=OLD, dir=path.parent))
            old.rmdir()  # a unique free name
            os.replace(path, old)
            os.replace(tmp, path)
            sync_name(path)
            _remove(old)
        else:
            os.replace(tmp, path)
            sync_name(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
