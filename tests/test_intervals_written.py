"""The producers write every headline number with its interval (docs/statistics.md, "Keys"):
recon, FD, linear probe, GenEval / edit success, seeds; `seconds` in metrics.jsonl; the table.

The intervals' coverage is tested in test_stats.py; here: the keys are there, low <= value <=
high, and the warnings appear where the data is too small."""

from __future__ import annotations

import io
import json
import math
import time
from pathlib import Path

import pytest
import torch
from test_recon import CountingExtractor  # noqa: F401  (registers 'test-counting')

from latentbench.bench.recon import ReconConfig, run_recon
from latentbench.bench.seeds import aggregate_seeds, parse_seeds, run_seeds, seed_input
from latentbench.errors import UserError
from latentbench.metrics.fid import FeatureStats, GroupedFeatureStats, fd_metrics
from latentbench.metrics.latent import linear_probe
from latentbench.metrics.uncertainty import (
    add_geneval_intervals,
    add_success_interval,
    geneval_keys,
    log_rows,
)
from latentbench.runs import OutputKind, RunDir
from latentbench.stats import MIN_PROBE_HELDOUT, Interval
from latentbench.terminal import Progress, metrics_table, table_columns
from latentbench.train.loop import Callback, LoopConfig, TrainLoop


def assert_interval(metrics: dict, name: str) -> Interval:
    """``name`` has finite bounds around its value."""
    iv = Interval.from_keys(metrics, name)
    assert iv is not None, f"{name}: no interval keys in {sorted(metrics)}"
    assert math.isfinite(iv.low) and math.isfinite(iv.high), name
    assert iv.low <= iv.value <= iv.high, (name, iv)
    return iv


# -- recon ----------------------------------------------------------------------------------------
def test_recon_writes_intervals_and_the_fd_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTBENCH_CACHE", str(tmp_path / "cache"))
    cfg = ReconConfig(
        spaces=["pixel"],
        data="shapes:24",
        image_size=32,
        batch_size=8,
        fd=["test-counting"],
        lpips=[],
        space_options={"image_size": 16},  # lossy: a 16 px round trip of 32 px images
    )
    run_recon(cfg, tmp_path / "run", echo=lambda m: None)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for name in ("psnr", "ssim", "fd_test-counting"):
        assert_interval(metrics, name)
    assert metrics["psnr/n"] == 24
    assert metrics["psnr/ci95_high"] > metrics["psnr/ci95_low"]  # lossy: values differ
    assert "warnings" not in metrics  # 24 samples >= 8 dimensions


def test_fd_interval_and_warning_below_the_feature_dimension():
    g = torch.Generator().manual_seed(0)
    reference = FeatureStats(16).update(torch.randn(200, 16, generator=g))
    many = GroupedFeatureStats(16).update(torch.randn(60, 16, generator=g) + 0.5)
    keys, warnings = fd_metrics("fd_x", reference, many)
    iv = assert_interval(keys, "fd_x")
    assert iv.value == pytest.approx(reference.frechet_distance(many.total()))
    assert keys["fd_x/n"] == 60 and warnings == []
    few = GroupedFeatureStats(16).update(torch.randn(12, 16, generator=g) + 0.5)
    keys, warnings = fd_metrics("fd_x", reference, few)
    assert_interval(keys, "fd_x")
    assert len(warnings) == 1 and "12 samples < 16 feature dimensions" in warnings[0]


def test_grouped_stats_split_rows_round_robin_and_merge():
    x = torch.arange(23 * 2, dtype=torch.float64).view(23, 2)
    a = GroupedFeatureStats(2, groups=5).update(x[:7]).update(x[7:])
    assert [s.n for s in a.groups] == [5, 5, 5, 4, 4]
    total = a.total()
    assert total.n == 23 and torch.allclose(total.sum, x.sum(0))
    assert a.total(without=0).n == 18
    b = GroupedFeatureStats(2, groups=5).update(x)
    assert a.merge(b).n == 46


