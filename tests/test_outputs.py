"""Output folders: nothing the user owns is ever deleted or overwritten, through the real CLI.

Every command that writes a folder replaces it only when it is the same command's earlier
output (``--overwrite`` otherwise); an output is never an input nor holds one; a read-only output
or cache fails before any work; killed runs' staging folders are cleaned up; reports read only
regular files inside the run folders; files and folders take their modes from the umask.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from latentbench.runs import RunDir

REPO = Path(__file__).resolve().parent.parent
CHEAP = ["--image-size", "32", "--fd", "none", "--lpips", "none", "--diagnostics", "0", "-q"]
RECON = ["recon", "--space", "pixel", "--data", "shapes:8", *CHEAP]
GEN = {  # train-gen settings that take seconds
    "data": "shapes:8",
    "image_size": 16,
    "steps": 2,
    "batch_size": 4,
    "eval_every": 2,
    "eval_samples": 4,
    "sample_steps": 2,
    "checkpoint_every": 2,
    "fd_extractor": "none",
    "dit": {"width": 32, "depth": 1, "heads": 2, "grid": 4},
}


def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, *argv: object):
    """Run ``latentbench.cli.main`` as the console script does: (exit code, stderr)."""
    from latentbench.cli import main

    monkeypatch.setattr(sys, "argv", ["latentbench", *map(str, argv)])
    capsys.readouterr()
    try:
        main()
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    return code, capsys.readouterr().err


def refused(result: tuple[int, str], *words: object) -> str:
    """Exit code 2 and one line (no traceback) that holds ``words``."""
    code, err = result
    assert code == 2, err
    assert "Traceback" not in err and err.strip().count("\n") == 0, err
    for word in words:
        assert str(word) in err, err
    return err


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def user_folder(path: Path) -> Path:
    """A folder of the user's own files."""
    (path / "sub").mkdir(parents=True)
    (path / "notes.txt").write_text("mine\n")
    (path / "sub" / "photo.txt").write_text("also mine\n")
    return path


def write_png(path: Path, value: int = 128, size: int = 16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)
    return path


def fake_run(path: Path, command: str = "my-bench") -> Path:
    """A run folder as a plugin command would leave it."""
    run = RunDir.create(path, command, {}, seed=0)
    run.write_metrics({"score": 0.5})
    return path


def experiment(tmp_path: Path, out: Path, report: Path) -> Path:
    exp = {
        "name": "mini",
        "data": "shapes:8",
        "out": str(out),
        "report": str(report),
        "recon": {"spaces": ["pixel"], "image_size": 32, "fd": [], "lpips": [], "diagnostics": 0},
    }
    path = tmp_path / "mini.yaml"
    path.write_text(yaml.safe_dump(exp))
    return path


