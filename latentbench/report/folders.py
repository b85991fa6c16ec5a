"""Which folders are runs: the run folders a report is given, or finds one level down.

A run folder holds a ``manifest.json``, or is a GenEval ``results.json`` folder, or is a seed
group. Seed groups come in two layouts, each one run per space whose numbers come from an
aggregate ``metrics.json`` (:mod:`latentbench.bench.seeds`) and whose curves are the per-seed
curves:

- an experiment's (and ``train-tokenizer --seeds``'): ``<space>/seed_<k>/`` run folders, the
  aggregate ``<space>/metrics.json``;
- ``train-gen --space A,B --seeds ...``'s: ``<out>/seed_<k>/<space>/`` run folders, the
  aggregate ``<out>/metrics.json`` with one entry per space (``{space: {metric: ...}}``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from latentbench.errors import UserError

MANIFEST = "manifest.json"
GENEVAL_RESULTS = "results.json"
SEED_DIR = re.compile(r"^seed_(\d+)$")


@dataclass(frozen=True)
class RunFolder:
    """A run the report reads: a folder, and for a ``train-gen --seeds`` output of several
    spaces, which space's seed group of it (None for any other run)."""

    path: Path
    space: str | None = None

    @property
    def label(self) -> Path:
        """The path the run is named by (a space of a seed group: ``<out>/<space>``)."""
        return self.path / self.space if self.space else self.path


def outside(path: Path, root: Path) -> str:
    """'' when ``path`` is a regular file inside ``root`` once links are resolved, else why not."""
    real = path.resolve()
    if real != root.resolve() and root.resolve() not in real.parents:
        return "a link out of the run folder"
    return "" if real.is_file() else "not a regular file"


def is_geneval_results(path: Path) -> bool:
    if not path.is_file() or outside(path, path.parent):
        return False
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # JSONDecodeError, UnicodeDecodeError (binary content)
        return False
    return isinstance(data, dict) and "tasks" in data and "overall" in data


def is_run_dir(path: Path) -> bool:
    return (
        (path / MANIFEST).is_file()
        or is_geneval_results(path / GENEVAL_RESULTS)
        or bool(seed_dirs(path))
    )


def _seed_children(path: Path) -> list[tuple[int, Path]]:
    if not path.is_dir():
        return []
    return [
        (int(m.group(1)), child)
        for child in path.iterdir()
        if (m := SEED_DIR.match(child.name)) and child.is_dir()
    ]


def seed_dirs(path: Path) -> dict[int, Path]:
    """The ``seed_<k>/`` run folders of a seed group, by seed (empty for any other folder)."""
    found = {k: d for k, d in _seed_children(path) if not outside(d / MANIFEST, path)}
    return dict(sorted(found.items()))


def space_seed_groups(path: Path) -> dict[str, dict[int, Path]]:
    """``train-gen --space A,B --seeds``'s ``seed_<k>/<space>/`` run folders of ``path``, by
    space then seed (empty for any other folder)."""
    if (path / MANIFEST).exists() or seed_dirs(path):
        return {}
    found: dict[str, dict[int, Path]] = {}
    for seed, folder in _seed_children(path):
        for run in folder.iterdir():
            if run.is_dir() and not outside(run / MANIFEST, path):
                found.setdefault(run.name, {})[seed] = run
    return {space: dict(sorted(found[space].items())) for space in sorted(found)}


def _runs_of(path: Path) -> list[RunFolder]:
    """``path`` as a run, or one run per space of a ``train-gen --seeds`` output, or none."""
    if is_run_dir(path):
        return [RunFolder(path)]
    return [RunFolder(path, space) for space in space_seed_groups(path)]


def expand(paths: Iterable[str | Path]) -> list[RunFolder]:
    """Run folders from the command line: a run folder, a ``train-gen --seeds`` output (one run
    per space), or a folder of run folders (e.g. the ``--out`` of ``train-gen``, one run per
    space). Anything else is a UserError."""
    out: list[RunFolder] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            raise UserError(f"run folder not found: {path}")
        found = _runs_of(path)
        if not found:
            children = sorted(p for p in path.iterdir() if p.is_dir())
            found = [run for child in children for run in _runs_of(child)]
        if not found:
            raise UserError(
                f"{path} is not a run folder (no {MANIFEST} or GenEval {GENEVAL_RESULTS}, "
                "and no run folders inside)"
            )
        out.extend(found)
    if not out:
        raise UserError("no run folder given")
    return out


def unique_names(paths: Sequence[Path]) -> list[str]:
    """Folder names; where two collide, parent/name; then a #n suffix."""
    names = [p.name or str(p) for p in paths]
    for i, p in enumerate(paths):
        if names.count(names[i]) > 1:
            names[i] = f"{p.parent.name}/{p.name}"
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            names[i] = f"{name} #{seen[name]}"
    return names
