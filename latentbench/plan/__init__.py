"""``latentbench plan EXPERIMENT``: a full-size dry run of an experiment file, without a GPU.

Every model of the experiment is built at its configured size with random weights from configs
in code (DINOv2 / SigLIP2 from transformers config classes, the VAEs from diffusers configs, the
semrec / RAE tokenizers, the generator presets; ``pretrained=False``: nothing is downloaded), and
each stage does one unit of its work on a random batch of ``batch`` images at full resolution:

- ``train-tokenizer`` step: the tokenizer's real loss (:class:`~latentbench.train.tokenizer.
  TokenizerTask`) with the discriminator switched on (the step cost after ``gan_start``), backward,
  one AdamW step. LPIPS keeps its real heads on a random backbone (``pnet_rand``), the cost of
  the real one. Stage 2 starts from random weights (no stage-1 output exists in a dry run).
- ``recon``: encode + decode of each recon space (forward only).
- ``train-gen`` step: the generator's forward on noisy latents with its condition, the flow
  loss, backward, one AdamW step. Text features of a frozen text encoder are random tensors of its
  width (the run caches them per caption, so their cost is not per step).
- ``sample`` step: one Euler step with classifier-free guidance (conditional and null batch in
  one forward), the unit of the evaluations during training.

Each stage first runs on ``torch.device("meta")`` (shapes only: exact parameter counts and FLOPs,
seconds for the whole experiment), then, while the time budget lasts and the memory fits, once on
the CPU for real: wall time, FLOPs counted again, and the peak resident memory (psutil RSS, sampled
every 10 ms, above the RSS before the models were built). A stage left on meta says why.

FLOPs are :class:`torch.utils.flop_counter.FlopCounterMode`'s: matmuls, convolutions and
attention (2 FLOPs per multiply-add), not element-wise ops. GPU-hours for the configured work =
FLOPs per image x images / (``mfu`` x ``peak_tflops``); the default is 40% of an H100 SXM's dense
bf16 peak (989 TFLOP/s), stated in the output.
"""

from __future__ import annotations

import ctypes
import gc
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from latentbench.config import to_dict
from latentbench.experiment import Experiment
from latentbench.plan.stages import (
    Measurement,
    PlanConfig,
    Stage,
    StageKind,
    count_params,
    experiment_stages,
)


class PeakRSS:
    """The process's resident memory, sampled every ``interval`` s in a thread; ``peak``."""

    def __init__(self, interval: float = 0.01) -> None:
        import psutil

        self.proc, self.interval = psutil.Process(), interval
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def release_memory() -> None:
    """Free what the last stage held and hand the heap back to the OS (glibc), so the next
    stage's RSS baseline is its own."""
    gc.collect()
    with suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.random.set_rng_state(state)


def measure(stage: Stage, device: torch.device, batch: int) -> Measurement:
    """Build ``stage`` on ``device`` and do its unit of work once, counting FLOPs; on a real
    device also the wall time of the work and the peak RSS above the pre-build RSS."""
    import psutil

    real = device.type != "meta"
    if real:
        release_memory()
    before = psutil.Process().memory_info().rss
    watch = PeakRSS() if real else nullcontext()
    with watch, seeded(0), warnings.catch_warnings():
        if not real:  # e.g. loading LPIPS's heads into meta parameters, a no-op by design
            warnings.simplefilter("ignore", UserWarning)
        with torch.device(device):
            work = stage.build(device, batch)
        t0 = time.perf_counter()
        with FlopCounterMode(display=False) as counter:
            work.run()
        seconds = time.perf_counter() - t0
    m = Measurement(
        params=count_params(work.modules),
        trainable=work.trainable,
        helper_params=count_params(work.helpers),
        flops_per_image=counter.get_total_flops() / batch,
    )
    if real:
        m.seconds, m.peak_memory_gb = seconds, (watch.peak - before) / 2**30
        del work
        release_memory()
    return m


def static_memory_gb(m: Measurement) -> float:
    """fp32 weights (4 B) + gradients and AdamW's two moments (12 B per trained parameter)."""
    return (4 * (m.params + m.helper_params) + 12 * m.trainable) / 2**30


def gpu_hours(flops_per_image: float, work: int, cfg: PlanConfig) -> float:
    return flops_per_image * work / (cfg.mfu * cfg.peak_tflops * 1e12) / 3600


