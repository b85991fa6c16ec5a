"""Multi-head self-attention, the one block both transformers of the project use (the DiT of
:mod:`latentbench.gen.dit` and the ViT blocks of :mod:`latentbench.nn.vit`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentbench.errors import UserError


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
    """Multi-head attention, q/k/v (B, H, T, Dh), mask (B, 1, T, T) bool or None -> (B, H, T, Dh).

    SDPA everywhere except bf16/fp16 on a CPU, where its flash kernel is slow for the short
    sequences of this project (fwd+bwd at (32, 4, 64, 64) on 2 cores: 12.8 ms in bf16 against
    3.3 ms for the explicit product below, whose softmax runs in fp32).
    """
    if q.device.type != "cpu" or q.dtype in (torch.float32, torch.float64):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    scores = q @ (k.transpose(-1, -2) * k.shape[-1] ** -0.5)  # (B, H, T, T)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(-1, dtype=torch.float32).to(v.dtype) @ v


class Attention(nn.Module):
    """Multi-head self-attention over (B, T, D) tokens: one ``qkv`` projection, :func:`attention`,
    an output projection ``proj``. ``mask`` (B, 1, T, T) bool: True where a query may attend."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise UserError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        b, t, d = x.shape
        qkv = self.qkv(x).view(b, t, 3, self.heads, d // self.heads)  # (B, T, 3, H, Dh)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, H, T, Dh)
        out = attention(q, k, v, mask)  # (B, H, T, Dh)
        return self.proj(out.transpose(1, 2).reshape(b, t, d))  # (B, T, D)
