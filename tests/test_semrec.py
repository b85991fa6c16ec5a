"""semrec (S-VAE / PS-VAE) and its controls: architecture, stages, losses, exact resume, CLI."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from torch.utils.data import Dataset

from latentbench.data import collate_images
from latentbench.errors import UserError
from latentbench.files import read_jsonl
from latentbench.nn.conv import ConvDecoder, norm_groups
from latentbench.nn.patchgan import hinge_d_loss
from latentbench.runs import RunDir
from latentbench.spaces import build_space, load_space
from latentbench.train.loop import Callback, LoopConfig, StepContext, TrainLoop
from latentbench.train.tokenizer import LossConfig, PerceptualKind, Recipe, TokenizerTask

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one intra-op thread

TINY = {
    "encoder": {
        "kind": "tiny-vit",
        "input_size": 16,
        "patch": 4,
        "dim": 32,
        "heads": 2,
        "depth": 3,
    },
    "image_size": 16,
    "channels": 4,
    "semantic_depth": 2,
    "decoder_base": 16,
    "decoder_layers": 1,
    "decoder_attention": False,
}
NO_PERCEPTUAL = {"perceptual": PerceptualKind.NONE, "gan_weight": 0.0}


def test_narrow_pixel_decoder_keeps_each_images_channel_means():
    """The pixel decoder's GroupNorms keep LDM's 4 channels per group at any width. With
    gcd(32, base) groups, base 16 put one channel in each group of its full-resolution level (an
    InstanceNorm): a per-image constant in a channel, such as a background colour, was erased,
    and the quickstart's semrec decoded every background grey."""
    assert norm_groups(128) == 32  # the paper's decoder: LDM's 32 groups at base 128
    decoder = ConvDecoder(4, 4, base=16, layers_per_block=1, attention=False)
    norms = [m for m in decoder.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert norms and all(m.num_channels // m.num_groups >= 4 for m in norms)
    final = decoder.decoder.conv_norm_out  # (B, 16, H, W) at full resolution
    x = torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(0))
    shifted = x.clone()
    shifted[:, 0] += 1.0  # channel 0 brighter everywhere in this image
    assert not torch.allclose(final(x), final(shifted), atol=1e-3)


class Blobs(Dataset):
    """Smooth random images in the data interface's item format, with 2 labels."""

    def __init__(self, n: int = 16, size: int = 16) -> None:
        g = torch.Generator().manual_seed(0)
        x = torch.rand(n, 3, size // 4, size // 4, generator=g) * 2 - 1
        self.x = torch.nn.functional.interpolate(x, size=size, mode="bilinear")
        self.spec, self.image_size, self.label_names = "blobs", size, None

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return {"image": self.x[i], "key": str(i), "label": i % 2, "caption": "", "error": None}


def _space(name="semrec", **kw):
    torch.manual_seed(0)
    return build_space(name, pretrained=True, **{**TINY, **kw})


def _ctx(step=0):
    return StepContext(step, 0, 0, 1, torch.device("cpu"))


def test_architecture_inherits_last_encoder_blocks():
    space = _space()
    assert space.spec.latent_shape == (4, 4, 4) and space.spec.stride == 4
    enc = space.encoder.transformer_blocks()
    for copy_, src in zip(space.sem_enc, enc[-2:]):
        torch.testing.assert_close(copy_.attn.qkv.weight, src.attn.qkv.weight)
        assert copy_.attn.qkv.weight is not src.attn.qkv.weight
    picked = _space(inherit_blocks=[0, 1])
    torch.testing.assert_close(picked.sem_dec[0].mlp[0].weight, enc[0].mlp[0].weight)
    fresh = _space(inherit=False)
    assert not torch.equal(fresh.sem_enc[0].attn.qkv.weight, enc[-2].attn.qkv.weight)
    mlp = _space("semrec-mlp", semantic_depth=0)
    assert len(mlp.sem_enc) == 0 and len(mlp.sem_dec) == 0
    with pytest.raises(UserError, match="fixes"):
        build_space("semrec-mlp", pretrained=False, semantic_depth=2)


def test_encode_is_posterior_mean_and_sampling_differs(images):
    space = _space().eval()
    x = torch.nn.functional.interpolate(images, size=16)
    with torch.no_grad():
        z = space.encode(x)
        zs = space.encode(x, sample=True, generator=torch.Generator().manual_seed(0))
        feats = space.semantic_decode(z)
    assert z.shape == (4, 4, 4, 4) and not torch.equal(z, zs)
    assert feats.shape == (4, 32, 4, 4)


def _grads(task, batch, step=0):
    task.model.zero_grad()
    out = task.loss(task.model, batch, _ctx(step))
    out["loss"].backward()
    space = task.model.space
    has = lambda mod: any(p.grad is not None and p.grad.abs().sum() > 0 for p in mod.parameters())  # noqa: E731
    return out, {
        n: has(getattr(space, n)) for n in ("encoder", "sem_enc", "sem_dec", "pixel_decoder")
    }


def test_stage1_freezes_encoder_and_detaches_pixel_path():
    batch = collate_images([Blobs()[i] for i in range(4)])
    task = TokenizerTask(_space(), Recipe.SVAE, LossConfig(**NO_PERCEPTUAL))
    out, grads = _grads(task, batch)
    assert grads == {"encoder": False, "sem_enc": True, "sem_dec": True, "pixel_decoder": True}
    assert {"kl", "sem_l2", "sem_cos", "semantic", "l1", "pixel", "loss"} <= set(out)
    # The pixel loss alone reaches only the pixel decoder (f_l.detach()).
    pixel_only = TokenizerTask(
        _space(), Recipe.SVAE, LossConfig(semantic_weight=0, kl_weight=0, **NO_PERCEPTUAL)
    )
    _, grads = _grads(pixel_only, batch)
    assert grads == {"encoder": False, "sem_enc": False, "sem_dec": False, "pixel_decoder": True}


def test_stage2_trains_everything_against_a_frozen_teacher():
    batch = collate_images([Blobs()[i] for i in range(4)])
    space = _space()
    task = TokenizerTask(space, Recipe.PSVAE, LossConfig(**NO_PERCEPTUAL))
    _, grads = _grads(task, batch)
    assert all(grads.values())
    assert task.teacher is not None and not any(p.requires_grad for p in task.teacher.parameters())
    with torch.no_grad():
        space.encoder.blocks[0].mlp[0].weight.add_(1.0)  # the encoder moves; the teacher does not
    assert not torch.equal(
        task.teacher.blocks[0].mlp[0].weight, space.encoder.blocks[0].mlp[0].weight
    )
    pvae = TokenizerTask(_space("pvae"), Recipe.PVAE, LossConfig(**NO_PERCEPTUAL))
    out, grads = _grads(pvae, batch)
    assert "semantic" not in out and grads["encoder"] and not grads["sem_dec"]


def test_kl_is_weighted_against_the_pixel_loss_as_in_ldm():
    # LDM: sum_pixels(|x - x'|) / B + kl_weight * sum_latent(KL) / B. With pixel losses as means
    # over the 3HW pixel elements, the KL must enter as kl_weight * (per-image KL sum) / 3HW.
    batch = collate_images([Blobs()[i] for i in range(4)])
    cfg = LossConfig(kl_weight=1e-2, pixel_weight=0.0, **NO_PERCEPTUAL)
    space = _space("pvae")
    task = TokenizerTask(space, Recipe.PVAE, cfg)
    out = task.loss(task.model, batch, _ctx())
    with torch.no_grad():
        mean, logvar = space.posterior(space.encoder(batch.images))  # (B, T, C), deterministic
    per_image = 0.5 * (mean**2 + logvar.exp() - 1 - logvar).sum((1, 2))  # (B,)
    torch.testing.assert_close(out["kl"], per_image.mean())
    pixels = 3 * 16 * 16  # the latent has 4 x 4 x 4 = 64 elements: the two normalisations differ
    torch.testing.assert_close(out["loss"], 1e-2 * per_image.mean() / pixels)


def test_gan_terms_reach_only_their_own_parameters():
    batch = collate_images([Blobs()[i] for i in range(4)])
    cfg = LossConfig(
        perceptual=PerceptualKind.NONE, gan_weight=0.5, gan_start=2, disc_channels=8, disc_layers=1
    )
    task = TokenizerTask(_space(), Recipe.PSVAE, cfg)
    out = task.loss(task.model, batch, _ctx(step=1))
    assert "gan_g" not in out  # before gan_start
    out = task.loss(task.model, batch, _ctx(step=2))
    assert {"gan_g", "gan_d", "gan_weight"} <= set(out) and out["gan_weight"] > 0
    # The discriminator's gradient from the total loss equals that of its hinge loss alone.
    task.model.zero_grad()
    torch.manual_seed(1)
    task.loss(task.model, batch, _ctx(2))["loss"].backward()
    d_grad = task.model.disc.net[0].weight.grad.clone()
    task.model.zero_grad()
    torch.manual_seed(1)
    outs = task.model(batch.images, adversarial=True)
    hinge_d_loss(outs["logits_real"], outs["logits_fake_d"]).backward()
    torch.testing.assert_close(task.model.disc.net[0].weight.grad, d_grad)


def _loop(tmp, steps, callbacks=()):
    cfg = LoopConfig(
        steps=steps, batch_size=4, lr=1e-3, ema_decay=0.9, checkpoint_every=2, log_every=1
    )
    run = RunDir.create(tmp, "test", {}, seed=0)
    task = TokenizerTask(_space(), Recipe.PSVAE, LossConfig(kl_weight=1e-3, **NO_PERCEPTUAL))
    return TrainLoop(task, Blobs(), collate_images, cfg, run, callbacks, quiet=True)


def test_kill_and_resume_gives_identical_weights(tmp_path):
    ref = _loop(tmp_path / "ref", 4)
    ref.fit()

    def kill(loop, step):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _loop(tmp_path / "run", 4, [Callback(1, kill)]).fit()
    resumed = _loop(tmp_path / "run", 4)
    resumed.fit(resume=True)
    assert resumed.step == 4
    for (k, a), b in zip(
        ref.unwrapped.state_dict().items(), resumed.unwrapped.state_dict().values()
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)
    for a, b in zip(ref.ema.model.state_dict().values(), resumed.ema.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    names = {r["name"] for r in read_jsonl(tmp_path / "run" / "metrics.jsonl")}
    assert {"train/sem_l2", "train/sem_cos", "train/kl", "train/l1", "train/pixel"} <= names


PRESET = """
semrec:
  space: {space}
  loss: {{perceptual: none, gan_weight: 0.0, kl_weight: 0.001}}
  loop: {{steps: 3, batch_size: 4, lr: 0.001, ema_decay: null, checkpoint_every: 2, log_every: 1}}
  stats_images: 8
  stage2:
    loop: {{lr: 0.0005}}
"""


def test_train_tokenizer_stage1_then_stage2_saves_loadable_spaces(tmp_path):
    from latentbench.bench.tokenizer import TrainTokenizerConfig, train_tokenizer

    preset = tmp_path / "p.yaml"
    preset.write_text(PRESET.format(space=json.dumps(TINY)))
    job = TrainTokenizerConfig(space="semrec", data="shapes:8", preset=str(preset))
    s1 = train_tokenizer(job, tmp_path / "s1", quiet=True)
    assert s1["steps"] == 3
    space = build_space(str(tmp_path / "s1"))
    assert space.stats is not None and space.stats.num_samples == 8
    with pytest.raises(UserError, match="pass --init"):
        train_tokenizer(replace(job, stage=2), tmp_path / "x")
    stage2 = replace(job, stage=2, init=str(tmp_path / "s1"), eval_data="shapes:8")
    s2 = train_tokenizer(stage2, tmp_path / "s2", quiet=True)
    assert (
        "eval/psnr" in s2 and "eval/probe_latent_mean" in s2 and "eval/probe_encoder_flatten" in s2
    )
    loaded = load_space(tmp_path / "s2")
    before = load_space(tmp_path / "s1")
    assert not torch.equal(loaded.encoder.patch_embed.weight, before.encoder.patch_embed.weight)
    manifest = json.loads((tmp_path / "s2" / "manifest.json").read_text())
    assert manifest["config"]["recipe"] == "psvae" and manifest["config"]["loop"]["lr"] == 0.0005
    origin = manifest["config"]["init_space"]  # stage 2 records the stage-1 space it started from
    s1_meta = json.loads((tmp_path / "s1" / "config.json").read_text())
    assert origin["fingerprint"] == s1_meta["fingerprint"] == before.fingerprint()
    assert (origin["recipe"], origin["stage"], origin["encoder"]["kind"]) == ("svae", 1, "tiny-vit")
    assert (s2["init_fingerprint"], s2["init_recipe"], s2["init_stage"]) == (
        s1_meta["fingerprint"],
        "svae",
        1,
    )
    with pytest.raises(UserError, match="already holds checkpoints"):
        train_tokenizer(job, tmp_path / "s1")
    with pytest.raises(UserError, match="no training recipe"):
        train_tokenizer(replace(job, space="svae", stage=2), tmp_path / "y")


def test_a_tokenizers_held_out_images_are_not_its_training_images(tmp_path, monkeypatch):
    """``--eval-data`` of the training data's kind is drawn at the training seed + 1 (it was drawn
    at the same seed: the training images themselves), and the manifest records what it scored."""
    import latentbench.data as data
    from latentbench.bench.tokenizer import TrainTokenizerConfig, train_tokenizer

    drawn = []
    real = data.open_images
    monkeypatch.setattr(
        data, "open_images", lambda *a, **k: drawn.append(real(*a, **k)) or drawn[-1]
    )
    preset = tmp_path / "p.yaml"
    preset.write_text(PRESET.format(space=json.dumps(TINY)))
    job = TrainTokenizerConfig(
        space="semrec", data="shapes:8", preset=str(preset), eval_data="shapes:8", eval_images=8
    )
    train_tokenizer(job, tmp_path / "s1", quiet=True)
    trained_on, scored_on = drawn[0], drawn[-1]
    seen = [trained_on[i]["image"] for i in range(len(trained_on))]
    assert len(scored_on) == 8
    for i in range(len(scored_on)):
        assert not any(torch.equal(scored_on[i]["image"], x) for x in seen), i
    config = json.loads((tmp_path / "s1" / "manifest.json").read_text())["config"]
    assert (config["eval_data"], config["eval_images"], config["eval_seed"]) == ("shapes:8", 8, 1)


def test_stage2_refuses_an_init_that_is_not_stage1_of_the_same_encoder(
    tmp_path, monkeypatch, capsys
):
    from latentbench.bench.tokenizer import TrainTokenizerConfig, train_tokenizer
    from latentbench.cli import main

    preset = tmp_path / "p.yaml"
    preset.write_text(PRESET.format(space=json.dumps(TINY)))
    stage1 = TrainTokenizerConfig(space="semrec", data="shapes:8", preset=str(preset))
    train_tokenizer(stage1, tmp_path / "s1", quiet=True)
    train_tokenizer(replace(stage1, space="pvae"), tmp_path / "pvae", quiet=True)
    _space().save(tmp_path / "bare")  # a space folder, but no stage-1 run
    other = tmp_path / "other.yaml"  # the same architecture on another encoder input size
    other.write_text(
        PRESET.format(space=json.dumps({**TINY, "encoder": {**TINY["encoder"], "input_size": 32}}))
    )
    cases = [
        (tmp_path / "pvae", str(preset), "is a pvae stage-1 output (recipe pvae)"),
        (tmp_path / "bare", str(preset), "not a train-tokenizer run folder"),
        (tmp_path / "s1", str(other), "at 16 px; this preset's is tiny-vit at 32 px"),
    ]
    for init, preset_path, message in cases:
        out = tmp_path / f"s2-{init.name}"
        argv = ["train-tokenizer", "--space", "semrec", "--stage", "2", "--data", "shapes:8"]
        argv += ["--preset", preset_path, "--init", str(init), "--out", str(out), "--quiet"]
        monkeypatch.setattr("sys.argv", ["latentbench", *argv])
        with pytest.raises(SystemExit) as exit_:
            main()
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and message in err and err.strip().count("\n") == 0, err
        assert not out.exists()  # nothing half-written


def test_paper_preset_builds_from_a_local_stand_in(tmp_path):
    from test_backbones import tiny_dinov2

    from latentbench.bench.tokenizer import load_preset

    cfg = load_preset("semrec", "paper", stage=1)
    assert cfg.space["encoder"] == "dinov2-b-reg" and cfg.space["channels"] == 96
    assert cfg.loop.batch_size == 96 and cfg.loop.lr == 1e-4
    assert cfg.loss.semantic_weight == 0.1 and cfg.loss.pixel_weight == 1.0
    tiny_dinov2(tmp_path / "dino")
    opts = {
        **cfg.space,
        "encoder": str(tmp_path / "dino"),
        "encoder_input_size": 32,
        "image_size": 64,
        "decoder_base": 16,
    }
    space = build_space("semrec", **opts)
    assert space.spec.latent_shape == (96, 4, 4) and space.spec.stride == 16
    assert len(space.sem_enc) == 3 and space.encoder.config.hf_config["num_register_tokens"] == 4
    space.save(tmp_path / "saved")
    again = load_space(tmp_path / "saved")  # rebuilds from config.json alone
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(again.eval().encode(x), space.eval().encode(x))
