"""latentbench run: one file drives the steps; done steps are skipped, missing spaces noted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from latentbench.errors import UserError
from latentbench.experiment import DONE, load_experiment, run_experiment


def _write(tmp_path, **extra) -> str:
    exp = {
        "name": "mini",
        "data": "shapes:24",
        "out": str(tmp_path / "runs"),
        "report": str(tmp_path / "report"),
        "recon": {
            "spaces": ["pixel", "no-such-space"],
            "image_size": 32,
            "batch_size": 8,
            "fd": [],
            "lpips": [],
            "diagnostics": 0,
        },
        **extra,
    }
    path = tmp_path / "mini.yaml"
    path.write_text(yaml.safe_dump(exp))
    return str(path)


def test_code_identity_is_dirty_only_for_changes_to_the_package(tmp_path):
    """A report written into the checkout (reports/ is tracked here) leaves the code clean, so a
    second `latentbench run` in a clone of this repository writes nothing."""
    import subprocess

    from latentbench.runs import git_hash

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    assert git_hash(tmp_path) is None  # not a checkout
    (tmp_path / "pkg").mkdir()
    (tmp_path / "reports").mkdir()
    (tmp_path / "pkg" / "code.py").write_text("x = 1\n")
    (tmp_path / "reports" / "README.md").write_text("old\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    head = git_hash(tmp_path / "pkg")
    assert head and len(head) == 40
    (tmp_path / "reports" / "README.md").write_text("new\n")
    assert git_hash(tmp_path / "pkg") == head
    (tmp_path / "pkg" / "code.py").write_text("x = 2\n")
    assert git_hash(tmp_path / "pkg") == head + "+dirty"


def test_run_skips_done_steps_and_unavailable_spaces(tmp_path, monkeypatch):
    monkeypatch.setattr("latentbench.runs.git_hash", lambda: "c0ffee")  # a clean checkout
    lines: list[str] = []
    report = run_experiment(_write(tmp_path), quiet=True, echo=lines.append)
    assert (report / "index.html").is_file()
    recon = tmp_path / "runs" / "recon"
    assert json.loads((recon / DONE).read_text())["key"]
    assert json.loads((recon / "metrics.json").read_text())["num_images"] == 24
    assert any("no-such-space: skipped" in line for line in lines)
    summary = json.loads((tmp_path / "runs" / "experiment.json").read_text())
    assert summary["notes"] and summary["report"] == str(report)

    lines.clear()  # a second call reuses the finished step, and writes nothing
    path = _write(tmp_path)
    written = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    run_experiment(path, quiet=True, echo=lines.append)
    assert any("[recon] done already" in line for line in lines)
    assert any("[report] done already" in line for line in lines)
    assert written == {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}

    lines.clear()  # another commit of the code: the report is written again, the steps are not
    monkeypatch.setattr("latentbench.runs.git_hash", lambda: "c0ffee+dirty")
    run_experiment(path, quiet=True, echo=lines.append)
    assert any("[recon] done already" in line for line in lines)
    assert any(line.startswith("[report] ") and "done already" not in line for line in lines)

    lines.clear()  # a changed step runs again
    changed = _write(tmp_path, seed=5)
    run_experiment(changed, quiet=True, echo=lines.append)
    assert not any("done already" in line for line in lines)


def test_the_experiments_seed_reaches_every_step(tmp_path):
    """`seed` defaults to the experiment's for tokenizers and the toy too (they ran at 0)."""
    toy = {"steps": 2, "eval_every": 2, "num_data": 32, "num_samples": 32, "num_reference": 64}
    toy |= {"batch_size": 16, "width": 8, "sample_steps": 2}
    exp = {
        "name": "seeded",
        "data": "shapes:8",
        "seed": 3,
        "out": str(tmp_path / "runs"),
        "report": str(tmp_path / "report"),
        "tokenizers": [{"name": "tok", "space": "rae", "steps": 1}],
        "toy": toy,
    }
    (tmp_path / "e.yaml").write_text(yaml.safe_dump(exp))
    run_experiment(str(tmp_path / "e.yaml"), quiet=True, echo=lambda line: None)
    for step in ("tokenizers/tok", "toy"):
        assert json.loads((tmp_path / "runs" / step / "manifest.json").read_text())["seed"] == 3


def test_bad_experiment_files_are_user_errors(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nrecon: {spacez: [pixel]}\n")
    with pytest.raises(UserError, match="unknown key 'spacez'"):
        load_experiment(path)
    path.write_text("tokenizers: {name: a}\n")
    with pytest.raises(UserError, match="tokenizers: input should be a valid list"):
        load_experiment(path)
    with pytest.raises(UserError, match="not found"):
        load_experiment(tmp_path / "missing.yaml")


def test_shipped_experiments_parse():
    from latentbench.configs import ConfigKind, shipped_configs

    names = shipped_configs(ConfigKind.EXPERIMENTS)
    assert {"quickstart", "smoke"} <= set(names)
    for name, path in names.items():
        assert load_experiment(name) == load_experiment(path)


def test_paths_are_relative_to_the_file_and_names_stay_names(tmp_path):
    folder = tmp_path / "exp"
    folder.mkdir()
    path = folder / "x.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "data": "photos",
                "out": "out",
                "report": "/abs/report",
                "tokenizers": [
                    {"name": "a", "space": "semrec", "preset": "p.yaml", "data": "caps.jsonl"},
                    {"name": "b", "space": "semrec", "stage": 2, "init": "a", "preset": "tiny"},
                    {"name": "c", "space": "rae", "init": "saved/a", "eval_data": "shapes:10"},
                ],
                "recon": {"spaces": ["pixel", "a", "./saved/b", "~/s"], "data": "hf:org/x:val"},
                "generation": [{"spaces": ["b"], "data": "shapes-edits:8", "task": "edit"}],
            }
        )
    )
    exp = load_experiment(path)
    assert exp.name == "x" and exp.data == str(folder / "photos")
    assert exp.out == str(folder / "out") and exp.report == "/abs/report"
    a, b, c = exp.tokenizers
    assert (a.preset, a.data) == (str(folder / "p.yaml"), str(folder / "caps.jsonl"))
    assert (b.init, b.preset) == ("a", "tiny")  # a step's name and a shipped preset's
    assert (c.init, c.eval_data) == (str(folder / "saved/a"), "shapes:10")
    home = str(Path("~/s").expanduser())
    assert exp.recon.spaces == ["pixel", "a", str(folder / "saved/b"), home]
    assert exp.recon.data == "hf:org/x:val"
    assert exp.generation[0].data == "shapes-edits:8"


