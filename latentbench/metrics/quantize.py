"""Images as a user would save them: float (B, 3, H, W) in [-1, 1] <-> uint8, PNG's grid.

Every image metric (PSNR, SSIM, LPIPS, the Frechet-distance extractors, CLIP) scores the uint8
image, quantised by :func:`to_uint8`; its variant says so with :data:`QUANTISATION`.
"""

from __future__ import annotations

import torch
from torch import Tensor

QUANTISATION = "round((x + 1) * 127.5) clamped to [0, 255] (uint8, as saved to PNG)"


def to_uint8(images: Tensor) -> Tensor:
    """(B, 3, H, W) float in [-1, 1] -> uint8 in [0, 255], exactly as the image saved to PNG.

    A uint8 tensor is returned unchanged. NaN (a broken decoder) becomes 0.
    """
    if images.dtype == torch.uint8:
        return images
    scaled = (images.detach().float() + 1.0) * 127.5
    return scaled.nan_to_num_(0.0).round_().clamp_(0.0, 255.0).to(torch.uint8)


def from_uint8(images: Tensor) -> Tensor:
    """uint8 [0, 255] -> float32 in [-1, 1] (the inverse of :func:`to_uint8` on the grid)."""
    return images.float() / 127.5 - 1.0
