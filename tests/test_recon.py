"""latentbench recon: one pass per space, cached reference statistics, skipped files, run folder."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from latentbench.bench.recon import ReconConfig, run_recon
from latentbench.metrics.features import FEATURE_EXTRACTORS, FeatureExtractor
from latentbench.spaces import build_space

REPO = Path(__file__).resolve().parent.parent
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


class CountingExtractor(FeatureExtractor):
    """A tiny fixed random conv net; counts how many batches it has seen."""

    calls = 0
    name, dims = "test-counting", 8
    variant = {"name": "test-counting", "dims": 8}

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 5, 2), torch.nn.AdaptiveAvgPool2d(1))

    def features(self, images):
        CountingExtractor.calls += 1
        return self.net(images.float() / 255).flatten(1)  # (B, 8)


if "test-counting" not in FEATURE_EXTRACTORS:
    FEATURE_EXTRACTORS.register("test-counting", CountingExtractor)


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    code = "from latentbench.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def folder(tmp_path) -> Path:
    """5 readable images of odd sizes and 3 unreadable files."""
    root = tmp_path / "imgs"
    (root / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(5):
        small = rng.integers(0, 255, (6, 7, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((48 + i, 40), Image.BICUBIC)
        img.save(root / ("sub" if i % 2 else ".") / f"img{i}.png")
    (root / "empty.jpg").write_bytes(b"")
    jpeg = root / "whole.jpg"
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(jpeg, quality=90)
    (root / "truncated.jpg").write_bytes(jpeg.read_bytes()[:300])
    jpeg.unlink()
    (root / "notes.png").write_text("not an image")
    return root


@pytest.fixture
def lossy_space(tmp_path) -> str:
    """A saved pixel space at 16 px: recon at 32 px goes through a real down/up-sample."""
    build_space("pixel", image_size=16).save(tmp_path / "pixel16")
    return str(tmp_path / "pixel16")


def _config(folder: Path, spaces: list[str], **kw) -> ReconConfig:
    base = dict(image_size=32, batch_size=2, fd=["test-counting"], lpips=[], diagnostics=0)
    return ReconConfig(spaces=spaces, data=str(folder), **{**base, **kw})


def test_progress_lines_name_each_space_by_its_label(folder, lossy_space, tmp_path, capsys):
    """The saved space's spec still says 'pixel'; its progress lines say 'pixel16', its label."""
    run_recon(_config(folder, ["pixel", lossy_space]), tmp_path / "run", quiet=False)
    lines = capsys.readouterr().err.splitlines()
    assert {line.partition(":")[0] for line in lines if line.startswith("recon ")} == {
        "recon pixel",
        "recon pixel16",
    }


def test_run_folder_metrics_and_skips(folder, lossy_space, tmp_path):
    out = tmp_path / "run"
    results = run_recon(_config(folder, ["pixel", lossy_space]), out)
    assert set(results) == {"pixel", "pixel16"}
    metrics = json.loads((out / "metrics.json").read_text())
    for name in ("pixel", "pixel16"):
        m = metrics[name]
        assert m["num_images"] == 5 and m["skipped_images"] == 3
        assert {"psnr", "ssim", "fd_test-counting", "encode_images_per_s"} <= set(m)
    assert metrics["pixel"]["psnr"] == 100.0  # identity: capped
    assert metrics["pixel"]["fd_test-counting"] == pytest.approx(0.0, abs=1e-6)
    assert 10 < metrics["pixel16"]["psnr"] < 40
    assert metrics["pixel16"]["ssim"] < 1
    assert metrics["pixel16"]["fd_test-counting"] > 0
    with open(out / "per_image.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10 and {r["space"] for r in rows} == {"pixel", "pixel16"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["skipped_files"]) == 3
    assert manifest["metric_variants"]["fd_test-counting"]["name"] == "test-counting"
    assert manifest["versions"]["torch"] and manifest["seed"] == 0
    assert Image.open(out / "images" / "grid.png").size[1] > 3 * 32
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".run")]  # no staging left


def test_reference_statistics_are_computed_once(folder, lossy_space, tmp_path):
    CountingExtractor.calls = 0
    run_recon(_config(folder, ["pixel", lossy_space]), tmp_path / "a")
    batches = 4  # 8 files in batches of 2
    assert CountingExtractor.calls == 3 * batches  # K + 1 passes for K = 2 spaces
    CountingExtractor.calls = 0
    run_recon(_config(folder, ["pixel", lossy_space]), tmp_path / "b")
    assert CountingExtractor.calls == 2 * batches  # reference statistics come from the cache


def test_single_space_metrics_are_flat(folder, tmp_path):
    run_recon(_config(folder, ["pixel"], fd=[]), tmp_path / "one")
    metrics = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert metrics["num_images"] == 5 and "pixel" not in metrics


def test_latent_diagnostics_are_in_the_metrics(lossy_space, tmp_path):
    cfg = ReconConfig(
        spaces=[lossy_space], data="shapes:24", image_size=32, batch_size=8, fd=["test-counting"],
        lpips=[], diagnostics=16,
    )  # fmt: skip
    metrics = run_recon(cfg, tmp_path / "diag")["pixel16"]
    assert metrics["latent/channels"] == 3
    assert 1 <= metrics["latent/effective_rank"] <= 3
    assert 0 <= metrics["latent/probe_accuracy"] <= 1  # shapes have labels
    robust = [metrics[f"latent/robust_psnr@{s:g}"] for s in (0.0, 0.5, 1.0)]
    assert robust[0] > robust[1] > robust[2]  # more latent noise, worse decodes
    assert any(k.startswith("latent/ifid") for k in metrics)


