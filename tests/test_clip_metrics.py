"""CLIP metrics on a tiny random CLIPModel saved with save_pretrained and loaded from its folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from latentbench.errors import UserError
from latentbench.geneval import GENEVAL_COLORS
from latentbench.metrics.clip import (
    COLOR_TEMPLATES,
    CROP_BACKGROUND,
    ClipModel,
    ColorClassifier,
    clip_i,
    clip_score,
    clip_t,
    to_pil,
)
from latentbench.testing.standins import write_clip_standin


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> ClipModel:
    return ClipModel(str(write_clip_standin(tmp_path_factory.mktemp("clip"))))


def _images(n: int, size: int = 40, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)
    ]


def test_embeddings_match_the_transformers_model(clip: ClipModel) -> None:
    ims, texts = _images(3), ["a red cat", "a dog", "two birds " * 40]  # the last is truncated
    img, txt = clip.image_embeds(ims), clip.text_embeds(texts)
    assert img.shape == (3, 16) and txt.shape == (3, 16)
    assert torch.allclose(img.norm(dim=-1), torch.ones(3), atol=1e-5)
    with torch.no_grad():  # the same numbers straight from the model
        px = clip.processor(images=ims, return_tensors="pt")["pixel_values"]
        ref = clip.model.get_image_features(pixel_values=px)
        ref = getattr(ref, "pooler_output", ref)
    assert torch.allclose(img, torch.nn.functional.normalize(ref, dim=-1), atol=1e-5)
    cos = (img * txt).sum(-1)
    assert torch.allclose(clip_t(clip, ims, texts), cos, atol=1e-6)
    assert torch.allclose(clip_score(clip, ims, texts), 100 * cos.clamp_min(0), atol=1e-4)
    assert torch.allclose(clip_i(clip, ims, ims), torch.ones(3), atol=1e-5)
    tensor = torch.rand(2, 3, 24, 24) * 2 - 1  # tensors in [-1, 1] are quantised like PNGs
    assert torch.allclose(clip.image_embeds(tensor), clip.image_embeds(to_pil(tensor)))
    assert clip.variant["weights"]["folder"] and "sha256" in clip.variant["weights"]


def test_color_classifier_follows_geneval(clip: ClipModel) -> None:
    colors = ColorClassifier(clip)
    head = colors.head("cat")
    assert head.shape == (len(GENEVAL_COLORS), 16)
    texts = [t.format(c="red", cls="cat") for t in COLOR_TEMPLATES]
    red = torch.nn.functional.normalize(clip.text_embeds(texts).mean(0), dim=0)
    assert torch.allclose(head[GENEVAL_COLORS.index("red")], red, atol=1e-5)

    image = _images(1, 32)[0]
    mask = np.zeros((32, 32), bool)
    mask[4:12, 6:20] = True
    crop = colors.crop(image, (2, 2, 24, 16), mask)
    arr = np.asarray(crop)
    assert crop.size == (22, 14)
    assert (arr[0, 0] == CROP_BACKGROUND).all()  # outside the mask: GenEval's #999
    assert (arr[2:10, 4:18] == np.asarray(image)[4:12, 6:20]).all()  # inside: the image
    got = colors.classify(image, "cat", [(2, 2, 24, 16), (0, 0, 8, 8)], [mask, None])
    manual = clip.image_embeds([crop, colors.crop(image, (0, 0, 8, 8), None)]) @ head.T
    assert got == [GENEVAL_COLORS[int(i)] for i in manual.argmax(1)]
    assert colors.classify(image, "cat", []) == []


def test_unloadable_model_is_a_one_line_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="local folder") as e:
        ClipModel("openai/clip-vit-nonexistent-here")
    assert "\n" not in str(e.value)
    with pytest.raises(UserError):
        ClipModel(str(tmp_path))  # an empty folder
