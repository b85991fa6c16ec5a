"""Generator inference (latentbench.gen.sampling): the CFG the sampler really uses, and
self-describing generators through save_pretrained / from_pretrained."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from latentbench.gen.dit import Condition, CondKind, CondSpec, DiTConfig
from latentbench.gen.flow import FlowConfig
from latentbench.gen.generator import Generator, TaskKind
from latentbench.gen.sampling import Conditions, generate, guided_velocity

DIT = DiTConfig(width=32, depth=2, heads=2, grid=4)


def _generator(cond: CondSpec, text: dict | None = None) -> Generator:
    g = Generator(
        dit=DIT,
        cond=cond,
        channels=3,
        latent_size=8,
        latent_mean=[0.1, -0.2, 0.3],
        latent_std=[0.5, 1.0, 2.0],
        shift=1.5,
        flow=FlowConfig(sample_steps=3),
        text_encoder=text,
    )
    torch.manual_seed(0)
    with torch.no_grad():  # adaLN-zero: an untrained DiT ignores its condition; randomise it
        for p in g.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return g.eval()


def _velocity_by_label(x, t, cond: Condition):
    """A model whose velocity is the label (per sample) plus x: v_c and v_u differ by label."""
    return x + cond.labels.float()[:, None, None, None]


def test_guided_velocity_is_cfg_and_the_null_branch_gets_the_null_condition():
    x, t = torch.randn(2, 3, 4, 4), torch.rand(2)
    cond, null = Condition(labels=torch.tensor([2, 5])), Condition(labels=torch.tensor([7, 7]))
    v_c, v_u = _velocity_by_label(x, t, cond), _velocity_by_label(x, t, null)
    assert torch.equal(guided_velocity(_velocity_by_label, cond, null, 1.0)(x, t), v_c)
    assert torch.equal(guided_velocity(_velocity_by_label, cond, null, 0.0)(x, t), v_u)
    for w in (2.0, 4.5):
        torch.testing.assert_close(
            guided_velocity(_velocity_by_label, cond, null, w)(x, t), v_u + w * (v_c - v_u)
        )
    calls = []

    def counting(x, t, c):
        calls.append(len(x))
        return _velocity_by_label(x, t, c)

    guided_velocity(counting, cond, null, 1.0)(x, t)
    guided_velocity(counting, cond, null, 3.0)(x, t)
    assert calls == [2, 4]  # scale 1: one plain pass; else cond and null in one batch


def test_generate_guidance_zero_is_the_null_condition_and_one_the_condition():
    g = _generator(CondSpec(CondKind.CLASS, num_classes=4))
    labels, null = torch.tensor([0, 1, 3]), torch.full((3,), 4)

    def run(lab, w, steps=3):
        flow = FlowConfig(sample_steps=steps, guidance=w)
        return generate(g, Conditions(labels=lab, num=3), [0, 1, 2], seed=1, flow=flow)

    cond, uncond = run(labels, 1.0), run(null, 1.0)
    assert not torch.allclose(cond, uncond)
    torch.testing.assert_close(run(labels, 0.0), uncond, atol=1e-5, rtol=0)
    # one Euler step is linear in the velocity: guidance w extrapolates the two samples
    c1, u1 = run(labels, 1.0, steps=1), run(null, 1.0, steps=1)
    torch.testing.assert_close(run(labels, 3.0, steps=1), u1 + 3.0 * (c1 - u1), atol=1e-5, rtol=0)


def test_text_guidance_zero_samples_the_empty_caption():
    text = {"kind": "learned", "vocab": ["red", "circle", "blue"], "max_len": 4}
    g = _generator(CondSpec(CondKind.TOKENS, vocab_size=6, max_len=4), text)
    assert g.kind is TaskKind.T2I

    def run(caps, w):
        flow = FlowConfig(sample_steps=2, guidance=w)
        return generate(g, Conditions(captions=caps, num=2), [0, 1], seed=0, flow=flow)

    prompts = ["red circle", "blue circle"]
    torch.testing.assert_close(run(prompts, 0.0), run(["", ""], 1.0), atol=1e-5, rtol=0)
    assert not torch.allclose(run(prompts, 1.0), run(["", ""], 1.0))


def test_sample_i_does_not_depend_on_the_batch():
    g = _generator(CondSpec(CondKind.CLASS, num_classes=4))
    conds = Conditions(labels=torch.tensor([0, 1, 2, 3]), num=4)
    whole = generate(g, conds, [0, 1, 2, 3], seed=5, batch_size=4)
    torch.testing.assert_close(generate(g, conds, [2, 3], seed=5, batch_size=1), whole[2:])


def test_save_and_load_pretrained_round_trip(tmp_path):
    text = {"kind": "learned", "vocab": ["red", "circle"], "max_len": 4}
    g = _generator(CondSpec(CondKind.TOKENS, vocab_size=5, max_len=4, edit=True), text)
    g.save_pretrained(tmp_path / "g")
    back = Generator.from_pretrained(str(tmp_path / "g"))
    assert back.kind is TaskKind.EDIT and back.flow == g.flow and back.shift == g.shift
    assert back.text.state() == g.text.state()
    for k, v in g.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k
    weights = load_file(tmp_path / "g" / "model.safetensors")
    del weights["x_embed.weight"]
    save_file(weights, tmp_path / "g" / "model.safetensors")
    with pytest.raises(RuntimeError, match="Missing key"):  # strict: a missing tensor fails
        Generator.from_pretrained(str(tmp_path / "g"))


def _imports(path) -> set[str]:
    import ast

    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m.startswith("latentbench")}


def test_generator_code_imports_nothing_above_its_layer():
    from pathlib import Path

    import latentbench

    root = Path(latentbench.__file__).parent
    low = ("latentbench.gen", "latentbench.nn", "latentbench.config", "latentbench.errors")
    low += ("latentbench.hub", "latentbench.registry")
    for path in [*root.joinpath("gen").glob("*.py"), *root.joinpath("nn").glob("*.py")]:
        above = {m for m in _imports(path) if not m.startswith(low)}
        assert not above, f"{path.name} imports {above}"
    for path in root.joinpath("train").glob("generator*.py"):
        assert not {m for m in _imports(path) if m.startswith("latentbench.bench")}, path.name
