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
import enum
import gc
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from latentbench.config import PositiveFloat, PositiveInt, Probability, config, to_dict
from latentbench.experiment import Experiment, GenerationStep, TokenizerStep

# Parameter counts the paper states (arXiv 2512.17909): the generator is "0.5B"; shown next to
# the generator presets of its scale.
PAPER_GENERATOR_PARAMS = 0.5e9
PAPER_SCALE_PRESETS = ("xl", "paper")
# Widths of frozen text encoders a dry run cannot download (hub id -> hidden size).
TEXT_ENCODER_DIMS = {"Qwen/Qwen2.5-0.5B": 896}
DEFAULT_TEXT_DIM = 896
DEFAULT_VOCAB = 32_000  # a learned vocabulary's size is known only from the data


class StageKind(str, enum.Enum):
    TOKENIZER = "train-tokenizer"
    RECON = "recon"
    GENERATOR = "train-gen"
    SAMPLE = "sample"


@config
class PlanConfig:
    """How the dry run measures, and what it projects onto."""

    batch: PositiveInt = 2  # images per stage on the CPU
    budget_minutes: PositiveFloat = 8.0  # wall time for the real CPU steps, all together
    max_memory_gb: PositiveFloat = 20.0  # a stage whose weights + optimizer need more: meta only
    meta_only: bool = False  # no real CPU step at all (seconds for any experiment)
    gpu: str = "H100 SXM, dense bf16"
    peak_tflops: PositiveFloat = 989.0
    mfu: Probability = 0.4
    recon_images: PositiveInt = 50_000  # images a recon run encodes when num_images is unset


@dataclass
class Workload:
    """Models built for one stage and one unit of its work on them."""

    modules: list[nn.Module]  # the model the stage is about (its parameter count)
    run: Callable[[], None]
    trainable: int = 0  # parameters the optimizer updates (discriminator included)
    helpers: list[nn.Module] = field(default_factory=list)  # teacher, LPIPS, discriminator


@dataclass
class Stage:
    """One line of the plan: a model, its unit of work and the configured amount of it."""

    name: str
    kind: StageKind
    build: Callable[[torch.device, int], Workload]  # (device, batch) -> workload
    work: int  # units (images x steps) the configured run does
    work_note: str
    arch_key: str  # stages with the same key run the same computation
    family: str = ""  # one real CPU step per family (the same model up to its channel count)
    paper_params: float | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Measurement:
    params: int
    trainable: int
    helper_params: int
    flops_per_image: float
    seconds: float | None = None  # real CPU step (build excluded)
    peak_memory_gb: float | None = None


# -- building blocks ---------------------------------------------------------------------------
def adamw(params: list[nn.Parameter], lr: float = 1e-4) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), weight_decay=0.0)


def trainable(modules: list[nn.Module]) -> list[nn.Parameter]:
    seen: dict[int, nn.Parameter] = {}
    for m in modules:
        for p in m.parameters():
            if p.requires_grad:
                seen[id(p)] = p
    return list(seen.values())


def count_params(modules: list[nn.Module]) -> int:
    seen = {id(p): p.numel() for m in modules for p in m.parameters()}
    return sum(seen.values())


def random_images(batch: int, size: int) -> Tensor:
    return torch.rand(batch, 3, size, size) * 2 - 1  # (B, 3, S, S) in [-1, 1]


# -- tokenizers --------------------------------------------------------------------------------
def tokenizer_space_options(step: TokenizerStep) -> dict[str, Any]:
    from latentbench.bench.tokenizer import load_preset

    cfg = load_preset(step.space, step.preset, step.stage)
    return {**cfg.space, **getattr(step, "space_options", {})}


def build_tokenizer_space(step: TokenizerStep) -> Any:
    from latentbench.spaces import build_space

    return build_space(step.space, pretrained=False, **tokenizer_space_options(step))


