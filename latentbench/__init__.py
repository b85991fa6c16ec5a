"""latentbench: which latent space should my generator live in?

The Python API: ``latentbench.build_space`` / ``load_space`` (a space: ``encode`` / ``decode``),
``load_generator`` (a trained train-gen run) and the runner behind each command with its typed
config (``run_recon`` + ``ReconConfig``, ``train_tokenizer`` + ``TrainTokenizerConfig``, ...).
The README's "Python API" section is a runnable example. Every name is imported on first use:
``import latentbench`` itself loads no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> "module:attribute"
API: dict[str, str] = {
    # latent spaces
    "LatentSpace": "latentbench.spaces.base:LatentSpace",
    "LatentSpec": "latentbench.spaces.base:LatentSpec",
    "build_space": "latentbench.spaces:build_space",
    "load_space": "latentbench.spaces:load_space",
    "SPACES": "latentbench.spaces:SPACES",
    # generators: a trained train-gen run folder back as a model
    "load_generator": "latentbench.bench.generator_runs:load_generator",
    "Generator": "latentbench.gen.generator:Generator",
    # the runners behind the commands, each with its config type
    "ReconConfig": "latentbench.bench.recon:ReconConfig",
    "run_recon": "latentbench.bench.recon:run_recon",
    "TrainTokenizerConfig": "latentbench.bench.tokenizer:TrainTokenizerConfig",
    "train_tokenizer": "latentbench.bench.tokenizer:train_tokenizer",
    "TrainGenConfig": "latentbench.bench.generation:TrainGenConfig",
    "load_train_gen_config": "latentbench.bench.generation:load_config",
    "train_generator": "latentbench.bench.generation:train_generator",
    "train_generators": "latentbench.bench.generation:train_generators",
    "EvalGenConfig": "latentbench.bench.eval_gen:EvalGenConfig",
    "run_eval_gen": "latentbench.bench.eval_gen:run_eval_gen",
    "EvalEditConfig": "latentbench.bench.eval_edit:EvalEditConfig",
    "run_eval_edit": "latentbench.bench.eval_edit:run_eval_edit",
    "ToyConfig": "latentbench.bench.toy_manifold:ToyConfig",
    "run_toy_manifold": "latentbench.bench.toy_manifold:run_toy_manifold",
    "Experiment": "latentbench.experiment:Experiment",
    "load_experiment": "latentbench.experiment:load_experiment",
    "run_experiment": "latentbench.experiment:run_experiment",
    "write_report": "latentbench.report:write_report",
    # data and errors
    "open_images": "latentbench.data:open_images",
    "UserError": "latentbench.errors:UserError",
}
__all__ = ["__version__", *API]


def __getattr__(name: str) -> Any:
    """``latentbench.NAME``: import the module behind NAME on first use."""
    if name not in API:
        raise AttributeError(f"module 'latentbench' has no attribute {name!r}")
    module, _, attribute = API[name].partition(":")
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *API})
