"""Saved spaces describe themselves: save_pretrained / from_pretrained through a folder, a hub
id (offline, from a local hub cache) and the format before them (space.json)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch

import latentbench.hub as hub
from latentbench.errors import UserError
from latentbench.spaces import LatentSpace, build_space, is_saved_space, load_space
from latentbench.spaces.semrec import semrec_space

TINY = {"pretrained": False, "image_size": 32}


@pytest.fixture(scope="module")
def trained() -> LatentSpace:
    """A tiny semrec space after a few optimizer steps, with fitted latent statistics."""
    torch.manual_seed(0)
    space = build_space("semrec", **TINY)
    images = torch.rand(4, 3, 32, 32) * 2 - 1
    space.encoder.requires_grad_(False)  # frozen, as stage 1 trains it
    opt = torch.optim.Adam([p for p in space.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        loss = (space.decode(space.encode(images)) - images).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    space.eval().fit_stats([images], seed=0)
    return space


def _same_outputs(a: LatentSpace, b: LatentSpace) -> None:
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.inference_mode():
        za, zb = a.eval().encode(x), b.eval().encode(x)
        assert torch.equal(za, zb)
        assert torch.equal(a.decode(za), b.decode(zb))
    assert a.stats == b.stats and a.fingerprint() == b.fingerprint()
    assert (a.registry_name, a.config()) == (b.registry_name, b.config())


def _as_hub_cache(folder: Path, cache: Path, repo_id: str) -> None:
    """Lay ``folder`` out as huggingface_hub's cache holds a downloaded repo."""
    commit = "0" * 40
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)


def test_trained_semrec_round_trips_through_folder_and_hub_id(trained, tmp_path, monkeypatch):
    space = trained
    space.save_pretrained(tmp_path / "saved")
    assert {"config.json", "model.safetensors"} <= {p.name for p in (tmp_path / "saved").iterdir()}
    meta = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert meta["space"] == "semrec" and meta["fingerprint"] == space.fingerprint()

    _same_outputs(space, LatentSpace.from_pretrained(tmp_path / "saved"))
    _same_outputs(space, build_space(str(tmp_path / "saved")))  # wherever a space name goes

    cache = tmp_path / "hub"
    _as_hub_cache(tmp_path / "saved", cache, "someone/tiny-semrec")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _same_outputs(space, LatentSpace.from_pretrained("someone/tiny-semrec"))
    with pytest.raises(UserError, match=r"someone/absent.*go online"):
        LatentSpace.from_pretrained("someone/absent")


def test_a_space_built_by_its_factory_is_the_one_built_by_name():
    by_name = build_space("semrec", **TINY)
    direct = semrec_space(**TINY)
    direct.load_state_dict(by_name.state_dict())
    assert direct.registry_name == "semrec" and direct.fingerprint() == by_name.fingerprint()


def test_folders_of_the_format_before_still_load(trained, tmp_path):
    space = trained
    old = tmp_path / "old"
    space.save_pretrained(old)
    (old / "config.json").rename(old / "space.json")
    (old / "model.safetensors").rename(old / "space.safetensors")
    assert is_saved_space(old)
    _same_outputs(space, load_space(old))


def test_a_model_folder_is_not_a_saved_space(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL"}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert not is_saved_space(tmp_path)
    (tmp_path / "config.json").write_text("{trunc")  # damaged beside weights: loading says so
    assert is_saved_space(tmp_path)
    with pytest.raises(UserError, match="config.json"):
        load_space(tmp_path)


def test_hub_models_are_found_under_latentbench_weights(tmp_path, monkeypatch):
    """Step 2 of the lookup order: $LATENTBENCH_WEIGHTS/OWNER/NAME (or NAME) for hub id OWNER/NAME;
    a pipeline's subfolder is dropped when the copy is the model itself."""
    monkeypatch.setenv("LATENTBENCH_WEIGHTS", str(tmp_path))
    assert hub.model_folder("someone/vae") is None
    (tmp_path / "vae").mkdir()
    assert hub.model_folder("someone/vae") == tmp_path / "vae"
    (tmp_path / "someone" / "vae").mkdir(parents=True)
    assert hub.model_folder("someone/vae") == tmp_path / "someone" / "vae"
    source, variant = hub.pretrained_source("someone/vae")
    assert source == str(tmp_path / "someone" / "vae") and "sha256" in variant
    assert hub.model_folder("not/a/hub/id") is None
