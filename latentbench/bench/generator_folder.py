"""The ``generator/`` folder of a ``train-gen`` run: the final EMA generator as
``Generator.save_pretrained`` writes it (``config.json`` + ``model.safetensors``), and what the
generator records of its space so that :mod:`latentbench.bench.generator_runs` can rebuild it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from latentbench.gen.generator import AnyGenerator
from latentbench.runs import staged_dir

GENERATOR_DIR = "generator"  # the run folder's saved generator


def space_record(
    name: str, image_size: int, options: dict[str, Any], fingerprint: str | None
) -> dict[str, Any]:
    """What a Generator records of its space, enough to rebuild it (``Generator.space_info``)."""
    return {"name": name, "image_size": image_size, "options": options, "fingerprint": fingerprint}


def save_generator(generator: AnyGenerator, path: Path) -> Path:
    """``generator.save_pretrained`` into ``path`` atomically, with the umask's file modes."""
    with staged_dir(path) as tmp:
        generator.save_pretrained(tmp)
    return path
