"""Latent diagnostics: channel stats, effective rank, linear probe, robustness, iFID."""

from __future__ import annotations

import pytest
import torch

from latentbench.errors import UserError
from latentbench.metrics.latent import (
    channel_stats,
    decoder_robustness,
    effective_rank,
    interpolation_fid,
    latent_diagnostics,
    linear_probe,
    pool_latents,
)
from latentbench.spaces import build_space

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one intra-op thread


def test_channel_stats_and_effective_rank():
    g = torch.Generator().manual_seed(0)
    z = (
        torch.randn(64, 4, 3, 3, generator=g)
        * torch.tensor([1.0, 2.0, 3.0, 4.0])[None, :, None, None]
    )
    s = channel_stats(z)
    assert s["std_ratio"] == pytest.approx(4.0, rel=0.15)
    assert len(s["channel_std"]) == 4 and abs(s["max_kurtosis"]) < 1.0
    iso = torch.randn(256, 8, 2, 2, generator=g)
    assert effective_rank(iso) == pytest.approx(8, rel=0.1)
    rank1 = torch.randn(256, 1, 2, 2, generator=g) * torch.ones(1, 8, 1, 1)
    assert effective_rank(rank1) < 1.1


def test_linear_probe_separable_vs_random_labels():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (300,), generator=g)
    centres = torch.randn(3, 16, generator=g) * 3
    feats = centres[labels] + torch.randn(300, 16, generator=g)
    assert linear_probe(feats, labels)["accuracy"] > 0.95
    noise = linear_probe(torch.randn(300, 16, generator=g), labels)
    assert noise["accuracy"] < 0.55 and noise["num_test"] == 60
    wide = linear_probe(centres[labels].repeat(1, 40) + torch.randn(300, 640, generator=g), labels)
    assert wide["accuracy"] > 0.9  # dual form (640 features > 240 samples)
    with pytest.raises(UserError, match="linear probe needs"):
        linear_probe(feats[:10], torch.full((10,), -1))
    assert pool_latents(torch.ones(2, 3, 4, 4)).shape == (2, 3)
    assert pool_latents(torch.ones(2, 3, 4, 4), "flatten").shape == (2, 48)


def _images(n=6, size=16):
    x = torch.rand(n, 3, size // 4, size // 4, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return torch.nn.functional.interpolate(x, size=size, mode="bilinear")


def test_decoder_robustness_falls_with_noise():
    space = build_space("pixel", image_size=16)
    out = decoder_robustness(space, _images(), sigmas=(0.0, 0.1, 1.0))
    assert out["psnr@0"] > 45  # identity space: only uint8 rounding
    assert out["psnr@0"] > out["psnr@0.1"] > out["psnr@1"]


class MeanColour(torch.nn.Module):
    """A stand-in extractor: per-channel mean and std (B, 6)."""

    dims = 6

    def forward(self, images):
        return torch.cat([images.mean((2, 3)), images.std((2, 3))], 1).double()


def test_interpolation_fid_and_all_diagnostics():
    space = build_space("pixel", image_size=16)
    images = _images(12)
    out = interpolation_fid(space, images, MeanColour())
    assert out["ifid_reference"] == pytest.approx(0.0, abs=1e-6)  # identity reconstructs exactly
    assert out["ifid"] > out["ifid_reference"] and out["nn_distance"] > 0
    labels = torch.arange(12) % 2
    diag = latent_diagnostics(space, images, labels, extractor=MeanColour(), sigmas=(0.0, 0.5))
    assert {
        "latent/effective_rank",
        "latent/probe_accuracy",
        "latent/robust_psnr@0.5",
        "latent/ifid",
        "latent/std_ratio",
    } <= set(diag)
