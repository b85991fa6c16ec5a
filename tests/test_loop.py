"""The one training loop: exact resume after a kill, the NaN guard, EMA, logging."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from latentbench.errors import UserError
from latentbench.files import read_jsonl
from latentbench.runs import RunDir
from latentbench.train.loop import (
    Callback,
    LoopConfig,
    StepBatchSampler,
    TrainLoop,
    checkpoint_step,
)


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


def _killed_at_12(path: Path) -> TrainLoop:
    """A 20-step run (checkpoints every 5) killed at step 12."""

    def kill(loop, step):
        if step == 12:
            raise KeyboardInterrupt

    killed = _loop(path, callbacks=[Callback(1, kill)])
    with pytest.raises(KeyboardInterrupt):
        killed.fit()
    return killed


def _assert_same_weights(a: TrainLoop, b: TrainLoop) -> None:
    for x, y in zip(a.unwrapped.state_dict().values(), b.unwrapped.state_dict().values()):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    for x, y in zip(a.ema.model.state_dict().values(), b.ema.model.state_dict().values()):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_kill_and_resume_is_exact(tmp_path):
    ref = _loop(tmp_path / "ref")
    ref.fit()
    killed = _killed_at_12(tmp_path / "run")
    assert killed.latest_checkpoint().name == "step_00000010"

    resumed = _loop(tmp_path / "run")
    resumed.fit(resume=True)
    assert resumed.step == 20
    _assert_same_weights(ref, resumed)
    names = {r["name"] for r in read_jsonl(tmp_path / "run" / "metrics.jsonl")}
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
    log = [
        r["value"] for r in read_jsonl(loop.run.path / "metrics.jsonl") if r["name"] == "train/mse"
    ]
    assert log[-1] < 0.5 * log[0]
    w = loop.unwrapped[0].weight
    assert not torch.equal(w, loop.ema.model[0].weight)


# -- damaged checkpoints ---------------------------------------------------------------------------
def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_a_data_byte(path: Path) -> None:
    """Flip one byte inside the largest member of a zip archive (its CRC no longer matches)."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)
    head = info.header_offset
    start = head + 30 + int.from_bytes(data[head + 26 : head + 28], "little")
    start += int.from_bytes(data[head + 28 : head + 30], "little")
    data[start + info.compress_size // 2] ^= 0xFF
    path.write_bytes(bytes(data))


CHECKPOINT_DAMAGE: dict[str, tuple[str, Callable[[Path], None]]] = {
    "truncated model": ("model.safetensors", _truncate),
    "empty ema": ("ema.safetensors", lambda p: p.write_bytes(b"")),
    "truncated state": ("state.json", lambda p: p.write_text('{"step": 1')),
    "truncated optimizer": ("optimizer.pt", _truncate),
    "flipped optimizer byte": ("optimizer.pt", _flip_a_data_byte),
}


@pytest.mark.parametrize("damage", sorted(CHECKPOINT_DAMAGE))
def test_resume_skips_a_damaged_checkpoint_and_stays_exact(
    damage: str, tmp_path: Path, capsys
) -> None:
    ref = _loop(tmp_path / "ref")
    ref.fit()
    _killed_at_12(tmp_path / "run")
    name, hurt = CHECKPOINT_DAMAGE[damage]
    hurt(tmp_path / "run" / "checkpoints" / "step_00000010" / name)
    assert checkpoint_step(tmp_path / "run") == 5

    capsys.readouterr()
    resumed = _loop(tmp_path / "run")
    resumed.fit(resume=True)
    assert resumed.step == 20
    err = capsys.readouterr().err
    assert "resuming from step_00000005" in err and f"step_00000010/{name}" in err
    assert "step_00000005" in RunDir(tmp_path / "run").manifest["notes"][0]
    _assert_same_weights(ref, resumed)


def test_resume_with_no_intact_checkpoint_is_one_line(tmp_path):
    _loop(tmp_path / "run", steps=10).fit()
    _truncate(tmp_path / "run" / "checkpoints" / "step_00000010" / "model.safetensors")
    _truncate(tmp_path / "run" / "checkpoints" / "step_00000005" / "optimizer.pt")
    match = r"no checkpoint can be resumed from .*step_00000010.*step_00000005"
    with pytest.raises(UserError, match=match):
        checkpoint_step(tmp_path / "run")
    with pytest.raises(UserError, match=match) as info:
        _loop(tmp_path / "run", steps=10).fit(resume=True)
    assert "\n" not in str(info.value)


def test_a_log_line_cut_by_a_kill_is_skipped_when_read(tmp_path):
    run = RunDir.create(tmp_path / "run", "test", {}, seed=0)
    assert read_jsonl(run.path / "metrics.jsonl") == []
    run.log(1, "train/loss", 0.5)
    run.log(2, "train/loss", 0.25, split="val")
    with open(run.path / "metrics.jsonl", "a") as f:
        f.write("[1, 2]\n")  # not a row
        f.write('{"step": 3, "name": "train/lo')  # killed mid-write
    rows = read_jsonl(run.path / "metrics.jsonl")
    assert [(r["step"], r["value"]) for r in rows] == [(1, 0.5), (2, 0.25)]
    assert rows[1]["split"] == "val"
