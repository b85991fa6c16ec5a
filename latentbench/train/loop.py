"""The one training loop of latentbench. Tokenizers and generators both train here.

What the loop owns: devices and processes (accelerate: CPU, one GPU, many GPUs, many nodes),
mixed precision, the optimizer (AdamW, linear warm-up, gradient clipping), EMA, checkpoints,
exact resume, the NaN guard, the progress bar and metrics.jsonl. What a :class:`TrainTask` owns:
the modules, the loss, and what to do at evaluation time (through callbacks).

Exact resume, by construction rather than by saving RNG states:
- the data order is a pure function of (seed, step): :class:`StepBatchSampler` draws each epoch's
  permutation from ``seed + epoch`` and starts at ``step * batch_size``;
- before each step every process reseeds torch with ``(seed, step, rank)``, so noise, dropout and
  timesteps drawn in the loss depend on the step alone;
- model, EMA, optimizer and scheduler states are saved as one atomic checkpoint folder.
So a run killed at any moment and resumed from its last checkpoint ends with the same weights as
an uninterrupted run (tests/test_loop.py proves it).
"""

from __future__ import annotations

import contextlib
import copy
import enum
import shutil
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from safetensors.torch import save_file
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler

from latentbench.atomic import atomic_write_json
from latentbench.config import (
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Probability,
    config,
)
from latentbench.errors import UserError
from latentbench.files import (
    first_line,
    load_safetensors,
    note,
    read_json_object,
    read_jsonl,
    safetensors_problem,
    torch_load,
)
from latentbench.runs import RunDir, staged_dir
from latentbench.terminal import Progress


class MixedPrecision(str, enum.Enum):
    NO = "no"
    BF16 = "bf16"
    FP16 = "fp16"


class Tracker(str, enum.Enum):
    """An experiment tracker of accelerate that also gets every metrics.jsonl point (optional:
    skipped with one line when its package is not installed)."""

    TENSORBOARD = "tensorboard"
    WANDB = "wandb"


@config
class LoopConfig:
    """Optimisation and bookkeeping settings shared by every training run."""

    steps: PositiveInt = 1000
    batch_size: PositiveInt = 32  # global batch, split over processes
    lr: PositiveFloat = 1e-4
    weight_decay: NonNegativeFloat = 0.0
    betas: tuple[Probability, Probability] = (0.9, 0.999)
    warmup_steps: NonNegativeInt = 0
    grad_clip: PositiveFloat | None = 1.0
    ema_decay: Probability | None = 0.9999  # None: no EMA copy
    mixed_precision: MixedPrecision = MixedPrecision.NO
    compile: bool = False
    seed: NonNegativeInt = 0
    log_every: PositiveInt = 10
    checkpoint_every: PositiveInt = 500
    keep_checkpoints: PositiveInt = 2
    num_workers: NonNegativeInt = 0
    log_with: Tracker | None = None  # also log to tensorboard (RUN/trackers) or wandb


@dataclass
class StepContext:
    """What the loss sees besides the batch."""

    step: int
    seed: int
    rank: int
    world_size: int
    device: torch.device


class TrainTask(Protocol):
    """A thing to train: modules, a loss, and which parameters the optimizer updates."""

    model: nn.Module  # every module with state that the checkpoint must hold

    def loss(self, model: nn.Module, batch: Any, ctx: StepContext) -> dict[str, Tensor]:
        """Scalar losses; the key ``"loss"`` is optimised, every key is logged."""
        ...


@dataclass
class Callback:
    """Hook into the loop: ``every`` steps (and at the last step) call ``fn(loop, step)``."""

    every: int
    fn: Callable[[TrainLoop, int], None]


