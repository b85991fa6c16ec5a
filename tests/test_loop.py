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


def _loop(tmp, steps=20, callbacks=(), task=None, **cfg) -> TrainLoop:
    """A loop in run folder ``tmp``: a new run, or (a manifest is there) the run resumed as the
    commands resume one."""
    config = LoopConfig(
        steps=steps, batch_size=8, lr=1e-2, ema_decay=0.9, checkpoint_every=5, log_every=1, **cfg
    )
    if (Path(tmp) / "manifest.json").is_file():
        run = RunDir(tmp)
        run.resume("test", {}, 0, checkpoint_step(tmp))
    else:
        run = RunDir.create(tmp, "test", {}, seed=0)
    task = task or NoisyRegression()
    return TrainLoop(task, _data(), None, config, run, callbacks, quiet=True)


def _curve(run: Path) -> list[tuple]:
    """metrics.jsonl as (step, name, value), without the one wall-clock series."""
    rows = read_jsonl(run / "metrics.jsonl")
    return [(r["step"], r["name"], r["value"]) for r in rows if r["name"] != "train/images_per_s"]


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
    assert _curve(tmp_path / "run") == _curve(tmp_path / "ref")


def test_an_evaluation_at_a_checkpoint_step_survives_a_kill_inside_it(tmp_path):
    """The evaluation of a step runs before that step's checkpoint: killed inside it, the run
    resumes from the checkpoint before and evaluates the step again."""

    def evaluate(loop, step):
        loop.run.log(step, "eval/step", float(step))

    def killed_evaluating_10(loop, step):
        if step == 10 and loop.run.path.name == "run":
            raise KeyboardInterrupt
        evaluate(loop, step)

    _loop(tmp_path / "ref", callbacks=[Callback(5, evaluate)]).fit()
    with pytest.raises(KeyboardInterrupt):
        _loop(tmp_path / "run", callbacks=[Callback(5, killed_evaluating_10)]).fit()
    assert checkpoint_step(tmp_path / "run") == 5
    _loop(tmp_path / "run", callbacks=[Callback(5, evaluate)]).fit(resume=True)
    assert _curve(tmp_path / "run") == _curve(tmp_path / "ref")
    assert (10, "eval/step", 10.0) in _curve(tmp_path / "run")


def test_resuming_a_finished_run_returns_its_final_train_values(tmp_path):
    final = _loop(tmp_path / "run", steps=10).fit()
    again = _loop(tmp_path / "run", steps=10)
    assert again.fit(resume=True) == final  # read back from metrics.jsonl: no step trained
    assert again.step == 10 and final["loss"] > 0


class BigLoss(NoisyRegression):
    """The test task with its loss x1e6: gradients large enough for a loss scale to matter."""

    def loss(self, model, batch, ctx):
        out = super().loss(model, batch, ctx)
        return {"loss": out["loss"] * 1e6, "mse": out["mse"]}


def test_the_fp16_loss_scale_is_checkpointed(tmp_path, monkeypatch):
    """Where accelerate keeps a GradScaler (fp16 on a GPU), its scale decides which steps are
    skipped; a resume restores it. Simulated on the CPU: a CPU GradScaler where accelerate puts
    the CUDA one, near the float32 limit and growing every step, so that steps overflow."""
    import accelerate

    real_init = accelerate.Accelerator.__init__

    def with_scaler(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        self.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**104, growth_interval=1)

    monkeypatch.setattr(accelerate.Accelerator, "__init__", with_scaler)
    scales: dict[str, list[float]] = {}

    def watch(loop, step):
        scales.setdefault(loop.run.path.name, []).append(loop.accelerator.scaler.get_scale())

    def kill(loop, step):
        if step == 7:
            raise KeyboardInterrupt

    def loop(name: str, callbacks=()) -> TrainLoop:
        watching = [Callback(1, watch), *callbacks]
        return _loop(tmp_path / name, 10, watching, task=BigLoss(), grad_clip=None)

    ref = loop("ref")
    ref.fit()
    assert len(set(scales["ref"])) > 2  # the scale moved: steps overflowed and were skipped
    with pytest.raises(KeyboardInterrupt):
        loop("run", [Callback(1, kill)]).fit()
    resumed = loop("run")
    resumed.fit(resume=True)
    assert scales["run"][-3:] == scales["ref"][-3:]
    _assert_same_weights(ref, resumed)


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


def test_a_new_start_in_a_killed_runs_folder_starts_a_fresh_log(tmp_path):
    """Killed before its first checkpoint, a run is started again (not resumed): the killed
    start's rows must not stay in front of the new ones."""
    run = RunDir.create(tmp_path / "run", "test", {}, seed=0)
    run.log(1, "train/loss", 0.5)
    run = RunDir.create(tmp_path / "run", "test", {}, seed=0)
    run.log(1, "train/loss", 0.25)
    assert [r["value"] for r in read_jsonl(run.path / "metrics.jsonl")] == [0.25]


