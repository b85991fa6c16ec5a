"""latentbench plan: the full-size dry run, on a tiny experiment (meta shapes + real CPU steps)."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from latentbench.cli import app
from latentbench.errors import UserError
from latentbench.experiment import load_experiment
from latentbench.plan import PlanConfig, gpu_hours, plan_table, run_plan

TINY_GEN = {"width": 32, "depth": 1, "heads": 2, "grid": 4}


def _experiment(tmp_path) -> str:
    exp = {
        "name": "tiny-plan",
        "data": "shapes:16",
        "recon": {"spaces": ["pixel"], "image_size": 32, "data": "shapes:8"},
        "generation": [
            {
                "name": "gen",
                "task": "t2i",
                "spaces": ["pixel"],
                "preset": "tiny",
                "image_size": 16,
                "dit": TINY_GEN,
                "steps": 10,
                "batch_size": 4,
                "eval_every": 5,
                "eval_samples": 3,
                "sample_steps": 4,
                "guidance": 2.0,
            }
        ],
    }
    path = tmp_path / "tiny-plan.yaml"
    path.write_text(yaml.safe_dump(exp))
    return str(path)


def test_plan_measures_every_stage_on_meta_and_the_cpu(tmp_path):
    exp = load_experiment(_experiment(tmp_path))
    cfg = PlanConfig(batch=2, budget_minutes=2)
    plan = run_plan(exp, cfg, echo=lambda m: None)
    rows = {r["stage"]: r for r in plan["stages"]}
    assert list(rows) == ["recon pixel", "train-gen gen pixel", "sample gen pixel"]
    train, sample = rows["train-gen gen pixel"], rows["sample gen pixel"]
    assert train["params"] == train["trainable_params"] > 0
    assert sample["trainable_params"] == 0
    for row in (train, sample):
        assert row["measured_on"] == "cpu"
        assert row["flops_per_image"] > 0 and row["cpu_seconds"] > 0
        assert row["peak_memory_gb"] is not None and row["peak_memory_gb"] >= 0
    # training runs forward and backward (about 3x a forward); the CFG step runs 2 forwards
    assert 1.2 < train["flops_per_image"] / sample["flops_per_image"] < 2.5
    # the configured work: 10 steps x batch 4; 3 evaluations x 3 samples x 4 steps; 8 images
    assert train["work"] == 40 and sample["work"] == 36 and rows["recon pixel"]["work"] == 8
    expected = train["flops_per_image"] * 40 / (0.4 * 989e12) / 3600
    assert train["gpu_hours"] == pytest.approx(expected)
    assert gpu_hours(989e12 * 0.4 * 3600, 1, cfg) == pytest.approx(1.0)
    assert train["paper_params"] is None  # the tiny preset is not the paper's generator
    table = plan_table(plan)
    assert "| train-gen gen pixel |" in table and "40% MFU" in table


def test_plan_meta_only_and_the_cli_writes_json(tmp_path):
    out = tmp_path / "plan"
    result = CliRunner().invoke(
        app, ["plan", _experiment(tmp_path), "--meta-only", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    plan = json.loads((out / "plan.json").read_text())
    assert {r["measured_on"] for r in plan["stages"]} == {"meta"}
    assert all(r["peak_memory_gb"] is None for r in plan["stages"])
    assert (out / "plan.md").read_text().startswith("| stage |")
    args = ["plan", _experiment(tmp_path), "--meta-only", "--out", str(tmp_path)]
    again = CliRunner().invoke(app, args)
    assert isinstance(again.exception, UserError)  # a folder latentbench did not write
