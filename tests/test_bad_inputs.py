"""Every bad input a user can give ends in one line on stderr and exit code 2: no traceback, and
no output folder that looks like a finished run.

The table walks each case through the real entry point (:func:`latentbench.cli.main`, the console
script's target) in this process; one case also runs as a subprocess to prove the same for the
installed command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml

from latentbench.cli import main

CHEAP = ["--space", "pixel", "--data", "shapes:4", "--fd", "none", "--lpips", "none"]
RECON = ["recon", *CHEAP, "--image-size", "16", "--diagnostics", "0"]
COMPLETE = ("metrics.json", ".done.json", "manifest.json", "index.html", "config.json")


def finished_files(root: Path) -> set[Path]:
    """Files that make a folder look like a finished run, report or space."""
    return {p for name in COMPLETE for p in root.rglob(name)}


def run_cli(argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``latentbench ARGV`` run through ``main()``."""
    monkeypatch.setattr(sys, "argv", ["latentbench", *argv])
    code = 0
    try:
        main()
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def experiment(tmp: Path, **body: object) -> str:
    """An experiment file with ``body``; its outputs go under ``tmp``."""
    data = {"name": "bad", "out": str(tmp / "runs"), "report": str(tmp / "report"), **body}
    path = tmp / "bad.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def raw_experiment(tmp: Path, text: str) -> str:
    """An experiment file written as given (to keep YAML spellings like ``1e-4``, ``.nan``)."""
    path = tmp / "bad.yaml"
    path.write_text(f"name: bad\nout: {tmp / 'runs'}\nreport: {tmp / 'report'}\n{text}")
    return str(path)


RECON_STEP = {"spaces": ["pixel"], "data": "shapes:4", "image_size": 16, "fd": [], "lpips": []}


def gen_step(**settings: object) -> dict[str, object]:
    return {"spaces": ["pixel"], "steps": 2, "eval_every": 1, **settings}


def tiny_preset(tmp: Path, **loop: object) -> str:
    """A train-tokenizer preset whose ``loop`` section holds ``loop``."""
    path = tmp / "preset.yaml"
    section = {"space": {"encoder": "tiny-vit", "image_size": 32}, "loop": {"steps": 2, **loop}}
    path.write_text(yaml.safe_dump({"rae": section}))
    return str(path)