def test_a_resume_may_run_longer_but_not_change_what_the_run_is(tmp_path):
    config = {"loop": {"steps": 10, "lr": 0.01, "betas": (0.9, 0.999)}, "cache": "/a"}
    run = RunDir.create(tmp_path / "run", "test", config, seed=0)
    run.log(5, "train/loss", 0.5)
    run.log(6, "train/loss", 0.4)
    kept = (run.path / "manifest.json").read_text()

    changed = {**config, "loop": {**config["loop"], "lr": 0.001, "betas": (0.5, 0.6)}}
    with pytest.raises(
        UserError, match=r"loop\.betas: \[0\.9, 0\.999\] -> \[0\.5, 0\.6\]; loop\.lr"
    ):
        run.resume("test", changed, 0, from_step=5)
    with pytest.raises(UserError, match=r"\(seed: 0 -> 1\)"):
        run.resume("test", config, 1, from_step=5)
    assert (run.path / "manifest.json").read_text() == kept  # refused before writing anything
    assert len(read_jsonl(run.path / "metrics.jsonl")) == 2

    stats = {
        "mean": [0.1],
        "std": [1.0],
    }  # of a cache rebuilt elsewhere: may differ in the last bits
    longer = {"loop": {**config["loop"], "steps": 20}, "cache": "/elsewhere", "stats": stats}
    run.resume("test", longer, 0, from_step=5)
    assert run.manifest["config"]["loop"]["steps"] == 20
    assert [r["step"] for r in read_jsonl(run.path / "metrics.jsonl")] == [5]
    # no checkpoint yet: nothing to continue, so any settings start the run again
    run.resume("test", changed, 1, from_step=None)
    assert read_jsonl(run.path / "metrics.jsonl") == []


def test_pruning_also_removes_a_checkpoint_a_kill_left_half_deleted(tmp_path):
    loop = _loop(tmp_path / "run", steps=15)
    half_deleted = loop.checkpoint_dir / "step_00000001"  # its state.json went first
    (half_deleted).mkdir(parents=True)
    (half_deleted / "model.safetensors").write_bytes(b"")
    loop.fit()
    names = sorted(p.name for p in loop.checkpoint_dir.iterdir())
    assert names == ["step_00000010", "step_00000015"]


def test_a_checkpoint_is_on_the_disk_before_an_older_one_is_pruned(tmp_path, monkeypatch):
    """After a power loss the newest checkpoint may be gone, never the only intact one: the
    log rows up to a checkpoint, then the checkpoint with its name, are flushed to the disk
    before pruning deletes the checkpoint it replaces."""
    import os
    import shutil

    calls: list[tuple[str, str]] = []
    fsync, rmtree = os.fsync, shutil.rmtree

    def record_fsync(fd: int) -> None:
        calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        fsync(fd)

    def record_rmtree(path, *args, **kwargs) -> None:
        calls.append(("rmtree", str(path)))
        rmtree(path, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", record_fsync)
    monkeypatch.setattr(shutil, "rmtree", record_rmtree)
    loop = _loop(tmp_path, steps=10, keep_checkpoints=1)
    loop.fit()
    pruned = calls.index(("rmtree", str(loop.checkpoint_dir / "step_00000005")))
    new = str(loop.checkpoint_dir / "step_00000010")
    synced = [i for i, c in enumerate(calls) if c == ("fsync", str(loop.checkpoint_dir))]
    assert any(i < pruned for i in synced), "pruned before the new checkpoint's name was flushed"
    files = [c[1] for c in calls[:pruned] if c[0] == "fsync"]
    assert any(f.endswith("model.safetensors") and ".step_00000010." in f for f in files), new
    log = str(tmp_path / "metrics.jsonl")
    assert log in files, "the log rows up to the checkpoint were not flushed before it"


def test_tensorboard_shows_a_resumed_run_once(tmp_path):
    """The events a killed start logged after its checkpoint are hidden from TensorBoard
    (purge_step), as metrics.jsonl drops those rows."""
    pytest.importorskip("tensorboard", reason="tensorboard (an optional tracker) not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def kill(loop, step):
        if step == 7:
            raise KeyboardInterrupt

    killed = _loop(tmp_path / "run", 10, [Callback(1, kill)], log_with="tensorboard")
    with pytest.raises(KeyboardInterrupt):
        killed.fit()
    killed.accelerator.end_training()  # its events reach the disk, as they may before a kill
    _loop(tmp_path / "run", 10, log_with="tensorboard").fit(resume=True)
    [logdir] = {p.parent for p in (tmp_path / "run" / "trackers").rglob("events.out.tfevents.*")}
    events = EventAccumulator(str(logdir))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == list(range(1, 11))