def random_backbone_perceptual(kind: Any) -> nn.Module | None:
    """The perceptual loss of ``kind`` with LPIPS's backbone random (the real heads, no
    download); other kinds as training builds them."""
    from latentbench.train.tokenizer import LPIPSPerceptual, PerceptualKind, build_perceptual

    kind = PerceptualKind(kind)
    if kind not in (PerceptualKind.LPIPS_VGG, PerceptualKind.LPIPS_ALEX):
        return build_perceptual(kind)
    import lpips

    module = LPIPSPerceptual.__new__(LPIPSPerceptual)
    nn.Module.__init__(module)
    net = "vgg" if kind is PerceptualKind.LPIPS_VGG else "alex"
    module.lpips = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
    return module.eval().requires_grad_(False)


def tokenizer_stage(step: TokenizerStep) -> Stage:
    from latentbench.bench.tokenizer import load_preset
    from latentbench.train.loop import StepContext
    from latentbench.train.tokenizer import PerceptualKind, TokenizerTask, recipe_for

    cfg = load_preset(step.space, step.preset, step.stage)
    if step.steps is not None:
        cfg.loop.steps = step.steps
    recipe = recipe_for(step.space, step.stage)

    def build(device: torch.device, batch: int) -> Workload:
        space = build_tokenizer_space(step)
        loss = replace(cfg.loss, perceptual=PerceptualKind.NONE)
        task = TokenizerTask(space, recipe, loss)
        if cfg.loss.perceptual_weight > 0:
            task.perceptual = random_backbone_perceptual(cfg.loss.perceptual)
        params = trainable([task.model])
        opt = adamw(params, cfg.loop.lr)
        images = random_images(batch, space.spec.image_size)
        ctx = StepContext(step=cfg.loss.gan_start, seed=0, rank=0, world_size=1, device=device)

        def run() -> None:
            out = task.loss(task.model, images, ctx)
            out["loss"].backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        extra = [m for m in (task.teacher, task.perceptual, task.model.disc) if m is not None]
        return Workload([space], run, sum(p.numel() for p in params), extra)

    opts = tokenizer_space_options(step)
    notes = ["discriminator on (the step after gan_start)"]
    if cfg.loss.perceptual in (PerceptualKind.LPIPS_VGG, PerceptualKind.LPIPS_ALEX):
        notes.append(f"{cfg.loss.perceptual.value}: random backbone")
    if step.stage == 2:
        notes.append("stage 2 from random weights")
    return Stage(
        name=f"tokenizer {step.name}",
        kind=StageKind.TOKENIZER,
        build=build,
        work=cfg.loop.steps * cfg.loop.batch_size,
        work_note=f"{cfg.loop.steps} steps x batch {cfg.loop.batch_size}",
        arch_key=f"tok:{step.space}:{recipe.value}:{sorted(opts.items())}",
        family=f"tok:{step.space}:{recipe.value}:{opts.get('encoder')}",
        notes=notes,
    )


# -- reconstruction ----------------------------------------------------------------------------
def build_named_space(name: str, exp: Experiment, image_size: int) -> Any:
    """A registered space, or a tokenizer step's architecture, with random weights."""
    from latentbench.spaces import build_space, space_accepts

    steps = {t.name: t for t in exp.tokenizers}
    if name in steps:
        return build_tokenizer_space(steps[name])
    options: dict[str, Any] = {"pretrained": False}
    if space_accepts(name, "image_size"):
        options["image_size"] = image_size
    return build_space(name, **options)


def shapes_count(spec: str) -> int | None:
    """N of a ``shapes:N`` data spec (the size of other data is not known without reading it)."""
    name, _, n = spec.partition(":")
    return int(n) if name.strip() == "shapes" and n.strip().isdigit() else None


def recon_stages(exp: Experiment, cfg: PlanConfig) -> list[Stage]:
    step = exp.recon
    if step is None:
        return []
    images = step.num_images or shapes_count(step.data or exp.data) or cfg.recon_images
    stages = []
    for name in step.spaces:

        def build(device: torch.device, batch: int, name: str = name) -> Workload:
            space = build_named_space(name, exp, step.image_size).eval()
            x = random_images(batch, space.spec.image_size)

            def run() -> None:
                with torch.no_grad():
                    space.decode(space.encode(x))

            return Workload([space], run)

        stages.append(
            Stage(
                name=f"recon {name}",
                kind=StageKind.RECON,
                build=build,
                work=images,
                work_note=f"{images} images (encode + decode)",
                arch_key=f"recon:{name}",
                family=f"recon:{name}",
            )
        )
    return stages


