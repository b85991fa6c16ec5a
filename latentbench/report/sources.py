"""Copies of the runs' small JSON files inside the report folder, so that its links work once
the report is committed or moved without the runs.

Each run's ``manifest.json``, ``metrics.json``, ``metrics.jsonl`` and ``results.json`` (and
those of each seed of a seed group) go to ``sources/<run>/<same relative path>`` when they
are regular files inside the run folder and at most :data:`MAX_BYTES`; a number links to the
copy of the file it was read from, and has no link when there is none.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import quote

from latentbench.report.load import CURVES, GENEVAL_RESULTS, MANIFEST, METRICS, Run, outside
from latentbench.report.plots import slug

SOURCES = "sources"
MAX_BYTES = 4_000_000  # a metrics.jsonl of a long run can be larger; it is then not copied
FILES = (MANIFEST, METRICS, CURVES, GENEVAL_RESULTS)


class Sources:
    """The copies under ``root/sources`` and their links relative to ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.copies: dict[Path, Path] = {}  # source (as the records hold it) -> copy
        self.folders: dict[str, Path] = {}  # run name -> its folder under sources/

    def copy_runs(self, runs: list[Run]) -> None:
        for run in runs:
            folder = self.root / SOURCES / slug(run.name)
            while folder in self.folders.values():
                folder = folder.with_name(folder.name + "_")
            self.folders[run.name] = folder
            for base in (run.path, *run.seed_dirs.values()):
                for name in FILES:
                    self._copy(run, base / name, folder)

    def _copy(self, run: Run, path: Path, folder: Path) -> None:
        if not path.is_file() or outside(path, run.path) or path.stat().st_size > MAX_BYTES:
            return
        dest = folder / path.relative_to(run.path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path.resolve(), dest)
        self.copies[path] = dest

    def href(self, source: Path) -> str | None:
        """The URL-quoted link, relative to the report folder, to the copy of ``source``."""
        dest = self.copies.get(source)
        return quote(dest.relative_to(self.root).as_posix()) if dest else None

    def run_href(self, run: Run) -> str | None:
        """The link to the run's copied manifest (the first seed's for a seed group)."""
        for base in (run.path, *run.seed_dirs.values()):
            if link := self.href(base / MANIFEST):
                return link
        return None