def test_run_an_absolute_file_from_another_folder(tmp_path, monkeypatch):
    """`latentbench run /abs/x.yaml` from elsewhere: its relative paths are the file's."""
    from test_semrec import PRESET, TINY
    from typer.testing import CliRunner

    from latentbench.cli import app
    from latentbench.data import open_images
    from latentbench.data.export import export_images

    folder = tmp_path / "exp"
    export_images(open_images("shapes:8", 16), folder / "photos")
    (folder / "p.yaml").write_text(PRESET.format(space=json.dumps(TINY)))
    (folder / "x.yaml").write_text(
        yaml.safe_dump(
            {
                "data": "photos",
                "out": "out",
                "report": "report",
                "tokenizers": [{"name": "tok", "space": "semrec", "preset": "p.yaml"}],
                "recon": {
                    "spaces": ["pixel", "tok"],
                    "image_size": 16,
                    "fd": [],
                    "lpips": [],
                    "diagnostics": 0,
                },
            }
        )
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    res = CliRunner().invoke(app, ["run", str(folder / "x.yaml"), "-q"])
    assert res.exit_code == 0, res.output
    assert (folder / "report" / "index.html").is_file()
    metrics = json.loads((folder / "out" / "recon" / "metrics.json").read_text())
    assert set(metrics) == {"pixel", "tok"} and metrics["pixel"]["num_images"] == 8
    assert list(elsewhere.iterdir()) == []  # nothing written where it was started


def test_generation_seeds_rerun_only_the_generators_and_report_apart(tmp_path, cli, capsys):
    gen = {
        "name": "gen", "task": "class", "spaces": ["pixel"], "data": "shapes-single:16",
        "preset": "tiny", "image_size": 32, "dit": {"grid": 4}, "steps": 2, "batch_size": 8,
        "eval_every": 2, "eval_samples": 4, "sample_steps": 2, "reference_images": 8,
        "fd_extractor": "none", "seeds": [0],
    }  # fmt: skip
    path = _write(tmp_path, generation=[gen], claims={"PS-VAE": "pixel"})
    assert cli("run", path, "--quiet") == 0
    recon_done = (tmp_path / "runs" / "recon" / DONE).stat().st_mtime_ns
    assert cli("run", path, "--generation-seeds", "1,2", "--quiet") == 0
    assert (tmp_path / "runs" / "recon" / DONE).stat().st_mtime_ns == recon_done  # not rerun
    again = tmp_path / "runs" / "gen-seeds-1-2" / "pixel"
    assert sorted(p.name for p in again.glob("seed_*")) == ["seed_1", "seed_2"]
    assert (tmp_path / "runs" / "gen" / "pixel" / "seed_0").is_dir()  # the first run kept
    assert (tmp_path / "report-seeds-1-2" / "index.html").is_file()
    assert "## Claims" in (tmp_path / "report-seeds-1-2" / "README.md").read_text()
    assert cli("run", path, "--generation-seeds", "1,x") == 2
    assert "--seeds '1,x': expected integers" in capsys.readouterr().err


def test_generation_seeds_retrain_only_the_spaces_the_claims_name(tmp_path):
    from latentbench.experiment import with_generation_seeds

    gens = [
        {"name": "t2i", "task": "t2i", "spaces": ["pixel", "rae", "taef2"], "seeds": [0, 1]},
        {"name": "edit", "task": "edit", "spaces": ["taef2"], "data": "shapes-edits:8"},
    ]
    claims = {"RAE": "rae", "S-VAE": "pixel", "P-VAE": "taef2"}  # P-VAE: no generation claim
    exp = load_experiment(_write(tmp_path, generation=gens, claims=claims))
    again = with_generation_seeds(exp, [2, 3])
    assert [(g.name, g.spaces, g.seeds) for g in again.generation] == [
        ("t2i-seeds-2-3", ["pixel", "rae"], [2, 3])  # no claim names taef2: edit is not rerun
    ]
    assert again.report == str(tmp_path / "report") + "-seeds-2-3"
    assert again.recon == exp.recon and again.out == exp.out
    no_claims = with_generation_seeds(load_experiment(_write(tmp_path, generation=gens)), [2])
    assert [g.spaces for g in no_claims.generation] == [["pixel", "rae", "taef2"], ["taef2"]]
