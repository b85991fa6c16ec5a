"""The settings of a ``train-gen`` run: :class:`TrainGenConfig` (what the user gives), the
training presets (``TRAIN_PRESETS``: the defaults the paper leaves open at each scale) and
:func:`resolve`, which fills every ``None`` from the preset.

Training presets and architecture presets are separate tables: ``preset`` picks the training
preset, ``arch`` the DiT architecture (:data:`latentbench.gen.dit.PRESETS`; default: the
architecture of the same name), and ``dit`` overrides single architecture fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator

from latentbench.config import (
    ImageSize,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Probability,
    SampleSteps,
    config,
)
from latentbench.data import DEFAULT_MAX_PIXELS, MaxPixels
from latentbench.errors import UserError, did_you_mean, unknown_choice
from latentbench.gen.dit import DiTConfig, preset
from latentbench.gen.flow import FlowConfig, Sampler
from latentbench.gen.generator import TaskKind
from latentbench.gen.qwen import PAPER_PRESET, QwenGenConfig, paper_generator_config
from latentbench.gen.text import TextEncoderKind
from latentbench.train.loop import LoopConfig, MixedPrecision, Tracker

AUTO = "auto"


def check_fd_extractor(name: str) -> str:
    """``auto``, ``none``, ``timm:<model>`` or a registered feature extractor (plugins too)."""
    from latentbench.metrics.features import FEATURE_EXTRACTORS

    if name in (AUTO, "none") or name.startswith("timm:") or name in FEATURE_EXTRACTORS:
        return name
    valid = [AUTO, "none", *FEATURE_EXTRACTORS.names()]
    raise ValueError(
        f"not a feature extractor{did_you_mean(name, valid)}; valid: {', '.join(valid)}"
    )


FdExtractorName = Annotated[str, AfterValidator(check_fd_extractor)]


@dataclass(frozen=True)
class TrainPreset:
    image_size: int
    steps: int
    batch_size: int
    lr: float
    warmup_steps: int
    ema_decay: float
    eval_every: int
    eval_samples: int
    sample_steps: int
    guidance: float
    checkpoint_every: int
    reference_images: int | None  # None: no FD, so no reference set (fd_extractor "none")
    sample_shift: float | None = None  # None: the training shift


TRAIN_PRESETS: dict[str, TrainPreset] = {
    # CPU: 64 px Shapes, 8x8 tokens; minutes per space.
    "tiny": TrainPreset(64, 600, 32, 1e-3, 50, 0.99, 200, 60, 25, 2.0, 200, 500),
    "small": TrainPreset(
        256, 100_000, 256, 1e-4, 1000, 0.9999, 10_000, 2000, 50, 3.0, 5000, 10_000
    ),
    "base": TrainPreset(256, 200_000, 512, 1e-4, 1000, 0.9999, 10_000, 5000, 50, 4.0, 5000, 50_000),
    "large": TrainPreset(
        256, 200_000, 512, 1e-4, 1000, 0.9999, 10_000, 5000, 50, 4.0, 5000, 50_000
    ),
    # the paper's recipe: batch 730, 50 Euler steps, sampling shift 3, guidance 6.5
    "xl": TrainPreset(
        256, 200_000, 730, 1e-4, 1000, 0.9999, 10_000, 5000, 50, 6.5, 5000, 50_000, 3.0
    ),
}
TRAIN_PRESETS["paper"] = TRAIN_PRESETS["xl"]  # the Qwen2 generator (latentbench.gen.qwen)


@config
class TrainGenConfig:
    """One generator run. ``None`` fields take the training preset's value."""

    space: str
    task: TaskKind = TaskKind.T2I
    data: str = "shapes:2000"
    preset: str = "tiny"  # training preset (TRAIN_PRESETS)
    arch: str | None = None  # architecture preset (gen.dit.PRESETS); None: the same as preset
    image_size: ImageSize | None = None
    steps: PositiveInt | None = None
    batch_size: PositiveInt | None = None
    lr: PositiveFloat | None = None
    eval_every: PositiveInt | None = None
    eval_samples: PositiveInt | None = None
    checkpoint_every: PositiveInt | None = None
    seed: NonNegativeInt = 0
    max_pixels: MaxPixels = DEFAULT_MAX_PIXELS  # image files larger than this are skipped
    fd_extractor: FdExtractorName = (
        AUTO  # "auto": inception when it loads, else efficientnet-lite0; "none"
    )
    reference_images: PositiveInt | None = None
    text_encoder: TextEncoderKind = TextEncoderKind.LEARNED
    text_encoder_path: str | None = None
    max_text_len: PositiveInt = 32
    flip: bool = False
    shift: PositiveFloat | None = (
        None  # None: sqrt(N C p^2 / 4096), N tokens (flow.dimension_shift)
    )
    guidance: NonNegativeFloat | None = None  # None: the preset's (xl: 6.5, the paper's)
    sample_steps: SampleSteps | None = None  # None: the preset's (tiny: 25, else 50)
    sampler: Sampler = Sampler.EULER
    sample_shift: PositiveFloat | None = None  # None: the preset's (xl: 3, the paper's), else shift
    cond_dropout: Probability = 0.1
    mixed_precision: MixedPrecision = MixedPrecision.NO  # bf16 on GPUs (and avx512_bf16 CPUs)
    compile: bool = False
    num_workers: NonNegativeInt = 0
    log_with: Tracker | None = None  # also log to tensorboard / wandb (accelerate's trackers)
    space_options: dict[str, Any] = field(default_factory=dict)
    dit: dict[str, Any] = field(default_factory=dict)  # overrides of the DiT preset (width, ...)


