"""``pixel``: the identity / patchify space. The cheapest baseline and test double.

patch=1 is the image itself (3 x H x W); patch=p folds p x p pixel blocks into channels
(3p^2 x H/p x W/p), the "latent" a pixel-space DiT with patch p would see.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from latentbench.config import ImageSize
from latentbench.errors import UserError
from latentbench.spaces.base import LatentSpace, LatentSpec
from latentbench.spaces.catalog import space_factory


class PixelSpace(LatentSpace):
    def __init__(self, image_size: int = 64, patch: int = 1) -> None:
        super().__init__()
        if patch < 1 or image_size % patch:
            raise UserError(f"pixel: patch {patch} must be >= 1 and divide image_size {image_size}")
        self.image_size, self.patch = image_size, patch
        # Carries the space's device and dtype through .to(); the space has no parameters.
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    @property
    def spec(self) -> LatentSpec:
        p = self.patch
        return LatentSpec("pixel", 3 * p * p, self.image_size // p, self.image_size)

    def _encode(self, images: Tensor, sample: bool, generator: torch.Generator | None) -> Tensor:
        if images.shape[-1] != self.image_size or images.shape[-2] != self.image_size:
            images = F.interpolate(images, size=self.image_size, mode="bicubic", antialias=True)
        return F.pixel_unshuffle(images, self.patch)  # (B, 3p^2, H/p, W/p)

    def _decode(self, latents: Tensor) -> Tensor:
        return F.pixel_shuffle(latents, self.patch)  # (B, 3, H, W)


@space_factory("pixel")
def pixel_space(image_size: ImageSize = 64, patch: int = 1, pretrained: bool = True) -> PixelSpace:
    """Identity (patch=1) or patchify (patch>1) space at ``image_size``."""
    return PixelSpace(image_size=image_size, patch=patch)