# -- the plan ----------------------------------------------------------------------------------
def meta_rows(
    stages: list[Stage], cfg: PlanConfig, echo: Callable[[str], None]
) -> tuple[list[dict[str, Any]], dict[str, Measurement]]:
    """Every stage on ``torch.device("meta")``: a plan row each, and the measurements by key."""
    meta = torch.device("meta")
    measured: dict[str, Measurement] = {}
    rows: list[dict[str, Any]] = []
    for i, stage in enumerate(stages, 1):
        echo(f"[{i}/{len(stages)} meta] {stage.name}")
        if stage.arch_key not in measured:
            measured[stage.arch_key] = measure(stage, meta, cfg.batch)
        m = measured[stage.arch_key]
        rows.append(
            {
                "stage": stage.name,
                "kind": stage.kind.value,
                "params": m.params,
                "trainable_params": m.trainable,
                "helper_params": m.helper_params,
                "paper_params": stage.paper_params,
                "flops_per_image": m.flops_per_image,
                "work": stage.work,
                "work_note": stage.work_note,
                "gpu_hours": gpu_hours(m.flops_per_image, stage.work, cfg),
                "measured_on": "meta",
                "cpu_seconds": None,
                "peak_memory_gb": None,
                "notes": list(stage.notes),
            }
        )
    return rows, measured


REAL_ORDER = [StageKind.GENERATOR, StageKind.SAMPLE, StageKind.TOKENIZER, StageKind.RECON]


def cpu_steps(
    stages: list[Stage],
    rows: list[dict[str, Any]],
    measured: dict[str, Measurement],
    cfg: PlanConfig,
    echo: Callable[[str], None],
) -> float:
    """One real CPU step per family (the channel sweep shares its width-96 model's), generators
    first, while the budget lasts and the memory fits; updates ``rows``. Returns the CPU's
    observed FLOP/s."""
    import psutil

    cpu = torch.device("cpu")
    spent, flops_done = 0.0, 0.0
    throughput = cpu_throughput()  # FLOP/s of this CPU, updated from the real steps
    order = sorted(range(len(stages)), key=lambda i: REAL_ORDER.index(stages[i].kind))
    real: dict[str, tuple[int, Measurement]] = {}
    for i in order:
        stage, row = stages[i], rows[i]
        if stage.family in real:
            first, r = real[stage.family]
            row.update(cpu_seconds=r.seconds, peak_memory_gb=r.peak_memory_gb)
            row["measured_on"] = f"cpu (as {stages[first].name})"
            continue
        m = measured[stage.arch_key]
        need_gb = static_memory_gb(m)
        free_gb = psutil.virtual_memory().available / 2**30
        estimate = m.flops_per_image * cfg.batch / throughput
        if need_gb > min(cfg.max_memory_gb, 0.8 * free_gb):
            row["notes"].append(
                f"meta only: weights + AdamW need {need_gb:.1f} GiB (limit "
                f"{cfg.max_memory_gb:g}, free {free_gb:.1f})"
            )
            continue
        if spent + estimate > cfg.budget_minutes * 60:
            row["notes"].append(f"meta only: ~{estimate:.0f} s here, over the time budget")
            continue
        echo(f"[cpu] {stage.name} (batch {cfg.batch}, ~{estimate:.0f} s)")
        r = measure(stage, cpu, cfg.batch)
        spent += r.seconds or 0.0
        flops_done += r.flops_per_image * cfg.batch
        throughput = flops_done / max(spent, 1e-9)
        real[stage.family] = (i, r)
        row.update(
            measured_on="cpu",
            cpu_seconds=r.seconds,
            peak_memory_gb=r.peak_memory_gb,
            flops_per_image=r.flops_per_image,
            gpu_hours=gpu_hours(r.flops_per_image, stage.work, cfg),
        )
    return throughput


def run_plan(
    exp: Experiment, cfg: PlanConfig, echo: Callable[[str], None] = print
) -> dict[str, Any]:
    """Measure every stage of ``exp`` (module docstring); returns the JSON-able plan."""
    import psutil

    start = time.perf_counter()
    stages = experiment_stages(exp, cfg)
    rows, measured = meta_rows(stages, cfg, echo)
    throughput = None if cfg.meta_only else cpu_steps(stages, rows, measured, cfg, echo)
    totals: dict[str, float] = {}
    for row in rows:
        totals[row["kind"]] = totals.get(row["kind"], 0.0) + row["gpu_hours"]
    return {
        "experiment": exp.name,
        "assumptions": {
            "gpu": cfg.gpu,
            "peak_tflops": cfg.peak_tflops,
            "mfu": cfg.mfu,
            "gpu_hours": "FLOPs per image x images / (mfu x peak)",
            "flops": "torch.utils.flop_counter.FlopCounterMode: matmul, conv, attention",
            "peak_memory": "CPU fp32, psutil RSS above the pre-build RSS, at the dry-run batch",
        },
        "plan": to_dict(cfg),
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "load_average": os.getloadavg(),
            "torch": torch.__version__,
            "cpu_flops_per_s": throughput,
        },
        "stages": rows,
        "gpu_hours_total": totals | {"all": sum(totals.values())},
        "wall_seconds": time.perf_counter() - start,
    }


