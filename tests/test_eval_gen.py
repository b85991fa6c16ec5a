"""eval-gen: GenEval rules on hand-made detections for all six tasks, the official metadata format
end to end with stand-in detectors and CLIP, sampling a trained toy generator, bad inputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from latentbench.bench.eval_gen import EvalGenConfig, run_eval_gen
from latentbench.bench.generation import load_config, train_generator
from latentbench.bench.generator_runs import SamplingOptions, load_generator
from latentbench.cli import app
from latentbench.errors import UserError
from latentbench.geneval import GenevalRules, Skipped, evaluate_entry, read_entries, scan_folder
from latentbench.metrics.detectors import ObjectDetection
from latentbench.metrics.geneval import NeuralJudge
from latentbench.testing.standins import write_clip_standin, write_detector_standin

# Lines in the official format of GenEval's prompts/evaluation_metadata.jsonl (one per task).
OFFICIAL = [
    '{"tag": "single_object", "include": [{"class": "cat", "count": 1}], '
    '"prompt": "a photo of a cat"}',
    '{"tag": "two_object", "include": [{"class": "cat", "count": 1}, '
    '{"class": "dog", "count": 1}], "prompt": "a photo of a cat and a dog"}',
    '{"tag": "counting", "include": [{"class": "cat", "count": 3}], '
    '"exclude": [{"class": "cat", "count": 4}], "prompt": "a photo of three cats"}',
    '{"tag": "colors", "include": [{"class": "cat", "count": 1, "color": "red"}], '
    '"prompt": "a photo of a red cat"}',
    '{"tag": "position", "include": [{"class": "dog", "count": 1}, {"class": "cat", "count": 1, '
    '"position": ["left of", 0]}], "prompt": "a photo of a cat left of a dog"}',
    '{"tag": "color_attr", "include": [{"class": "cat", "count": 1, "color": "red"}, '
    '{"class": "dog", "count": 1, "color": "blue"}], '
    '"prompt": "a photo of a red cat and a blue dog"}',
]
ENTRIES = {json.loads(line)["tag"]: json.loads(line) for line in OFFICIAL}
CLASSES = ["cat", "dog", "bird"]
TOY = {
    "data": "shapes:24",
    "image_size": 16,
    "steps": 2,
    "batch_size": 8,
    "eval_every": 2,
    "eval_samples": 6,
    "sample_steps": 2,
    "checkpoint_every": 2,
    "fd_extractor": "none",
    "dit": {"width": 32, "depth": 1, "heads": 2, "grid": 4},
}


# -- the rules on hand-made detections ------------------------------------------------------------
class StubDetector:
    name, variant, default_rules = "stub", {"name": "stub"}, GenevalRules()

    def __init__(self, objects: list[ObjectDetection]) -> None:
        self.objects = objects

    def detect(self, image: Any, classes: Any) -> list[ObjectDetection]:
        return self.objects


class StubColors:
    """Names the colour written in a lookup by box; records which boxes it was asked about."""

    variant: dict[str, Any] = {"name": "stub"}

    def __init__(self, by_box: dict[tuple, str]) -> None:
        self.by_box, self.asked = by_box, []

    def classify(self, image, cls, boxes, masks=None) -> list[str]:
        self.asked += [tuple(b) for b in boxes]
        return [self.by_box[tuple(b)] for b in boxes]


def obj(name: str, x: float, score: float = 0.95, y: float = 10.0) -> ObjectDetection:
    return ObjectDetection(name, (x, y, x + 10.0, y + 10.0), score)


def judge_says(tag: str, objects: list[ObjectDetection], colors: dict | None = None) -> bool:
    namer = StubColors(colors or {})
    judge = NeuralJudge(StubDetector(objects), namer, GenevalRules(), CLASSES)
    dets, rows = judge.detections(Image.new("RGB", (64, 64)), ENTRIES[tag])
    assert len(rows) == len(objects)
    return evaluate_entry(dets, ENTRIES[tag], judge.rules)[0]


def test_single_object() -> None:
    assert judge_says("single_object", [obj("cat", 0)])
    assert not judge_says("single_object", [obj("cat", 0, score=0.3)])  # at the threshold: out
    assert not judge_says("single_object", [obj("dog", 0)])


def test_two_object() -> None:
    assert judge_says("two_object", [obj("dog", 30), obj("cat", 0)])
    assert not judge_says("two_object", [obj("cat", 0), obj("cat", 30)])


def test_counting_uses_its_own_threshold_and_exclude() -> None:
    three = [obj("cat", 0), obj("cat", 20), obj("cat", 40)]
    assert judge_says("counting", three)
    assert judge_says("counting", [*three, obj("cat", 60, score=0.5)])  # below 0.9: not counted
    assert not judge_says("counting", [*three[:2], obj("cat", 40, score=0.8)])
    assert not judge_says("counting", [*three, obj("cat", 60)])  # four: excluded


def test_colors_are_classified_for_kept_objects_only() -> None:
    red, faint = obj("cat", 0), obj("cat", 30, score=0.2)
    namer = StubColors({red.box: "red", faint.box: "red"})
    judge = NeuralJudge(StubDetector([red, faint]), namer, GenevalRules(), CLASSES)
    dets, _ = judge.detections(Image.new("RGB", (64, 64)), ENTRIES["colors"])
    assert evaluate_entry(dets, ENTRIES["colors"], judge.rules)[0]
    assert namer.asked == [red.box]  # the object under the threshold is not classified
    assert not judge_says("colors", [red], {red.box: "blue"})


def test_position() -> None:
    assert judge_says("position", [obj("dog", 40), obj("cat", 0)])
    assert not judge_says("position", [obj("dog", 0), obj("cat", 40)])
    assert not judge_says("position", [obj("dog", 40), obj("cat", 38, y=12)])  # overlapping


def test_color_attribution() -> None:
    cat, dog = obj("cat", 0), obj("dog", 30)
    assert judge_says("color_attr", [cat, dog], {cat.box: "red", dog.box: "blue"})
    assert not judge_says("color_attr", [cat, dog], {cat.box: "blue", dog.box: "red"})


# -- the official format, end to end with stand-in models ----------------------------------------
@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("models")
    return {
        "mask2former": str(write_detector_standin("mask2former", root / "m2f", CLASSES)),
        "owlv2": str(write_detector_standin("owlv2", root / "owl", CLASSES)),
        "clip": str(write_clip_standin(root / "clip")),
    }


def write_layout(root: Path, lines: list[str], samples: int = 2, size: int = 48) -> Path:
    rng = np.random.default_rng(0)
    for i, line in enumerate(lines):
        folder = root / f"{i:05d}"
        (folder / "samples").mkdir(parents=True)
        (folder / "metadata.jsonl").write_text(line + "\n")
        for k in range(samples):
            arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(arr).save(folder / "samples" / f"{k:04d}.png")
    return root


@pytest.mark.parametrize("detector", ["mask2former", "owlv2"])
def test_official_metadata_scored_end_to_end(
    detector: str, models: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "evaluation_metadata.jsonl").write_text("\n".join(OFFICIAL) + "\n")
    entries = read_entries(tmp_path / "evaluation_metadata.jsonl", Skipped())
    assert [e["tag"] for _, e in entries] == list(ENTRIES)
    images = write_layout(tmp_path / "images", OFFICIAL)
    cfg = EvalGenConfig(
        suite="geneval",  # type: ignore[arg-type]
        detector=detector,
        detector_model=models[detector],
        clip_model=models["clip"],
        device="cpu",
    )
    res = run_eval_gen(cfg, images=images)
    r = res.results
    assert res.path == images / "results.json" and res.path.is_file()
    assert r["label"].startswith(f"GenEval-style ({detector}:")
    assert list(r["tasks"]) == list(ENTRIES) and r["num_images"] == 12
    assert r["overall"] == pytest.approx(np.mean([t["score"] for t in r["tasks"].values()]))
    assert r["judge"]["detector"]["weights"]["folder"] == models[detector]
    assert r["judge"]["unreachable_classes"] == ([] if detector == "mask2former" else None)
    assert r["judge"]["colors"]["clip"]["weights"]["folder"] == models["clip"]
    assert r["rules"]["threshold"] == (0.3 if detector == "mask2former" else 0.1)
    assert 0 <= r["clipscore"] <= 100 and r["clipscore_variant"]["formula"].startswith("100")
    assert len(r["per_image"]) == 12 and all("clipscore" in row for row in r["per_image"])
    rows = list(csv.DictReader((images / "per_prompt.csv").open()))
    assert [int(row["samples"]) for row in rows] == [2] * 6


def test_bad_inputs_are_skipped_and_counted(models: dict[str, str], tmp_path: Path) -> None:
    lines = [*OFFICIAL[:2], '{"prompt": "no tag", "include": []}', "{not json"]
    images = write_layout(tmp_path / "images", lines)
    (images / "00001" / "samples" / "0001.png").write_bytes(b"not a png")
    (images / "00004" / "samples").mkdir(parents=True)  # a prompt folder without images
    (images / "00004" / "metadata.jsonl").write_text(OFFICIAL[0] + "\n")
    out = tmp_path / "scores.json"
    cfg = EvalGenConfig(
        suite="geneval",  # type: ignore[arg-type]
        detector_model=models["mask2former"],
        clip_model=models["clip"],
        clipscore=False,
    )
    r = run_eval_gen(cfg, images=images, out=out).results
    assert out.is_file() and r["num_images"] == 3  # 2 + 1 readable
    assert r["skipped_prompts"] == 3 and r["skipped_images"] == 5  # 2 + 2 with bad metadata, 1
    assert any("no 'tag'" in s for s in r["skipped_reasons"])
    assert "clipscore" not in r

    meta = tmp_path / "meta.jsonl"
    meta.write_text(
        "\n".join([OFFICIAL[0], "[1, 2]", '{"tag": "nope", "prompt": "x", "include": []}'])
    )
    skipped = Skipped()
    assert len(read_entries(meta, skipped)) == 1 and skipped.prompts == 2
    meta.write_text("{broken\n")
    with pytest.raises(UserError, match="no scoreable"):
        read_entries(meta, Skipped())
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="nothing to score"):
        scan_folder(tmp_path / "empty", Skipped())


# -- sampling a trained generator ---------------------------------------------------------------
@pytest.fixture(scope="module")
def t2i_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("t2i") / "pixel"
    train_generator(load_config(None, space="pixel", task="t2i", **TOY), path)
    return path


def test_noise_indices_reproduce_a_full_call(t2i_run: Path) -> None:
    gen = load_generator(t2i_run, device="cpu")
    prompts = ["a red circle", "two blue squares", "a star"]
    full = gen.text_to_image(prompts, seed=3)
    part = gen.text_to_image(prompts[1:], seed=3, noise_indices=[1, 2])
    assert full.shape == (3, 3, 16, 16) and torch.equal(full[1:], part)
    assert gen.variant(seed=3)["weights"] == "ema.safetensors"


def test_sampling_overrides_reach_the_sampler_and_the_results(t2i_run: Path) -> None:
    gen = load_generator(t2i_run, device="cpu")
    prompts = ["a red circle", "two blue squares"]
    base = gen.text_to_image(prompts)
    for opts in (SamplingOptions(shift=3.0), SamplingOptions(sampler="heun")):
        assert not torch.equal(gen.text_to_image(prompts, options=opts), base)
    cfg = EvalGenConfig(prompts_per_task=1, samples_per_prompt=1, sample_shift=3.0, sampler="heun")
    r = run_eval_gen(cfg, run_dir=t2i_run, out=t2i_run / "shifted").results
    assert r["generator"]["sample_shift"] == 3.0 and r["generator"]["sampler"] == "heun"
    with pytest.raises(pydantic.ValidationError, match="'euler' or 'heun'"):
        SamplingOptions(sampler="rk4")  # checked where it is built, before any sampling


def test_eval_gen_run_dir_samples_n_per_prompt(t2i_run: Path, models: dict[str, str]) -> None:
    cfg = EvalGenConfig(samples_per_prompt=2, prompts_per_task=1, seed=5, batch_size=5)
    r = run_eval_gen(cfg, run_dir=t2i_run).results
    out = t2i_run / "eval-gen" / "geneval-shapes"
    assert r["num_images"] == 12 and len(r["tasks"]) == 6 and r["samples_per_prompt"] == 2
    assert sorted(p.name for p in (out / "images" / "00003" / "samples").iterdir()) == [
        "0000.png",
        "0001.png",
    ]
    assert r["generator"]["seed"] == 5 and r["generator"]["sample_steps"] == 2
    metrics = json.loads((t2i_run / "metrics.json").read_text())
    assert metrics["eval_gen/geneval-shapes"] == r["overall"]
    assert "eval_gen/geneval-shapes/counting" in metrics

    meta = t2i_run / "meta.jsonl"
    meta.write_text("\n".join(OFFICIAL) + "\n")
    cfg = EvalGenConfig(
        suite="geneval",  # type: ignore[arg-type]
        metadata=str(meta),
        samples_per_prompt=1,
        limit=3,
        checkpoint="init",
        detector="owlv2",
        detector_model=models["owlv2"],
        clip_model=models["clip"],
    )
    r = run_eval_gen(cfg, run_dir=t2i_run, out=t2i_run / "natural").results
    assert r["num_images"] == 3 and r["generator"]["checkpoint"] == "init"
    assert (t2i_run / "natural" / "results.json").is_file()


def run_cli(monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    """Run ``latentbench.cli.main`` as the console script does; the exit code."""
    from latentbench.cli import main

    monkeypatch.setattr("sys.argv", ["latentbench", *argv])
    try:
        main()
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def test_cli_eval_gen(
    t2i_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    args = ["eval-gen", str(t2i_run), "--suite", "geneval-shapes", "--samples", "1"]
    res = CliRunner().invoke(app, [*args, "--prompts-per-task", "1", "-q", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["num_images"] == 6
    capsys.readouterr()
    for argv, message in [
        (("eval-gen", str(tmp_path), "--suite", "geneval-shapes"), "no manifest.json"),
        (("eval-gen", "--suite", "geneval", "--images", str(tmp_path / "no")), "not found"),
        (("eval-gen", str(t2i_run), "--suite", "geneval"), "needs --metadata"),
        (("eval-gen", "--suite", "geneval"), "RUN_DIR or --images DIR is required"),
        (
            ("eval-gen", str(t2i_run), "--suite", "geneval-shapes", "--sample-shift", "0"),
            "greater than 0",
        ),
        (("eval-gen", str(t2i_run), "--suite", "geneval-shapes", "--sampler", "rk4"), "heun"),
    ]:
        assert run_cli(monkeypatch, *argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.strip().count("\n") == 0, err
