"""Diffusers AutoencoderKL spaces, offline: tiny random VAEs saved with save_pretrained and loaded
back through the real from_pretrained path with HF_HUB_OFFLINE=1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL

from latentbench.errors import UserError
from latentbench.spaces import build_space, load_space
from latentbench.spaces.vae import PRESETS

SIZE = 32  # stride 8 -> 4 x 4 latents

TINY_ARCH = {
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [8, 8, 16, 16],
    "layers_per_block": 1,
    "norm_num_groups": 4,
    "latent_channels": 4,
}


def save_tiny_vae(folder: Path, **overrides: object) -> AutoencoderKL:
    torch.manual_seed(0)
    vae = AutoencoderKL(**{**TINY_ARCH, **overrides}).eval()
    vae.save_pretrained(folder)
    return vae


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.rand(2, 3, SIZE, SIZE, generator=g) * 2 - 1  # (B, 3, S, S) in [-1, 1]


def test_generic_vae_reads_scale_and_shift_from_the_model_config(tmp_path, images):
    vae = save_tiny_vae(tmp_path / "vae", scaling_factor=0.5, shift_factor=0.25)
    space = build_space("vae", model=str(tmp_path / "vae"), image_size=SIZE)
    assert (space.scale, space.shift) == (0.5, 0.25)
    assert space.spec.latent_shape == (4, 4, 4) and space.spec.stride == 8
    with torch.no_grad():
        z = space.encode(images)
        expected = (vae.encode(images).latent_dist.mean - 0.25) * 0.5
        torch.testing.assert_close(z, expected)
        torch.testing.assert_close(space.decode(z), vae.decode(z / 0.5 + 0.25).sample.clamp(-1, 1))


def test_missing_shift_factor_means_zero(tmp_path):
    save_tiny_vae(tmp_path / "vae", scaling_factor=0.3)  # shift_factor defaults to None
    space = build_space("vae", model=str(tmp_path / "vae"), image_size=SIZE)
    assert (space.scale, space.shift) == (0.3, 0.0)


def test_preset_keeps_its_own_scale_and_finds_the_vae_subfolder(tmp_path, images):
    save_tiny_vae(tmp_path / "pipeline" / "vae", latent_channels=16, scaling_factor=9.0)
    space = build_space("sd3-vae", model=str(tmp_path / "pipeline"), image_size=SIZE)
    assert space.subfolder == "vae"
    assert (space.scale, space.shift) == (1.5305, 0.0609)
    assert space.spec.channels == 16
    # A folder that is the VAE itself needs no subfolder.
    direct = build_space("sd3-vae", model=str(tmp_path / "pipeline" / "vae"), image_size=SIZE)
    assert direct.subfolder is None
    with torch.no_grad():
        torch.testing.assert_close(space.encode(images), direct.encode(images))


def test_scale_and_shift_are_inverted_by_decode(tmp_path, images):
    vae = save_tiny_vae(tmp_path / "vae")
    space = build_space("flux-vae", model=str(tmp_path / "vae"), image_size=SIZE)
    raw = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        scaled = (raw - space.shift) * space.scale
        torch.testing.assert_close(space.decode(scaled), vae.decode(raw).sample.clamp(-1, 1))


def test_sampling_uses_the_generator(tmp_path, images):
    save_tiny_vae(tmp_path / "vae")
    space = build_space("sd-vae", model=str(tmp_path / "vae"), image_size=SIZE)
    with torch.no_grad():
        mean = space.encode(images)
        a = space.encode(images, sample=True, generator=torch.Generator().manual_seed(3))
        b = space.encode(images, sample=True, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, mean)


def test_other_image_sizes_are_resized(tmp_path):
    save_tiny_vae(tmp_path / "vae")
    space = build_space("sd-vae", model=str(tmp_path / "vae"), image_size=SIZE)
    with torch.no_grad():
        z = space.encode(torch.zeros(1, 3, 48, 40))
    assert z.shape == (1, 4, 4, 4)


def test_save_and_load_space_give_identical_outputs(tmp_path, images):
    save_tiny_vae(tmp_path / "vae", latent_channels=16, use_quant_conv=False)
    space = build_space("sdxl-vae", model=str(tmp_path / "vae"), image_size=SIZE)
    space.save(tmp_path / "saved")
    meta = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert meta["config"]["arch"]["block_out_channels"] == [8, 8, 16, 16]
    assert meta["config"]["arch"]["use_quant_conv"] is False
    (tmp_path / "vae" / "diffusion_pytorch_model.safetensors").unlink()  # rebuilt from arch only
    loaded = load_space(tmp_path / "saved")
    assert loaded.spec == space.spec and loaded.fingerprint() == space.fingerprint()
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(images), space.encode(images), rtol=0, atol=0)
        z = space.encode(images)
        torch.testing.assert_close(loaded.decode(z), space.decode(z), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("name", "channels", "quant_conv"),
    [("sd-vae", 4, True), ("sdxl-vae", 4, True), ("sd3-vae", 16, False), ("flux-vae", 16, False)],
)
def test_presets_build_their_architecture_offline(name, channels, quant_conv):
    space = build_space(name, pretrained=False, image_size=64)
    assert space.spec.latent_shape == (channels, 8, 8)
    assert space.model == PRESETS[name].model
    assert list(space.vae.config.block_out_channels) == [128, 256, 512, 512]
    assert space.vae.config.use_quant_conv is quant_conv
    assert (space.scale, space.shift) == (PRESETS[name].scale, PRESETS[name].shift)


def test_offline_hub_id_is_one_clear_error():
    with pytest.raises(UserError, match=r"latentbench-test/no-such-vae.*model=PATH.*online"):
        build_space("vae", model="latentbench-test/no-such-vae")
    with pytest.raises(UserError, match=r"latentbench-test/no-such-vae.*model=PATH"):
        build_space("flux-vae", model="latentbench-test/no-such-vae", image_size=SIZE)


def test_user_errors(tmp_path):
    with pytest.raises(UserError, match="no such folder"):
        build_space("vae", model=str(tmp_path / "missing"))
    with pytest.raises(UserError, match="pass model="):
        build_space("vae")
    with pytest.raises(UserError, match="image_size 30"):
        build_space("sd-vae", pretrained=False, image_size=30)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="not a diffusers AutoencoderKL folder"):
        build_space("vae", model=str(tmp_path / "empty"))


def test_presets_find_their_weights_under_latentbench_weights(tmp_path, images, monkeypatch):
    """No model= and the hub id not cached offline: the copy in $LATENTBENCH_WEIGHTS is used,
    as OWNER/NAME/ (a whole pipeline, its vae/ subfolder) or NAME/ (the VAE itself)."""
    monkeypatch.setenv("LATENTBENCH_WEIGHTS", str(tmp_path))
    sd = save_tiny_vae(tmp_path / "stabilityai" / "sd-vae-ft-ema")
    flux = save_tiny_vae(tmp_path / "FLUX.1-dev" / "vae", latent_channels=16)
    with torch.no_grad():
        space = build_space("sd-vae", image_size=SIZE)
        torch.testing.assert_close(
            space.encode(images), sd.encode(images).latent_dist.mean * 0.18215
        )
        space = build_space("flux-vae", image_size=SIZE)
        expected = (flux.encode(images).latent_dist.mean - 0.1159) * 0.3611
        torch.testing.assert_close(space.encode(images), expected)
    assert space.model == "black-forest-labs/FLUX.1-dev"  # the config names the hub id