# -- linear probe ---------------------------------------------------------------------------------
def _blobs(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    centres = torch.randn(3, 8, generator=g) * 3
    return centres[labels] + torch.randn(n, 8, generator=g), labels


def test_probe_accuracy_has_a_wilson_interval_and_warns_on_a_small_heldout():
    small = linear_probe(*_blobs(30))
    assert small["num_test"] < MIN_PROBE_HELDOUT
    assert_interval(small, "accuracy")
    assert len(small["warnings"]) == 1 and "held-out" in small["warnings"][0]
    large = linear_probe(*_blobs(600))
    assert large["num_test"] >= MIN_PROBE_HELDOUT and large["warnings"] == []
    iv = assert_interval(large, "accuracy")
    wide = Interval.from_keys(small, "accuracy")
    assert iv.half_width < wide.half_width  # more held-out images, a narrower interval


# -- GenEval and edits ----------------------------------------------------------------------------
def _geneval_rows() -> list[tuple[str, bool, int]]:
    rows = []
    for prompt in range(20):  # 4 images per prompt, two tasks
        task = "single_object" if prompt < 10 else "counting"
        for image in range(4):
            rows.append((task, (prompt + image) % 3 != 0, prompt))
    return rows


def test_geneval_keys_per_task_and_overall():
    rows = _geneval_rows()
    keys = geneval_keys(rows, "geneval")
    for name in ("geneval", "geneval/single_object", "geneval/counting"):
        assert_interval(keys, name)
    single = [c for t, c, _ in rows if t == "single_object"]
    assert keys["geneval/single_object"] == pytest.approx(sum(single) / len(single))
    assert keys["geneval/single_object/n"] == 10  # prompts, not images
    results = {"overall": keys["geneval"], "tasks": {"counting": {"score": 0.5}}}
    add_geneval_intervals(results, rows)
    assert results["overall/ci95_low"] <= results["overall"] <= results["overall/ci95_high"]
    block = results["tasks"]["single_object"]
    assert block["score/ci95_low"] == keys["geneval/single_object/ci95_low"]
    assert block["prompts"] == 10


def test_edit_success_interval_and_log_rows():
    block = add_success_interval({"success": 0.75}, [True, True, True, False] * 5)
    assert_interval(block, "success")
    rows = log_rows({**block, "warnings": ["x"], "flag": True})
    assert list(rows) == ["success"]  # interval keys go into the row, lists and bools nowhere
    value, extra = rows["success"]
    assert value == 0.75 and set(extra) == {"ci95_low", "ci95_high", "n"}


# -- seeds ----------------------------------------------------------------------------------------
def test_seed_aggregate_of_flat_and_nested_metrics(tmp_path):
    assert parse_seeds("0, 1,2") == [0, 1, 2] and parse_seeds(None) is None
    with pytest.raises(UserError):
        parse_seeds("0,0")

    def one(seed: int, folder: Path) -> dict:
        folder.mkdir(parents=True)
        return {
            "a": {"fd": 10.0 + seed, "fd/ci95_low": 9.0, "note": "x"},
            "psnr": 20.0 + 2 * seed,
        }

    agg = run_seeds([0, 1, 2], tmp_path / "out", OutputKind.TRAIN_GEN, one, echo=lambda m: None)
    assert agg == json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert agg["seeds"] == [0, 1, 2]
    assert agg["psnr"] == pytest.approx(22.0) and agg["psnr/values"] == [20.0, 22.0, 24.0]
    assert agg["psnr/std"] == pytest.approx(2.0) and agg["psnr/n"] == 3
    assert agg["psnr/ci95_low"] < 22.0 < agg["psnr/ci95_high"]
    assert agg["a"]["fd"] == pytest.approx(11.0) and "fd/ci95_low" in agg["a"]
    assert agg["a"]["fd/values"] == [10.0, 11.0, 12.0] and "note" not in agg["a"]
    assert all((tmp_path / "out" / f"seed_{s}").is_dir() for s in (0, 1, 2))
    warned = aggregate_seeds([{"m": 1.0, "warnings": ["w"]}, {"m": 2.0, "warnings": ["w", "v"]}])
    assert warned["warnings"] == ["w", "v"]
    # seeds that score alike: the interval over seeds alone is zero-wide; the seeds' own
    # evaluation intervals (+-0.2 each) combined keep it 0.2 * sqrt(2) / 2 wide at least
    alike = aggregate_seeds([{"g": 0.5, "g/ci95_low": 0.3, "g/ci95_high": 0.7}] * 2)
    assert alike["g/ci95_low"] == pytest.approx(0.5 - 0.2 / math.sqrt(2))
    assert alike["g/ci95_high"] == pytest.approx(0.5 + 0.2 / math.sqrt(2))
    one_seed = aggregate_seeds([{"m": 1.0}])
    assert one_seed["m"] == 1.0 and math.isnan(one_seed["m/std"])
    assert seed_input(str(tmp_path / "out"), 1) == str(tmp_path / "out" / "seed_1")
    assert seed_input("svae", 1) == "svae"


# -- seconds in metrics.jsonl ---------------------------------------------------------------------
class _Regression:
    def __init__(self) -> None:
        torch.manual_seed(0)
        self.model = torch.nn.Linear(4, 2)

    def loss(self, model, batch, ctx):
        x, y = batch
        return {"loss": (model(x) - y).square().mean()}


def _loop(path: Path, callbacks=()) -> TrainLoop:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=g)
    data = torch.utils.data.TensorDataset(x, x @ torch.randn(4, 2, generator=g))
    cfg = LoopConfig(steps=12, batch_size=8, checkpoint_every=5, log_every=1)
    run = RunDir(path) if (path / "manifest.json").is_file() else RunDir.create(path, "t", {})
    return TrainLoop(_Regression(), data, None, cfg, run, callbacks, quiet=True)


