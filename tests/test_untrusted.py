"""Nothing that comes with a folder runs, and a damaged file is one line (or is rebuilt, and said).

- A Hugging Face folder with ``auto_map`` + a custom ``.py`` (here one that writes a sentinel file
  when imported) reached through any loader: one UserError line naming the folder, no prompt
  (``input`` is patched to answer "y", so a prompt would run the code), sentinel never written.
- Pickled weights: refused by ``torch.load(weights_only=True)``, one line naming the file.
- Saved spaces: truncated / empty / non-object config.json, missing keys, garbage or truncated
  model.safetensors: exit 2, one line naming the file.
- Checkpoints: ``--resume`` past a damaged newest checkpoint resumes exactly from the previous
  intact one and says so; none intact: exit 2 (each kind of damage: tests/test_loop.py).
- Latent cache and reference statistics: a damaged entry is rebuilt, with a note.
"""

from __future__ import annotations

import builtins
import io
import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file
from torch.utils.data import Dataset

from latentbench.errors import UserError
from latentbench.runs import OutputKind, mark_output

CUSTOM_CODE = """
from pathlib import Path
Path({sentinel!r}).write_text("custom code ran")
from transformers import PretrainedConfig, PreTrainedModel
from transformers.image_processing_utils import BaseImageProcessor
class EvilConfig(PretrainedConfig):
    model_type = "evil"
class EvilModel(PreTrainedModel):
    config_class = EvilConfig
class EvilImageProcessor(BaseImageProcessor):
    pass
class EvilTokenizer:
    pass
"""
AUTO_MAP = {
    "AutoConfig": "evil.EvilConfig",
    "AutoModel": "evil.EvilModel",
    "AutoImageProcessor": "evil.EvilImageProcessor",
    "AutoTokenizer": ["evil.EvilTokenizer", None],
}
EFFNET = "efficientnet-lite0"
TOY = {
    "data": "shapes:24",
    "image_size": 16,
    "steps": 8,
    "batch_size": 8,
    "eval_every": 8,
    "eval_samples": 4,
    "sample_steps": 2,
    "checkpoint_every": 4,
    "reference_images": 8,
    "fd_extractor": "none",
    "dit": {"width": 32, "depth": 2, "heads": 2, "grid": 4},
}


# -- helpers --------------------------------------------------------------------------------------
def _update_json(path: Path, **fields: object) -> None:
    data = json.loads(path.read_text()) if path.is_file() else {}
    path.write_text(json.dumps({**data, **fields}))


def add_custom_code(folder: Path, *, model_type: str | None = None) -> Path:
    """Make ``folder`` ask for its own code: ``auto_map`` in every config it has (and a config
    of an unknown ``model_type`` when given); returns the sentinel the code would write."""
    folder.mkdir(parents=True, exist_ok=True)
    sentinel = folder.parent / f"{folder.name}-SENTINEL"
    (folder / "evil.py").write_text(CUSTOM_CODE.format(sentinel=str(sentinel)))
    if model_type is not None:
        _update_json(folder / "config.json", model_type=model_type, auto_map=AUTO_MAP)
    _update_json(
        folder / "tokenizer_config.json", tokenizer_class="EvilTokenizer", auto_map=AUTO_MAP
    )
    _update_json(
        folder / "preprocessor_config.json",
        image_processor_type="EvilImageProcessor",
        auto_map=AUTO_MAP,
    )
    processor = folder / "processor_config.json"
    if processor.is_file():  # transformers 5 keeps the image processor's settings here
        data = json.loads(processor.read_text())
        data["image_processor"] = {
            **data.get("image_processor", {}),
            "image_processor_type": "EvilImageProcessor",
            "auto_map": AUTO_MAP,
        }
        processor.write_text(json.dumps({**data, "auto_map": AUTO_MAP}))
    return sentinel