# -- each command ----------------------------------------------------------------------------------
Argv = Callable[[Path, Path], list[object]]  # (tmp_path, out) -> argv
TRAIN_GEN = [
    "train-gen",
    "--space",
    "pixel",
    "--data",
    "shapes:8",
    "--steps",
    "1",
    "--fd-extractor",
    "none",
    "-q",
]
TRAIN_TOK = ["train-tokenizer", "--space", "rae", "--data", "shapes:8", "--steps", "1"]
SHAPES = ["data", "shapes", "--n", "2", "--image-size", "16", "-q"]
EXPORT = ["data", "export", "--data", "shapes:2", "--image-size", "16"]
COMMANDS: dict[str, Argv] = {
    "recon": lambda tmp, out: [*RECON, "--out", out],
    "report": lambda tmp, out: ["report", fake_run(tmp / "run"), "--out", out],
    "train-gen": lambda tmp, out: [*TRAIN_GEN, "--out", out],
    "train-tokenizer": lambda tmp, out: [*TRAIN_TOK, "--out", out],
    "toy-manifold": lambda tmp, out: ["toy-manifold", "--steps", "2", "--out", out, "-q"],
    "eval-gen": lambda tmp, out: [
        *("eval-gen", fake_run(tmp / "run", "train-gen"), "--suite", "geneval-shapes"),
        *("--out", out),
    ],
    "eval-gen --images": lambda tmp, out: [
        *("eval-gen", "--suite", "geneval-shapes", "--images", tmp, "--out", out),
    ],
    "eval-edit": lambda tmp, out: ["eval-edit", fake_run(tmp / "run", "train-gen"), "--out", out],
    "data shapes": lambda tmp, out: [*SHAPES, "--out", out],
    "data export": lambda tmp, out: [*EXPORT, "--out", out],
    "run out:": lambda tmp, out: ["run", experiment(tmp, out, tmp / "report"), "-q"],
    "run report:": lambda tmp, out: ["run", experiment(tmp, tmp / "runs", out), "-q"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_refuses_a_folder_of_user_files(command, tmp_path, monkeypatch, capsys):
    out = user_folder(tmp_path / "mine")
    before = snapshot(out)
    argv = COMMANDS[command](tmp_path, out)
    refused(cli(monkeypatch, capsys, *argv), out, "--overwrite")
    assert snapshot(out) == before and sorted(os.listdir(out)) == ["notes.txt", "sub"]
    assert not list(tmp_path.glob(".mine*"))  # nothing staged beside it
    assert not (tmp_path / "runs").exists()  # `run`: no step started


def test_an_earlier_output_of_the_same_command_is_replaced(tmp_path, monkeypatch, capsys):
    out = tmp_path / "recon"
    for _ in range(2):
        code, err = cli(monkeypatch, capsys, *RECON, "--out", out)
        assert code == 0, err
        assert json.loads((out / ".latentbench.json").read_text()) == {"kind": "recon"}
    shapes = [*SHAPES, "--out", out]
    refused(cli(monkeypatch, capsys, *shapes), "a recon output", "not a data shapes output")
    assert (out / "metrics.json").is_file()
    mine = user_folder(tmp_path / "mine")
    code, err = cli(monkeypatch, capsys, *RECON, "--out", mine, "--overwrite")
    assert code == 0, err
    assert not (mine / "notes.txt").exists() and (mine / "metrics.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "recon"]


def test_an_output_is_never_an_input_nor_holds_one(tmp_path, monkeypatch, capsys):
    photos = tmp_path / "photos"
    for i in range(3):
        write_png(photos / f"{i}.png", 40 * i)
    before = snapshot(photos)
    recon = ["recon", "--space", "pixel", "--data", photos, *CHEAP, "--overwrite"]
    refused(cli(monkeypatch, capsys, *recon, "--out", photos), "is the input")
    refused(cli(monkeypatch, capsys, *recon, "--out", tmp_path), "holds the input")
    refused(cli(monkeypatch, capsys, *recon, "--out", photos / "rec"), "inside the data folder")
    export = ["data", "export", "--data", photos, "--overwrite"]
    refused(cli(monkeypatch, capsys, *export, "--out", photos), "is the input")
    run = fake_run(tmp_path / "runs" / "a")
    report = ["report", tmp_path / "runs", "--overwrite", "--out"]
    refused(cli(monkeypatch, capsys, *report, run), "is the input")
    refused(cli(monkeypatch, capsys, *report, tmp_path / "runs"), "is the input")
    refused(cli(monkeypatch, capsys, *report, tmp_path), "holds the input")
    gen = fake_run(tmp_path / "gen", "train-gen")
    evalgen = ["eval-gen", gen, "--suite", "geneval-shapes", "--overwrite", "--out", gen]
    refused(cli(monkeypatch, capsys, *evalgen), "is the input")
    # data named through a captions file, an hf: dataset saved to a folder, an experiment
    captions = tmp_path / "caps.jsonl"
    captions.write_text("".join(f'{{"image": "photos/{i}.png", "text": "a"}}\n' for i in range(3)))
    refused(
        cli(
            monkeypatch,
            capsys,
            "data",
            "export",
            "--data",
            captions,
            "--out",
            photos,
            "--overwrite",
        ),
        "is the input",
    )
    refused(
        cli(monkeypatch, capsys, *recon[:3], "--data", f"hf:{photos}", *CHEAP, "--out", photos),
        "is the input",
    )
    exp = yaml.safe_load(experiment(tmp_path, tmp_path / "runs2", photos).read_text())
    (tmp_path / "mini.yaml").write_text(yaml.safe_dump({**exp, "data": str(photos)}))
    refused(cli(monkeypatch, capsys, "run", tmp_path / "mini.yaml", "--overwrite"), "is the input")
    assert snapshot(photos) == before and (run / "manifest.json").is_file()
    assert sorted(os.listdir(gen)) == ["manifest.json", "metrics.json"]


def test_files_written_into_a_folder_replace_only_latentbenchs_own(tmp_path, monkeypatch, capsys):
    """Results written as a file, a subfolder a command replaces whole, convert-run's
    generator/: a user's file in the way is refused, even where --overwrite lets a command
    write into a folder it did not create."""
    mine = tmp_path / "mine"
    (mine / "images").mkdir(parents=True)
    for name in ("settings.json", "results.json", "per_prompt.csv", "images/holiday.jpg"):
        (mine / name).write_text("the user's")
    before = snapshot(mine)
    evalgen = ["eval-gen", "--suite", "geneval-shapes"]
    refused(
        cli(monkeypatch, capsys, *evalgen, "--images", mine, "--out", mine / "settings.json"),
        "settings.json exists",
    )
    refused(
        cli(monkeypatch, capsys, *evalgen, "--images", mine, "--out", mine / "new.json"),
        "per_prompt.csv exists",
    )
    refused(cli(monkeypatch, capsys, *evalgen, "--images", mine), "results.json exists")
    (tmp_path / "dir.json").mkdir()
    refused(
        cli(monkeypatch, capsys, *evalgen, "--images", mine, "--out", tmp_path / "dir.json"),
        "is a folder",
    )
    gen = fake_run(tmp_path / "gen", "train-gen")
    refused(
        cli(monkeypatch, capsys, *evalgen[:1], gen, *evalgen[1:], "--out", mine, "--overwrite"),
        "holds images/",
    )
    (gen / "generator").mkdir()
    (gen / "generator" / "notes.txt").write_text("the user's")
    refused(cli(monkeypatch, capsys, "convert-run", gen), "holds files latentbench did not write")
    assert snapshot(mine) == before and (gen / "generator" / "notes.txt").is_file()


def test_out_dot_fails_before_any_work(tmp_path, monkeypatch, capsys):
    def no_work(*args, **kwargs):
        raise AssertionError("work started before the output was checked")

    monkeypatch.setattr("latentbench.bench.recon.resolve_spaces", no_work)
    monkeypatch.setattr("latentbench.bench.generation.make_space", no_work)
    mine = user_folder(tmp_path / "mine")
    monkeypatch.chdir(mine)
    refused(cli(monkeypatch, capsys, *RECON, "--out", "."), "is the working folder")
    refused(cli(monkeypatch, capsys, *RECON, "--out", ".", "--overwrite"), "is the working")
    refused(cli(monkeypatch, capsys, *RECON, "--out", "..", "--overwrite"), "holds the working")
    train = ["train-gen", "--space", "pixel", "--data", "shapes:8", "--out", "."]
    refused(cli(monkeypatch, capsys, *train), "--overwrite")
    assert sorted(os.listdir(mine)) == ["notes.txt", "sub"]
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)  # even an empty working folder is not replaced
    refused(cli(monkeypatch, capsys, *RECON, "--out", "."), "the working folder")
    assert empty.is_dir() and not os.listdir(empty)
    # the weights folder and the cache are not outputs either, --overwrite or not
    weights, cache = user_folder(tmp_path / "weights"), user_folder(tmp_path / "cache")
    monkeypatch.setenv("LATENTBENCH_WEIGHTS", str(weights))
    monkeypatch.setenv("LATENTBENCH_CACHE", str(cache))
    recon = [*RECON, "--overwrite", "--out"]
    refused(cli(monkeypatch, capsys, *recon, weights), "is the weights folder $LATENTBENCH_WEIGHTS")
    refused(cli(monkeypatch, capsys, *recon, cache), "is latentbench's cache $LATENTBENCH_CACHE")
    refused(cli(monkeypatch, capsys, *recon, tmp_path), "holds latentbench's cache")
    assert sorted(os.listdir(weights)) == sorted(os.listdir(cache)) == ["notes.txt", "sub"]


def _chmod_tree(folder: Path, mode: int) -> None:
    for p in [folder, *folder.rglob("*")]:
        if p.is_dir():
            p.chmod(mode)


def test_read_only_output_or_cache_fails_before_any_work(tmp_path, monkeypatch, capsys):
    def no_work(*args, **kwargs):
        raise AssertionError("work started before the output was checked")

    monkeypatch.setattr("latentbench.bench.recon.resolve_spaces", no_work)
    monkeypatch.setattr("latentbench.bench.generation.make_space", no_work)
    locked = tmp_path / "locked"
    (locked / "empty").mkdir(parents=True)
    _chmod_tree(locked, 0o555)
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o555)
    try:
        refused(cli(monkeypatch, capsys, *RECON, "--out", locked / "empty"), "not writable")
        new = locked / "new" / "recon"
        refused(cli(monkeypatch, capsys, *RECON, "--out", new), "not writable", locked)
        monkeypatch.setenv("LATENTBENCH_CACHE", str(cache))
        refused(cli(monkeypatch, capsys, *RECON, "--out", tmp_path / "r"), "cache folder", cache)
        train = ["train-gen", "--space", "pixel", "--data", "shapes:8", "--out", tmp_path / "g"]
        refused(cli(monkeypatch, capsys, *train), "cache folder", cache)
        assert not os.listdir(locked / "empty") and not os.listdir(cache)
        assert not (tmp_path / "r").exists() and not (tmp_path / "g").exists()
    finally:
        _chmod_tree(locked, 0o755)
        cache.chmod(0o755)


# -- staging leftovers -----------------------------------------------------------------------------
KILLED = """
import os, signal, sys
from latentbench.runs import staged_dir
with staged_dir(sys.argv[1]) as tmp:
    (tmp / "half.png").write_bytes(b"half")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_killed_runs_staging_folders_are_removed_when_the_output_is_written_again(
    tmp_path, monkeypatch, capsys
):
    import psutil

    out = tmp_path / "shapes"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(out)], env=env)
    assert proc.wait(timeout=120) == -9
    (killed,) = tmp_path.glob(".shapes.*.partial")
    assert (killed / "half.png").is_file() and not out.exists()
    # a live process's leftover is kept; one older than the process of its pid is not its own
    start = psutil.Process().create_time()
    live = tmp_path / f".shapes.{os.getpid()}-live_000.partial"
    reused = tmp_path / f".shapes.{os.getpid()}-reused00.partial"
    other = tmp_path / f".other.{proc.pid}-x0000000.partial"  # another output's: not touched
    users = [tmp_path / ".shapes.2023.old", tmp_path / f".shapes.{proc.pid}.partial"]  # a user's
    for folder in (live, reused, other, *users):
        folder.mkdir()
    os.utime(reused, (start - 3600, start - 3600))
    old = tmp_path / ".shapes.old"  # an interrupted swap of an earlier version (its marker)
    (old / ".latentbench.json").parent.mkdir()
    (old / ".latentbench.json").write_text('{"kind": "data-shapes"}')
    code, err = cli(monkeypatch, capsys, "data", "shapes", "--out", out, "--n", "2", "-q")
    assert code == 0, err
    kept = ["shapes", live.name, other.name, *(u.name for u in users)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)
    # a folder of that name without a marker is not latentbench's: kept
    old.mkdir()
    code, err = cli(monkeypatch, capsys, "data", "shapes", "--out", out, "--n", "2", "-q")
    assert code == 0, err
    assert old.is_dir()


def test_a_folder_that_appears_at_the_output_while_a_command_runs_is_left_alone(tmp_path):
    from latentbench.errors import UserError
    from latentbench.runs import staged_dir

    out = tmp_path / "out"
    appeared = pytest.raises(UserError, match="created or replaced by something else")
    with appeared, staged_dir(out) as tmp:
        (tmp / "result.txt").write_text("ours")
        out.mkdir()  # another command, or the user, between the claim and the swap
        (out / "thesis.tex").write_text("theirs")
    assert [p.name for p in out.iterdir()] == ["thesis.tex"]
    (kept,) = tmp_path.glob("out.*.new")
    assert (kept / "result.txt").read_text() == "ours"
    # an output that was there at the claim (an earlier run's) is replaced as before
    with staged_dir(out) as tmp:
        (tmp / "result.txt").write_text("again")
    assert [p.name for p in out.iterdir()] == ["result.txt"]


# -- reports ---------------------------------------------------------------------------------------
def test_report_reads_only_regular_files_inside_the_run(tmp_path, monkeypatch, capsys):
    secret_png = write_png(tmp_path / "private" / "secret.png", 7)
    secret_curve = tmp_path / "private" / "curve.jsonl"
    secret_curve.write_text(json.dumps({"step": 1, "name": "leaked", "value": 3.0}) + "\n")
    run = fake_run(tmp_path / "run")
    write_png(run / "images" / "own.png", 200)
    (run / "images" / "escape.png").symlink_to(secret_png)
    (run / "images" / "passwd.png").symlink_to("/etc/passwd")
    (run / "images" / "alias.png").symlink_to("own.png")  # a link that stays inside: read
    (run / "metrics.jsonl").symlink_to(secret_curve)
    out = tmp_path / "report"
    code, err = cli(monkeypatch, capsys, "report", run, "--out", out)
    assert code == 0, err
    assert "Traceback" not in err
    for name in ("images/escape.png", "images/passwd.png", "metrics.jsonl"):
        assert name in err
    copied = {p.read_bytes() for p in (out / "figures").iterdir()}
    assert (run / "images" / "own.png").read_bytes() in copied
    assert secret_png.read_bytes() not in copied
    assert Path("/etc/passwd").read_bytes() not in copied
    page = (out / "index.html").read_text()
    assert base64.b64encode(secret_png.read_bytes()).decode() not in page
    assert "leaked" not in (out / "curves.csv").read_text() + page
    assert "3 file(s) not read" in page and "3 file(s) not read" in (out / "README.md").read_text()


@pytest.mark.parametrize(
    "text", ['{"command": "recon", ', "[1, 2]", '"recon"', ""], ids=["cut", "list", "str", "empty"]
)
def test_a_malformed_manifest_is_one_line(text, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text(text)
    refused(cli(monkeypatch, capsys, "report", run, "--out", tmp_path / "r"), run / "manifest.json")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("command", ["recon", "train-gen", "train-tokenizer", "toy-manifold", "x"])
def test_manifest_fields_of_the_wrong_type_are_read_as_absent(
    command, tmp_path, monkeypatch, capsys
):
    run = tmp_path / "run"
    run.mkdir()
    wrong = dict.fromkeys(
        ["config", "spaces", "metric_variants", "skipped_spaces", "skipped_files", "device"], 3
    )
    (run / "manifest.json").write_text(json.dumps({"command": command, **wrong, "seed": []}))
    (run / "metrics.json").write_text(json.dumps({"psnr": 30.0, "per_space": [1, "a"]}))
    (run / "results.json").write_text(json.dumps({"tasks": [1], "overall": 0.5, "per_image": 2}))
    code, err = cli(monkeypatch, capsys, "report", run, "--out", tmp_path / "r")
    assert code == 0, err
    assert "30" in (tmp_path / "r" / "metrics.csv").read_text()


# -- modes -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_files_and_folders_take_their_modes_from_the_umask(mask, tmp_path, monkeypatch, capsys):
    config = tmp_path / "gen.yaml"
    config.write_text(yaml.safe_dump(GEN))
    outputs = tmp_path / "outputs"
    commands = [
        [*RECON, "--save-images", "--out", outputs / "recon"],
        [*SHAPES, "--out", outputs / "shapes"],
        [*EXPORT, "--out", outputs / "png"],
        ["train-gen", "--space", "pixel", "--config", config, "-q", "--out", outputs / "gen"],
        ["report", outputs / "recon", outputs / "gen", "--out", outputs / "report"],
    ]
    previous = os.umask(mask)
    try:
        for argv in commands:
            code, err = cli(monkeypatch, capsys, *argv)
            assert code == 0, err
    finally:
        os.umask(previous)
    cache = Path(os.environ["LATENTBENCH_CACHE"])
    paths = [p for root in (outputs, cache) for p in root.rglob("*")]
    assert any(p.parent.name == "checkpoints" for p in paths)  # train-gen's checkpoints too
    wrong = {
        str(p): oct(p.stat().st_mode & 0o777)
        for p in paths
        if p.stat().st_mode & 0o777 != (0o777 if p.is_dir() else 0o666) & ~mask
    }
    assert not wrong
    assert not [p for p in paths if p.name.endswith((".partial", ".old", ".tmp"))]


def test_staged_dir_keeps_the_old_output_until_the_new_one_is_complete(tmp_path):
    from latentbench.runs import staged_dir

    out = tmp_path / "out"
    with staged_dir(out) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RuntimeError), staged_dir(out) as tmp:
        (tmp / "a").write_text("2")
        raise RuntimeError("killed")
    assert (out / "a").read_text() == "1" and sorted(os.listdir(tmp_path)) == ["out"]


def test_every_result_names_a_space_the_same_way(tmp_path, monkeypatch):
    """recon's keys, train-gen's run folders and the report's rows all use space_label."""
    from latentbench.runs import space_label

    saved = tmp_path / "svae"
    saved.mkdir()
    assert space_label("semrec") == "semrec"
    assert space_label(str(saved)) == space_label(f"{saved}/") == space_label(saved) == "svae"
    assert space_label("runs\\tokenizers\\svae") == "svae"
    assert space_label(tmp_path / "elsewhere" / "svae") == "svae"  # a report of another machine
    monkeypatch.chdir(saved)
    assert space_label(".") == "svae" and space_label("..") == tmp_path.name
