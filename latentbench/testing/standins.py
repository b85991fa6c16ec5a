"""Tiny randomly initialised models under the real architectures, written where the real ones
would be loaded from: the offline tests and demos run every code path on them. Their outputs
mean nothing; nothing outside tests and demos uses them.

- :func:`write_inception_standin`: torch-fidelity's Inception-v3 (FID), under the real file name;
- :func:`write_clip_standin`: a ``CLIPModel`` + processor (CLIPScore, colour judge, CLIP-I/T);
- :func:`write_detector_standin`: Mask2Former or OWLv2 + processor (GenEval detectors);
- :func:`write_dino_standin`: a ViT (the DINO architecture) + processor (editing metrics).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from latentbench.config import parse_choice
from latentbench.metrics.detectors import DetectorKind
from latentbench.metrics.features import INCEPTION_FILE

# The transformer tower of every stand-in ViT (CLIP and OWLv2 vision, DINO): width 32, 2 layers.
TINY_TOWER = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
}


def write_inception_standin(folder: str | Path, seed: int = 0) -> Path:
    """Save a randomly initialised Inception-v3 under the real file name; return its path.

    For offline tests and speed benchmarks only: the architecture is torch-fidelity's own, the
    convolutions are He-initialised (with the default initialisation the pool3 features are
    nearly constant and FID collapses to 0). Its sha256 is not the official one, so every
    result computed with it says ``"official": false`` in its variant.
    """
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class Architecture(FeatureExtractorInceptionV3):  # builds the layers, skips loading weights
        def load_state_dict(self, state_dict, strict=True, assign=False):
            return None

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({}, folder / "empty.pth")
    model = Architecture("inception-v3-compat", ["2048"], str(folder / "empty.pth"))
    (folder / "empty.pth").unlink()
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, generator=g)
    path = folder / INCEPTION_FILE
    torch.save(model.state_dict(), path)
    return path


def standin_tokenizer(folder: str | Path) -> Any:
    """A CLIP tokenizer with a byte-level character vocabulary and no merges (tests, demos).

    Every lower-case text tokenizes to one token per character; saved under ``folder``.
    """
    from transformers import CLIPTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    chars = [chr(c) for c in printable] + [chr(256 + i) for i in range(256 - len(printable))]
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))


def text_config(tokenizer: Any, max_len: int, width: int = 32) -> dict[str, Any]:
    """A tiny CLIP text-tower config for ``tokenizer``."""
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": width,
        "intermediate_size": 2 * width,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": max_len,
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


def write_clip_standin(folder: str | Path, seed: int = 0) -> Path:
    """Save a tiny randomly initialised ``CLIPModel`` + processor to ``folder`` (offline tests
    and demos: the code path of the real model, meaningless values). Returns ``folder``."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    folder = Path(folder)
    torch.manual_seed(seed)
    tok = standin_tokenizer(folder / "_tokenizer")
    cfg = CLIPConfig(
        text_config=text_config(tok, 77),
        vision_config={**TINY_TOWER, "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    CLIPModel(cfg).save_pretrained(folder)
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    )
    CLIPProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(folder)
    return folder


def write_detector_standin(
    kind: DetectorKind | str, folder: str | Path, classes: Sequence[str], seed: int = 0
) -> Path:
    """Save a tiny randomly initialised detector of ``kind`` (+ processor) to ``folder``.

    For offline tests and demos: the architecture and code path of the real model, meaningless
    detections. Mask2Former gets ``classes`` as its ``id2label``; OWLv2 is open-vocabulary.
    """
    kind = parse_choice(DetectorKind, kind, "detector") if isinstance(kind, str) else kind
    folder = Path(folder)
    torch.manual_seed(seed)
    if kind is DetectorKind.MASK2FORMER:
        from transformers import (
            Mask2FormerConfig,
            Mask2FormerForUniversalSegmentation,
            Mask2FormerImageProcessor,
            SwinConfig,
        )

        swin = SwinConfig(
            image_size=64,
            embed_dim=16,
            depths=[1, 1, 1, 1],
            num_heads=[1, 1, 1, 1],
            window_size=4,
            out_features=["stage1", "stage2", "stage3", "stage4"],
        )
        cfg = Mask2FormerConfig(
            backbone_config=swin,
            feature_size=32,
            mask_feature_size=32,
            hidden_dim=32,
            encoder_feedforward_dim=64,
            dim_feedforward=64,
            encoder_layers=1,
            decoder_layers=2,
            num_attention_heads=2,
            num_queries=10,
            id2label=dict(enumerate(classes)),
            label2id={c: i for i, c in enumerate(classes)},
            use_pretrained_backbone=False,
        )
        Mask2FormerForUniversalSegmentation(cfg).save_pretrained(folder)
        Mask2FormerImageProcessor(
            size={"shortest_edge": 64, "longest_edge": 64}, size_divisor=32
        ).save_pretrained(folder)
        return folder
    from transformers import (
        Owlv2Config,
        Owlv2ForObjectDetection,
        Owlv2ImageProcessor,
        Owlv2Processor,
    )

    tok = standin_tokenizer(folder / "_tokenizer")
    cfg = Owlv2Config(
        text_config=text_config(tok, 16),
        vision_config={**TINY_TOWER, "image_size": 64, "patch_size": 16},
        projection_dim=32,
    )
    Owlv2ForObjectDetection(cfg).save_pretrained(folder)
    processor = Owlv2Processor(
        image_processor=Owlv2ImageProcessor(size={"height": 64, "width": 64}), tokenizer=tok
    )
    processor.save_pretrained(folder)
    return folder


def write_dino_standin(folder: str | Path, seed: int = 0) -> Path:
    """Save a tiny randomly initialised ViT (the DINO architecture) + processor to ``folder``."""
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    folder = Path(folder)
    torch.manual_seed(seed)
    cfg = ViTConfig(**TINY_TOWER, image_size=32, patch_size=8)
    ViTModel(cfg, add_pooling_layer=False).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder
