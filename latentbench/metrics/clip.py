"""CLIP metrics through transformers' ``CLIPModel``: GenEval's colour classifier, CLIPScore,
CLIP-I and CLIP-T.

Every model is a hub id or a local folder (``save_pretrained`` of the model and its processor);
offline, a hub id that is not cached is a UserError that names the local-folder alternative.

- :class:`ColorClassifier`: GenEval's zero-shot colour check. For a detected object of class
  ``cls`` the image is composited onto a plain ``#999999`` background through the object's mask
  (when the detector gives one), cropped to its box, and classified among GenEval's ten colours
  with the prompts "a photo of a {c} {cls}", "a photo of a {c}-colored {cls}", "a photo of a {c}
  object" (text embeddings L2-normalised, averaged over the three prompts, normalised again).
  GenEval uses open_clip ViT-L-14 (OpenAI weights); the same weights on the hub are
  ``openai/clip-vit-large-patch14`` (:data:`GENEVAL_CLIP`).
- :func:`clip_score`: CLIPScore for text-image alignment, ``100 * max(cos(image, text), 0)`` (the
  torchmetrics convention; Hessel et al.'s CLIP-S is 2.5 * max(cos, 0) = this / 40).
- :func:`clip_i` / :func:`clip_t`: cosine similarity of image-image / image-text embeddings
  (MagicBrush's CLIP-I and CLIP-T; MagicBrush uses ViT-B/32: :data:`MAGICBRUSH_CLIP`).

Images are PIL images or (B, 3, H, W) tensors in [-1, 1] (quantised to uint8 first, as saved to
PNG); the processor resizes them (its settings are in ``variant``). Text longer than the model's
context (77 tokens for OpenAI CLIP) is truncated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from latentbench.geneval import GENEVAL_COLORS
from latentbench.hub import load_pretrained, pretrained_source

GENEVAL_CLIP = "openai/clip-vit-large-patch14"
MAGICBRUSH_CLIP = "openai/clip-vit-base-patch32"
COLOR_TEMPLATES = (
    "a photo of a {c} {cls}",
    "a photo of a {c}-colored {cls}",
    "a photo of a {c} object",
)
CROP_BACKGROUND = (153, 153, 153)  # GenEval's "#999"
CLIPSCORE_SCALE = 100.0
CLIP_OPTION = "--clip-model FOLDER"

ImageLike = Image.Image | np.ndarray | Tensor


def to_pil(images: Sequence[ImageLike] | Tensor) -> list[Image.Image]:
    """PIL images / (H, W, 3) uint8 arrays / (B, 3, H, W) tensors in [-1, 1] -> RGB PIL images."""
    from latentbench.metrics.quantize import to_uint8

    if isinstance(images, Tensor):
        if images.dim() == 3:
            images = images[None]
        arr = to_uint8(images.detach().cpu()).permute(0, 2, 3, 1).numpy()  # (B, H, W, 3)
        return [Image.fromarray(a) for a in arr]
    out = []
    for im in images:
        if isinstance(im, Image.Image):
            out.append(im.convert("RGB"))
        elif isinstance(im, Tensor):
            out.extend(to_pil(im))
        else:
            out.append(Image.fromarray(np.asarray(im, dtype=np.uint8)).convert("RGB"))
    return out


class ClipModel:
    """A frozen ``CLIPModel`` and its processor; embeddings are L2-normalised, float32, CPU."""

    def __init__(
        self, model: str = GENEVAL_CLIP, *, device: str | torch.device | None = None
    ) -> None:
        from transformers import CLIPModel, CLIPProcessor

        path, weights = pretrained_source(model)
        self.model = (
            load_pretrained(CLIPModel, path, "CLIP model", option=CLIP_OPTION)
            .eval()
            .requires_grad_(False)
        )
        self.processor = load_pretrained(CLIPProcessor, path, "CLIP processor", option=CLIP_OPTION)
        self.device = torch.device(device or "cpu")
        self.model.to(self.device)
        ip = self.processor.image_processor
        self.variant: dict[str, Any] = {
            "model": "transformers CLIPModel",
            "weights": weights,
            "resolution": getattr(ip, "crop_size", None) or getattr(ip, "size", None),
            "resize": f"processor: shortest edge {getattr(ip, 'size', None)}, center crop",
            "input": "uint8 RGB (as saved to PNG)",
        }

    @torch.no_grad()
    def image_embeds(self, images: Sequence[ImageLike] | Tensor, batch_size: int = 32) -> Tensor:
        """(N, D) unit-norm image embeddings."""
        pil = to_pil(images)
        out = []
        for s in range(0, len(pil), batch_size):
            inputs = self.processor(images=pil[s : s + batch_size], return_tensors="pt")
            feats = self.model.get_image_features(
                pixel_values=inputs["pixel_values"].to(self.device)
            )
            feats = getattr(feats, "pooler_output", feats)  # transformers 5 may return an output
            out.append(torch.nn.functional.normalize(feats.float(), dim=-1).cpu())
        dim = int(self.model.config.projection_dim)
        return torch.cat(out) if out else torch.empty(0, dim)

    @torch.no_grad()
    def text_embeds(self, texts: Sequence[str], batch_size: int = 64) -> Tensor:
        """(N, D) unit-norm text embeddings (texts truncated to the model's context)."""
        out = []
        max_len = int(self.model.config.text_config.max_position_embeddings)
        for s in range(0, len(texts), batch_size):
            inputs = self.processor.tokenizer(
                list(texts[s : s + batch_size]),
                padding=True,
                truncation=True,
                max_length=max_len,
                return_tensors="pt",
            )
            feats = self.model.get_text_features(
                input_ids=inputs["input_ids"].to(self.device),
                attention_mask=inputs["attention_mask"].to(self.device),
            )
            feats = getattr(feats, "pooler_output", feats)
            out.append(torch.nn.functional.normalize(feats.float(), dim=-1).cpu())
        dim = int(self.model.config.projection_dim)
        return torch.cat(out) if out else torch.empty(0, dim)


# -- alignment and similarity -------------------------------------------------------------------
def clip_score(
    clip: ClipModel, images: Sequence[ImageLike] | Tensor, texts: Sequence[str]
) -> Tensor:
    """(N,) CLIPScore: ``100 * max(cos(image_i, text_i), 0)``."""
    cos = clip_t(clip, images, texts)
    return CLIPSCORE_SCALE * cos.clamp_min(0.0)


def clip_t(clip: ClipModel, images: Sequence[ImageLike] | Tensor, texts: Sequence[str]) -> Tensor:
    """(N,) cosine similarity of each image with its text (MagicBrush CLIP-T)."""
    a, b = clip.image_embeds(images), clip.text_embeds(texts)
    if len(a) != len(b):
        raise ValueError(f"{len(a)} images but {len(b)} texts")
    return (a * b).sum(-1)


def clip_i(
    clip: ClipModel, images: Sequence[ImageLike] | Tensor, references: Sequence[ImageLike] | Tensor
) -> Tensor:
    """(N,) cosine similarity of each image with its reference image (MagicBrush CLIP-I)."""
    a, b = clip.image_embeds(images), clip.image_embeds(references)
    if len(a) != len(b):
        raise ValueError(f"{len(a)} images but {len(b)} references")
    return (a * b).sum(-1)


CLIPSCORE_VARIANT = {
    "name": "clipscore",
    "formula": "100 * max(cos(image, text), 0) (torchmetrics); Hessel CLIP-S = value / 40",
}


# -- GenEval's colour classifier ------------------------------------------------------------------
class ColorClassifier:
    """Zero-shot colour of detected objects, as GenEval classifies it (see module docstring)."""

    def __init__(
        self,
        clip: ClipModel,
        colors: Sequence[str] = GENEVAL_COLORS,
        templates: Sequence[str] = COLOR_TEMPLATES,
        background: tuple[int, int, int] = CROP_BACKGROUND,
    ) -> None:
        self.clip, self.colors, self.templates = clip, tuple(colors), tuple(templates)
        self.background = background
        self._heads: dict[str, Tensor] = {}
        self.variant = {
            "clip": clip.variant,
            "colors": list(self.colors),
            "templates": list(self.templates),
            "crop": "mask composited onto #999999 (when the detector gives a mask), then box crop",
        }

    def head(self, cls: str) -> Tensor:
        """(K, D) one unit vector per colour: mean of the normalised template embeddings."""
        if cls not in self._heads:
            texts = [t.format(c=c, cls=cls) for c in self.colors for t in self.templates]
            emb = self.clip.text_embeds(texts).view(len(self.colors), len(self.templates), -1)
            self._heads[cls] = torch.nn.functional.normalize(emb.mean(1), dim=-1)  # (K, D)
        return self._heads[cls]

    def crop(
        self, image: Image.Image, box: Sequence[float], mask: np.ndarray | None
    ) -> Image.Image:
        """The object on the plain background (through ``mask`` (H, W) bool), cropped to ``box``."""
        image = image.convert("RGB")
        if mask is not None:
            blank = Image.new("RGB", image.size, self.background)
            image = Image.composite(image, blank, Image.fromarray(np.asarray(mask, bool)))
        x0, y0, x1, y1 = (float(v) for v in box[:4])
        if x1 - x0 < 1 or y1 - y0 < 1:  # a degenerate box: keep one pixel
            x1, y1 = x0 + 1, y0 + 1
        return image.crop((x0, y0, x1, y1))

    def classify(
        self,
        image: Image.Image,
        cls: str,
        boxes: Sequence[Sequence[float]],
        masks: Sequence[np.ndarray | None] | None = None,
    ) -> list[str]:
        """The colour name of each object of class ``cls`` in ``image``."""
        if not boxes:
            return []
        masks = masks if masks is not None else [None] * len(boxes)
        crops = [self.crop(image, b, m) for b, m in zip(boxes, masks)]
        logits = self.clip.image_embeds(crops) @ self.head(cls).T  # (N, K)
        return [self.colors[int(i)] for i in logits.argmax(1)]
