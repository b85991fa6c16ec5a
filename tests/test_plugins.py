"""A third-party space registers through the entry point and shows up everywhere."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

K_LOWRES = ("-k", "lowres")
PLUGIN = Path(__file__).resolve().parent.parent / "baselines" / "latentbench-lowres"


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("src") / PLUGIN.name  # a copy: builds leave files behind
    shutil.copytree(PLUGIN, source)
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    out = subprocess.run([*cmd, "--target", str(target), str(source)], capture_output=True)
    assert out.returncode == 0, out.stderr.decode()
    return target


def _run(plugin_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(plugin_path)}
    code = "from latentbench.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env
    )


def test_plugin_listed_with_spec(plugin_path):
    out = _run(plugin_path, "spaces", "--spec", "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["lowres"]["source"] == "plugin:latentbench-lowres"
    assert rows["lowres"]["latent_shape"] == [3, 32, 32]
    assert rows["pixel"]["source"] == "builtin"


def test_plugin_passes_contract(plugin_path):
    env = {**os.environ, "PYTHONPATH": str(plugin_path)}
    tests = Path(__file__).resolve().parent / "test_contract.py"
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests), *K_LOWRES],
        capture_output=True,
        text=True,
        env=env,
    )
    assert out.returncode == 0, out.stdout[-2000:]
    assert "passed" in out.stdout
