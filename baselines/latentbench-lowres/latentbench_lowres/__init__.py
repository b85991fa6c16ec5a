"""``lowres``: the image downsampled by ``stride`` (area average) is the latent; decoding upsamples
it (bicubic). What a latent space keeps if it keeps only low frequencies: a floor every learned
space should beat. Written as a third party would: it only uses latentbench's public contract.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from latentbench.errors import UserError
from latentbench.spaces import LatentSpace, LatentSpec


class LowResSpace(LatentSpace):
    def __init__(self, image_size: int, stride: int) -> None:
        super().__init__()
        if stride < 1 or image_size % stride:
            raise UserError(f"lowres: stride {stride} must divide image_size {image_size}")
        self.image_size, self.stride = image_size, stride
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    @property
    def spec(self) -> LatentSpec:
        return LatentSpec("lowres", 3, self.image_size // self.stride, self.image_size)

    def config(self) -> dict[str, Any]:
        return {"image_size": self.image_size, "stride": self.stride}

    def _encode(self, images: Tensor, sample: bool, generator: torch.Generator | None) -> Tensor:
        size = self.image_size // self.stride
        return F.interpolate(images, size=size, mode="area")  # (B, 3, H/s, W/s)

    def _decode(self, latents: Tensor) -> Tensor:
        return F.interpolate(latents, size=self.image_size, mode="bicubic", align_corners=False)


def lowres_space(image_size: int = 256, stride: int = 8, pretrained: bool = True) -> LowResSpace:
    """Area-downsampled image as latent (3 channels, ``stride`` x smaller)."""
    return LowResSpace(image_size, stride)