Case = Callable[[Path], list[str]]
CASES: dict[str, tuple[Case, str]] = {
    # command-line flags
    "batch-size 0": (lambda t: [*RECON, "--batch-size", "0"], "--batch-size: input should be"),
    "image-size below SSIM's window": (
        lambda t: [*RECON[:-4], "--image-size", "8"],
        "--image-size: SSIM needs images of at least 11 px",
    ),
    "device foo": (lambda t: [*RECON, "--device", "foo"], "--device: not a device"),
    "o with bad YAML": (lambda t: [*RECON, "-o", "patch=[1,2"], "-o 'patch=[1,2'"),
    "o with a wrong type": (lambda t: [*RECON, "-o", "patch=abc"], "patch: input should be"),
    "o without =": (lambda t: [*RECON, "-o", "patch"], "is not KEY=VALUE"),
    "train-tokenizer steps 0": (
        lambda t: ["train-tokenizer", "--space", "rae", "--data", "shapes:4", "--steps", "0"],
        "--steps: input should be greater than 0",
    ),
    "train-tokenizer steps negative": (
        lambda t: ["train-tokenizer", "--space", "rae", "--data", "shapes:4", "--steps", "-3"],
        "--steps: input should be greater than 0",
    ),
    "train-tokenizer stage 3": (
        lambda t: ["train-tokenizer", "--space", "semrec", "--data", "shapes:4", "--stage", "3"],
        "--stage: input should be less than or equal to 2",
    ),
    "train-tokenizer preset lr 0": (
        lambda t: [
            "train-tokenizer",
            *("--space", "rae", "--data", "shapes:4", "--out", str(t / "tok")),
            *("--preset", tiny_preset(t, lr=0)),
        ],
        "loop.lr: input should be greater than 0",
    ),
    "train-gen config lr abc": (
        lambda t: ["train-gen", *("--space", "pixel", "--out", str(t / "g")), "--config", _cfg(t)],
        "lr: input should be a valid number",
    ),
    "train-gen batch-size 0": (
        lambda t: ["train-gen", *("--space", "pixel", "--out", str(t / "g")), "--batch-size", "0"],
        "--batch-size: input should be greater than 0",
    ),
    "eval-gen samples 0": (
        lambda t: ["eval-gen", "--suite", "geneval-shapes", "--images", str(t), "--samples", "0"],
        "--samples-per-prompt: input should be greater than 0",
    ),
    "toy-manifold steps 0": (
        lambda t: ["toy-manifold", "--steps", "0", "--out", str(t / "toy")],
        "--steps: input should be greater than 0",
    ),
    # experiment files
    "experiment image_size big": (
        lambda t: ["run", experiment(t, recon={**RECON_STEP, "image_size": "big"})],
        "recon.image_size: input should be a valid integer",
    ),
    "experiment seed abc": (
        lambda t: ["run", experiment(t, seed="abc", recon=RECON_STEP)],
        "seed: input should be a valid integer",
    ),
    "experiment recon 5": (
        lambda t: ["run", experiment(t, recon=5)],
        "recon: input should be a dictionary",
    ),
    "experiment steps two": (
        lambda t: ["run", experiment(t, generation=[gen_step(steps="two")])],
        "generation[0].steps: input should be a valid integer",
    ),
    "experiment lr -1": (
        lambda t: ["run", experiment(t, generation=[gen_step(lr=-1)])],
        "generation[0].lr: input should be greater than 0",
    ),
    "experiment lr .nan": (
        lambda t: ["run", raw_experiment(t, "generation:\n  - {spaces: [pixel], lr: .nan}\n")],
        "generation[0].lr: input should be a finite number",
    ),
    "experiment lr abc": (
        lambda t: ["run", experiment(t, generation=[gen_step(lr="abc")])],
        "generation[0].lr: input should be a valid number",
    ),
    "experiment lr 0": (
        lambda t: ["run", experiment(t, generation=[gen_step(lr=0)])],
        "generation[0].lr: input should be greater than 0",
    ),
    "experiment spaces a string": (
        lambda t: ["run", experiment(t, recon={**RECON_STEP, "spaces": "pixel"})],
        "recon.spaces: input should be a valid list",
    ),
    "experiment generation without spaces": (
        lambda t: ["run", experiment(t, generation=[{"steps": 2}])],
        "generation[0].spaces: list should have at least 1 item",
    ),
    "experiment unknown key": (
        lambda t: ["run", experiment(t, recon={**RECON_STEP, "imagesize": 16})],
        "unknown key 'imagesize' (did you mean 'image_size'?)",
    ),
    "experiment unknown enum value": (
        lambda t: ["run", experiment(t, recon={**RECON_STEP, "lpips": ["alexx"]})],
        "'alexx' is not one of alex, vgg, auto (did you mean 'alex'?)",
    ),
    "experiment skip_unavailable no": (
        lambda t: [
            "run",
            experiment(
                t, skip_unavailable="no", recon={**RECON_STEP, "spaces": ["pixel", "no-such"]}
            ),
        ],
        "unknown space 'no-such'",
    ),
}


def saved_space(tmp: Path, damage: str) -> str:
    """A saved pixel space with one file damaged as ``damage`` says."""
    from latentbench.spaces import build_space

    folder = build_space("pixel", image_size=16, patch=2).save(tmp / "space")
    name, how = damage.split(":")
    path = folder / name
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "empty": b"", "garbage": b"\0x" * 40,
                      "array": b"[1, 2]"}[how])  # fmt: skip
    return str(folder)


def read_only(tmp: Path) -> str:
    folder = tmp / "ro"
    folder.mkdir()
    (folder / "mine.txt").write_text("a user's file")
    folder.chmod(0o555)
    return str(folder)


def run_folder_with(tmp: Path, manifest: str) -> str:
    folder = tmp / "run"
    folder.mkdir()
    (folder / "manifest.json").write_text(manifest)
    return str(folder)