def test_strict_fails_naming_the_bad_files(folder, tmp_path):
    out = _cli(
        "recon", "--space", "pixel", "--data", str(folder), "--image-size", "32",
        "--fd", "none", "--lpips", "none", "--strict", "--quiet", "--out", str(tmp_path / "strict"),
    )  # fmt: skip
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert all(name in lines[0] for name in ("empty.jpg", "truncated.jpg", "notes.png"))
    assert not (tmp_path / "strict").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "/no/such/folder"], "does not exist"),
        (["--data", "skimage", "--space", "pxel"], "did you mean 'pixel'"),
        (["--data", "skimage", "--lpips", "alexx"], "is not one of alex, vgg"),
    ],
)
def test_user_errors_are_one_line(args, message, tmp_path):
    base = {"--space": "pixel", "--fd": "none", "--lpips": "none"}
    for key, value in zip(args[::2], args[1::2]):
        base[key] = value
    out = _cli("recon", *[x for kv in base.items() for x in kv], "--out", str(tmp_path / "x"))
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and message in out.stderr, out.stderr


def _taef2_weights() -> Path | None:
    for root in (os.environ.get("LATENTBENCH_WEIGHTS"), REPO.parent / "shared" / "weights"):
        if root and (Path(root) / "taesd" / "taef2_encoder.pth").is_file():
            return Path(root)
    return None


@pytest.mark.weights
@pytest.mark.skipif(
    _taef2_weights() is None, reason="taef2 weights absent (../shared/weights/taesd)"
)
def test_taef2_on_photos_agrees_with_scikit_image(tmp_path):
    """The issue's check: recon's PSNR/SSIM equal scikit-image's on the same uint8 images."""
    photos = tmp_path / "photos"
    export = _cli("data", "export", "--data", "skimage:" + ",".join(PHOTOS), "--out", str(photos))
    assert export.returncode == 0, export.stderr
    out = tmp_path / "check"
    env = {"LATENTBENCH_WEIGHTS": str(_taef2_weights())}
    run = _cli(
        "recon", "--space", "taef2", "--data", str(photos), "--image-size", "256",
        "--fd", "none", "--lpips", "none", "--save-images", "--quiet", "--json",
        "--out", str(out), env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    metrics = json.loads(run.stdout)["taef2"]
    assert metrics["num_images"] == 4 and metrics["psnr"] > 25
    check = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "verify_recon_with_skimage.py"), str(out)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr


# -- auto: the real metric where its weights are, else the offline variant, said so ---------------
def test_recon_defaults_are_auto_and_fall_back_offline(no_weights, tmp_path):
    from typer.testing import CliRunner

    from latentbench.cli import app

    out = tmp_path / "auto"
    args = ["recon", "--space", "pixel", "--data", "shapes:2", "--image-size", "32"]
    res = CliRunner().invoke(app, [*args, "--diagnostics", "0", "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    assert "note: fd auto -> efficientnet-lite0 (inception unavailable:" in res.output
    assert "note: lpips auto -> none (alex unavailable:" in res.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert "fd_efficientnet-lite0" in metrics and "rfid" not in metrics
    assert not [k for k in metrics if k.startswith("lpips")]  # no LPIPS rather than a fake one
    assert metrics["auto"]["fd"]["chosen"] == "efficientnet-lite0"
    assert "weights-inception" in metrics["auto"]["fd"]["reason"]
    assert metrics["auto"]["lpips"]["chosen"] == "none"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["auto_choices"] == metrics["auto"]


def test_recon_explicit_metrics_still_fail_offline(folder, no_weights, tmp_path):
    from latentbench.errors import UserError

    with pytest.raises(UserError, match="weights-inception-2015-12-05"):
        run_recon(_config(folder, ["pixel"], fd=["inception"]), tmp_path / "a")
    with pytest.raises(UserError, match="alexnet-owt"):
        run_recon(_config(folder, ["pixel"], fd=[], lpips=["alex"]), tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_recon_auto_uses_the_real_metrics_where_their_weights_are(
    no_weights, inception_weights, tmp_path, monkeypatch
):
    from test_metrics_pixel import random_alexnet_file

    weights = tmp_path / "weights"
    random_alexnet_file(weights)
    (weights / inception_weights.name).symlink_to(inception_weights)
    monkeypatch.setenv("LATENTBENCH_WEIGHTS", str(weights))
    lines: list[str] = []
    two = dict(spaces=["pixel"], data="shapes:2", image_size=32, batch_size=2, diagnostics=0)
    cfg = ReconConfig(**two, fd=["auto"], lpips=["auto"])
    metrics = run_recon(cfg, tmp_path / "run", echo=lines.append)["pixel"]
    assert "rfid" in metrics and "lpips" in metrics
    assert metrics["auto"] == {
        "fd": {"chosen": "inception", "reason": ""},
        "lpips": {"chosen": "alex", "reason": ""},
    }
    assert "note: fd auto -> inception" in lines
    # with --lpips-random-backbone and no backbone file, auto falls back to the named stand-in
    (weights / "alexnet-owt-7be5be79.pth").unlink()
    cfg = ReconConfig(**two, fd=[], lpips=["auto"], lpips_random_backbone=True)
    metrics = run_recon(cfg, tmp_path / "rand")["pixel"]
    assert "lpips_randbackbone" in metrics and metrics["auto"]["lpips"]["chosen"] == (
        "alex-randbackbone"
    )