@dataclass
class Resolved:
    """The config with every preset default filled in (what the manifest records)."""

    cfg: TrainGenConfig
    train: TrainPreset
    loop: LoopConfig
    flow: FlowConfig


def load_config(path: str | Path | None, **overrides: Any) -> TrainGenConfig:
    """A YAML file of :class:`TrainGenConfig` fields (a path, or a shipped config's name such as
    ``tiny``; unknown keys are errors), then the non-None ``overrides`` (command-line flags)."""
    from latentbench.config import from_dict, load_yaml
    from latentbench.configs import ConfigKind, config_path

    flags = {k: v for k, v in overrides.items() if v is not None}
    from_dict(TrainGenConfig, {"space": "pixel", **flags}, "train-gen", flags=flags)
    data = load_yaml(config_path(ConfigKind.GEN, path)) if path else {}
    for key, value in flags.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}  # e.g. space_options: flags win key by key
        else:
            data[key] = value
    data.setdefault("space", "pixel")
    return from_dict(TrainGenConfig, data, where=str(path) if path else "train-gen")


def dit_config(cfg: TrainGenConfig) -> DiTConfig | QwenGenConfig:
    """The network of ``cfg``: architecture preset ``arch`` (else ``preset``; ``paper``: the
    Qwen2 generator of :mod:`latentbench.gen.qwen`), seeded by ``seed``, with the ``dit``
    overrides."""
    name = cfg.arch or cfg.preset
    if name.lower() == PAPER_PRESET:
        return paper_generator_config(cfg.dit, cfg.seed)
    return preset(name, **{"seed": cfg.seed, **cfg.dit})


def resolve(cfg: TrainGenConfig) -> Resolved:
    if cfg.preset.lower() not in TRAIN_PRESETS:
        raise unknown_choice("generator preset", cfg.preset, TRAIN_PRESETS)
    tp = TRAIN_PRESETS[cfg.preset.lower()]
    pick = lambda v, d: d if v is None else v  # noqa: E731
    tp = replace(
        tp,
        image_size=pick(cfg.image_size, tp.image_size),
        steps=pick(cfg.steps, tp.steps),
        batch_size=pick(cfg.batch_size, tp.batch_size),
        lr=pick(cfg.lr, tp.lr),
        eval_every=pick(cfg.eval_every, tp.eval_every),
        eval_samples=pick(cfg.eval_samples, tp.eval_samples),
        checkpoint_every=pick(cfg.checkpoint_every, tp.checkpoint_every),
        guidance=pick(cfg.guidance, tp.guidance),
        sample_steps=pick(cfg.sample_steps, tp.sample_steps),
        sample_shift=pick(cfg.sample_shift, tp.sample_shift),
        # a run without FD compares with no reference set: it records none
        reference_images=None
        if cfg.fd_extractor == "none"
        else pick(cfg.reference_images, tp.reference_images),
    )
    for name in ("steps", "batch_size", "eval_every", "eval_samples", "checkpoint_every"):
        if getattr(tp, name) < 1:
            raise UserError(f"{name.replace('_', '-')} must be >= 1, got {getattr(tp, name)}")
    loop = LoopConfig(
        steps=tp.steps,
        batch_size=tp.batch_size,
        lr=tp.lr,
        warmup_steps=min(tp.warmup_steps, tp.steps // 10),
        ema_decay=tp.ema_decay,
        mixed_precision=MixedPrecision(cfg.mixed_precision),
        compile=cfg.compile,
        seed=cfg.seed,
        log_every=max(1, min(10, tp.steps // 20)),
        checkpoint_every=tp.checkpoint_every,
        num_workers=cfg.num_workers,
        log_with=cfg.log_with,
    )
    flow = FlowConfig(
        shift=cfg.shift,
        sample_steps=tp.sample_steps,
        sampler=Sampler(cfg.sampler),
        sample_shift=tp.sample_shift,
        guidance=tp.guidance,
        cond_dropout=cfg.cond_dropout,
    )
    return Resolved(cfg, tp, loop, flow)
