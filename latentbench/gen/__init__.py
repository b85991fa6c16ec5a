"""The generator of the benchmark: one DiT (:mod:`.dit`), rectified flow (:mod:`.flow`) and its
text conditioning (:mod:`.text`). Training lives in :mod:`latentbench.train.generator`, the
``train-gen`` runner in :mod:`latentbench.bench.generation`."""

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

__all__ = [
    "PRESETS",
    "CondKind",
    "CondSpec",
    "Condition",
    "DiT",
    "DiTConfig",
    "EditLayout",
    "FlowConfig",
    "Sampler",
    "dimension_shift",
    "preset",
    "sample",
    "shift_time",
]