class StepBatchSampler(Sampler[list[int]]):
    """Global batches as a pure function of (seed, step); this process's share of each.

    Each epoch is a permutation of the dataset drawn from ``seed + epoch``; a global batch of
    size B at step k holds positions [k*B, (k+1)*B) of the concatenated epochs. Process ``rank``
    of ``world_size`` takes every ``world_size``-th index of it.
    """

    def __init__(
        self, n: int, batch_size: int, seed: int, start_step: int, steps: int, rank: int, world: int
    ) -> None:
        if n <= 0:
            raise UserError("the training data is empty")
        if batch_size % world:
            raise UserError(f"batch size {batch_size} must be divisible by {world} processes")
        self.n, self.bs, self.seed = n, batch_size, seed
        self.start, self.steps, self.rank, self.world = start_step, steps, rank, world

    def _epoch(self, epoch: int) -> Tensor:
        return torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + epoch))

    def __iter__(self) -> Iterator[list[int]]:
        pos = self.start * self.bs
        epoch, perm = -1, None
        for _ in range(self.start, self.steps):
            batch = []
            for p in range(pos, pos + self.bs):
                e, i = divmod(p, self.n)
                if e != epoch:
                    epoch, perm = e, self._epoch(e)
                batch.append(int(perm[i]))
            pos += self.bs
            yield batch[self.rank :: self.world]

    def __len__(self) -> int:
        return max(0, self.steps - self.start)


