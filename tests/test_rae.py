"""rae / rae-hd: normalised encoder features as the latent, ViT decoder, noise augmentation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from latentbench.data import collate_images
from latentbench.spaces import build_space, load_space
from latentbench.train.loop import StepContext
from latentbench.train.tokenizer import LossConfig, PerceptualKind, Recipe, TokenizerTask

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one intra-op thread

TINY = {
    "encoder": {
        "kind": "tiny-vit",
        "input_size": 16,
        "patch": 4,
        "dim": 32,
        "heads": 2,
        "depth": 2,
    },
    "image_size": 16,
    "decoder_dim": 32,
    "decoder_depth": 1,
}


def _batch(n=4):
    x = torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    items = [
        {"image": x[i], "key": str(i), "label": -1, "caption": "", "error": None} for i in range(n)
    ]
    return collate_images(items)


def test_latent_is_the_final_layernorm_without_its_affine():
    torch.manual_seed(0)
    space = build_space("rae", **TINY).eval()
    assert not any(k.startswith("encoder.norm.") for k in space.state_dict())  # affine dropped
    x = _batch().images
    with torch.no_grad():
        z = space.encode(x)
    assert space.spec.latent_shape == (32, 4, 4) and space.spec.stride == 4
    torch.testing.assert_close(z.mean(1), torch.zeros(4, 4, 4), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.var(1, unbiased=False), torch.ones(4, 4, 4), atol=1e-3, rtol=0)
    torch.manual_seed(0)
    raw = build_space("rae", token_norm=False, **TINY).eval()  # the encoder's own features
    assert "encoder.norm.weight" in raw.state_dict()
    with torch.no_grad():
        torch.testing.assert_close(raw.encode(x), raw.encoder(x))


def tiny_dinov2(path: Path):
    """A random DINOv2 whose final LayerNorm has a real affine, as a trained one has."""
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    cfg = Dinov2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        patch_size=4,
        image_size=16,
    )
    model = Dinov2Model(cfg).eval()
    with torch.no_grad():
        model.layernorm.weight.uniform_(0.5, 2.0)
        model.layernorm.bias.normal_()
    model.save_pretrained(path)
    return model


def test_rae_latent_of_dinov2_is_its_last_hidden_state_standardised(tmp_path):
    model = tiny_dinov2(tmp_path / "dino")
    opts = {**TINY, "encoder": str(tmp_path / "dino"), "encoder_input_size": 16}
    space = build_space("rae", **opts).eval()
    x = _batch().images
    with torch.no_grad():
        z = space.encode(x)  # (B, D, 4, 4)
        pixels = space.encoder.preprocess(x)
        pre_norm = model(pixel_values=pixels, output_hidden_states=True).hidden_states[-1]
        expected = F.layer_norm(pre_norm[:, 1:], (32,), eps=model.config.layer_norm_eps)
    torch.testing.assert_close(z.flatten(2).transpose(1, 2), expected)  # no affine, no second LN
    assert not any(k.startswith("encoder.model.layernorm.") for k in space.state_dict())
    space.save(tmp_path / "rae")  # a saved RAE rebuilds the same latent offline
    torch.testing.assert_close(load_space(tmp_path / "rae").eval().encode(x), z)


def _step(name, recipe, tau=0.0):
    torch.manual_seed(0)
    space = build_space(name, **TINY)
    task = TokenizerTask(
        space, recipe, LossConfig(perceptual=PerceptualKind.NONE, gan_weight=0, noise_tau=tau)
    )
    out = task.loss(task.model, _batch(), StepContext(0, 0, 0, 1, torch.device("cpu")))
    out["loss"].backward()
    enc_grad = any(p.grad is not None for p in space.encoder.parameters())
    return task, out, enc_grad


def test_rae_trains_only_the_decoder_with_noise_augmentation():
    task, out, enc_grad = _step("rae", Recipe.RAE, tau=0.8)
    assert not enc_grad and task.teacher is None
    assert all(p.grad is not None for p in task.model.space.decoder.parameters())
    assert "consistency" not in out
    space = task.model.space
    x = _batch().images
    torch.manual_seed(3)
    noisy = space.train_outputs(x, noise_tau=0.8)["recon"]
    torch.manual_seed(3)
    clean = space.train_outputs(x, noise_tau=0.0)["recon"]
    assert not torch.allclose(noisy, clean)


def test_rae_hd_fine_tunes_encoder_with_feature_consistency():
    task, out, enc_grad = _step("rae-hd", Recipe.RAE_HD)
    assert enc_grad and "consistency" in out
    assert float(out["consistency"]) < 1e-6  # the encoder still equals its frozen copy
    assert not any(p.requires_grad for p in task.teacher.parameters())
