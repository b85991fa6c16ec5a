"""GenEval's metadata entries: their schema, and the ``evaluation_metadata.jsonl`` file.

One entry a line, in the official format (or Bagel's long-prompt rewrite, same fields)::

    {"tag": "counting", "prompt": "a photo of two clocks",
     "include": [{"class": "clock", "count": 2}], "exclude": [{"class": "clock", "count": 3}]}

Reading never stops at a bad line: lines that are not JSON, lack a tag / prompt / include, have
a malformed clause or an unknown tag are skipped and counted (:class:`Skipped`); only a missing
file, or one with nothing to score, is a UserError.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latentbench.atomic import atomic_write_text
from latentbench.errors import UserError
from latentbench.files import read_nonempty_lines
from latentbench.geneval.vocabulary import GenevalTask, Relation

MAX_REASONS = 50  # a Skipped keeps this many reasons (the counts go on)


@dataclass
class Skipped:
    """What could not be scored, counted by kind, with the first reasons."""

    prompts: int = 0
    images: int = 0
    reasons: list[str] = field(default_factory=list)

    def add(self, reason: str, *, images: int = 0, prompts: int = 0) -> None:
        self.prompts += prompts
        self.images += images
        if len(self.reasons) < MAX_REASONS:
            self.reasons.append(reason)


def validate_entry(entry: Any, where: str) -> dict[str, Any]:
    """Check one metadata entry's structure; raise a UserError naming ``where`` if it is bad."""
    if not isinstance(entry, dict):
        raise UserError(f"{where}: a GenEval metadata entry must be a JSON object")
    for key in ("tag", "prompt", "include"):
        if key not in entry:
            raise UserError(f"{where}: GenEval metadata entry has no {key!r}")
    clauses = list(entry["include"]) + list(entry.get("exclude", []))
    for req in clauses:
        if not isinstance(req, dict) or "class" not in req or "count" not in req:
            raise UserError(f"{where}: every include/exclude clause needs 'class' and 'count'")
        if "position" in req:
            rel = req["position"]
            if not (
                isinstance(rel, (list, tuple))
                and len(rel) == 2
                and rel[0] in {r.value for r in Relation}
            ):
                raise UserError(
                    f"{where}: bad position {rel!r}; expected [relation, index], relation one of "
                    f"{', '.join(r.value for r in Relation)}"
                )
            if not 0 <= int(rel[1]) < len(entry["include"]):
                raise UserError(f"{where}: position target {rel[1]} is not an include clause")
    return entry


def check_entry(entry: Any, where: str) -> str | None:
    """Why ``entry`` cannot be scored (None when it can): a bad structure or an unknown tag."""
    try:
        validate_entry(entry, where)
    except UserError as e:
        return str(e)
    if str(entry["tag"]) not in {t.value for t in GenevalTask}:
        valid = ", ".join(t.value for t in GenevalTask)
        return f"{where}: unknown tag {entry['tag']!r} (GenEval tags: {valid})"
    return None


def read_entries(path: str | Path, skipped: Skipped) -> list[tuple[int, dict[str, Any]]]:
    """(index, entry) of each scoreable line of a GenEval metadata file; bad lines are skipped
    and counted. The index is the line's position among non-empty lines (GenEval's folder index)."""
    path = Path(path)
    lines = read_nonempty_lines(path, "GenEval metadata")
    entries = []
    for index, line in enumerate(lines):
        where = f"{path}:{index + 1}"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as e:
            skipped.add(f"{where}: not valid JSON ({e.msg})", prompts=1)
            continue
        problem = check_entry(entry, where)
        if problem:
            skipped.add(problem, prompts=1)
            continue
        entries.append((index, entry))
    if not entries:
        raise UserError(f"{path}: no scoreable GenEval metadata entry ({skipped.prompts} skipped)")
    return entries


def entry_line(entry: Mapping[str, Any]) -> str:
    """One entry as a line of a metadata file."""
    return json.dumps(dict(entry)) + "\n"


def write_metadata(path: str | Path, entries: Iterable[Mapping[str, Any]]) -> None:
    """Write entries one JSON object a line, atomically."""
    atomic_write_text(path, "".join(entry_line(e) for e in entries))