# -- generators --------------------------------------------------------------------------------
def generator_config(step: GenerationStep, exp: Experiment) -> Any:
    from latentbench.bench.generation import TrainGenConfig
    from latentbench.experiment import _settings

    return TrainGenConfig(
        **{
            **_settings(step, TrainGenConfig),
            "space": "multi",
            "data": step.data or exp.data,
            "seed": exp.seed if step.seed is None else step.seed,
        }
    )


def plan_cond_spec(gen_cfg: Any) -> tuple[Any, list[str]]:
    """The generator's condition at its configured size, without data or downloads."""
    from latentbench.gen.dit import CondKind, CondSpec
    from latentbench.gen.text import TextEncoderKind
    from latentbench.train.generator import TaskKind

    task, notes = TaskKind(gen_cfg.task), []
    if task is TaskKind.CLASS:
        return CondSpec(CondKind.CLASS, num_classes=1000), ["1000 classes"]
    edit = task is TaskKind.EDIT
    kind = TextEncoderKind(gen_cfg.text_encoder)
    if kind is TextEncoderKind.LEARNED:
        notes.append(f"learned vocabulary of {DEFAULT_VOCAB} words")
        spec = CondSpec(
            CondKind.TOKENS, vocab_size=DEFAULT_VOCAB, max_len=gen_cfg.max_text_len, edit=edit
        )
        return spec, notes
    dim = (
        384
        if kind is TextEncoderKind.MINILM
        else TEXT_ENCODER_DIMS.get(gen_cfg.text_encoder_path or "", DEFAULT_TEXT_DIM)
    )
    notes.append(f"{dim}-d text features (random; cached per caption in a run)")
    spec = CondSpec(CondKind.FEATURES, text_dim=dim, max_len=gen_cfg.max_text_len, edit=edit)
    return spec, notes


def build_generator(gen_cfg: Any, channels: int, latent_size: int, cond: Any) -> nn.Module:
    """The generator ``train-gen`` builds for this config and latent shape."""
    from latentbench.gen.qwen import build_generator as build

    return build(gen_cfg.preset, gen_cfg.dit, channels, latent_size, cond, gen_cfg.seed)


def random_condition(spec: Any, batch: int, channels: int, latent_size: int) -> Any:
    from latentbench.gen.dit import Condition, CondKind

    cond = Condition()
    if spec.kind is CondKind.CLASS:
        cond.labels = torch.randint(0, spec.num_classes, (batch,))
    else:
        cond.mask = torch.ones(batch, spec.max_len, dtype=torch.bool)
        if spec.kind is CondKind.TOKENS:
            cond.tokens = torch.randint(0, spec.vocab_size, (batch, spec.max_len))
        else:
            cond.features = torch.randn(batch, spec.max_len, spec.text_dim)
    if spec.edit:
        cond.source = torch.randn(batch, channels, latent_size, latent_size)
    return cond


def latent_shape(name: str, exp: Experiment, image_size: int) -> tuple[int, int]:
    """(channels, latent size) of a space, read from its architecture built on meta."""
    with torch.device("meta"):
        spec = build_named_space(name, exp, image_size).spec
    return spec.channels, spec.latent_size


