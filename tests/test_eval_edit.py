"""eval-edit: Shapes edits (oracle and a trained toy editor), natural-image edits end to end on
stand-in CLIP / DINO / LPIPS, the judge hook, and bad inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from latentbench.bench.eval_edit import EvalEditConfig, Skipped, read_edits, run_eval_edit
from latentbench.bench.generation import load_config, train_generator
from latentbench.data.shapes import write_dataset
from latentbench.errors import UserError
from latentbench.metrics.edit_natural import EDIT_JUDGES
from latentbench.testing.standins import write_clip_standin, write_dino_standin

TOY = {
    "data": "shapes-edits:24",
    "image_size": 16,
    "steps": 2,
    "batch_size": 8,
    "eval_every": 2,
    "eval_samples": 7,
    "sample_steps": 2,
    "checkpoint_every": 2,
    "fd_extractor": "none",
    "dit": {"width": 32, "depth": 1, "heads": 2, "grid": 4},
}


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shapes")
    write_dataset(out, n=1, image_size=64, n_edits=14, prompts_per_task=1)
    return out


def test_shapes_oracle_and_identity_outputs(shapes_dir: Path, tmp_path: Path) -> None:
    rows = [json.loads(line) for line in (shapes_dir / "edits.jsonl").read_text().splitlines()]
    oracle, identity = tmp_path / "oracle", tmp_path / "identity"
    oracle.mkdir(), identity.mkdir()
    for i, row in enumerate(rows):
        shutil.copy(shapes_dir / row["target"], oracle / f"{i:05d}.png")
        shutil.copy(shapes_dir / row["source"], identity / f"{i:05d}.png")
    cfg = EvalEditConfig(edits=str(shapes_dir / "edits.jsonl"), lpips="none")
    good = run_eval_edit(cfg, images=oracle).results
    assert good["kind"] == "shapes" and good["num_edits"] == 14
    s = good["summary"]
    assert s["success"] == 1.0 and len(s["categories"]) == 7
    assert all(b["count"] == 2 for b in s["categories"].values())
    assert s["psnr_outside"] == 100.0  # the target equals the source outside the mask
    bad = run_eval_edit(cfg, images=identity, out=tmp_path / "id").results["summary"]
    assert bad["success"] == 0.0 and bad["l1_outside"] == 0.0
    assert (tmp_path / "id" / "per_edit.jsonl").read_text().count("\n") == 14


@pytest.fixture(scope="module")
def edit_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("edit") / "pixel"
    train_generator(load_config(None, space="pixel", task="edit", **TOY), path)
    return path


def test_trained_editor_on_builtin_shapes_edits(edit_run: Path) -> None:
    cfg = EvalEditConfig(num_edits=7, lpips="none", batch_size=4)
    res = run_eval_edit(cfg, run_dir=edit_run)
    r = res.results
    assert res.path == edit_run / "eval-edit" / "shapes-edits-7-seed1000" / "results.json"
    saved = json.loads(res.path.read_text())
    assert saved["config"]["seed"] == 1000 and "torch" in saved["provenance"]["versions"]
    assert set(r["summary"]["categories"]) == {
        "color_change",
        "object_removal",
        "object_addition",
        "object_replacement",
        "background_change",
        "texture_change",
        "position_move",
    }
    assert len(list((res.path.parent / "images").glob("*.png"))) == 7
    assert r["generator"]["seed"] == 1000 and r["generator"]["image_size"] == 16
    metrics = json.loads((edit_run / "metrics.json").read_text())
    assert metrics["eval_edit/shapes/success"] == r["summary"]["success"]
    assert "eval_edit/shapes/color_change/success" in metrics


@pytest.fixture(scope="module")
def natural(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("natural")
    rng = np.random.default_rng(0)
    for name in ("src", "tgt"):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(
            root / f"{name}.png"
        )
    mask = np.zeros((40, 48), np.uint8)
    mask[10:20, 12:30] = 255
    Image.fromarray(mask).save(root / "mask.png")
    rows = [
        {
            "source": "src.png",
            "instruction": "make it pink",
            "target": "tgt.png",
            "mask": "mask.png",
            "target_caption": "a pink thing",
            "source_caption": "a thing",
        },
        {"source": "src.png", "instruction": "no target here", "mask": "mask.png"},
        {"source": "src.png"},  # no instruction: skipped
        {"source": "missing.png", "instruction": "source cannot be read"},
    ]
    (root / "edits.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + "{bad\n")
    return {
        "root": root,
        "edits": root / "edits.jsonl",
        "clip": write_clip_standin(root / "clip"),
        "dino": write_dino_standin(root / "dino"),
    }


def _natural_cfg(natural: dict[str, Path], **kw) -> EvalEditConfig:
    return EvalEditConfig(
        edits=str(natural["edits"]),
        clip_model=str(natural["clip"]),
        dino_model=str(natural["dino"]),
        lpips_random_backbone=True,
        **kw,
    )


def test_natural_edits_magicbrush_and_piebench_metrics(natural: dict[str, Path], tmp_path: Path):
    root = natural["root"]
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    shutil.copy(root / "tgt.png", outputs / "00000.png")  # row 0: output = target
    shutil.copy(root / "src.png", outputs / "00001.png")  # row 1: output = source
    res = run_eval_edit(_natural_cfg(natural, judge="clip-direction"), images=outputs)
    r = res.results
    assert r["kind"] == "natural" and r["num_edits"] == 2 and r["skipped"] == 3
    first, second = [json.loads(x) for x in (res.path.parent / "per_edit.jsonl").open()]
    assert first["l1"] == 0.0 and first["clip_i"] == pytest.approx(1.0, abs=1e-5)
    assert first["dino"] == pytest.approx(1.0, abs=1e-5) and first["clip_t"] is not None
    assert first["judge"] is not None and second["judge"] is None  # needs both captions
    assert second["l1"] is None and second["clip_i"] is None  # no target
    assert second["psnr_outside"] == 100.0 and second["ssim_outside"] == pytest.approx(1.0)
    assert second["lpips_outside"] == pytest.approx(0.0, abs=1e-6)
    assert second["mask_fraction"] == pytest.approx(180 / (40 * 48))
    s = r["summary"]
    assert s["l1_count"] == 1 and s["psnr_outside_count"] == 2 and s["judge_count"] == 1
    v = r["variant"]
    assert v["clip"]["weights"]["folder"] == str(natural["clip"])
    assert (
        v["lpips"]["name"] == "lpips-alex-randbackbone" and v["judge"]["name"] == "clip-direction"
    )
    assert "clip-direction" in EDIT_JUDGES


def test_natural_edits_with_a_trained_editor(natural: dict[str, Path], edit_run: Path) -> None:
    res = run_eval_edit(_natural_cfg(natural, lpips="none"), run_dir=edit_run)
    rows = [json.loads(x) for x in (res.path.parent / "per_edit.jsonl").open()]
    assert [r["resolution"] for r in rows] == [[16, 16], [16, 16]]
    assert rows[0]["l1"] is not None and rows[0]["lpips_outside"] is None


def test_bad_edit_inputs(natural: dict[str, Path], tmp_path: Path) -> None:
    skipped = Skipped()
    assert len(read_edits(natural["edits"], skipped)) == 3 and skipped.rows == 2
    with pytest.raises(UserError, match="edits file not found"):
        read_edits(tmp_path / "none.jsonl", Skipped())
    with pytest.raises(UserError, match="needs --edits"):
        run_eval_edit(EvalEditConfig(), images=tmp_path)
    empty = tmp_path / "outs"
    empty.mkdir()
    with pytest.raises(UserError, match="no edit could be scored"):
        run_eval_edit(_natural_cfg(natural), images=empty)  # no output image exists
