"""The TAESD family: architecture, weight resolution (option, env folder, verified download),
save/load, and the real TAEF2 weights on real photos."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import AutoencoderTiny
from PIL import Image

import latentbench.spaces.taesd as taesd_mod
from latentbench.errors import UserError
from latentbench.spaces import build_space, load_space
from latentbench.spaces.taesd import (
    TinyAutoencoder,
    UpstreamFile,
    file_sha256,
    git_blob_sha1,
)

SIZE = 32
REPO = Path(__file__).resolve().parents[1]
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Offline, no weights folder, and an empty download cache."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("LATENTBENCH_WEIGHTS", raising=False)
    monkeypatch.setenv("LATENTBENCH_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.rand(2, 3, SIZE, SIZE, generator=g) * 2 - 1  # (B, 3, S, S) in [-1, 1]


def to_upstream(state: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """The inverse of upstream_to_diffusers: AutoencoderTiny layout -> upstream .pth layouts."""
    enc = {
        k.removeprefix("encoder.layers."): v
        for k, v in state.items()
        if k.startswith("encoder.layers.")
    }
    dec = {}
    for k, v in state.items():
        if k.startswith("decoder.layers."):
            index, rest = k.removeprefix("decoder.layers.").split(".", 1)
            dec[f"{int(index) + 1}.{rest}"] = v
    return enc, dec


def write_upstream(model: torch.nn.Module, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    enc, dec = to_upstream(model.state_dict())
    torch.save({k: v.half() for k, v in enc.items()}, folder / f"{name}_encoder.pth")
    torch.save({k: v.half() for k, v in dec.items()}, folder / f"{name}_decoder.pth")
    return folder


def half_rounded(model: torch.nn.Module) -> torch.nn.Module:
    """The model with weights rounded to float16, as the upstream files store them."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    return model.eval()


def assert_same_outputs(space, model, images) -> None:
    with torch.no_grad():
        z = space.encode(images)
        torch.testing.assert_close(z, model.encoder(images))
        torch.testing.assert_close(space.decode(z), model.decoder(z).clamp(-1, 1))


def test_unpooled_architecture_equals_autoencoder_tiny(images):
    torch.manual_seed(0)
    reference = AutoencoderTiny(latent_channels=4).eval()
    mine = TinyAutoencoder(4, pooled_midblocks=False).eval()
    mine.load_state_dict(reference.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(mine.encoder(images), reference.encoder(images))
        z = torch.randn(2, 4, 4, 4)
        torch.testing.assert_close(mine.decoder(z), reference.decoder(z))


def test_pooled_blocks_are_where_the_upstream_taef2_has_them():
    enc, dec = to_upstream(TinyAutoencoder(32, pooled_midblocks=True).state_dict())
    assert sorted({k.split(".")[0] for k in enc if ".pool." in k}) == ["11", "12", "13"]
    assert sorted({k.split(".")[0] for k in dec if ".pool." in k}) == ["3", "4", "5"]
    assert enc["11.pool.0.weight"].shape == (256, 64, 1, 1)
    assert enc["14.weight"].shape == (32, 64, 3, 3) and dec["1.weight"].shape == (64, 32, 3, 3)


def test_taesd_loads_upstream_files_from_a_folder_a_file_and_the_env(tmp_path, monkeypatch, images):
    torch.manual_seed(0)
    model = half_rounded(AutoencoderTiny(latent_channels=16))
    folder = write_upstream(model, tmp_path / "w" / "taesd", "taef1")
    with pytest.warns(UserWarning, match="differs from upstream"):
        from_folder = build_space("taef1", weights=str(tmp_path / "w"), image_size=SIZE)
    assert_same_outputs(from_folder, model, images)
    assert from_folder.spec.latent_shape == (16, 4, 4)
    with pytest.warns(UserWarning):
        from_file = build_space("taef1", weights=str(folder / "taef1_decoder.pth"), image_size=SIZE)
    assert from_file.weight_files["encoder"]["file"] == str(folder / "taef1_encoder.pth")
    monkeypatch.setenv("LATENTBENCH_WEIGHTS", str(tmp_path / "w"))
    with pytest.warns(UserWarning):
        from_env = build_space("taef1", image_size=SIZE)
    assert from_env.weight_files["decoder"]["sha256"] == file_sha256(folder / "taef1_decoder.pth")
    assert from_env.fingerprint() == from_folder.fingerprint() == from_file.fingerprint()


def test_taef2_architecture_loads_and_round_trips_through_save(tmp_path, images):
    torch.manual_seed(0)
    model = half_rounded(TinyAutoencoder(32, pooled_midblocks=True))
    write_upstream(model, tmp_path / "w", "taef2")
    with pytest.warns(UserWarning):
        space = build_space("taef2", weights=str(tmp_path / "w"), image_size=SIZE)
    assert_same_outputs(space, model, images)
    space.save(tmp_path / "saved")
    loaded = load_space(tmp_path / "saved")
    assert loaded.fingerprint() == space.fingerprint()
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(images), space.encode(images), rtol=0, atol=0)


def test_diffusers_folder_and_save_load(tmp_path, images):
    torch.manual_seed(0)
    reference = AutoencoderTiny(latent_channels=4, decoder_block_out_channels=(32, 32, 32, 32))
    reference.eval().save_pretrained(tmp_path / "tiny")
    space = build_space("taesdxl", weights=str(tmp_path / "tiny"), image_size=SIZE)
    assert_same_outputs(space, reference, images)
    space.save(tmp_path / "saved")
    loaded = load_space(tmp_path / "saved")  # rebuilt from the stored arch
    with torch.no_grad():
        z = space.encode(images)
        torch.testing.assert_close(loaded.encode(images), z, rtol=0, atol=0)
        torch.testing.assert_close(loaded.decode(z), space.decode(z), rtol=0, atol=0)
    with pytest.raises(UserError, match="has 4 latent channels, expected 16"):
        build_space("taesd3", weights=str(tmp_path / "tiny"))


