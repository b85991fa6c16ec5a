"""``semrec``: the semantic-pixel tokenizer (S-VAE, then PS-VAE; docs/method.md), and its controls.

Architecture (shapes at paper scale, DINOv2-B with registers, 224 px in, 256 px out)::

    images (B, 3, 256, 256) -> encoder (resized to 224)        -> f   (B, 768, 16, 16)
    E_s: tokens -> blocks x3 -> LayerNorm -> MLP 768 -> 2*96   -> mean, logvar (B, 256, 96)
    latent f_l = mean (or a sample)                            -> (B, 96, 16, 16)
    D_s: MLP 96 -> 768 -> blocks x3 -> LayerNorm -> Linear      -> f'  (B, 768, 16, 16)
    pixel decoder (LDM conv decoder, 5 levels, x16) from f_l    -> (B, 3, 256, 256)

Choices the paper leaves open (all config fields):
- ``inherit_blocks``: which encoder blocks E_s and D_s copy (default: the last ``semantic_depth``).
  D_s is initialised from the same blocks as E_s (the paper says only "mirror"). An encoder without
  transformer blocks (a CNN such as EfficientNet-Lite0) gets fresh ViT blocks of its feature width.
- the MLPs are Linear -> GELU -> Linear of hidden width ``mlp_hidden`` (default: the encoder width);
  E_s and D_s each end with a LayerNorm (+ a Linear for D_s), as a ViT ends with a final norm.
- the encoder always runs in eval mode (no dropout, frozen BatchNorm statistics), also when stage 2
  trains its weights.

Controls (registered names, same class): ``svae`` (trained with stage 1 only), ``pvae`` (trained
with the pixel loss only), ``semrec-mlp`` (``semantic_depth=0``: E_s and D_s are 2-layer MLPs),
``semrec-ds`` (``pixel_input=features``: the pixel decoder reads D_s's reconstructed features
(B, D, h, w) instead of the latent, the paper's control with worse generation).

``pretrained=False`` with no ``encoder`` gives a test-size model (tiny ViT encoder, 8 channels,
narrow decoder) so the contract test and ``latentbench spaces --spec`` run in seconds; pass
``encoder="dinov2-b-reg"`` (and the other fields) to get the paper architecture with random weights.
"""

from __future__ import annotations

import enum
from typing import Any

import torch
from torch import Tensor, nn

from latentbench.config import NonNegativeInt, PositiveInt, config, from_dict
from latentbench.errors import UserError
from latentbench.nn.conv import ConvDecoder
from latentbench.nn.vit import Mlp, ViTBlock, default_heads
from latentbench.spaces.backbones import Backbone, copy_blocks
from latentbench.spaces.base import LatentSpec
from latentbench.spaces.catalog import space_factory
from latentbench.spaces.encoder_space import EncoderSpace

PAPER_ENCODER = "dinov2-b-reg"


class PixelInput(str, enum.Enum):
    """What the pixel decoder reads."""

    LATENT = "latent"  # f_l (B, C, h, w): the paper's tokenizer
    FEATURES = "features"  # D_s(f_l) (B, D, h, w): the paper's control


@config
class SemRecConfig:
    """Architecture of a semantic-pixel tokenizer. Defaults: the paper's (DINOv2-B/reg, 96 ch)."""

    encoder: str | dict[str, Any] = PAPER_ENCODER
    image_size: PositiveInt = 256  # decode() output size; encode() input size
    encoder_input_size: PositiveInt | None = None  # None: the encoder's default (224 for DINOv2)
    channels: PositiveInt = 96  # C of the KL latent
    semantic_depth: NonNegativeInt = 3  # transformer blocks in E_s and in D_s (0: 2-layer MLP VAE)
    inherit: bool = True  # copy encoder blocks when it has them
    inherit_blocks: tuple[int, ...] | None = None  # encoder block indices; None: the last ones
    mlp_hidden: PositiveInt | None = None  # None: encoder width
    decoder_base: PositiveInt = 128  # LDM decoder width at full resolution (x1, x2, x4, x4, ...)
    decoder_layers: PositiveInt = 2  # ResNet blocks per decoder level
    decoder_attention: bool = True  # self-attention in the decoder's middle block
    pixel_input: PixelInput = PixelInput.LATENT  # features: decode pixels from D_s's output


