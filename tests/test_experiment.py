"""latentbench run: one file drives the steps; done steps are skipped, missing spaces noted."""

from __future__ import annotations

import json

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


def test_run_skips_done_steps_and_unavailable_spaces(tmp_path):
    lines: list[str] = []
    report = run_experiment(_write(tmp_path), quiet=True, echo=lines.append)
    assert (report / "index.html").is_file()
    recon = tmp_path / "runs" / "recon"
    assert json.loads((recon / DONE).read_text())["key"]
    assert json.loads((recon / "metrics.json").read_text())["num_images"] == 24
    assert any("no-such-space: skipped" in line for line in lines)
    summary = json.loads((tmp_path / "runs" / "experiment.json").read_text())
    assert summary["notes"] and summary["report"] == str(report)

    lines.clear()  # a second call reuses the finished step
    run_experiment(_write(tmp_path), quiet=True, echo=lines.append)
    assert any("[recon] done already" in line for line in lines)

    lines.clear()  # a changed step runs again
    changed = _write(tmp_path, seed=5)
    run_experiment(changed, quiet=True, echo=lines.append)
    assert not any("done already" in line for line in lines)


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
    from pathlib import Path

    files = sorted(
        (Path(__file__).resolve().parent.parent / "configs" / "experiments").glob("*.yaml")
    )
    assert files
    for f in files:
        load_experiment(f)