def test_missing_weights_offline_name_the_file_and_the_three_ways():
    with pytest.raises(UserError) as info:
        build_space("taef2")
    message = str(info.value)
    assert "taef2_encoder.pth" in message and "\n" not in message
    for way in ("weights=", "LATENTBENCH_WEIGHTS", "raw.githubusercontent.com/madebyollin/taesd"):
        assert way in message
    with pytest.raises(UserError, match=r"latentbench-test/no-such-taesd.*weights=PATH.*online"):
        build_space("taesd", weights="latentbench-test/no-such-taesd")  # a hub id, offline


def test_download_is_verified_and_cached(tmp_path, monkeypatch, images):
    torch.manual_seed(0)
    model = half_rounded(TinyAutoencoder(32, pooled_midblocks=True))
    remote = write_upstream(model, tmp_path / "remote", "taef2")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(taesd_mod, "UPSTREAM_URL", f"file://{remote}/{{filename}}")
    # The recorded hashes are those of the real files: these random ones must be refused.
    with pytest.raises(UserError, match="does not match its recorded hash"):
        build_space("taef2", image_size=SIZE)
    cache = tmp_path / "cache" / "weights" / "taesd"
    assert not list(cache.glob("*.pth"))
    # With their hashes recorded (sha256 for one, git blob id for the other) they are accepted.
    enc, dec = remote / "taef2_encoder.pth", remote / "taef2_decoder.pth"
    files = dict(taesd_mod.UPSTREAM_FILES)
    files["taef2_encoder.pth"] = UpstreamFile(file_sha256(enc), "0" * 40)
    files["taef2_decoder.pth"] = UpstreamFile(None, git_blob_sha1(dec))
    monkeypatch.setattr(taesd_mod, "UPSTREAM_FILES", files)
    space = build_space("taef2", image_size=SIZE)
    assert_same_outputs(space, model, images)
    assert space.weight_files["encoder"]["file"] == str(cache / "taef2_encoder.pth")
    enc.unlink()
    dec.unlink()  # the cache now serves them
    assert build_space("taef2", image_size=SIZE).fingerprint() == space.fingerprint()


def test_git_blob_sha1_is_what_git_prints(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"hello\n")
    assert git_blob_sha1(path) == "ce013625030ba8dba906f756967f9e9ca394464a"


@pytest.mark.filterwarnings("ignore:.*differs from upstream")
def test_bad_weights_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no such file or folder"):
        build_space("taesd", weights=str(tmp_path / "nope.pth"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no taesd_encoder.pth"):
        build_space("taesd", weights=str(tmp_path / "empty"))
    (tmp_path / "taesd_encoder.pth").write_bytes(b"not a checkpoint")
    (tmp_path / "taesd_decoder.pth").write_bytes(b"")
    with pytest.raises(UserError, match="taesd_encoder.pth: not a readable torch state dict"):
        build_space("taesd", weights=str(tmp_path))
    write_upstream(TinyAutoencoder(32, True), tmp_path / "f2", "taef2")
    for f in (tmp_path / "f2").iterdir():
        f.rename(f.with_name(f.name.replace("taef2", "taesd")))
    with pytest.raises(UserError, match="do not fit the taesd architecture"):
        build_space("taesd", weights=str(tmp_path / "f2"))
    with pytest.raises(UserError, match="image_size 20"):
        build_space("taef2", pretrained=False, image_size=20)


# -- the real TAEF2 weights ----------------------------------------------------------------------
def real_taef2_folder() -> Path | None:
    env = os.environ.get("LATENTBENCH_WEIGHTS")
    candidates = [Path(env), Path(env) / "taesd"] if env else []
    candidates += [REPO.parent / "shared" / "weights" / "taesd", Path("/work/shared/weights/taesd")]
    for folder in candidates:
        if (folder / "taef2_encoder.pth").is_file() and (folder / "taef2_decoder.pth").is_file():
            return folder
    return None


def photo(name: str, size: int = 256) -> torch.Tensor:
    """A scikit-image photo, center-cropped to a square and resized (bicubic): (3, S, S)."""
    from skimage import data

    image = Image.fromarray(getattr(data, name)()).convert("RGB")
    w, h = image.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    image = image.crop((left, top, left + s, top + s)).resize((size, size), Image.BICUBIC)
    return torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 127.5 - 1


def psnr_uint8(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR of two [-1, 1] images after quantising both to uint8 [0, 255]."""
    qa, qb = (((x.clamp(-1, 1) + 1) * 127.5).round().double() for x in (a, b))
    return float(10 * torch.log10(255**2 / (qa - qb).square().mean()))


@pytest.mark.weights
def test_real_taef2_reconstructs_photos():
    folder = real_taef2_folder()
    if folder is None:
        pytest.skip(
            "real weights taef2_encoder.pth / taef2_decoder.pth not found in $LATENTBENCH_WEIGHTS "
            f"or {REPO.parent / 'shared' / 'weights' / 'taesd'}"
        )
    space = build_space("taef2", weights=str(folder), image_size=256)
    images = torch.stack([photo(name) for name in PHOTOS])  # (4, 3, 256, 256)
    with torch.inference_mode():
        latents = space.encode(images)
        recon = space.decode(latents)
    assert latents.shape == (4, 32, 32, 32)
    scores = {n: psnr_uint8(x, y) for n, x, y in zip(PHOTOS, images, recon)}
    print("taef2 PSNR at 256 px:", {n: round(s, 2) for n, s in scores.items()})
    assert all(s > 27 for s in scores.values()), scores