def generator_stages(step: GenerationStep, exp: Experiment) -> list[Stage]:
    from latentbench.bench.generation import resolve

    gen_cfg = generator_config(step, exp)
    r = resolve(gen_cfg)
    tp, flow = r.train, r.flow
    cond, cond_notes = plan_cond_spec(gen_cfg)
    evals = tp.steps // tp.eval_every + 1
    paper = PAPER_GENERATOR_PARAMS if gen_cfg.preset.lower() in PAPER_SCALE_PRESETS else None
    stages = []
    for name in step.spaces:
        channels, size = latent_shape(name, exp, tp.image_size)
        key = f"gen:{to_dict(gen_cfg.dit)}:{gen_cfg.preset}:{channels}:{size}:{to_dict(cond)}"

        def build_train(
            device: torch.device, batch: int, channels: int = channels, size: int = size
        ) -> Workload:
            model = build_generator(gen_cfg, channels, size, cond)
            params = trainable([model])
            opt = adamw(params, tp.lr)
            x0 = torch.randn(batch, channels, size, size)
            eps = torch.randn_like(x0)
            t = torch.rand(batch)
            c = random_condition(cond, batch, channels, size)

            def run() -> None:
                xt = x0 + t[:, None, None, None] * (eps - x0)
                F.mse_loss(model(xt, t, c), eps - x0).backward()
                opt.step()
                opt.zero_grad(set_to_none=True)

            return Workload([model], run, sum(p.numel() for p in params))

        def build_sample(
            device: torch.device, batch: int, channels: int = channels, size: int = size
        ) -> Workload:
            model = build_generator(gen_cfg, channels, size, cond).eval()
            x = torch.randn(batch, channels, size, size)
            c = random_condition(cond, batch, channels, size)
            both = c.cat(random_condition(cond, batch, channels, size))  # cond ; null
            t = torch.full((batch,), 1.0)

            def run() -> None:
                with torch.no_grad():
                    v_c, v_u = model(torch.cat([x, x]), torch.cat([t, t]), both).chunk(2)
                    x.add_(-(1.0 / flow.sample_steps) * (v_u + flow.guidance * (v_c - v_u)))

            return Workload([model], run)

        label = f"{step.name} {name}"
        stages.append(
            Stage(
                name=f"train-gen {label}",
                kind=StageKind.GENERATOR,
                build=build_train,
                work=tp.steps * tp.batch_size,
                work_note=f"{tp.steps} steps x batch {tp.batch_size}",
                arch_key="train:" + key,
                family=f"train:{step.name}",
                paper_params=paper,
                notes=[f"{channels}x{size}x{size} latents", *cond_notes],
            )
        )
        stages.append(
            Stage(
                name=f"sample {label}",
                kind=StageKind.SAMPLE,
                build=build_sample,
                work=tp.eval_samples * flow.sample_steps * evals,
                work_note=(
                    f"{evals} evaluations x {tp.eval_samples} samples x {flow.sample_steps} "
                    f"{flow.sampler.value} steps, CFG {flow.guidance:g}"
                ),
                arch_key="sample:" + key,
                family=f"sample:{step.name}",
                paper_params=paper,
            )
        )
    return stages


def experiment_stages(exp: Experiment, cfg: PlanConfig) -> list[Stage]:
    stages = [tokenizer_stage(t) for t in exp.tokenizers]
    stages += recon_stages(exp, cfg)
    for step in exp.generation:
        stages += generator_stages(step, exp)
    return stages


# -- measuring ---------------------------------------------------------------------------------
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
def run_plan(
    exp: Experiment, cfg: PlanConfig, echo: Callable[[str], None] = print
) -> dict[str, Any]:
    """Measure every stage of ``exp`` (module docstring); returns the JSON-able plan."""
    import psutil

    start = time.perf_counter()
    stages = experiment_stages(exp, cfg)
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

    # Real CPU steps: one per family (the channel sweep shares its width-96 model's), generators
    # first, while the budget lasts.
    cpu = torch.device("cpu")
    budget = 0.0 if cfg.meta_only else cfg.budget_minutes * 60
    spent, flops_done = 0.0, 0.0
    throughput = cpu_throughput()  # FLOP/s of this CPU, updated from the real steps
    order = sorted(
        range(len(stages)),
        key=lambda i: [
            StageKind.GENERATOR,
            StageKind.SAMPLE,
            StageKind.TOKENIZER,
            StageKind.RECON,
        ].index(stages[i].kind),
    )
    real: dict[str, tuple[int, Measurement]] = {}
    for i in order:
        stage, row = stages[i], rows[i]
        if cfg.meta_only:
            continue
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
        if spent + estimate > budget:
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
    from latentbench.experiment import load_experiment
    from latentbench.runs import (
        OutputKind,
        atomic_write_json,
        atomic_write_text,
        claim_output,
        mark_output,
    )

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
