"""The inputs of a ``train-gen`` run besides the space: the training data, the text encoder and
condition spec it implies, the fixed evaluation conditions, and the Frechet-distance extractor
with its reference statistics."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import Dataset

from latentbench.bench.generation_config import Resolved, TrainGenConfig
from latentbench.data import DEFAULT_MAX_PIXELS
from latentbench.data.cache import LatentCache
from latentbench.errors import UserError
from latentbench.gen.dit import CondKind, CondSpec
from latentbench.gen.generator import TaskKind
from latentbench.gen.text import FrozenTextEncoder, WordTokenizer, build_text_encoder
from latentbench.spaces import LatentSpace
from latentbench.train.generator_eval import EvalSet


def open_data(
    spec: str,
    task: TaskKind,
    image_size: int,
    seed: int,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> Dataset:
    """The training data: edits for ``edit`` (``shapes[:N]`` means Shapes edits), else images
    (files of more than ``max_pixels`` pixels skipped)."""
    if task is TaskKind.EDIT:
        m = re.fullmatch(r"shapes(?:-edits)?(?::(\d+))?", spec.strip())
        if not m:
            raise UserError(f"task edit needs Shapes edits data (shapes-edits[:N]), got {spec!r}")
        from latentbench.data.shapes import ShapesEditsDataset

        return ShapesEditsDataset(int(m.group(1) or 1000), image_size, seed)
    from latentbench.data import open_images

    return open_images(spec, image_size, seed=seed, max_pixels=max_pixels)


def make_text_encoder(
    cfg: TrainGenConfig, cache: LatentCache
) -> WordTokenizer | FrozenTextEncoder | None:
    if cfg.task is TaskKind.CLASS:
        return None
    captions = list(cache.meta["captions"])
    if not any(captions):
        raise UserError(f"task {cfg.task.value} needs captions, and {cfg.data!r} has none")
    return build_text_encoder(
        cfg.text_encoder, captions, cfg.text_encoder_path, max_len=cfg.max_text_len
    )


def cond_spec(
    cfg: TrainGenConfig, cache: LatentCache, text: WordTokenizer | FrozenTextEncoder | None
) -> CondSpec:
    if cfg.task is TaskKind.CLASS:
        labels = [lab for lab in cache.meta["labels"] if lab >= 0]
        if not labels:
            raise UserError(f"task class needs labels, and {cfg.data!r} has none")
        return CondSpec(CondKind.CLASS, num_classes=max(labels) + 1)
    edit = cfg.task is TaskKind.EDIT
    if isinstance(text, WordTokenizer):
        return CondSpec(
            CondKind.TOKENS, vocab_size=text.vocab_size, max_len=text.max_len, edit=edit
        )
    assert isinstance(text, FrozenTextEncoder)
    return CondSpec(CondKind.FEATURES, text_dim=text.dim, max_len=text.max_len, edit=edit)


def make_eval_set(r: Resolved, space: LatentSpace, cache: LatentCache, num_classes: int) -> EvalSet:
    """Fixed conditions: class labels in turn; Shapes GenEval prompts (or the data's first
    captions for other data); held-out Shapes edits (seed + 1)."""
    cfg, n = r.cfg, r.train.eval_samples
    if cfg.task is TaskKind.CLASS:
        return EvalSet(labels=torch.arange(n) % num_classes, num=n)
    if cfg.task is TaskKind.T2I:
        if cfg.data.strip().startswith("shapes"):
            from latentbench.data.shapes import geneval_suite

            entries = geneval_suite(prompts_per_task=math.ceil(n / 6), seed=cfg.seed)
            return EvalSet(
                captions=[e["prompt"] for e in entries], entries=entries, num=len(entries)
            )
        caps = list(cache.meta["captions"])[:n]
        return EvalSet(captions=caps, num=len(caps))
    from latentbench.data.shapes import ShapesEditsDataset

    edits = ShapesEditsDataset(n, space.spec.image_size, seed=cfg.seed + 1)
    items = [edits[i] for i in range(n)]
    sources = torch.stack([it["source"] for it in items])
    with torch.inference_mode():
        z = torch.cat([space.encode(sources[s : s + 32]).float().cpu() for s in range(0, n, 32)])
    return EvalSet(
        captions=[it["instruction"] for it in items],
        sources=z,
        edits=[edits.edit(i) for i in range(n)],
        num=n,
    )


def make_extractor(name: str, echo: Callable[[str], None]) -> tuple[Any | None, str]:
    """(extractor, name); ``auto`` falls back from Inception to EfficientNet-Lite0 with a note
    (:func:`~latentbench.metrics.features.build_fd_extractor`, as ``recon --fd auto``)."""
    if name == "none":
        return None, "none"
    from latentbench.metrics.features import build_fd_extractor

    extractor, auto = build_fd_extractor(name)
    if auto is not None:
        echo(f"note: {auto.note()}")
    return extractor, auto.chosen if auto else name


def reference_stats(
    extractor: Any, dataset: Dataset, n: int, batch_size: int, device: torch.device
) -> Any:
    """Feature statistics of the first ``n`` real images of ``dataset`` (cached on disk)."""
    from latentbench.data import iter_batches
    from latentbench.metrics.fid import cached_reference_stats, reference_stats_key

    n = min(n, len(dataset))
    subset = torch.utils.data.Subset(dataset, range(n))
    for attr in ("spec", "image_size", "label_names"):
        setattr(subset, attr, getattr(dataset, attr, None))
    preprocessing = getattr(dataset, "preprocessing", "center-crop+resize")
    key = reference_stats_key(dataset.spec, dataset.image_size, n, preprocessing, extractor)

    def images():
        return (b.images.to(device) for b in iter_batches(subset, batch_size))

    return cached_reference_stats(None, key, extractor, images)