@pytest.fixture
def prompts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every prompt ``input()`` gets is recorded and answered "y" (which would run the code)."""
    asked: list[str] = []

    def answer_yes(prompt: str = "") -> str:
        asked.append(prompt)
        return "y"

    monkeypatch.setattr(builtins, "input", answer_yes)
    return asked


def run_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, *argv: str
) -> tuple[int, str]:
    """``latentbench.cli.main`` as the console script runs it, stdin closed: (exit code, stderr)."""
    from latentbench.cli import main

    monkeypatch.setattr(sys, "argv", ["latentbench", *argv])
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    capsys.readouterr()
    try:
        main()
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    return code, capsys.readouterr().err


def error_line(err: str) -> str:
    """The one error line of a failed command (and nothing that looks like a traceback)."""
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def toy_config(tmp_path: Path, **overrides: object) -> Path:
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump({**TOY, **overrides}))
    return path


def train_gen_args(tmp_path: Path, out: Path, *extra: str) -> list[str]:
    return ["train-gen", "--space", "pixel", "--config", str(toy_config(tmp_path))] + [
        "--out",
        str(out),
        "-q",
        *extra,
    ]


# -- 1. no code from a folder someone else wrote --------------------------------------------------
def _clip(folder: Path) -> Callable[[], object]:
    from latentbench.metrics.clip import ClipModel
    from latentbench.testing.standins import write_clip_standin

    write_clip_standin(folder)
    return lambda: ClipModel(str(folder))


def _detector(kind: str) -> Callable[[Path], Callable[[], object]]:
    def make(folder: Path) -> Callable[[], object]:
        from latentbench.metrics.detectors import build_detector
        from latentbench.testing.standins import write_detector_standin

        write_detector_standin(kind, folder, ["cat", "dog"])
        return lambda: build_detector(kind, str(folder))

    return make


def _dino(folder: Path) -> Callable[[], object]:
    from latentbench.metrics.edit_natural import DinoModel
    from latentbench.testing.standins import write_dino_standin

    write_dino_standin(folder)
    return lambda: DinoModel(str(folder))


def _text_encoder(folder: Path) -> Callable[[], object]:
    from latentbench.gen.text import build_text_encoder

    return lambda: build_text_encoder("hf", path=str(folder))


def _encoder(pretrained: bool) -> Callable[[Path], Callable[[], object]]:
    def make(folder: Path) -> Callable[[], object]:
        from latentbench.spaces.backbones import build_backbone

        return lambda: build_backbone({"kind": "hf", "name": str(folder)}, pretrained=pretrained)

    return make


# (loader, whether the folder's config itself is of an unknown, custom-code model type)
LOADERS = {
    "clip": (_clip, False),
    "owlv2": (_detector("owlv2"), False),
    "mask2former": (_detector("mask2former"), False),
    "dino": (_dino, False),
    "text-encoder": (_text_encoder, True),
    "encoder-config": (_encoder(False), True),
    "encoder": (_encoder(True), True),
}


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_loaders_refuse_folder_code_without_asking(
    loader: str, tmp_path: Path, prompts: list[str]
) -> None:
    make, custom_type = LOADERS[loader]
    folder = tmp_path / "model"
    load = make(folder)
    sentinel = add_custom_code(folder, model_type="evil" if custom_type else None)
    with pytest.raises(UserError) as info:
        load()
    message = str(info.value)
    assert str(folder) in message and "trust_remote_code=False" in message
    assert "\n" not in message
    assert prompts == [] and not sentinel.exists()


def test_cli_saved_space_whose_encoder_folder_has_code(
    tmp_path: Path, prompts: list[str], monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from latentbench.spaces import build_space

    evil = tmp_path / "encoder"
    sentinel = add_custom_code(evil, model_type="evil")
    space = build_space("rae", pretrained=False, image_size=32).save(tmp_path / "space")
    meta = json.loads((space / "config.json").read_text())
    meta["config"]["encoder"] = {"kind": "hf", "name": str(evil), "input_size": 32}
    (space / "config.json").write_text(json.dumps(meta))
    code, err = run_cli(
        monkeypatch, capsys, "train-gen", "--space", str(space), "--out", str(tmp_path / "o")
    )
    assert code == 2 and str(evil) in error_line(err)
    assert prompts == [] and not sentinel.exists()


def test_cli_text_encoder_path_with_code(
    tmp_path: Path, prompts: list[str], monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    evil = tmp_path / "text-encoder"
    sentinel = add_custom_code(evil, model_type="evil")
    args = train_gen_args(tmp_path, tmp_path / "runs", "--text-encoder", "hf")
    code, err = run_cli(monkeypatch, capsys, *args, "--text-encoder-path", str(evil))
    assert code == 2 and str(evil) in error_line(err)
    assert prompts == [] and not sentinel.exists()
    assert not (tmp_path / "runs" / "pixel" / "checkpoints").exists()


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained toy t2i run (pixel space, 8 steps, checkpoints at 4 and 8, FD with the real
    EfficientNet-Lite0, so that a resume has reference statistics to find); copy before use."""
    from latentbench.bench.generation import load_config, train_generator

    root = tmp_path_factory.mktemp("toy")
    settings = {"space": "pixel", **TOY, "fd_extractor": EFFNET}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LATENTBENCH_CACHE", str(root / "cache"))
        train_generator(load_config(None, **settings), root / "run")
    return root / "run"


