"""The paper's setting: its controls (pixels from D_s), the channel sweep, the SigLIP2 preset, the
ImageNet linear-probe protocol and paper-imagenet.yaml itself."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from test_semrec import TINY

from latentbench.bench.recon import ReconConfig, run_recon
from latentbench.bench.tokenizer import TrainTokenizerConfig, load_preset, train_tokenizer
from latentbench.experiment import load_experiment
from latentbench.metrics.latent import linear_probe
from latentbench.spaces import build_space, load_space
from latentbench.stats import proportion_interval
from latentbench.train.loop import StepContext
from latentbench.train.tokenizer import LossConfig, PerceptualKind, Recipe, TokenizerTask

PIXEL_ONLY = LossConfig(
    semantic_weight=0, kl_weight=0, perceptual=PerceptualKind.NONE, gan_weight=0.0
)
SWEEP = (32, 48, 64, 80, 112, 256)
pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one intra-op thread


def _pixel_grads(space, recipe: Recipe) -> dict[str, bool]:
    """Which parts the pixel loss alone reaches."""
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    task = TokenizerTask(space, recipe, PIXEL_ONLY)
    task.loss(task.model, images, StepContext(0, 0, 0, 1, torch.device("cpu")))["loss"].backward()
    return {
        n: any(
            p.grad is not None and p.grad.abs().sum() > 0 for p in getattr(space, n).parameters()
        )
        for n in ("encoder", "sem_enc", "sem_dec", "pixel_decoder")
    }


def test_semrec_ds_decodes_pixels_from_the_semantic_decoder():
    torch.manual_seed(0)
    space = build_space("semrec-ds", pretrained=True, **TINY).eval()
    z = torch.randn(2, 4, 4, 4)  # (B, C, h, w)
    with torch.no_grad():
        expected = space.pixel_decoder(space.semantic_decode(z))  # D_s output (B, 32, 4, 4) in
        torch.testing.assert_close(space.decode(z), expected.clamp(-1, 1))
    # stage 1: the pixel loss reaches only the pixel decoder (D_s's output detached) ...
    assert _pixel_grads(space, Recipe.SVAE) == {
        "encoder": False, "sem_enc": False, "sem_dec": False, "pixel_decoder": True
    }  # fmt: skip
    # ... stage 2: through D_s, E_s and the encoder; in semrec it never reaches D_s
    torch.manual_seed(0)
    assert all(
        _pixel_grads(build_space("semrec-ds", pretrained=True, **TINY), Recipe.PSVAE).values()
    )
    plain = _pixel_grads(build_space("semrec", pretrained=True, **TINY), Recipe.PSVAE)
    assert not plain["sem_dec"] and plain["sem_enc"]


def test_channel_sweep_trains_each_width_from_one_preset(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text(
        "semrec:\n  space: " + json.dumps(TINY) + "\n  loss: {perceptual: none, gan_weight: 0.0}"
        "\n  loop: {steps: 1, batch_size: 4, ema_decay: null}\n  stats_images: 4\n"
    )
    for channels in (2, 6):
        job = TrainTokenizerConfig(
            space="semrec",
            data="shapes:4",
            preset=str(preset),
            space_options={"channels": channels},
        )
        train_tokenizer(job, tmp_path / f"c{channels}", quiet=True)
        assert load_space(tmp_path / f"c{channels}").spec.channels == channels


def test_paper_imagenet_is_the_papers_setting():
    exp = load_experiment("paper-imagenet")
    steps = {t.name: t for t in exp.tokenizers}
    for c in SWEEP:
        assert steps[f"svae-c{c}"].space_options == {"channels": c}
        assert steps[f"psvae-c{c}"].init == f"svae-c{c}" and steps[f"psvae-c{c}"].stage == 2
    assert {"pvae", "rae-hd", "svae-ds", "psvae-ds", "psvae-siglip2"} <= set(steps)
    assert steps["psvae-siglip2"].preset == "paper-siglip2"
    recon_spaces = set(exp.recon.spaces)
    assert {"pvae", "rae-hd", "psvae-ds", *(f"psvae-c{c}" for c in SWEEP)} <= recon_spaces
    assert exp.recon.probe_data and exp.recon.probe_images is None  # the whole train split
    t2i, qwen = exp.generation
    assert qwen.preset == "paper" and (qwen.sample_shift, qwen.guidance) == (3.0, 6.5)
    assert set(t2i.spaces) == recon_spaces - {"sd-vae"}
    assert t2i.preset == "xl" and t2i.sample_steps == 50 and t2i.sampler.value == "euler"
    assert (t2i.sample_shift, t2i.guidance) == (3.0, 6.5)
    from latentbench.gen.dit import preset

    xl = preset("xl")
    assert (xl.ddt_width, xl.ddt_depth) == (2048, 2)  # the DDT head
    with torch.device("meta"):  # the preset's space: 96 channels on 16 x 16 from DINOv2-B
        space = build_space("semrec", pretrained=False, **load_preset("semrec", "paper", 2).space)
    assert space.spec.latent_shape == (96, 16, 16)


def test_siglip2_preset_weights_semantics_at_005():
    cfg = load_preset("semrec", "paper-siglip2", stage=2)
    assert cfg.space["encoder"] == "siglip2-so400m"
    assert (cfg.loss.semantic_weight, cfg.loss.pixel_weight) == (0.05, 1.0)
    with torch.device("meta"):
        space = build_space("semrec", pretrained=False, **cfg.space)
    assert space.encoder.dim == 1152 and space.spec.latent_shape == (96, 16, 16)
    assert len(space.sem_enc) == 3  # inherited SigLIP2 blocks


def test_linear_probe_fits_on_train_and_scores_top1_top5_on_test():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(8, 16, generator=g) * 3
    y_train, y_test = torch.arange(400) % 8, torch.arange(80) % 8
    x_train = centres[y_train] + torch.randn(400, 16, generator=g)
    x_test = centres[y_test] + torch.randn(80, 16, generator=g)
    probe = linear_probe(x_train, y_train, test_features=x_test, test_labels=y_test)
    assert probe["num_train"] == 400 and probe["num_test"] == 80
    assert probe["accuracy"] > 0.9 and probe["top5"] >= probe["accuracy"]
    # fitted on the train split only: test labels that disagree with their features score low
    shuffled = linear_probe(x_train, y_train, test_features=x_test, test_labels=(y_test + 1) % 8)
    assert shuffled["accuracy"] < 0.2 and shuffled["top5"] < 1.0
    noise = linear_probe(torch.randn(400, 16, generator=g), y_train)  # the 80/20 split, chance
    assert noise["top5"] > noise["accuracy"] and noise["accuracy"] < 0.3


def test_recon_probe_fits_on_probe_data_and_scores_every_image(tmp_path):
    cfg = ReconConfig(
        spaces=["pixel"], data="shapes:12", image_size=32, batch_size=8, fd=[], lpips=[],
        diagnostics=0, probe_data="shapes:40", probe_images=40, seed=1,
    )  # fmt: skip
    metrics = run_recon(cfg, tmp_path / "r")["pixel"]
    assert (metrics["probe/num_train"], metrics["probe/num_test"]) == (40, 12)
    assert 0 <= metrics["probe/top1"] <= metrics["probe/top5"] <= 1
    wilson = proportion_interval(round(metrics["probe/top1"] * 12), 12)  # one trial per image
    assert (metrics["probe/top1/ci95_low"], metrics["probe/top1/ci95_high"]) == pytest.approx(
        (wilson.low, wilson.high)
    )


def test_recon_with_probe_data_reports_one_probe_scored_on_every_image(tmp_path):
    """With probe_data the diagnostics do not add their own probe, fitted on 80% of the first
    `diagnostics` images and scored on the rest (13 images in the quickstart: noise)."""
    cfg = ReconConfig(
        spaces=["pixel"], data="shapes-single:16", image_size=32, batch_size=8, fd=[], lpips=[],
        diagnostics=10, probe_data="shapes-single:40", seed=1,
    )  # fmt: skip
    metrics = run_recon(cfg, tmp_path / "r")["pixel"]
    assert metrics["probe/num_test"] == 16 and "latent/effective_rank" in metrics
    assert not any(k.startswith("latent/probe") for k in metrics)
    cfg = replace(cfg, probe_data=None)
    metrics = run_recon(cfg, tmp_path / "r2")["pixel"]
    assert "latent/probe_accuracy" in metrics and "probe/top1" not in metrics


def test_recon_probe_train_split_holds_no_test_image(tmp_path):
    """Generated data draws item i from (seed, i) alone: the probe's train split is opened at
    another seed, else `probe_data: shapes-single:2000` would hold the 1,000 test images."""
    from latentbench.bench.recon import Recon

    cfg = ReconConfig(
        spaces=["pixel"], data="shapes-single:20", image_size=32, batch_size=8, fd=[], lpips=[],
        diagnostics=0, probe_data="shapes-single:40", seed=1,
    )  # fmt: skip
    bench = Recon(cfg, torch.device("cpu"))
    test = {bench.dataset[i]["image"].numpy().tobytes() for i in range(len(bench.dataset))}
    train = {bench.probe_dataset[i]["image"].numpy().tobytes() for i in range(40)}
    assert len(test) == 20 and not test & train
