"""A pre-norm ViT block on the shared :class:`~latentbench.nn.attention.Attention`, and a ViT
pixel decoder (RAE)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentbench.nn.attention import Attention


class Mlp(nn.Sequential):
    """Linear -> GELU -> Linear."""

    def __init__(self, dim_in: int, hidden: int, dim_out: int) -> None:
        super().__init__(nn.Linear(dim_in, hidden), nn.GELU(), nn.Linear(hidden, dim_out))


class ViTBlock(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)); x + mlp(norm(x)). (B, T, D) -> (B, T, D)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def default_heads(dim: int) -> int:
    """64-wide heads where the width allows (ViT convention), else the largest divisor <= 8."""
    if dim % 64 == 0:
        return dim // 64
    return next(h for h in (8, 4, 2, 1) if dim % h == 0)


class ViTDecoder(nn.Module):
    """Tokens on a (grid x grid) lattice -> pixels: linear in, learned positions, ViT blocks,
    linear to ``patch x patch x 3`` values per token, unpatchify (RAE / MAE-style decoder)."""

    def __init__(
        self, in_dim: int, grid: int, patch: int, dim: int = 512, depth: int = 8, heads: int = 0
    ) -> None:
        super().__init__()
        self.grid, self.patch = grid, patch
        self.proj_in = nn.Linear(in_dim, dim)
        self.pos = nn.Parameter(torch.randn(1, grid * grid, dim) * 0.02)
        self.blocks = nn.ModuleList(
            ViTBlock(dim, heads or default_heads(dim)) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.proj_out = nn.Linear(dim, patch * patch * 3)

    @property
    def last_layer(self) -> Tensor:
        """Weight of the output layer (for the adaptive GAN weight)."""
        return self.proj_out.weight

    def forward(self, latents: Tensor) -> Tensor:
        b, _, h, w = latents.shape  # (B, C, h, w)
        x = self.proj_in(latents.flatten(2).transpose(1, 2)) + self.pos  # (B, T, dim)
        for block in self.blocks:
            x = block(x)
        x = self.proj_out(self.norm(x))  # (B, T, p*p*3)
        x = x.transpose(1, 2).reshape(b, 3 * self.patch**2, h, w)  # (B, 3p^2, h, w)
        return F.pixel_shuffle(x, self.patch)  # (B, 3, h*p, w*p)