def test_cli_run_manifest_text_encoder_with_code(
    toy_run: Path, tmp_path: Path, prompts: list[str], monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    run = shutil.copytree(toy_run, tmp_path / "run")
    evil = tmp_path / "text-encoder"
    sentinel = add_custom_code(evil, model_type="evil")
    described = (
        run / "generator" / "config.json"
    )  # the run's generator, as save_pretrained wrote it
    config = json.loads(described.read_text())
    config["text_encoder"] = {"kind": "hf", "path": str(evil), "max_len": 16}
    described.write_text(json.dumps(config))
    args = ["eval-gen", str(run), "--suite", "geneval-shapes", "--samples", "1", "-q"]
    code, err = run_cli(monkeypatch, capsys, *args, "--prompts-per-task", "1")
    assert code == 2 and str(evil) in error_line(err)
    assert prompts == [] and not sentinel.exists()


# -- 2. pickled weights ---------------------------------------------------------------------------
class WritesSentinel:
    """Unpickling this object (weights_only=False) would write the sentinel."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.write_text, (self.path, "unpickled"))


def test_cli_pickled_weights_are_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from latentbench.metrics.features import EFFICIENTNET_LITE0_FILE

    sentinel = tmp_path / "SENTINEL"
    weights = tmp_path / "weights"
    weights.mkdir()
    torch.save(
        {"w": torch.zeros(2), "x": WritesSentinel(sentinel)}, weights / EFFICIENTNET_LITE0_FILE
    )
    monkeypatch.setenv("LATENTBENCH_WEIGHTS", str(weights))
    args = ["recon", "--space", "pixel", "--data", "shapes:2", "--image-size", "32"]
    args += ["--fd", "efficientnet-lite0", "--lpips", "none", "--diagnostics", "0", "-q"]
    code, err = run_cli(monkeypatch, capsys, *args, "--out", str(tmp_path / "out"))
    line = error_line(err)
    assert code == 2 and EFFICIENTNET_LITE0_FILE in line and "pickled" in line
    assert not sentinel.exists() and not (tmp_path / "out").exists()


# -- 3. saved spaces ------------------------------------------------------------------------------
def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00garbage" * 50)


SPACE_DAMAGE: dict[str, tuple[str, Callable[[Path], None]]] = {
    "truncated json": ("config.json", truncate),
    "empty json": ("config.json", lambda p: p.write_text("")),
    "json array": ("config.json", lambda p: p.write_text("[1, 2]")),
    "json without config": (
        "config.json",
        lambda p: p.write_text(json.dumps({"space": "pixel", "stats": None})),
    ),
    "unknown option": (
        "config.json",
        lambda p: _update_json(p, config={**json.loads(p.read_text())["config"], "pach": 2}),
    ),
    "bad stats": ("config.json", lambda p: _update_json(p, stats={"mean": [0.0]})),
    "truncated weights": ("model.safetensors", truncate),
    "empty weights": ("model.safetensors", lambda p: p.write_bytes(b"")),
    "garbage weights": ("model.safetensors", _garbage),
}


@pytest.mark.parametrize("damage", sorted(SPACE_DAMAGE))
def test_cli_damaged_saved_space_is_one_line(
    damage: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from latentbench.spaces import build_space

    space = build_space("pixel", image_size=16, patch=2)
    space.stats = None
    folder = space.save(tmp_path / "space")
    name, hurt = SPACE_DAMAGE[damage]
    hurt(folder / name)
    code, err = run_cli(
        monkeypatch, capsys, "train-gen", "--space", str(folder), "--out", str(tmp_path / "o")
    )
    assert code == 2 and str(folder / name) in error_line(err)
    assert not (tmp_path / "o").exists()


# -- 4. checkpoints -------------------------------------------------------------------------------
def test_cli_resume_after_damage(
    toy_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """``train-gen --resume`` after a crash left damaged files: a truncated newest checkpoint
    (resumed exactly from the one before, said), a damaged latent cache and reference-statistics
    cache (rebuilt, said), and at last no intact checkpoint (exit 2, one line)."""
    from latentbench.data.cache import cache_root

    out = mark_output(tmp_path / "runs", OutputKind.TRAIN_GEN)  # as train-gen --out leaves it
    shutil.copytree(toy_run, out / "pixel")
    last = out / "pixel" / "checkpoints" / "step_00000008"
    expected = load_file(last / "ema.safetensors")
    truncate(last / "model.safetensors")
    args = train_gen_args(tmp_path, out, "--resume", "--fd-extractor", EFFNET)  # the run's
    code, err = run_cli(monkeypatch, capsys, *args)
    assert code == 0, err
    assert "resuming from step_00000004" in err and "Traceback" not in err
    manifest = json.loads((out / "pixel" / "manifest.json").read_text())
    assert manifest["history"][-1]["resumed_from_step"] == 4
    assert "step_00000008/model.safetensors" in manifest["notes"][0]
    again = load_file(last / "ema.safetensors")  # retrained from step 4: the same weights
    assert expected.keys() == again.keys()
    assert all(torch.equal(expected[k], again[k]) for k in expected)

    [meta] = (cache_root() / "latents").glob("*/meta.json")
    truncate(meta.parent / "latents_00000.npy")
    [stats] = (cache_root() / "fid").glob("*.npz")
    truncate(stats)
    code, err = run_cli(monkeypatch, capsys, *args)
    assert code == 0, err
    assert f"latent cache {meta.parent} is damaged" in err
    assert f"reference statistics {stats} are unreadable" in err

    truncate(last / "model.safetensors")
    truncate(out / "pixel" / "checkpoints" / "step_00000004" / "optimizer.pt")
    code, err = run_cli(monkeypatch, capsys, *args)
    line = error_line(err)
    assert code == 2 and "no checkpoint can be resumed from" in line
    assert "step_00000004/optimizer.pt" in line and "step_00000008/model.safetensors" in line


# -- 5. caches ------------------------------------------------------------------------------------
class Images(Dataset):
    """n deterministic images of size 8."""

    spec, image_size = "untrusted-toy:6", 8

    def __len__(self) -> int:
        return 6

    def __getitem__(self, i: int) -> dict[str, object]:
        g = torch.Generator().manual_seed(i)
        image = torch.rand(3, 8, 8, generator=g) * 2 - 1
        return {"image": image, "key": f"k{i}", "label": 0, "caption": f"item {i}"}


CACHE_DAMAGE: dict[str, tuple[str, Callable[[Path], None]]] = {
    "truncated shard": ("latents_00001.npy", truncate),
    "garbage shard": ("latents_00000.npy", _garbage),
    "shard of another shape": (
        "latents_00001.npy",
        lambda p: np.save(p, np.zeros((2, 3, 4, 4), np.float16)),
    ),
    "truncated meta": ("meta.json", truncate),
    "meta without stats": ("meta.json", lambda p: _update_json(p, stats=None)),
}


@pytest.mark.parametrize("damage", sorted(CACHE_DAMAGE))
def test_damaged_latent_cache_is_rebuilt_and_said(damage: str, capsys) -> None:
    from latentbench.data.cache import build_cache
    from latentbench.spaces import build_space

    space = build_space("pixel", image_size=8)
    first = build_cache(space, Images(), shard_size=4)
    expected = [first.item(i)["latent"] for i in range(6)]
    name, hurt = CACHE_DAMAGE[damage]
    hurt(first.path / name)
    capsys.readouterr()
    again = build_cache(space, Images(), shard_size=4)
    assert f"latent cache {first.path} is damaged" in capsys.readouterr().err
    assert all(torch.equal(again.item(i)["latent"], expected[i]) for i in range(6))
    build_cache(space, Images(), shard_size=4)  # intact now: reused without a note
    assert capsys.readouterr().err == ""
