"""C0: the same flow model keeps more samples off the manifold in 8-D than in 2-D."""

from __future__ import annotations

import json
import math

import pytest
import torch

from latentbench.bench.toy_manifold import (
    ToyConfig,
    embedding,
    ps_curve,
    run_toy_manifold,
    tail_interval,
)
from latentbench.stats import Interval

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one intra-op thread

FAST = ToyConfig(
    steps=150, eval_every=75, batch_size=128, num_samples=400, sample_steps=10, num_reference=5000
)


def test_embedding_is_orthonormal_and_curve_is_on_strokes():
    q = embedding(8, seed=0)
    torch.testing.assert_close(q.T @ q, torch.eye(2), atol=1e-6, rtol=0)
    pts = ps_curve(1000, torch.Generator().manual_seed(0))
    assert pts.shape == (1000, 2) and pts.abs().max() < 2.5


def test_tail_distance_is_higher_in_8d(tmp_path):
    result = run_toy_manifold(FAST, tmp_path / "toy", quiet=True)
    assert result["steps"] == [75, 150]
    assert result["final_tail_8d"] > 1.2 * result["final_tail_2d"]
    assert (tmp_path / "toy" / "tail.png").stat().st_size > 1000
    saved = json.loads((tmp_path / "toy" / "metrics.json").read_text())
    assert saved["tail_8d"] == result["tail_8d"]


def test_final_tail_carries_its_interval(tmp_path):
    result = run_toy_manifold(FAST, tmp_path / "toy", quiet=True)
    for dim in ("2d", "8d"):
        iv = Interval.from_keys(result, f"final_tail_{dim}")
        assert iv is not None and iv.n == FAST.num_samples
        assert iv.low < iv.value < iv.high
        assert iv.value == pytest.approx(result[f"tail_{dim}"][-1], rel=1e-5)  # the last eval


def test_tail_interval_covers_a_known_tail():
    """Exp(1) distances: the mean of the top 5% is 1 + ln 20. ~95% of the intervals of 2000-draw
    samples hold it (200 samples: at least 88% is 3 standard errors below 95%)."""
    true = 1 + math.log(20)
    hits = 0
    for r in range(200):
        d = torch.empty(2000).exponential_(generator=torch.Generator().manual_seed(100 + r))
        hits += tail_interval(d, 0.05, seed=r, n_resamples=500).contains(true)
    assert 0.88 <= hits / 200 <= 1.0
