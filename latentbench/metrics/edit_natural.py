"""Editing metrics on natural images, with MagicBrush and PIE-Bench conventions.

Per edit (output = the edited image; every image resized to the output's resolution first,
bicubic; masks nearest-neighbour, True = the region the edit may change):

- ``l1``: mean |output - target| over pixels and channels, images in [0, 1] (MagicBrush L1).
- ``clip_i``: cosine of the CLIP image embeddings of output and target (MagicBrush CLIP-I;
  MagicBrush uses ViT-B/32).
- ``clip_t``: cosine of the output's CLIP embedding with the target caption (MagicBrush CLIP-T).
- ``dino``: cosine of the DINO CLS embeddings of output and target (MagicBrush DINO; default
  ``facebook/dino-vits16``, DINO ViT-S/16 as MagicBrush; preprocessing by the model's processor).
- ``psnr_outside``, ``ssim_outside``, ``lpips_outside``: output vs source with the edit region
  blacked out in both (PIE-Bench's background-preservation convention), through
  :mod:`latentbench.metrics.pixel` (uint8 images, skimage-equal PSNR / SSIM, LPIPS package).
- ``judge``: an optional reward model (off by default), any entry of :data:`EDIT_JUDGES`
  (third-party packages register e.g. EditReward through the entry-point group
  ``latentbench.edit_judges``). Built in: ``clip-direction``, CLIP directional similarity
  (InstructPix2Pix): cos(E(output) - E(source), E(target caption) - E(source caption)).

A metric whose inputs an edit lacks (no target, no mask, no caption) is None for that edit and
left out of the means; the summary counts how many edits each mean covers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from latentbench.data import DEFAULT_MAX_PIXELS
from latentbench.hub import load_pretrained, pretrained_source
from latentbench.metrics.clip import ClipModel
from latentbench.registry import Registry

DINO_MODEL = "facebook/dino-vits16"
DINO_OPTION = "--dino-model FOLDER"
METRICS = ("l1", "clip_i", "clip_t", "dino", "psnr_outside", "ssim_outside", "lpips_outside")


@dataclass
class EditSample:
    """One edit to score. Images are RGB PIL; ``mask`` (H, W) bool at any size."""

    output: Image.Image
    source: Image.Image
    instruction: str
    target: Image.Image | None = None
    mask: np.ndarray | None = None
    target_caption: str | None = None
    source_caption: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


# -- the optional judge hook --------------------------------------------------------------------
class EditJudge(Protocol):
    """A reward model: one score per edit (higher is better)."""

    variant: dict[str, Any]

    def __call__(self, samples: Sequence[EditSample]) -> list[float | None]: ...


EDIT_JUDGES: Registry = Registry("edit judge", entry_point_group="latentbench.edit_judges")
EDIT_JUDGES.register(
    "clip-direction", "latentbench.metrics.edit_natural:ClipDirection", source="builtin"
)


class ClipDirection:
    """CLIP directional similarity; None for edits without both captions."""

    def __init__(self, clip: ClipModel | None = None, model: str | None = None) -> None:
        from latentbench.metrics.clip import MAGICBRUSH_CLIP

        self.clip = clip or ClipModel(model or MAGICBRUSH_CLIP)
        self.variant = {"name": "clip-direction", "clip": self.clip.variant}

    def __call__(self, samples: Sequence[EditSample]) -> list[float | None]:
        out: list[float | None] = []
        for s in samples:
            if not (s.target_caption and s.source_caption):
                out.append(None)
                continue
            img = self.clip.image_embeds([s.output, s.source])  # (2, D)
            txt = self.clip.text_embeds([s.target_caption, s.source_caption])  # (2, D)
            d_img, d_txt = img[0] - img[1], txt[0] - txt[1]
            cos = torch.nn.functional.cosine_similarity(d_img, d_txt, dim=0)
            out.append(float(cos))
        return out


def build_judge(name: str, **options: Any) -> EditJudge:
    """An edit judge by registry name (``clip-direction`` or a plugin's)."""
    return EDIT_JUDGES.get(name)(**options)


# -- DINO -----------------------------------------------------------------------------------------
class DinoModel:
    """CLS embedding (last layer, after the final norm) of a transformers ViT/DINO model."""

    def __init__(
        self, model: str = DINO_MODEL, *, device: str | torch.device | None = None
    ) -> None:
        from transformers import AutoImageProcessor, AutoModel

        path, weights = pretrained_source(model)
        self.model = (
            load_pretrained(AutoModel, path, "DINO model", option=DINO_OPTION)
            .eval()
            .requires_grad_(False)
        )
        self.processor = load_pretrained(
            AutoImageProcessor, path, "DINO processor", option=DINO_OPTION
        )
        self.device = torch.device(device or "cpu")
        self.model.to(self.device)
        size = getattr(self.processor, "size", None)
        self.variant = {
            "model": f"transformers {type(self.model).__name__}",
            "weights": weights,
            "layer": "CLS token of last_hidden_state",
            "resize": f"processor size {dict(size) if hasattr(size, 'keys') else size}",
        }

    @torch.no_grad()
    def embeds(self, images: Sequence[Image.Image], batch_size: int = 32) -> Tensor:
        out = []
        for s in range(0, len(images), batch_size):
            inputs = self.processor(images=list(images[s : s + batch_size]), return_tensors="pt")
            hidden = self.model(pixel_values=inputs["pixel_values"].to(self.device))
            cls = hidden.last_hidden_state[:, 0]  # (B, D)
            out.append(torch.nn.functional.normalize(cls.float(), dim=-1).cpu())
        return torch.cat(out) if out else torch.empty(0)


# -- scoring --------------------------------------------------------------------------------------
def _resized(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    image = image.convert("RGB")
    return image if image.size == size else image.resize(size, Image.Resampling.BICUBIC)


def _mask_at(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    m = Image.fromarray(np.asarray(mask, dtype=bool).astype(np.uint8) * 255)
    if m.size != size:
        m = m.resize(size, Image.Resampling.NEAREST)
    return np.asarray(m) > 127  # (H, W)


def _tensor(image: Image.Image) -> Tensor:
    """PIL -> (1, 3, H, W) uint8."""
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)[None]


class NaturalEditScorer:
    """MagicBrush / PIE-Bench metrics of natural-image edits (see the module docstring)."""

    def __init__(
        self,
        clip: ClipModel | None,
        dino: DinoModel | None,
        lpips: Callable[[Tensor, Tensor], Tensor] | None = None,
        judge: EditJudge | None = None,
    ) -> None:
        self.clip, self.dino, self.lpips, self.judge = clip, dino, lpips, judge

    @property
    def variant(self) -> dict[str, Any]:
        from latentbench.metrics.pixel import PSNR_VARIANT, SSIM_VARIANT

        return {
            "resolution": "the output's size; source/target bicubic, masks nearest",
            "l1": "mean |output - target|, [0, 1] images (MagicBrush)",
            "clip": self.clip.variant if self.clip else None,
            "dino": self.dino.variant if self.dino else None,
            "outside_mask": "edit region set to 0 in output and source (PIE-Bench)",
            "psnr": PSNR_VARIANT,
            "ssim": SSIM_VARIANT,
            "lpips": getattr(self.lpips, "variant", None),
            "judge": self.judge.variant if self.judge else None,
        }

    def score(self, samples: Sequence[EditSample]) -> list[dict[str, Any]]:
        """One dict per edit: every metric of METRICS (None where not computable) + judge."""
        from latentbench.metrics.pixel import psnr, ssim

        rows: list[dict[str, Any]] = []
        outs, targets = [], []
        for s in samples:
            size = s.output.size
            out = s.output.convert("RGB")
            src = _resized(s.source, size)
            tgt = _resized(s.target, size) if s.target is not None else None
            row: dict[str, Any] = dict.fromkeys(METRICS)
            row["resolution"] = list(size)
            if tgt is not None:
                a = np.asarray(out, dtype=np.float64) / 255
                b = np.asarray(tgt, dtype=np.float64) / 255
                row["l1"] = float(np.abs(a - b).mean())
            if s.mask is not None:
                keep = ~_mask_at(s.mask, size)  # (H, W) True = must be preserved
                k = torch.from_numpy(keep)[None, None]  # (1, 1, H, W)
                o, r = _tensor(out) * k, _tensor(src) * k  # uint8, edit region = 0
                row["mask_fraction"] = float(1 - keep.mean())
                row["psnr_outside"] = float(psnr(o, r)[0])
                row["ssim_outside"] = float(ssim(o, r)[0])
                if self.lpips is not None:
                    row["lpips_outside"] = float(self.lpips(o, r)[0])
            rows.append(row)
            outs.append(out)
            targets.append(tgt)
        with_target = [i for i, t in enumerate(targets) if t is not None]
        if self.clip is not None:
            from latentbench.metrics.clip import clip_i, clip_t

            if with_target:
                sims = clip_i(
                    self.clip, [outs[i] for i in with_target], [targets[i] for i in with_target]
                )
                for i, v in zip(with_target, sims.tolist()):
                    rows[i]["clip_i"] = v
            captioned = [i for i, s in enumerate(samples) if s.target_caption]
            if captioned:
                sims = clip_t(
                    self.clip,
                    [outs[i] for i in captioned],
                    [samples[i].target_caption for i in captioned],
                )
                for i, v in zip(captioned, sims.tolist()):
                    rows[i]["clip_t"] = v
        if self.dino is not None and with_target:
            a = self.dino.embeds([outs[i] for i in with_target])
            b = self.dino.embeds([targets[i] for i in with_target])
            for i, v in zip(with_target, (a * b).sum(-1).tolist()):
                rows[i]["dino"] = v
        if self.judge is not None:
            for row, v in zip(rows, self.judge(samples)):
                row["judge"] = v
        return rows


def summarise_natural(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean of every metric over the edits that have it (with its 95% bootstrap interval,
    ``<name>/ci95_low``, ``<name>/ci95_high``, ``<name>/n``), and how many do."""
    from latentbench.stats import mean_interval

    out: dict[str, Any] = {"count": len(rows)}
    for name in (*METRICS, "judge"):
        vals = [r[name] for r in rows if r.get(name) is not None]
        finite = [v for v in vals if math.isfinite(v)]
        out[name] = float(np.mean(finite)) if finite else None
        if finite:
            out.update({k: v for k, v in mean_interval(finite).to_keys(name).items() if k != name})
        out[f"{name}_count"] = len(vals)
    return out


def load_mask(path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A mask image -> (H, W) bool, True where the pixel is bright (> 127 in grey). A file that
    cannot be read, or of more than ``max_pixels`` pixels, is an UnreadableImage."""
    from latentbench.data.decode import open_image

    with open_image(Path(path), max_pixels) as im:
        return np.asarray(im.convert("L")) > 127