def test_seconds_beside_step_are_monotone_and_survive_a_resume(tmp_path):
    def slow_then_kill(loop, step):
        if step == 3:
            time.sleep(0.3)  # so that the clock before the checkpoint is clearly > 0
        if step == 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _loop(tmp_path, [Callback(1, slow_then_kill)]).fit()
    checkpoint = json.loads((tmp_path / "checkpoints/step_00000005/state.json").read_text())
    assert checkpoint["seconds"] >= 0.3
    RunDir(tmp_path).trim_log(5)  # what `--resume` does to the rows after the checkpoint
    _loop(tmp_path).fit(resume=True)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert list(rows[0])[:2] == ["step", "seconds"]
    seconds = [r["seconds"] for r in rows]
    assert seconds == sorted(seconds)  # monotone across the resume
    after = [r["seconds"] for r in rows if r["step"] > 5]
    assert after and min(after) >= checkpoint["seconds"]  # the resumed clock continues
    assert max(r["step"] for r in rows) == 12


# -- what the terminal shows ----------------------------------------------------------------------
def test_compact_table_shows_headline_with_half_intervals():
    metrics = {
        "psnr": 30.0,
        "psnr/ci95_low": 29.0,
        "psnr/ci95_high": 31.0,
        "psnr/n": 10,
        "num_images": 10,
        "latent/std_max": 2.0,
        "latent/probe_accuracy": 0.5,
        "latent/probe_accuracy/ci95_low": 0.2,
        "latent/probe_accuracy/ci95_high": 0.8,
        "fd": 3.0,
        "fd/ci95_low": None,
        "fd/ci95_high": None,
    }
    results = {"pixel": metrics, "seeds": [0]}
    assert table_columns(results) == ["psnr", "num_images", "fd"]
    seeds = aggregate_seeds([{"fd": 3.0, "params": 10}, {"fd": 4.0, "params": 10}])
    assert table_columns({"pixel": seeds}) == ["fd"]  # a setting equal over seeds is no headline
    wide = table_columns(results, wide=True)
    assert "latent/std_max" in wide and "psnr/ci95_low" not in wide
    text = io.StringIO()
    from rich.console import Console

    Console(file=text, width=200).print(metrics_table(results, "t"))
    assert "30 ± 1" in text.getvalue() and "3 ± ?" in text.getvalue()


def test_progress_prints_plain_lines_when_not_a_terminal():
    out = io.StringIO()
    with Progress(3, "phase", every_s=0.0, stream=out) as bar:
        for _ in range(3):
            bar.update()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and lines[-1].startswith("phase: 3/3 (")
    assert len(lines) == 4  # one per update (every_s = 0) and one at the end


def test_log_with_a_missing_tracker_is_skipped_in_one_line(capsys):
    from accelerate.utils import is_wandb_available

    from latentbench.train.loop import Tracker, available_tracker

    if is_wandb_available():
        pytest.skip("wandb is installed here")
    assert available_tracker(None) is None
    assert available_tracker(Tracker.WANDB) is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "wandb" in err[0] and "not installed" in err[0]


def test_experiment_steps_take_seeds(tmp_path):
    from latentbench.experiment import load_experiment

    path = tmp_path / "exp.yaml"
    path.write_text(
        "name: e\n"
        "tokenizers:\n  - {name: rae, space: rae, steps: 2, seeds: [0, 1]}\n"
        "generation:\n  - {spaces: [pixel, rae], steps: 2, seeds: [0, 1, 2]}\n"
    )
    exp = load_experiment(path)
    assert exp.tokenizers[0].seeds == [0, 1] and exp.generation[0].seeds == [0, 1, 2]
    path.write_text("name: e\ngeneration:\n  - {spaces: [pixel], seeds: [-1]}\n")
    with pytest.raises(UserError):
        load_experiment(path)


def test_natural_edit_means_carry_intervals():
    from latentbench.metrics.edit_natural import METRICS, summarise_natural

    name = METRICS[0]
    rows = [{name: 0.1 * k} for k in range(12)] + [{name: None}]
    summary = summarise_natural(rows)
    iv = assert_interval(summary, name)
    assert iv.n == 12 and summary[f"{name}_count"] == 12
    assert f"{METRICS[1]}/ci95_low" not in summary  # no values, no interval
