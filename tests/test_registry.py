from __future__ import annotations

import inspect
import subprocess
import sys

import pytest
import torch

from latentbench.errors import UserError
from latentbench.registry import Entry, Registry
from latentbench.spaces import (
    SPACES,
    Family,
    build_space,
    build_spaces,
    options_for,
    ready_space_names,
    space_info,
    space_names,
    trainable_space_names,
)
from latentbench.spaces.catalog import BUILTIN_SPACES
from latentbench.spaces.pixel import PixelSpace
from latentbench.spaces.taesd import VARIANTS
from latentbench.spaces.vae import PRESETS, SD_ARCH
from latentbench.train.loop import StepContext
from latentbench.train.tokenizer import (
    LossConfig,
    PerceptualKind,
    Recipe,
    TokenizerTask,
    recipe_for,
)


def test_decorator_lazy_and_did_you_mean():
    reg: Registry = Registry("widget")
    reg.register("lazy-path", "pathlib:PurePosixPath")

    @reg.register("double")
    def double(x: int) -> int:
        return 2 * x

    assert reg.names() == ["double", "lazy-path"]
    assert reg.get("double")(3) == 6
    assert reg.get("lazy-path")("a/b").name == "b"
    with pytest.raises(UserError, match=r"unknown widget 'dubble' \(did you mean 'double'\?\)"):
        reg.get("dubble")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("double", double)


def test_unknown_space_option_is_a_user_error():
    with pytest.raises(UserError, match="takes no option 'pach'"):
        build_space("pixel", pach=2)
    with pytest.raises(UserError, match="did you mean 'pixel'"):
        build_space("pixle")


def test_listing_spaces_imports_no_heavy_library():
    code = (
        "import sys; from latentbench.spaces import SPACES; SPACES.names(); "
        "heavy = [m for m in ('diffusers', 'transformers', 'timm', 'torch_fidelity', 'lpips') "
        "if m in sys.modules]; print(heavy); assert not heavy"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


# -- the catalog agrees with what building each space reports --------------------------------------
VAE_OR_TAESD = {Family.VAE, Family.TAESD}


@pytest.mark.parametrize("name", [i.name for i in BUILTIN_SPACES])
def test_catalog_row_matches_the_built_space(name: str):
    """Each row's target is the factory of that name; its image_size, static spec and config
    are what the built space reports; its config rebuilds the same space."""
    info = space_info(name)
    factory = SPACES.get(name)
    assert factory.registry_name == name  # the catalog points at the right factory
    assert info.takes_image_size == ("image_size" in inspect.signature(factory).parameters)
    size = 64
    opts = {"pretrained": False, **({"image_size": size} if info.takes_image_size else {})}
    if info.family in VAE_OR_TAESD and name != "taef2":
        opts["arch"] = _small_arch(info)  # the real architecture is slow to build; same stride
    space = build_space(name, **opts)
    spec = space.spec
    assert space.registry_name == name and spec.image_size == size
    if info.spec is not None:
        assert (spec.channels, spec.stride) == (info.spec.channels, info.spec.stride)
    direct = factory(**opts)  # the factory called directly: same name, config, fingerprint
    direct.load_state_dict(space.state_dict())
    assert (direct.registry_name, direct.config()) == (name, space.config())
    assert direct.fingerprint() == space.fingerprint()
    again = build_space(name, **{**space.config(), "pretrained": False})
    assert again.config() == space.config() and again.spec == spec


def _small_arch(info) -> dict:
    """The space's own architecture (its preset's / variant's latent channels, stride 8), made
    narrow so it builds fast."""
    if info.family is Family.TAESD:
        narrow = {"encoder_block_out_channels": [8] * 4, "decoder_block_out_channels": [8] * 4}
        return {"latent_channels": VARIANTS[info.name].latent_channels, **narrow}
    arch = PRESETS[info.name].arch if info.name in PRESETS else SD_ARCH
    return {**arch, "block_out_channels": [8, 8, 8, 8], "norm_num_groups": 4}


RECIPES = [(n, k, r) for n in trainable_space_names() for k, r in space_info(n).recipes.items()]


@pytest.mark.parametrize(("name", "stage", "recipe"), RECIPES)
def test_each_catalog_recipe_trains_its_space(name: str, stage: int, recipe: str):
    """The catalog's recipe is the one train-tokenizer picks, and its losses run on the space."""
    assert recipe_for(name, stage) is Recipe(recipe)
    torch.manual_seed(0)
    space = build_space(name, pretrained=False, image_size=32)
    loss = LossConfig(perceptual=PerceptualKind.NONE, gan_weight=0.0)
    task = TokenizerTask(space, Recipe(recipe), loss)
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    out = task.loss(task.model, images, StepContext(0, 0, 0, 1, torch.device("cpu")))
    assert torch.isfinite(out["loss"]) and out["loss"].requires_grad


def test_space_all_is_every_space_that_needs_no_training():
    ready, trainable = set(ready_space_names()), set(trainable_space_names())
    assert ready | trainable == set(SPACES.names()) and not ready & trainable
    assert space_names(["all"]) == ready_space_names()
    assert space_names(["pixel", "semrec"]) == ["pixel", "semrec"]


def test_build_spaces_skips_absent_weights_only_under_all(no_weights):
    built = build_spaces(["all"], image_size=32, options={"patch": 2})
    assert list(built.spaces) == ["pixel"] and built.spaces["pixel"].spec.channels == 12
    assert any(n.startswith("taef2: skipped: ") and "taef2_encoder.pth" in n for n in built.notes)
    with pytest.raises(UserError, match="taef2_encoder.pth"):
        build_spaces(["pixel", "taef2"], image_size=32)  # named explicitly: must build
    with pytest.raises(UserError, match="no space here takes the option"):
        build_spaces(["pixel"], image_size=32, options={"pach": 2})
    assert options_for("pixel", image_size=32, weights="w", options={"model": "m"}) == {
        "image_size": 32
    }


def test_a_plugin_factory_gets_derived_info_and_its_name(monkeypatch):
    def sizeless(patch: int = 1, pretrained: bool = True):
        return PixelSpace(image_size=16, patch=patch)

    monkeypatch.setitem(SPACES._entries, "sizeless", Entry("sizeless", sizeless, "runtime"))
    info = space_info("sizeless")
    assert (info.family, info.takes_image_size, info.needs_training) == (
        Family.PLUGIN,
        False,
        False,
    )
    assert options_for("sizeless", image_size=64, options={"patch": 2}) == {"patch": 2}
    space = build_space("sizeless", patch=2)
    assert (space.registry_name, space.config()) == ("sizeless", {"patch": 2})
