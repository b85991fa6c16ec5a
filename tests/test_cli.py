"""The command line as a whole.

- A command's flags and its typed config describe the same settings: run with only its required
  flags, each command hands its runner exactly the config's defaults (a flag whose default drifts
  from the config's fails here), and ``train-gen`` (whose ``--config`` file may set anything)
  overrides nothing it was not given.
- Ctrl-C ends a command with exit code 130, never 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


class Captured(Exception):
    """Raised by a stand-in runner: the command got as far as building its config."""


def capture(monkeypatch: pytest.MonkeyPatch, module: str, runner: str) -> dict[str, Any]:
    """Replace ``module.runner`` with one that records its arguments and stops the command."""
    import importlib

    seen: dict[str, Any] = {}

    def stand_in(*args: Any, **kwargs: Any) -> Any:
        seen["args"], seen["kwargs"] = args, kwargs
        raise Captured

    monkeypatch.setattr(importlib.import_module(module), runner, stand_in)
    return seen


def first_config(seen: dict[str, Any], cls: type) -> Any:
    return next(a for a in [*seen["args"], *seen["kwargs"].values()] if isinstance(a, cls))


def recon_case() -> tuple[list[str], str, str, Callable[[], Any]]:
    from latentbench.bench.recon import ReconConfig

    return (
        ["recon", "--space", "pixel", "--data", "shapes:4"],
        "latentbench.bench.recon",
        "run_recon",
        lambda: ReconConfig(spaces=["pixel"], data="shapes:4"),
    )


def tokenizer_case() -> tuple[list[str], str, str, Callable[[], Any]]:
    from latentbench.bench.tokenizer import TrainTokenizerConfig

    return (
        ["train-tokenizer", "--space", "semrec", "--data", "shapes:4"],
        "latentbench.bench.tokenizer",
        "train_tokenizer",
        lambda: TrainTokenizerConfig(space="semrec", data="shapes:4"),
    )


def toy_case() -> tuple[list[str], str, str, Callable[[], Any]]:
    from latentbench.bench.toy_manifold import ToyConfig

    return (["toy-manifold"], "latentbench.bench.toy_manifold", "run_toy_manifold", ToyConfig)


def eval_gen_case() -> tuple[list[str], str, str, Callable[[], Any]]:
    from latentbench.bench.eval_gen import EvalGenConfig

    return (
        ["eval-gen", "--suite", "geneval-shapes", "--images", "somewhere"],
        "latentbench.bench.eval_gen",
        "run_eval_gen",
        EvalGenConfig,
    )


def eval_edit_case() -> tuple[list[str], str, str, Callable[[], Any]]:
    from latentbench.bench.eval_edit import EvalEditConfig

    return (
        ["eval-edit", "--images", "somewhere"],
        "latentbench.bench.eval_edit",
        "run_eval_edit",
        EvalEditConfig,
    )


def plan_case() -> tuple[list[str], str, str, Callable[[], Any]]:
    from latentbench.plan import PlanConfig

    return (["plan", "quickstart"], "latentbench.plan", "plan_experiment", PlanConfig)


@pytest.mark.parametrize(
    "case", [recon_case, tokenizer_case, toy_case, eval_gen_case, eval_edit_case, plan_case]
)
def test_a_command_run_with_its_required_flags_gets_its_configs_defaults(
    case: Callable[[], tuple[list[str], str, str, Callable[[], Any]]],
    cli: Callable[..., int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args, module, runner, expected = case()
    seen = capture(monkeypatch, module, runner)
    with pytest.raises(Captured):
        cli(*args)
    want = expected()
    assert first_config(seen, type(want)) == want


def test_train_gen_gives_its_config_nothing_but_the_flags_it_was_given(
    cli: Callable[..., int], monkeypatch: pytest.MonkeyPatch
) -> None:
    from latentbench.bench.generation_config import TrainGenConfig, load_config

    seen = capture(monkeypatch, "latentbench.bench.generation", "train_generators")
    with pytest.raises(Captured):
        cli("train-gen", "--space", "pixel")
    assert first_config(seen, TrainGenConfig) == load_config(None, space="multi")
    assert load_config(None, space="multi") == TrainGenConfig(space="multi")

    with pytest.raises(Captured):
        cli("train-gen", "--space", "pixel", "--config", "tiny", "--steps", "7")
    got = first_config(seen, TrainGenConfig)
    assert got == load_config("tiny", space="multi", steps=7)
    assert got.steps == 7


def test_ctrl_c_exits_130_not_0(
    cli: Callable[..., int], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import latentbench.bench.toy_manifold as toy

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(toy, "run_toy_manifold", interrupted)
    assert cli("toy-manifold", "--steps", "1") == 130
    assert capsys.readouterr().err.strip() == "interrupted"