def cpu_throughput(seconds: float = 0.5) -> float:
    """FLOP/s of fp32 matmuls here (the first guess for how long a real step takes)."""
    a, b = torch.randn(512, 512), torch.randn(512, 512)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        n += 1
    return 2 * 512**3 * n / (time.perf_counter() - t0) / 2  # real steps reach about half


def _si(x: float | None, unit: str = "") -> str:
    if x is None:
        return "-"
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {prefix}{unit}".strip()
    return f"{x:.3g} {unit}".strip()


def plan_table(plan: dict[str, Any]) -> str:
    """The plan as a Markdown table, with its assumptions underneath."""
    head = (
        "| stage | params | paper | FLOPs / image | peak memory | CPU step | work | GPU-hours |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in plan["stages"]:
        mem = "-" if r["peak_memory_gb"] is None else f"{r['peak_memory_gb']:.2f} GiB"
        sec = "meta" if r["cpu_seconds"] is None else f"{r['cpu_seconds']:.1f} s"
        if r["measured_on"].startswith("cpu (as"):
            sec, mem = f"{sec}*", f"{mem}*"
        lines.append(
            f"| {r['stage']} | {_si(r['params'])} | {_si(r['paper_params'])} | "
            f"{_si(r['flops_per_image'], 'FLOP')} | {mem} | {sec} | {r['work_note']} | "
            f"{r['gpu_hours']:.3g} |"
        )
    a, totals = plan["assumptions"], plan["gpu_hours_total"]
    per_kind = ", ".join(f"{k} {v:.0f}" for k, v in totals.items() if k != "all")
    lines += [
        "",
        f"GPU-hours at {a['mfu']:.0%} MFU of one {a['gpu']} ({a['peak_tflops']:g} TFLOP/s): "
        f"{totals['all']:.0f} in all ({per_kind}). Batch {plan['plan']['batch']} per CPU step; "
        f"dry run {plan['wall_seconds'] / 60:.1f} min on {plan['machine']['cpus']} CPUs.",
    ]
    skipped = [
        f"- {r['stage']}: {n}" for r in plan["stages"] for n in r["notes"] if n.startswith("meta")
    ]
    lines += [
        "",
        "CPU step: the wall time of one step on this CPU (fp32, the dry-run batch); 'meta': "
        "measured on torch.device('meta') only (shapes: exact parameters and FLOPs, no time or "
        "memory). Tokenizer steps run with the discriminator on and LPIPS on a random backbone; "
        "text features of a frozen text encoder are random tensors of its width. '*': the CPU "
        "step of the first row of the same model (the channel sweep shares width 96's; "
        "FLOPs and GPU-hours are each row's own).",
    ]
    return "\n".join(lines + (["", "Not run on the CPU:", *skipped] if skipped else []))


def plan_experiment(
    path: str | Path,
    cfg: PlanConfig,
    out: str | Path | None = None,
    *,
    overwrite: bool = False,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The dry run of experiment file ``path``; writes ``plan.json`` and ``plan.md`` into ``out``
    (default ``runs/<name>-plan``), which must be new, empty or an earlier plan, unless
    ``overwrite``."""
    from latentbench.atomic import atomic_write_json, atomic_write_text
    from latentbench.experiment import load_experiment
    from latentbench.runs import OutputKind, claim_output, mark_output

    exp = load_experiment(path)
    out = claim_output(out or f"runs/{exp.name}-plan", OutputKind.PLAN, overwrite=overwrite)
    plan = run_plan(exp, cfg, echo)
    mark_output(out, OutputKind.PLAN)
    atomic_write_json(out / "plan.json", plan)
    atomic_write_text(out / "plan.md", plan_table(plan) + "\n")
    return plan


__all__ = [
    "PlanConfig",
    "Stage",
    "StageKind",
    "experiment_stages",
    "gpu_hours",
    "plan_experiment",
    "plan_table",
    "run_plan",
]
