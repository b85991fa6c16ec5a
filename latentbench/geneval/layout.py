"""GenEval's output layout: one folder per prompt, its entry and its images::

    DIR/<index:05d>/metadata.jsonl      the prompt's metadata entry (one JSON object)
    DIR/<index:05d>/samples/<k:04d>.png sample k of that prompt

what GenEval's ``generation/diffusers_generate.py`` writes and its ``evaluate_images.py`` reads.
A trained generator's samples (``eval-gen RUN_DIR``), the Shapes world's ground truth
(``data shapes --geneval``) and images made by any other model (``eval-gen --images``) all use
it. Reading skips and counts what cannot be scored; it never stops at one bad folder.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latentbench.errors import UserError
from latentbench.geneval.metadata import Skipped, check_entry, entry_line

METADATA = "metadata.jsonl"
SAMPLES = "samples"
SAMPLE_SUFFIX = ".png"
LAYOUT = f"DIR/<index:05d>/{METADATA} + {SAMPLES}/<k:04d>{SAMPLE_SUFFIX}"


@dataclass(frozen=True)
class PromptImages:
    """One prompt folder: its index, its metadata entry and its sample images (sorted)."""

    index: int
    entry: dict[str, Any]
    samples: tuple[Path, ...]


def prompt_folder(root: Path, index: int) -> Path:
    return root / f"{index:05d}"


def sample_path(root: Path, index: int, k: int) -> Path:
    return prompt_folder(root, index) / SAMPLES / f"{k:04d}{SAMPLE_SUFFIX}"


def write_prompt(root: Path, index: int, entry: Mapping[str, Any]) -> Path:
    """Make prompt ``index``'s folder with its ``metadata.jsonl`` and an empty ``samples/``;
    returns the folder. (Callers write into a staged folder, so plain writes suffice.)"""
    folder = prompt_folder(root, index)
    (folder / SAMPLES).mkdir(parents=True, exist_ok=True)
    (folder / METADATA).write_text(entry_line(entry))
    return folder


def _read_entry(meta: Path) -> tuple[Any, str | None]:
    """(the first JSON line of a prompt's metadata.jsonl, why it cannot be scored or None)."""
    try:
        text = meta.read_text().strip()
        entry: Any = json.loads(text.splitlines()[0]) if text else None
    except FileNotFoundError:
        return None, f"{meta}: missing"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return None, f"{meta}: unreadable ({type(e).__name__})"
    return entry, check_entry(entry, str(meta)) if entry is not None else f"{meta}: empty"


def _samples(folder: Path) -> tuple[Path, ...]:
    if not folder.is_dir():
        return ()
    return tuple(sorted(p for p in folder.iterdir() if p.suffix.lower() == SAMPLE_SUFFIX))


def scan_folder(images_dir: str | Path, skipped: Skipped) -> list[PromptImages]:
    """The prompt folders of a GenEval layout, by index; folders with bad metadata or no images
    are skipped and counted. A UserError when the folder is missing or nothing is left."""
    root = Path(images_dir)
    if not root.is_dir():
        raise UserError(f"images folder not found: {root}")
    found = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and p.name.isdigit()):
        entry, problem = _read_entry(sub / METADATA)
        samples = _samples(sub / SAMPLES)
        if problem:
            skipped.add(problem, prompts=1, images=len(samples))
        elif not samples:
            skipped.add(f"{sub}: no images in {SAMPLES}/", prompts=1)
        else:
            found.append(PromptImages(int(sub.name), entry, samples))
    if not found:
        raise UserError(
            f"{root}: nothing to score (GenEval layout: {LAYOUT}; "
            f"{skipped.prompts} prompt folder(s) skipped)"
        )
    return found
