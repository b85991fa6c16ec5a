"""The generator of the benchmark: one DiT (:mod:`.dit`), rectified flow (:mod:`.flow`), its text
conditioning (:mod:`.text`), the self-describing :class:`Generator` (:mod:`.generator`:
``save_pretrained`` / ``from_pretrained``) and inference with classifier-free guidance
(:mod:`.sampling`). Training lives in :mod:`latentbench.train.generator`, the ``train-gen`` runner
in :mod:`latentbench.bench.generation`, rebuilding a trained one from its run folder in
:mod:`latentbench.bench.generator_runs`."""

from latentbench.gen.dit import (
    PRESETS,
    Condition,
    CondKind,
    CondSpec,
    DiT,
    DiTConfig,
    EditLayout,
    preset,
)
from latentbench.gen.flow import FlowConfig, Sampler, dimension_shift, sample, shift_time
from latentbench.gen.generator import Generator, TaskKind
from latentbench.gen.sampling import Conditions, decode, generate, guided_velocity

__all__ = [
    "PRESETS",
    "CondKind",
    "CondSpec",
    "Condition",
    "Conditions",
    "DiT",
    "DiTConfig",
    "EditLayout",
    "FlowConfig",
    "Generator",
    "Sampler",
    "TaskKind",
    "decode",
    "dimension_shift",
    "generate",
    "guided_velocity",
    "preset",
    "sample",
    "shift_time",
]
