"""Multi-head self-attention, the one block both transformers of the project use (the DiT of
:mod:`latentbench.gen.dit` and the ViT blocks of :mod:`latentbench.nn.vit`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentbench.errors import UserError

# Up to this many tokens, the explicit product beats PyTorch's CPU SDPA kernel in fp32 as well
SHORT_SEQUENCE = 256


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
    """Multi-head attention, q/k/v (B, H, T, Dh), mask (B, 1, T, T) bool or None -> (B, H, T, Dh).

    SDPA on accelerators and for long sequences; on a CPU, the explicit product below (softmax in
    fp32) for bf16/fp16 and for fp32 sequences of at most :data:`SHORT_SEQUENCE` tokens, where
    SDPA's CPU kernel is the slower. fwd+bwd on 2 cores, SDPA against explicit: bf16 (32, 4, 64,
    64) 12.8 ms against 3.3; fp32 (32, 8, 64, 14) (the S-VAE's blocks on Lite0) 11.7 against 7.0,
    (32, 4, 64, 64) (the tiny DiT) 9.4 against 6.2, (8, 4, 256, 64) 17.2 against 17.5, and
    (4, 4, 1024, 64) 105 against 185. Both agree to float rounding (tests/test_dit.py).
    """
    long_full_precision = q.dtype in (torch.float32, torch.float64) and q.shape[-2] > SHORT_SEQUENCE
    if q.device.type != "cpu" or long_full_precision:
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
