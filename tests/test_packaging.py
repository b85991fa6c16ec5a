"""The entry points work from anywhere: an installed copy finds its shipped configs, and `make
demo` / CI run one command line."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """latentbench built as a wheel and installed into a fresh folder (``pip --target``)."""
    source = tmp_path_factory.mktemp("src")  # a copy: a build leaves build/ and *.egg-info behind
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "latentbench", source / "latentbench", ignore=ignore)
    target = tmp_path_factory.mktemp("site")
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    out = subprocess.run([*cmd, "--target", str(target), str(source)], capture_output=True)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    return target


def _latentbench(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m latentbench ARGS`` from ``cwd`` with only the installed copy importable."""
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "latentbench", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
    )


def test_installed_copy_finds_its_presets_from_another_folder(installed: Path, tmp_path: Path):
    # The tiny preset, by name, from a folder that holds no configs (the command of issue #11).
    out = _latentbench(
        installed, tmp_path, "train-tokenizer", "--space", "rae", "--data", "shapes:4",
        "--steps", "1", "--out", "tok", "--quiet", "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout)["steps"] == 1
    manifest = json.loads((tmp_path / "tok" / "manifest.json").read_text())
    assert manifest["config"]["preset"] == "tiny"
    # An unknown experiment name: one line listing the shipped ones, exit 2.
    bad = _latentbench(installed, tmp_path, "run", "smok")
    assert bad.returncode == 2 and "did you mean 'smoke'" in bad.stderr
    assert "quickstart, smoke" in bad.stderr and "Traceback" not in bad.stderr


def test_installed_copy_resolves_every_shipped_config(installed: Path, tmp_path: Path):
    code = """
import json
import latentbench
from latentbench.bench.generation import load_config
from latentbench.bench.tokenizer import load_preset
from latentbench.configs import ConfigKind, config_path, shipped_configs
from latentbench.experiment import load_experiment

out = {kind.value: sorted(shipped_configs(kind)) for kind in ConfigKind}
for preset in out["spaces"]:
    load_preset("rae", preset, 1), load_preset("semrec", preset, 2)
for name in out["gen"]:
    load_config(name)
for name in out["experiments"]:
    load_experiment(name)
out["package"] = latentbench.__file__
out["smoke"] = str(config_path(ConfigKind.EXPERIMENTS, "smoke"))
print(json.dumps(out))
"""
    env = {**os.environ, "PYTHONPATH": str(installed)}
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert run.returncode == 0, run.stderr[-2000:]
    found = json.loads(run.stdout)
    assert Path(found["package"]).is_relative_to(installed)  # not the checkout
    assert Path(found["smoke"]).is_relative_to(installed)
    assert {"tiny", "quickstart", "paper"} <= set(found["spaces"])
    assert {"tiny", "small", "base", "large", "xl"} <= set(found["gen"])
    assert {"quickstart", "smoke", "tokenizers-shapes", "paper-imagenet"} <= set(
        found["experiments"]
    )


def test_config_names_and_paths(tmp_path: Path):
    from latentbench.configs import ConfigKind, config_path
    from latentbench.errors import UserError

    assert config_path(ConfigKind.SPACES, "tiny").name == "tiny.yaml"
    assert config_path(ConfigKind.GEN, "tiny").parent.name == "gen"
    own = tmp_path / "mine.yml"
    own.write_text("{}")
    assert config_path(ConfigKind.SPACES, str(own)) == own
    with pytest.raises(UserError, match=r"preset 'tinny' not found \(did you mean 'tiny'\?\); "
                       r"valid: paper-siglip2, paper, quickstart, tiny or a \.yaml "
                       r"path"):  # fmt: skip
        config_path(ConfigKind.SPACES, "tinny")
    with pytest.raises(UserError, match="experiment file not found: .*missing.yaml"):
        config_path(ConfigKind.EXPERIMENTS, tmp_path / "missing.yaml")


def _demo_command(*make_args: str) -> list[str]:
    """The command `make demo` runs (dry run; the venv target taken as up to date)."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    out = subprocess.run(
        [make, "-s", "-n", "-o", "venv", "demo", *make_args],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return shlex.split(lines[0])


def test_make_demo_runs_the_quickstart_and_ci_runs_make_demo():
    assert _demo_command()[1:] == ["run", "quickstart"]
    assert _demo_command("EXPERIMENT=smoke")[1:] == ["run", "smoke"]
    assert Path(_demo_command()[0]).name == "latentbench"
    ci = [line.split() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert ["make", "test"] in ci
    assert any(cmd[-3:] == ["make", "demo", "EXPERIMENT=smoke"] for cmd in ci)
    assert any(cmd[-2:] == ["make", "demo"] for cmd in ci)  # the README's command as written


def test_smoke_experiment_has_every_step_kind():
    from latentbench.experiment import load_experiment

    smoke = load_experiment("smoke")
    assert smoke.tokenizers and smoke.recon and smoke.generation
    assert smoke.recon.fd == ["auto"] and smoke.recon.lpips == ["auto"]  # the defaults
    tokenizer_names = {t.name for t in smoke.tokenizers}
    assert tokenizer_names & set(smoke.recon.spaces)
    assert all(tokenizer_names & set(g.spaces) for g in smoke.generation)
