"""The one training loop: exact resume after a kill, the NaN guard, EMA, logging."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from latentbench.errors import UserError
from latentbench.runs import RunDir
from latentbench.train.loop import Callback, LoopConfig, StepBatchSampler, TrainLoop


class NoisyRegression:
    """y = W x; the loss adds fresh noise and dropout, so randomness must be reproducible."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.model = nn.Sequential(nn.Linear(4, 16), nn.Dropout(0.1), nn.GELU(), nn.Linear(16, 2))

    def loss(self, model, batch, ctx):
        x, y = batch
        pred = model(x + 0.1 * torch.randn_like(x))
        mse = (pred - y).square().mean()
        return {"loss": mse, "mse": mse}


def _data() -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 4, generator=g)
    return TensorDataset(x, x @ torch.randn(4, 2, generator=g))


def _loop(tmp, steps=20, callbacks=(), **cfg) -> TrainLoop:
    config = LoopConfig(
        steps=steps, batch_size=8, lr=1e-2, ema_decay=0.9, checkpoint_every=5, log_every=1, **cfg
    )
    run = RunDir.create(tmp, "test", {}, seed=0)
    return TrainLoop(NoisyRegression(), _data(), None, config, run, callbacks, quiet=True)


def test_sampler_is_a_function_of_step():
    full = list(StepBatchSampler(10, 4, seed=1, start_step=0, steps=6, rank=0, world=1))
    tail = list(StepBatchSampler(10, 4, seed=1, start_step=3, steps=6, rank=0, world=1))
    assert full[3:] == tail
    assert sorted(sum(full[:5], [])[:10]) == list(range(10))  # first epoch is a permutation
    halves = [list(StepBatchSampler(10, 4, 1, 0, 6, r, 2)) for r in range(2)]
    assert [sorted(a + b) for a, b in zip(*halves)] == [sorted(b) for b in full]


def test_kill_and_resume_is_exact(tmp_path):
    ref = _loop(tmp_path / "ref")
    ref.fit()

    def kill(loop, step):
        if step == 12:
            raise KeyboardInterrupt

    killed = _loop(tmp_path / "run", callbacks=[Callback(1, kill)])
    with pytest.raises(KeyboardInterrupt):
        killed.fit()
    assert killed.latest_checkpoint().name == "step_00000010"

    resumed = _loop(tmp_path / "run")
    resumed.fit(resume=True)
    assert resumed.step == 20
    for a, b in zip(ref.unwrapped.state_dict().values(), resumed.unwrapped.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b in zip(ref.ema.model.state_dict().values(), resumed.ema.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    names = {r["name"] for r in RunDir(tmp_path / "run").read_log()}
    assert {"train/loss", "train/mse", "train/grad_norm", "train/lr"} <= names


def test_nan_loss_stops_with_message_and_keeps_last_checkpoint(tmp_path):
    loop = _loop(tmp_path / "nan")

    def poison(lp, step):
        if step == 7:
            with torch.no_grad():
                lp.unwrapped[0].weight.fill_(float("nan"))

    loop.callbacks.append(Callback(1, poison))
    with pytest.raises(
        UserError, match=r"loss is nan at step 7; last good checkpoint: .*step_00000005"
    ):
        loop.fit()
    assert [p.name for p in loop.checkpoints()] == ["step_00000005"]


def test_loss_decreases_and_ema_differs(tmp_path):
    loop = _loop(tmp_path / "fit", steps=60)
    loop.fit()
    log = [r["value"] for r in loop.run.read_log() if r["name"] == "train/mse"]
    assert log[-1] < 0.5 * log[0]
    w = loop.unwrapped[0].weight
    assert not torch.equal(w, loop.ema.model[0].weight)
