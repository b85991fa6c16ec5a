"""The stages of an experiment at full size: the models of each step with random weights and
one unit of each step's work (:mod:`latentbench.plan` says what is measured)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

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
    from latentbench.spaces import build_space, takes_option

    steps = {t.name: t for t in exp.tokenizers}
    if name in steps:
        return build_tokenizer_space(steps[name])
    options: dict[str, Any] = {"pretrained": False}
    if takes_option(name, "image_size"):
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
    from dataclasses import fields

    from latentbench.bench.generation import TrainGenConfig

    return TrainGenConfig(
        **{
            **{f.name: getattr(step, f.name) for f in fields(TrainGenConfig)},
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