def pickled_weights(tmp: Path, monkeypatch_env: dict[str, str]) -> None:
    from latentbench.metrics.features import EFFICIENTNET_LITE0_FILE

    weights = tmp / "weights"
    weights.mkdir()
    torch.save({"w": torch.zeros(2), "not a tensor": Path("x")}, weights / EFFICIENTNET_LITE0_FILE)
    monkeypatch_env["LATENTBENCH_WEIGHTS"] = str(weights)


def truncated_jpeg_folder(tmp: Path) -> str:
    from PIL import Image

    folder = tmp / "photos"
    folder.mkdir()
    Image.new("RGB", (32, 32), (200, 10, 10)).save(folder / "good.png")
    Image.new("RGB", (32, 32), (10, 200, 10)).save(folder / "cut.jpg")
    data = (folder / "cut.jpg").read_bytes()
    (folder / "cut.jpg").write_bytes(data[: len(data) // 2])
    (folder / "empty.png").write_bytes(b"")
    return str(folder)


ENV: dict[str, str] = {}  # set by a case's builder, applied by the test

CASES.update(
    {
        **{
            f"saved space {damage}": (
                lambda t, d=damage: ["recon", *RECON[1:], "--space", saved_space(t, d)],
                damage.split(":")[0],
            )
            for damage in (
                "config.json:truncated",
                "config.json:empty",
                "config.json:array",
                "model.safetensors:truncated",
                "model.safetensors:garbage",
            )
        },
        "read-only output folder": (
            lambda t: [*RECON, "--out", read_only(t), "--overwrite"],
            "is not writable",
        ),
        "report of a truncated manifest": (
            lambda t: ["report", run_folder_with(t, '{"command": "re'), "--out", str(t / "rep")],
            "manifest.json",
        ),
        "report of a non-object manifest": (
            lambda t: ["report", run_folder_with(t, "[1, 2]"), "--out", str(t / "rep")],
            "manifest.json",
        ),
        "pickled weights": (
            lambda t: (
                pickled_weights(t, ENV),
                [*RECON[:-4], "--image-size", "32", "--fd", "efficientnet-lite0"],
            )[1],
            "pickled Python objects",
        ),
        "strict with a truncated JPEG": (
            lambda t: [
                *("recon", "--space", "pixel", "--data", truncated_jpeg_folder(t)),
                *("--image-size", "16", "--strict", "--out", str(t / "out")),
            ],
            "2 unreadable images",
        ),
        "max-pixels 0": (lambda t: [*RECON, "--max-pixels", "0"], "--max-pixels"),
        "eval-gen --images with --metadata": (
            lambda t: ["eval-gen", "--suite", "geneval", "--images", str(t), "--metadata", "m"],
            "--images reads each prompt folder's own metadata.jsonl",
        ),
        "an experiment with no step": (lambda t: ["run", experiment(t)], "no step to run"),
        "an experiment step named ../x": (
            lambda t: ["run", experiment(t, generation=[gen_step(name="../x")])],
            "generation[0].name: must be a plain folder name",
        ),
        "a binary file as captions": (
            lambda t: ["recon", *CHEAP[:2], "--data", binary_file(t / "b.jsonl"), *CHEAP[4:]],
            "not a UTF-8 text file",
        ),
    }
)


TRAIN_GEN = [
    *("train-gen", "--space", "pixel", "--data", "shapes:8", "--steps", "2", "--batch-size", "4"),
    *("--eval-every", "2", "--eval-samples", "6", "--sample-steps", "2", "-q"),
]
TINY_GEN = {"data": "shapes:8", "image_size": 16, "eval_samples": 6, "sample_steps": 2}
HUGE = str(10**30)


def saved_space_with(tmp: Path, **config: object) -> str:
    """A saved pixel space whose config.json records ``config`` (e.g. a bad image_size)."""
    from latentbench.spaces import build_space

    folder = build_space("pixel", image_size=16, patch=2).save(tmp / "space")
    data = json.loads((folder / "config.json").read_text())
    data["config"].update(config)
    (folder / "config.json").write_text(json.dumps(data))
    return str(folder)


def binary_run_file(tmp: Path, name: str, command: str = "recon") -> str:
    """A run folder of ``command`` with a valid manifest and ``name`` (manifest.json too)
    binary."""
    manifest = {"command": command, "config": {}, "spaces": ["pixel"]}
    folder = Path(run_folder_with(tmp, json.dumps(manifest)))
    binary_file(folder / name)
    return str(folder)


CASES.update(
    {
        "train-gen fd-extractor abc": (
            lambda t: [*TRAIN_GEN, "--fd-extractor", "abc", "--out", str(t / "g")],
            "--fd-extractor: not a feature extractor",
        ),
        "experiment fd_extractor abc": (
            lambda t: ["run", experiment(t, generation=[gen_step(**TINY_GEN, fd_extractor="abc")])],
            "generation[0].fd_extractor: not a feature extractor",
        ),
        "train-gen fd-extractor an unknown timm model": (  # fails building it, after the cache
            lambda t: [*TRAIN_GEN, "--fd-extractor", "timm:no-such-model", "--out", str(t / "g")],
            "no-such-model",
        ),
        "experiment recon space_options no space takes": (
            lambda t: ["run", experiment(t, recon={**RECON_STEP, "space_options": {"pach": 4}})],
            "recon.space_options: no space of this step takes the option(s) pach",
        ),
        "experiment generation space_options no space takes": (
            lambda t: [
                "run",
                experiment(
                    t,
                    generation=[gen_step(**TINY_GEN, fd_extractor="none", space_options={"x": 1})],
                ),
            ],
            "generation[0].space_options: no space of this step takes the option(s) x",
        ),
        **{
            f"experiment tokenizer name {kind}": (
                lambda t, v=value: [
                    "run",
                    experiment(t, tokenizers=[{"name": v, "space": "rae", "steps": 2}]),
                ],
                "tokenizers[0].name: input should be a valid string",
            )
            for kind, value in (("a list", ["a"]), ("a mapping", {}))
        },
        "recon seed beyond int64": (
            lambda t: [*RECON, "--seed", str(10**20)],
            "--seed: input should be less than or equal to 9223372036854775807",
        ),
        "recon image-size beyond int64": (
            lambda t: [*RECON[:-4], "--image-size", HUGE],
            "--image-size: input should be less than or equal to",
        ),
        "train-gen sample-steps 1e30": (
            lambda t: [*TRAIN_GEN, "--fd-extractor", "none", "--sample-steps", HUGE],
            "--sample-steps: input should be less than or equal to 10000",
        ),
        "experiment generation image_size 1e30": (
            lambda t: ["run", experiment(t, generation=[gen_step(image_size=10**30)])],
            "generation[0].image_size: input should be less than or equal to 16384",
        ),
        "experiment eval_samples 1e30": (
            lambda t: ["run", experiment(t, generation=[gen_step(eval_samples=10**30)])],
            "generation[0].eval_samples: input should be less than or equal to",
        ),
        "o image_size=0": (
            lambda t: [*RECON, "-o", "image_size=0"],
            "space 'pixel': image_size: input should be greater than 0",
        ),
        **{
            f"saved space image_size {value!r}": (
                lambda t, v=value: [
                    "recon",
                    *RECON[1:],
                    "--space",
                    saved_space_with(t, image_size=v),
                ],
                "image_size",
            )
            for value in (0, False, 10**30)
        },
        "report of a binary manifest": (
            lambda t: ["report", binary_run_file(t, "manifest.json"), "--out", str(t / "rep")],
            "manifest.json: not a JSON file (binary content)",
        ),
        "report of a binary metrics.json": (
            lambda t: ["report", binary_run_file(t, "metrics.json"), "--out", str(t / "rep")],
            "metrics.json: not a JSON file (binary content)",
        ),
    }
)


def binary_file(path: Path) -> str:
    path.write_bytes(bytes(range(256)) * 4)
    return str(path)


def _cfg(tmp: Path) -> str:
    path = tmp / "gen.yaml"
    path.write_text('lr: "abc"\n')
    return str(path)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_exit_2(case, tmp_path, monkeypatch, capsys):
    build, message = CASES[case]
    ENV.clear()
    argv = build(tmp_path)
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)  # default output folders land here, where they are checked
    inputs = finished_files(tmp_path)
    code, _, err = run_cli(argv, monkeypatch, capsys)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert message in lines[0], lines[0]
    assert "Traceback" not in err
    left = finished_files(tmp_path) - inputs
    assert not left, f"a bad input left {left}"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_without_a_gpu(tmp_path, monkeypatch, capsys):
    code, _, err = run_cli([*RECON, "--device", "cuda"], monkeypatch, capsys)
    assert code == 2 and "CUDA is not available on this machine" in err
    assert len(err.strip().splitlines()) == 1


def test_yaml_spellings_people_use_are_read_as_meant(tmp_path):
    """``lr: 1e-4`` (a string to PyYAML) is a float; ``skip_unavailable: "no"`` is False."""
    from latentbench.experiment import load_experiment

    path = raw_experiment(
        tmp_path, 'skip_unavailable: "no"\ngeneration:\n  - {spaces: [pixel], lr: 1e-4}\n'
    )
    exp = load_experiment(path)
    assert exp.generation[0].lr == pytest.approx(1e-4)
    assert exp.skip_unavailable is False


def test_installed_command_prints_one_line(tmp_path):
    """The console script's code path in a fresh interpreter, not only in-process."""
    cmd = [sys.executable, "-m", "latentbench", *RECON, "--batch-size", "0"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "error: recon: --batch-size: input should be greater than 0 (got 0)"
    ]


@pytest.mark.parametrize("damage", [{"config": 5}, {"history": 5}])
def test_resume_of_a_manifest_with_mistyped_fields_is_one_line(tmp_path, damage):
    """``--resume`` reads the run's manifest.json by type (it was a TypeError traceback)."""
    from latentbench.errors import UserError
    from latentbench.runs import RunDir

    run = RunDir.create(tmp_path / "run", "train-gen", {"lr": 1.0}, seed=0)
    manifest = json.loads((run.path / "manifest.json").read_text())
    (run.path / "manifest.json").write_text(json.dumps({**manifest, **damage}))
    for from_step in (None, 2):
        with pytest.raises(UserError, match="manifest.json: '(config|history)' is"):
            run.resume("train-gen", {"lr": 1.0}, 0, from_step)


def test_lpips_perceptual_loss_offline_is_one_line_without_warnings(tmp_path):
    """A tokenizer preset with ``loss.perceptual: lpips-vgg`` and no VGG weights (no file, no
    network): one line, not torchvision's warnings before it."""
    preset = tmp_path / "preset.yaml"
    section = {
        "space": {"encoder": "tiny-vit", "image_size": 32},
        "loss": {"perceptual": "lpips-vgg"},
    }
    preset.write_text(yaml.safe_dump({"rae": {**section, "loop": {"steps": 2, "batch_size": 4}}}))
    (tmp_path / "weights").mkdir()
    offline = "http://127.0.0.1:9"  # nothing listens: every download fails at once
    env = {
        **os.environ,
        **dict.fromkeys(("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"), offline),
        "NO_PROXY": "",
        "no_proxy": "",
        "LATENTBENCH_WEIGHTS": str(tmp_path / "weights"),
        "TORCH_HOME": str(tmp_path / "torch"),
    }
    cmd = [sys.executable, "-m", "latentbench", "train-tokenizer", "--space", "rae"]
    cmd += ["--data", "shapes:4", "--preset", str(preset), "--out", str(tmp_path / "tok")]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2, out.stderr
    assert len(lines) == 1 and lines[0].startswith("error: perceptual loss lpips-vgg"), out.stderr


def test_report_skips_binary_rows_of_metrics_jsonl(tmp_path, monkeypatch, capsys):
    """A binary metrics.jsonl (or a binary line in it) is read as damaged rows, skipped: the
    report is written (it was a UnicodeDecodeError traceback)."""
    folder = Path(binary_run_file(tmp_path, "metrics.jsonl", command="train-gen"))
    with open(folder / "metrics.jsonl", "ab") as f:
        f.write(b'\n{"step": 1, "name": "loss", "value": 0.5}\n')
    code, _, err = run_cli(
        ["report", str(folder), "--out", str(tmp_path / "rep")], monkeypatch, capsys
    )
    assert code == 0, err
    assert "Traceback" not in err
    assert (tmp_path / "rep" / "index.html").is_file()
