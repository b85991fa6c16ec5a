"""``rae`` and ``rae-hd``: a representation encoder's own features as the latent (RAE).

``rae``: the encoder is frozen; the latent is its feature grid with the affine of the encoder's
final LayerNorm removed, as RAE does (its code sets that norm's weight and bias to None), so every
token is its last hidden state standardised over the channels (768 x 16 x 16 for DINOv2-B at
224 px). An encoder without a final LayerNorm (a CNN) gets its features standardised per token
the same way. A ViT decoder maps the latent to pixels (trained with L1 + perceptual (+ GAN) and
RAE's noise augmentation of the decoder input, see :mod:`latentbench.train.tokenizer`).

``rae-hd`` (the paper's control): the same architecture, but training fine-tunes the encoder in its
full width with the pixel loss plus a feature-consistency loss to a frozen copy of it.

Open choices (config fields): the decoder is a ViT-B (768 wide, 12 blocks; RAE's paper uses larger
ones) with patch = image stride; ``token_norm=False`` keeps the encoder's features as they are
(final LayerNorm with its affine). The encoder always runs in eval mode. ``pretrained=False`` with
no ``encoder`` gives a test-size model (tiny ViT encoder, 2-block 64-wide decoder).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from latentbench.config import NonNegativeInt, PositiveInt, config, from_dict
from latentbench.errors import UserError
from latentbench.nn.vit import ViTDecoder
from latentbench.spaces.base import LatentSpec
from latentbench.spaces.catalog import space_factory
from latentbench.spaces.encoder_space import EncoderSpace
from latentbench.spaces.semrec import PAPER_ENCODER, arch_options


@config
class RAEConfig:
    """Architecture of an RAE space. Defaults: DINOv2-B with registers, ViT-B decoder."""

    encoder: str | dict[str, Any] = PAPER_ENCODER
    image_size: PositiveInt = 256
    encoder_input_size: PositiveInt | None = None
    token_norm: bool = True  # RAE: the final LayerNorm without its affine (module docstring)
    decoder_dim: PositiveInt = 768
    decoder_depth: PositiveInt = 12
    decoder_heads: NonNegativeInt = 0  # 0: 64-wide heads


TINY_ARCH: dict[str, Any] = {
    "encoder": "tiny-vit",
    "image_size": 64,
    "decoder_dim": 64,
    "decoder_depth": 2,
}


class RAESpace(EncoderSpace):
    """Frozen (rae) or fine-tuned (rae-hd) encoder features -> ViT decoder."""

    def __init__(self, config: RAEConfig, pretrained: bool = True, name: str = "rae") -> None:
        super().__init__()
        self.name = name
        self._build_encoder(config, pretrained)
        # RAE's latent: the encoder's own final LayerNorm, minus its affine
        self.encoder_standardises = config.token_norm and self.encoder.drop_final_affine()
        self.grid = self.encoder.grid
        patch = config.image_size // self.grid
        if patch * self.grid != config.image_size:
            raise UserError(
                f"{name}: image_size {config.image_size} is not a multiple of the grid {self.grid}"
            )
        self.decoder = ViTDecoder(
            self.encoder.dim,
            self.grid,
            patch,
            config.decoder_dim,
            config.decoder_depth,
            config.decoder_heads,
        )

    @property
    def spec(self) -> LatentSpec:
        return LatentSpec(self.name, self.encoder.dim, self.grid, self.cfg.image_size)

    def latent_from_features(self, features: Tensor) -> Tensor:
        """(B, D, h, w) encoder features -> (B, D, h, w) latent."""
        if not self.cfg.token_norm or self.encoder_standardises:
            return features
        return F.layer_norm(features.transpose(1, -1), features.shape[1:2]).transpose(1, -1)

    def _encode(self, images: Tensor, sample: bool, generator: torch.Generator | None) -> Tensor:
        return self.latent_from_features(self.encoder(images))  # deterministic: no posterior

    def _decode(self, latents: Tensor) -> Tensor:
        return self.decoder(latents)

    @property
    def pixel_last_layer(self) -> Tensor:
        return self.decoder.last_layer

    def train_outputs(
        self, images: Tensor, noise_tau: float, features: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Features, latent, and the reconstruction of the noise-augmented latent.

        RAE's augmentation: z + sigma * eps with sigma ~ |N(0, tau^2)| drawn per image.
        ``features``: the frozen encoder's (B, D, h, w) features of ``images``, precomputed.
        """
        features = self.encoder(images) if features is None else features  # (B, D, h, w)
        z = self.latent_from_features(features)
        sigma = (torch.randn(z.shape[0], 1, 1, 1, device=z.device, dtype=z.dtype) * noise_tau).abs()
        # randn over the shape, not randn_like: the noise must not depend on z's memory layout
        # (the encoder's output is a transposed view; precomputed features are contiguous)
        noise = torch.randn(z.shape, device=z.device, dtype=z.dtype)
        recon = self.decoder(z + sigma * noise)  # (B, 3, H, W)
        return {"features": features, "latent": z, "recon": recon}


def _factory(name: str):
    def factory(pretrained: bool = True, image_size: int | None = None, **options: Any):
        opts = arch_options(options, pretrained, image_size, TINY_ARCH)
        return RAESpace(from_dict(RAEConfig, opts, name), pretrained=pretrained, name=name)

    factory.__name__ = f"{name.replace('-', '_')}_space"
    factory.__doc__ = f"The ``{name}`` space (see :mod:`latentbench.spaces.rae`)."
    return space_factory(name)(factory)


rae_space = _factory("rae")
rae_hd_space = _factory("rae-hd")
