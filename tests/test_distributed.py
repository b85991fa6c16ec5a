"""Two CPU processes (torchrun, gloo) train the same generator as one process, up to float
tolerance: the loop splits each global batch by rank, and per-sample noise is seeded by the
global sample index. Sampling is sharded and the GenEval/FD statistics are gathered."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from latentbench.bench.generation import load_config, train_generator

CONFIG = {
    "space": "pixel",
    "data": "shapes:24",
    "image_size": 16,
    "steps": 4,
    "batch_size": 8,
    "eval_every": 4,
    "eval_samples": 6,
    "sample_steps": 2,
    "checkpoint_every": 4,
    "reference_images": 8,
    "fd_extractor": "efficientnet-lite0",
    "dit": {"width": 32, "depth": 2, "heads": 2, "grid": 4},
}

SCRIPT = """
import json, sys
import torch
torch.set_num_threads(1)
from latentbench.bench.generation import load_config, train_generator
cfg = load_config(None, **json.loads(sys.argv[1]))
train_generator(cfg, sys.argv[2], quiet=True)
"""


def _final(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "checkpoints" / "step_00000004" / "model.safetensors")


def _evals(run: Path) -> dict[tuple[int, str], tuple[float, int]]:
    """(step, name) -> (value, number of samples) of the evaluations: GenEval and FD."""
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().split("\n") if x]
    evals = [r for r in rows if r["name"].startswith(("geneval", "fd_"))]
    return {(r["step"], r["name"]): (r["value"], r["num_samples"]) for r in evals}


def _grid(run: Path, step: int) -> np.ndarray:
    return np.asarray(Image.open(run / "images" / f"step_{step:08d}.png"), dtype=np.float64)


@pytest.mark.skipif(
    shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None
    and shutil.which("torchrun") is None,
    reason="torchrun not installed",
)
def test_two_processes_match_one(tmp_path):
    single = tmp_path / "single"
    train_generator(load_config(None, **CONFIG), single)

    torchrun = Path(sys.executable).parent / "torchrun"
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [
        str(torchrun if torchrun.exists() else "torchrun"),
        "--standalone",
        "--nproc_per_node",
        "2",
        str(script),
        json.dumps(CONFIG),
        str(tmp_path / "multi"),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]

    a, b = _final(single), _final(tmp_path / "multi")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)
    manifest = json.loads((tmp_path / "multi" / "manifest.json").read_text())
    assert manifest["config"]["num_processes"] == 2
    assert manifest["config"]["loop"]["batch_size"] == 8  # global batch, 4 per process
    ev1, ev2 = _evals(single), _evals(tmp_path / "multi")
    assert (
        ev1.keys() == ev2.keys() and (0, "geneval") in ev1 and (4, "fd_efficientnet-lite0") in ev1
    )
    for key, (value, n) in ev1.items():
        assert n == ev2[key][1] == CONFIG["eval_samples"], key  # every rank's samples gathered
        # sharded sampling (sample i seeded by i on rank i % 2) and merged feature statistics:
        # the same numbers as one process; a lost shard or a rank-local seed moves FD by far more
        assert ev2[key][0] == pytest.approx(value, rel=1e-3, abs=1e-6), key
    for step in (0, 4):  # the sample grids, gathered from both ranks in sample order
        assert np.abs(_grid(single, step) - _grid(tmp_path / "multi", step)).max() <= 2, step