class EMA:
    """Exponential moving average of a module's floating-point parameters and buffers."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema = [t for t in self.model.state_dict().values() if t.is_floating_point()]
        src = [t for t in model.state_dict().values() if t.is_floating_point()]
        torch._foreach_lerp_(ema, [s.to(e.dtype) for s, e in zip(src, ema)], 1 - self.decay)


def checkpoint_problem(path: Path) -> str | None:
    """Why the checkpoint folder ``path`` cannot be resumed from, or None when it can.

    Cheap but real: ``state.json`` is an object whose step is the folder's; each safetensors
    file's header parses and its tensors cover the file exactly (a truncated file fails); the
    zip archive ``torch.save`` wrote to ``optimizer.pt`` is complete and every member matches
    its CRC. Nothing is unpickled.
    """
    try:
        step = read_json_object(path / "state.json", {"step": int})["step"]
    except UserError as e:
        return str(e)
    if path.name != f"step_{step:08d}":
        return f"{path / 'state.json'} says step {step}"
    for name in ("model.safetensors", "ema.safetensors"):
        if name == "model.safetensors" or (path / name).exists():
            problem = safetensors_problem(path / name)
            if problem is not None:
                return f"{path / name}: {problem}"
    try:
        with zipfile.ZipFile(path / "optimizer.pt") as archive:
            bad = archive.testzip()
    except (OSError, zipfile.BadZipFile) as e:
        return f"{path / 'optimizer.pt'}: {first_line(e)}"
    return f"{path / 'optimizer.pt'}: {bad} fails its CRC check" if bad else None


def resumable_checkpoint(checkpoint_dir: Path) -> tuple[Path | None, list[str]]:
    """The newest checkpoint folder under ``checkpoint_dir`` that can be resumed from (None:
    none), and why each newer one cannot (newest first)."""
    found = sorted(p for p in Path(checkpoint_dir).glob("step_*") if p.is_dir())
    damaged: list[str] = []
    for path in reversed(found):
        problem = checkpoint_problem(path)
        if problem is None:
            return path, damaged
        damaged.append(problem)
    return None, damaged


def _none_intact(checkpoint_dir: Path, damaged: list[str]) -> UserError:
    return UserError(
        f"{checkpoint_dir}: no checkpoint can be resumed from ({'; '.join(damaged)}); "
        "start a new run (another --out)"
    )


def checkpoint_step(run_path: str | Path) -> int | None:
    """Step of the newest checkpoint under ``run_path/checkpoints`` that can be resumed from
    (None: none written yet); a UserError when there are checkpoints but none is intact."""
    folder = Path(run_path, "checkpoints")
    path, damaged = resumable_checkpoint(folder)
    if path is None and damaged:
        raise _none_intact(folder, damaged)
    return _saved_step(path) if path else None


def _saved_step(checkpoint: Path) -> int:
    """The step a checkpoint folder was written at (its state.json)."""
    return int(read_json_object(checkpoint / "state.json", {"step": int})["step"])


def step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step * 9_973 + rank) % (2**63)


class TrainLoop:
    """Run ``task`` for ``config.steps`` optimizer steps, writing into ``run``."""

    def __init__(
        self,
        task: TrainTask,
        data: Dataset,
        collate: Callable[[list[Any]], Any] | None,
        config: LoopConfig,
        run: RunDir,
        callbacks: Sequence[Callback] = (),
        params: Sequence[nn.Parameter] | Sequence[dict[str, Any]] | None = None,
        quiet: bool = False,
    ) -> None:
        from accelerate import Accelerator

        self.task, self.data, self.collate, self.config = task, data, collate, config
        self.run, self.callbacks, self.quiet = run, list(callbacks), quiet
        tracker = available_tracker(config.log_with)
        self.accelerator = Accelerator(
            mixed_precision=MixedPrecision(config.mixed_precision).value,
            log_with=tracker.value if tracker else None,
            project_dir=str(run.path / "trackers") if tracker else None,
        )
        if tracker is not None:
            kwargs = _tracker_kwargs(tracker, run.path / "checkpoints")
            self.accelerator.init_trackers(run.path.name, init_kwargs=kwargs)
            run.listeners.append(self._to_tracker)
        if torch.cuda.is_available():
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        torch.manual_seed(config.seed)  # identical initialisation on every process
        trainable = (
            params
            if params is not None
            else [p for p in task.model.parameters() if p.requires_grad]
        )
        self.optimizer = torch.optim.AdamW(
            trainable, lr=config.lr, betas=tuple(config.betas), weight_decay=config.weight_decay
        )
        warmup = max(1, config.warmup_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: min(1.0, (s + 1) / warmup)
        )
        self.model, self.optimizer = self.accelerator.prepare(task.model, self.optimizer)
        if config.compile:
            self.model = torch.compile(self.model)
        self.ema = EMA(task.model, config.ema_decay) if config.ema_decay else None
        if self.ema is not None:
            self.ema.model.to(self.accelerator.device)
        self.step = 0
        # Wall-clock of the run: seconds before this process (from the resumed checkpoint)
        # plus this process's; every metrics.jsonl row gets it as `seconds`.
        self._seconds_before, self._started = 0.0, time.perf_counter()
        run.clock = self.elapsed

    # -- properties ------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def unwrapped(self) -> nn.Module:
        return self.accelerator.unwrap_model(self.model)

    @property
    def eval_model(self) -> nn.Module:
        """The EMA model when there is one, else the raw model."""
        return self.ema.model if self.ema is not None else self.unwrapped

    @property
    def checkpoint_dir(self) -> Path:
        return self.run.path / "checkpoints"

    def _to_tracker(self, row: dict[str, Any]) -> None:
        """Send one metrics.jsonl point to the accelerate tracker."""
        self.accelerator.log({row["name"]: row["value"]}, step=row["step"])

    def elapsed(self) -> float:
        """Wall-clock seconds of the run so far, across resumes (checkpoints keep it)."""
        return self._seconds_before + time.perf_counter() - self._started

    # -- the loop --------------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> dict[str, float]:
        cfg = self.config
        if resume:
            self.load_checkpoint()
        sampler = StepBatchSampler(
            len(self.data),
            cfg.batch_size,
            cfg.seed,
            self.step,
            cfg.steps,
            self.accelerator.process_index,
            self.accelerator.num_processes,
        )
        loader = DataLoader(
            self.data,
            batch_sampler=sampler,
            collate_fn=self.collate,
            num_workers=cfg.num_workers,
            persistent_workers=False,
        )
        bar = Progress(
            cfg.steps,
            f"train {self.run.path.name}",
            disable=self.quiet or not self.is_main,
            initial=self.step,
        )
        last = self._logged_train_values()  # a resume that trains no step returns these
        self.model.train()
        clock, step_time, timed_steps = time.perf_counter(), 0.0, 0
        for batch in loader:
            torch.manual_seed(step_seed(cfg.seed, self.step, self.accelerator.process_index))
            ctx = StepContext(
                self.step,
                cfg.seed,
                self.accelerator.process_index,
                self.accelerator.num_processes,
                self.device,
            )
            with self.accelerator.autocast():
                losses = self.task.loss(self.model, batch, ctx)
            loss = losses["loss"]
            self._check_finite(loss)
            self.optimizer.zero_grad(set_to_none=True)
            self.accelerator.backward(loss)
            grad_norm = None
            if cfg.grad_clip:
                grad_norm = self.accelerator.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            if self.ema is not None:
                self.ema.update(self.unwrapped)
            self.step += 1
            # throughput of training steps alone (data loading included; evaluation excluded)
            step_time, timed_steps = step_time + time.perf_counter() - clock, timed_steps + 1

            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                rate = cfg.batch_size * timed_steps / max(step_time, 1e-9)
                last = self._log(losses, grad_norm, images_per_s=rate)
                step_time, timed_steps = 0.0, 0
                bar.set_postfix(loss=f"{last['loss']:.4f}")
            bar.update(1)
            # Callbacks (evaluations) run before the checkpoint of their step: a run killed
            # between the two resumes from the checkpoint before and evaluates this step again.
            for cb in self.callbacks:
                if self.step % cb.every == 0 or self.step == cfg.steps:
                    cb.fn(self, self.step)
                    self.model.train()
            if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                self.save_checkpoint()
            clock = time.perf_counter()
        bar.close()
        self.accelerator.wait_for_everyone()
        if self.config.log_with is not None:
            self.accelerator.end_training()  # flushes and closes the trackers
        return last

    def _check_finite(self, loss: Tensor) -> None:
        if not torch.isfinite(loss.detach()).all():
            ckpt = self.latest_checkpoint()
            where = f"; last good checkpoint: {ckpt}" if ckpt else "; no checkpoint was written"
            raise UserError(f"loss is {loss.item()} at step {self.step}{where}")

    def _log(
        self, losses: dict[str, Tensor], grad_norm: Tensor | None, images_per_s: float
    ) -> dict[str, float]:
        values = {k: v.detach().float() for k, v in losses.items()}
        if grad_norm is not None:
            values["grad_norm"] = torch.as_tensor(
                grad_norm, dtype=torch.float32, device=self.device
            )
        values["lr"] = torch.tensor(self.scheduler.get_last_lr()[0], device=self.device)
        keys = sorted(values)
        stacked = self.accelerator.reduce(torch.stack([values[k] for k in keys]), "mean")
        out = dict(zip(keys, stacked.tolist()))
        if self.is_main:
            for k, v in out.items():
                self.run.log(self.step, f"train/{k}", v)
            self.run.log(self.step, "train/images_per_s", images_per_s)  # global batch / s
        return out

    def _logged_train_values(self) -> dict[str, float]:
        """What :meth:`_log` returned at the current step, read back from metrics.jsonl (empty
        at step 0 or when that step logged nothing)."""
        rows = read_jsonl(self.run.path / "metrics.jsonl") if self.step else []
        train = {
            r["name"].removeprefix("train/"): r["value"]
            for r in rows
            if r.get("step") == self.step and str(r.get("name")).startswith("train/")
        }
        train.pop("images_per_s", None)
        return train

    # -- checkpoints -----------------------------------------------------------------------------
    def save_checkpoint(self) -> Path | None:
        """Write ``checkpoints/step_XXXXXXXX`` atomically (temp folder, then rename)."""
        self.accelerator.wait_for_everyone()
        if not self.is_main:
            return None
        final = self.checkpoint_dir / f"step_{self.step:08d}"
        self.run.sync_log()  # the rows up to this step are on the disk before the checkpoint
        with staged_dir(final) as tmp:
            save_file(_cpu_state(self.unwrapped), str(tmp / "model.safetensors"))
            if self.ema is not None:
                save_file(_cpu_state(self.ema.model), str(tmp / "ema.safetensors"))
            scaler = self.accelerator.scaler  # fp16 only: its scale decides which steps skip
            torch.save(
                {
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                    "scaler": scaler.state_dict() if scaler is not None else None,
                },
                tmp / "optimizer.pt",
            )
            state = {"step": self.step, "seed": self.config.seed, "seconds": self.elapsed()}
            atomic_write_json(tmp / "state.json", state)
        # Older than the kept ones: also a folder a kill left half-deleted (no state.json).
        oldest_kept = self.checkpoints()[-self.config.keep_checkpoints :][0].name
        for old in self.checkpoint_dir.glob("step_*"):
            if old.is_dir() and old.name < oldest_kept:
                shutil.rmtree(old, ignore_errors=True)
        return final

    def checkpoints(self) -> list[Path]:
        if not self.checkpoint_dir.is_dir():
            return []
        return sorted(
            p
            for p in self.checkpoint_dir.glob("step_*")
            if p.is_dir() and (p / "state.json").is_file()
        )

    def latest_checkpoint(self) -> Path | None:
        found = self.checkpoints()
        return found[-1] if found else None

    def load_checkpoint(self, path: Path | None = None) -> bool:
        """Restore model, EMA, optimizer, scheduler and step; False when there is none.

        Without ``path``: the newest checkpoint that can be resumed from; newer damaged ones are
        skipped with a note (printed, and kept in the run's manifest). A UserError when there
        are checkpoints but none is intact.
        """
        if path is None:
            path, damaged = resumable_checkpoint(self.checkpoint_dir)
            if path is None and damaged:
                raise _none_intact(self.checkpoint_dir, damaged)
            if path is None:
                return False
            if damaged:
                skipped = "; ".join(damaged)
                self._note(f"resuming from {path.name}, the newest intact checkpoint; {skipped}")
        state = read_json_object(path / "state.json", {"step": int})
        self.unwrapped.load_state_dict(load_safetensors(path / "model.safetensors"))
        if self.ema is not None and (path / "ema.safetensors").is_file():
            self.ema.model.load_state_dict(load_safetensors(path / "ema.safetensors"))
        opt = torch_load(path / "optimizer.pt", map_location=self.device)
        self.optimizer.load_state_dict(opt["optimizer"])
        self.scheduler.load_state_dict(opt["scheduler"])
        if self.accelerator.scaler is not None and opt.get("scaler") is not None:
            self.accelerator.scaler.load_state_dict(opt["scaler"])
        self.step = int(state["step"])
        seconds = state.get("seconds")  # absent in checkpoints written before it was kept
        self._seconds_before = float(seconds) if isinstance(seconds, (int, float)) else 0.0
        self._started = time.perf_counter()
        return True

    def _note(self, message: str) -> None:
        """Print ``message`` and keep it under ``notes`` in the run's manifest (main process)."""
        if not self.is_main:
            return
        note(message)
        path = self.run.path / "manifest.json"
        if path.is_file():
            manifest = self.run.manifest
            atomic_write_json(path, {**manifest, "notes": [*manifest.get("notes", []), message]})


def _tracker_kwargs(tracker: Tracker, checkpoints: Path) -> dict[str, Any]:
    """TensorBoard hides the events a killed start logged after the step this start continues
    from (its newest intact checkpoint's; 0 for a new start), as metrics.jsonl drops those rows.
    (A wandb start is a new wandb run.)"""
    if tracker is not Tracker.TENSORBOARD:
        return {}
    newest, _ = resumable_checkpoint(checkpoints)
    return {"tensorboard": {"purge_step": _saved_step(newest) + 1 if newest else 0}}


def available_tracker(tracker: Tracker | None) -> Tracker | None:
    """``tracker`` when its package is installed; else None, said in one line."""
    if tracker is None:
        return None
    from accelerate.utils import is_tensorboard_available, is_wandb_available

    found = {Tracker.TENSORBOARD: is_tensorboard_available, Tracker.WANDB: is_wandb_available}
    if found[Tracker(tracker)]():
        return Tracker(tracker)
    note(f"--log-with {Tracker(tracker).value}: its package is not installed; logging skipped")
    return None


def _cpu_state(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    was = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was)
