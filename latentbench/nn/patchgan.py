"""PatchGAN discriminator (pix2pix / taming-transformers layout), hinge losses, adaptive weight.

One deliberate change from pix2pix: GroupNorm instead of BatchNorm, so the discriminator's output
does not depend on batch composition and there are no running statistics to keep in sync across
processes.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class PatchGAN(nn.Module):
    """(B, 3, H, W) -> (B, 1, H', W') real/fake logits, one per receptive-field patch."""

    def __init__(self, channels: int = 64, layers: int = 3, in_channels: int = 3) -> None:
        super().__init__()
        mods: list[nn.Module] = [
            nn.Conv2d(in_channels, channels, 4, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        width = channels
        for i in range(1, layers + 1):
            prev, width = width, channels * min(2**i, 8)
            stride = 2 if i < layers else 1
            mods += [
                nn.Conv2d(prev, width, 4, stride, 1, bias=False),
                nn.GroupNorm(math.gcd(32, width), width),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        mods.append(nn.Conv2d(width, 1, 4, 1, 1))
        self.net = nn.Sequential(*mods)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)


def hinge_d_loss(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    return 0.5 * (torch.relu(1 - logits_real).mean() + torch.relu(1 + logits_fake).mean())


def hinge_g_loss(logits_fake: Tensor) -> Tensor:
    return -logits_fake.mean()


def adaptive_weight(
    rec_loss: Tensor, g_loss: Tensor, last_layer: Tensor, max_weight: float = 1e4
) -> Tensor:
    """LDM's balance: |grad rec| / |grad adversarial| at the decoder's last layer (detached)."""
    rec_grad = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_grad = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    return (rec_grad.norm() / (g_grad.norm() + 1e-4)).clamp(0, max_weight).detach()
