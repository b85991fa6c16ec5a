"""Tokenizer training from precomputed constants (cache_features): the same losses as computing
them in every step, a feature cache that is reused and rebuilt when damaged."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from latentbench.data import collate_images, open_images
from latentbench.data.cache import CachedFeatures, build_feature_cache
from latentbench.spaces import build_space
from latentbench.train.loop import StepContext
from latentbench.train.tokenizer import (
    CacheFeatures,
    LossConfig,
    PerceptualKind,
    Recipe,
    TokenizerTask,
    cached_constants,
    collate_constants,
)

ENCODER = {"kind": "tiny-vit", "input_size": 16, "patch": 4, "dim": 32, "heads": 2, "depth": 2}
SPACES = {
    Recipe.SVAE: ("semrec", {"channels": 4, "semantic_depth": 1, "decoder_base": 8}),
    Recipe.PSVAE: ("semrec", {"channels": 4, "semantic_depth": 1, "decoder_base": 8}),
    Recipe.PVAE: ("pvae", {"channels": 4, "semantic_depth": 1, "decoder_base": 8}),
    Recipe.RAE: ("rae", {"decoder_dim": 32, "decoder_depth": 1}),
    Recipe.RAE_HD: ("rae-hd", {"decoder_dim": 32, "decoder_depth": 1}),
}


def _task(recipe: Recipe, perceptual: PerceptualKind) -> TokenizerTask:
    torch.manual_seed(0)
    name, arch = SPACES[recipe]
    space = build_space(name, pretrained=False, encoder=ENCODER, image_size=16, **arch)
    loss = LossConfig(perceptual=perceptual, gan_weight=0.0, kl_weight=1e-3, l2_weight=0.5)
    task = TokenizerTask(space, recipe, loss)
    task.model.train()  # as the loop does (the encoder stays in eval mode)
    return task


@pytest.mark.parametrize(
    "recipe, perceptual",
    [(r, PerceptualKind.NONE) for r in Recipe]
    + [(Recipe.RAE, PerceptualKind.EFFNET_LITE0), (Recipe.PSVAE, PerceptualKind.EFFNET_LITE0)],
)
def test_cached_constants_give_the_losses_and_gradients_of_recomputing(recipe, perceptual):
    task = _task(recipe, perceptual)
    data = open_images("shapes:6", 16, seed=0)
    cached = cached_constants(task, data, CacheFeatures.ON)
    assert cached is not None and len(cached) == 6
    ctx = StepContext(0, 0, 0, 1, torch.device("cpu"))
    results = []
    for batch in (
        collate_images([data[i] for i in range(4)]),
        collate_constants([cached[i] for i in range(4)]),
    ):
        torch.manual_seed(1)  # the loop reseeds every step: the same noise on both paths
        out = task.loss(task.model, batch, ctx)
        task.model.zero_grad(set_to_none=True)
        out["loss"].backward()
        grads = [p.grad.clone() for p in task.model.parameters() if p.grad is not None]
        results.append((out, grads))
    (recomputed, g0), (from_cache, g1) = results
    assert set(recomputed) == set(from_cache)
    assert ("perceptual" in recomputed) == (perceptual is PerceptualKind.EFFNET_LITE0)
    for k in recomputed:
        torch.testing.assert_close(from_cache[k], recomputed[k], rtol=1e-4, atol=1e-6, msg=k)
    assert len(g0) == len(g1) > 0
    for a, b in zip(g0, g1):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-6)


def test_constants_hold_what_never_changes():
    svae = cached_constants(
        _task(Recipe.SVAE, PerceptualKind.EFFNET_LITE0),
        open_images("shapes:3", 16, seed=0),
        CacheFeatures.ON,
    )
    assert {"images", "features", "perceptual_0", "perceptual_3"} <= set(svae[0])
    pvae = cached_constants(
        _task(Recipe.PVAE, PerceptualKind.NONE),
        open_images("shapes:3", 16, seed=0),
        CacheFeatures.ON,
    )
    assert set(pvae[0]) == {"images"}  # the encoder trains; no perceptual net
    assert (
        cached_constants(
            _task(Recipe.RAE, PerceptualKind.NONE),
            open_images("shapes:3", 16, seed=0),
            CacheFeatures.OFF,
        )
        is None
    )


def test_feature_cache_is_reused_keyed_and_rebuilt_when_damaged(tmp_path):
    data = open_images("shapes:5", 16, seed=0)
    calls = []

    def compute(images):
        calls.append(len(images))
        return {"images": images, "double": 2 * images}

    first = build_feature_cache("fp-a", data, compute, batch_size=2, root=tmp_path)
    again = build_feature_cache("fp-a", data, compute, batch_size=2, root=tmp_path)
    assert first.path == again.path and calls == [2, 2, 1]  # reused: compute ran once per batch
    item = CachedFeatures(again)[4]
    torch.testing.assert_close(item["double"], 2 * data[4]["image"])
    other = build_feature_cache("fp-b", data, compute, root=tmp_path)
    assert other.path != first.path  # another computation, another entry
    np.save(first.path / "double.npy", np.zeros((2, 3), np.float32))  # damaged
    rebuilt = build_feature_cache("fp-a", data, compute, batch_size=5, root=tmp_path)
    assert calls[-1] == 5 and CachedFeatures(rebuilt)[0]["double"].shape == (3, 16, 16)
    assert json.loads((rebuilt.path / "meta.json").read_text())["num_items"] == 5


PRESET = """
rae:
  space: {space}
  loss: {{perceptual: none, gan_weight: 0.0}}
  loop: {{steps: 3, batch_size: 4, lr: 0.001, ema_decay: null, checkpoint_every: 3, log_every: 1}}
  stats_images: 8
  cache_features: {mode}
"""


def test_training_with_and_without_the_cache_ends_with_the_same_weights(tmp_path):
    from latentbench.bench.tokenizer import TrainTokenizerConfig, train_tokenizer

    arch = {"encoder": ENCODER, "image_size": 16, "decoder_dim": 32, "decoder_depth": 1}
    spaces = {}
    for mode in ("on", "off"):
        preset = tmp_path / f"{mode}.yaml"
        preset.write_text(PRESET.format(space=json.dumps(arch), mode=mode))
        job = TrainTokenizerConfig(space="rae", data="shapes:8", preset=str(preset))
        train_tokenizer(job, tmp_path / mode, quiet=True)
        manifest = json.loads((tmp_path / mode / "manifest.json").read_text())
        assert manifest["config"]["cached_constants"] is (mode == "on")
        spaces[mode] = build_space(str(tmp_path / mode))
    on, off = (spaces[m].state_dict() for m in ("on", "off"))
    changed = 0
    for k in on:
        torch.testing.assert_close(on[k], off[k], rtol=1e-4, atol=1e-5, msg=k)
        changed += not torch.equal(
            on[k],
            build_space(
                "rae",
                pretrained=False,
                encoder=ENCODER,
                image_size=16,
                decoder_dim=32,
                decoder_depth=1,
            ).state_dict()[k],
        )
    assert changed > 0