TINY_ARCH: dict[str, Any] = {
    "encoder": "tiny-vit",
    "image_size": 64,
    "channels": 8,
    "semantic_depth": 1,
    "decoder_base": 32,
    "decoder_layers": 1,
}


def arch_options(
    options: dict[str, Any], pretrained: bool, image_size: int | None, tiny: dict[str, Any]
) -> dict[str, Any]:
    """Factory defaults: the test-size ``tiny`` arch when ``pretrained=False`` and no encoder."""
    merged = dict(tiny) if not pretrained and "encoder" not in options else {}
    if image_size is not None:
        merged["image_size"] = image_size
    if merged.get("encoder") == "tiny-vit" and "image_size" in merged:
        merged["encoder"] = {"kind": "tiny-vit", "input_size": merged["image_size"]}
    return {**merged, **options}


def latent_stride(encoder: Backbone, image_size: int) -> int:
    """Image pixels per latent cell; must be a power of two for the conv decoder."""
    grid = encoder.grid
    stride = image_size // grid
    if stride * grid != image_size or stride & (stride - 1):
        raise UserError(
            f"image_size {image_size} must be a power-of-two multiple of the encoder grid {grid}"
        )
    return stride


class SemRecSpace(EncoderSpace):
    """S-VAE / PS-VAE: encoder -> E_s -> KL latent; D_s -> features; conv decoder -> pixels."""

    def __init__(self, config: SemRecConfig, pretrained: bool = True, name: str = "semrec") -> None:
        super().__init__()
        self.name = name
        self._build_encoder(config, pretrained)
        d, c = self.encoder.dim, config.channels
        self.grid = self.encoder.grid
        self.stride = latent_stride(self.encoder, config.image_size)
        hidden = config.mlp_hidden or d
        self.sem_enc = nn.ModuleList(self._blocks(config))
        self.sem_dec = nn.ModuleList(self._blocks(config))
        with_blocks = config.semantic_depth > 0
        self.enc_norm = nn.LayerNorm(d) if with_blocks else nn.Identity()
        self.to_moments = Mlp(d, hidden, 2 * c)
        self.from_latent = Mlp(c, hidden, d)
        self.dec_head = (
            nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d)) if with_blocks else nn.Identity()
        )
        self.from_features = PixelInput(config.pixel_input) is PixelInput.FEATURES
        self.pixel_decoder = ConvDecoder(
            d if self.from_features else c,
            self.stride,
            config.decoder_base,
            config.decoder_layers,
            config.decoder_attention,
        )

    def _blocks(self, config: SemRecConfig) -> list[nn.Module]:
        n = config.semantic_depth
        if n == 0:
            return []
        if config.inherit:
            blocks = self.encoder.transformer_blocks()
            if blocks is not None:
                which = list(config.inherit_blocks or range(len(blocks) - n, len(blocks)))
                if len(which) != n:
                    raise UserError(f"inherit_blocks {which} must name {n} blocks (semantic_depth)")
                return copy_blocks(self.encoder, which) or []
        d = self.encoder.dim
        return [ViTBlock(d, default_heads(d)) for _ in range(n)]

    # -- the contract ----------------------------------------------------------------------------
    @property
    def spec(self) -> LatentSpec:
        return LatentSpec(self.name, self.cfg.channels, self.grid, self.cfg.image_size)

    def _encode(self, images: Tensor, sample: bool, generator: torch.Generator | None) -> Tensor:
        mean, logvar = self.posterior(self.encoder(images))
        z = mean
        if sample:
            eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            z = mean + (0.5 * logvar).exp() * eps
        return self.to_grid(z)  # (B, C, h, w)

    def _decode(self, latents: Tensor) -> Tensor:
        if self.from_features:
            latents = self.semantic_decode(latents)  # (B, D, h, w)
        return self.pixel_decoder(latents)  # (B, 3, H, W)

    # -- the pieces training uses ----------------------------------------------------------------
    def to_grid(self, tokens: Tensor) -> Tensor:
        b, t, c = tokens.shape  # (B, T, C)
        return tokens.transpose(1, 2).reshape(b, c, self.grid, self.grid)

    def posterior(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """E_s: (B, D, h, w) encoder features -> mean, logvar, each (B, T, C)."""
        x = features.flatten(2).transpose(1, 2)  # (B, T, D)
        for block in self.sem_enc:
            x = block(x)
        mean, logvar = self.to_moments(self.enc_norm(x)).chunk(2, dim=-1)  # 2 x (B, T, C)
        return mean, logvar.clamp(-30.0, 20.0)

    def semantic_decode(self, latents: Tensor) -> Tensor:
        """D_s: (B, C, h, w) latents -> (B, D, h, w) reconstructed encoder features."""
        x = self.from_latent(latents.flatten(2).transpose(1, 2))  # (B, T, D)
        for block in self.sem_dec:
            x = block(x)
        x = self.dec_head(x)
        b, t, d = x.shape
        return x.transpose(1, 2).reshape(b, d, self.grid, self.grid)

    @property
    def pixel_last_layer(self) -> Tensor:
        return self.pixel_decoder.last_layer

    def train_outputs(
        self, images: Tensor, detach_pixel_input: bool, features: Tensor | None = None
    ) -> dict[str, Tensor]:
        """One training forward: features, posterior, a latent sample, both reconstructions.
        ``features``: the frozen encoder's (B, D, h, w) features of ``images``, precomputed."""
        features = self.encoder(images) if features is None else features  # (B, D, h, w)
        mean, logvar = self.posterior(features)  # (B, T, C)
        z = self.to_grid(mean + (0.5 * logvar).exp() * torch.randn_like(mean))  # (B, C, h, w)
        rec_features = self.semantic_decode(z)  # (B, D, h, w)
        pixel_input = rec_features if self.from_features else z
        return {
            "features": features,
            "mean": mean,
            "logvar": logvar,
            "rec_features": rec_features,
            "recon": self.pixel_decoder(
                pixel_input.detach() if detach_pixel_input else pixel_input
            ),  # (B, 3, H, W)
        }


def _factory(name: str, fixed: dict[str, Any]):
    def factory(pretrained: bool = True, image_size: int | None = None, **options: Any):
        opts = arch_options({**fixed, **options}, pretrained, image_size, TINY_ARCH)
        cfg = from_dict(SemRecConfig, opts, name)
        if fixed and any(getattr(cfg, k) != v for k, v in fixed.items()):
            raise UserError(f"space {name!r} fixes {fixed}")
        if cfg.channels < 1 or cfg.semantic_depth < 0:
            raise UserError(
                f"{name}: channels must be >= 1 and semantic_depth >= 0 "
                f"(got {cfg.channels}, {cfg.semantic_depth})"
            )
        return SemRecSpace(cfg, pretrained=pretrained, name=name)

    factory.__name__ = f"{name.replace('-', '_')}_space"
    factory.__doc__ = f"The ``{name}`` space (see :mod:`latentbench.spaces.semrec`)."
    return space_factory(name)(factory)


semrec_space = _factory("semrec", {})
svae_space = _factory("svae", {})
pvae_space = _factory("pvae", {})
semrec_mlp_space = _factory("semrec-mlp", {"semantic_depth": 0})
semrec_ds_space = _factory("semrec-ds", {"pixel_input": PixelInput.FEATURES})
