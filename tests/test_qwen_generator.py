"""The paper's generator (a Qwen2 stack + DDT head) at tiny size: layout, masks, training."""

from __future__ import annotations

import pytest
import torch
from test_train_gen import TOY, _cfg

from latentbench.bench.generation import train_generator
from latentbench.bench.generator_runs import load_generator
from latentbench.errors import UserError
from latentbench.gen.dit import Condition, CondKind, CondSpec, DiT, DiTConfig
from latentbench.gen.qwen import (
    QWEN25_05B,
    QwenGenConfig,
    QwenGenerator,
    build_generator,
    paper_generator,
)
from latentbench.train.generator import TaskKind

TINY_QWEN = {
    "vocab_size": 64,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 128,
}
TINY_PAPER = {"llm": TINY_QWEN, "grid": 4, "ddt_width": 32, "ddt_heads": 2}
pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one intra-op thread
EDIT = CondSpec(CondKind.TOKENS, vocab_size=20, max_len=5, edit=True)


def _condition(batch: int = 2) -> Condition:
    tokens = torch.randint(1, 20, (batch, 5), generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)[:batch]
    source = torch.randn(batch, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    return Condition(tokens=tokens * mask, mask=mask, source=source)


def _masks(model: torch.nn.Module, blocks: torch.nn.ModuleList, cond: Condition) -> list:
    """The attention masks the model's first block receives (and the sequence length)."""
    seen = []

    def hook(module, args, kwargs):
        mask = kwargs.get("attention_mask", args[2] if len(args) > 2 else None)
        seen.append((mask, args[0].shape[1]))

    handle = blocks[0].register_forward_pre_hook(hook, with_kwargs=True)
    with torch.no_grad():
        model(torch.randn(2, 3, 8, 8), torch.rand(2), cond)
    handle.remove()
    return seen


def test_same_sequence_layout_and_masks_as_the_dit():
    torch.manual_seed(0)
    qwen = paper_generator(TINY_PAPER, channels=3, latent_size=8, cond=EDIT)
    dit = DiT(DiTConfig(width=32, depth=1, heads=2, grid=4), 3, 8, EDIT)
    cond = _condition()
    ((q_mask, q_len),) = _masks(qwen, qwen.llm.layers, cond)
    ((d_mask, d_len),) = _masks(dit, dit.blocks, cond)
    assert q_len == d_len == 16 + 5 + 16  # [source ; text ; noisy]
    assert torch.equal(q_mask, d_mask)
    # the text is causal and sees the source; source and noisy latents see each other
    row = q_mask[1, 0]  # (T, T) of the sample without padding
    assert row[16 + 1, 16 + 2] == False and row[16 + 2, 16 + 1] and row[16 + 1, :16].all()  # noqa: E712
    assert row[:16, 21:].all() and row[21:, :16].all()


def test_text_goes_through_the_llms_own_embeddings_and_padding_is_ignored():
    torch.manual_seed(0)
    model = paper_generator(TINY_PAPER, 3, 8, EDIT).eval()
    assert model.llm.get_input_embeddings().num_embeddings == 64  # the LLM's vocabulary
    with torch.no_grad():  # as after training: the zero-initialised output layers move
        for p in model.parameters():
            if not p.any():
                p.normal_(0, 0.1)
    x, t, cond = torch.randn(2, 3, 8, 8), torch.rand(2), _condition()
    with torch.no_grad():
        out = model(x, t, cond)
        padded = Condition(tokens=cond.tokens.clone(), mask=cond.mask, source=cond.source)
        padded.tokens[0, 4] = 7  # a padding position: masked out
        torch.testing.assert_close(model(x, t, padded), out)
        changed = Condition(tokens=cond.tokens.clone(), mask=cond.mask, source=cond.source)
        changed.tokens[0, 0] = (changed.tokens[0, 0] % 19) + 1  # a real token
        assert not torch.allclose(model(x, t, changed)[0], out[0])
    assert out.shape == (2, 3, 8, 8)


def test_paper_size_is_qwen25_05b_with_the_wide_ddt_head():
    cfg = QwenGenConfig()
    assert (cfg.ddt_width, cfg.ddt_depth, cfg.grid) == (2048, 2, 16)
    with torch.device("meta"):
        model = build_generator("paper", {}, 96, 16, CondSpec(CondKind.TOKENS, 100, max_len=8))
    llm = sum(p.numel() for p in model.llm.parameters())
    assert isinstance(model, QwenGenerator) and 480e6 < llm < 500e6  # Qwen2.5-0.5B: 494M
    assert model.llm.config.hidden_size == QWEN25_05B["hidden_size"] == 896
    with pytest.raises(UserError, match="set dit.llm to a hub id"):
        paper_generator({"pretrained": True}, 96, 16, CondSpec(CondKind.TOKENS, 100, max_len=8))


@pytest.mark.parametrize("task", [TaskKind.T2I, TaskKind.EDIT])
def test_paper_preset_trains_and_samples_t2i_and_editing(tmp_path, task):
    data = "shapes-edits:10" if task is TaskKind.EDIT else "shapes:16"
    cfg = _cfg(task=task, data=data, preset="paper", dit=TINY_PAPER, steps=2, eval_every=2)
    metrics = train_generator(cfg, tmp_path / "run")
    assert metrics["steps"] == 2 and metrics["train_loss"] > 0
    gen = load_generator(tmp_path / "run", device="cpu")
    assert isinstance(gen.generator, QwenGenerator)
    if task is TaskKind.EDIT:
        out = gen.edit(torch.rand(2, 3, 16, 16) * 2 - 1, ["make the circle red", "remove it"])
    else:
        out = gen.text_to_image(["a red circle", "two blue squares"])
    assert out.shape == (2, 3, TOY["image_size"], TOY["image_size"]) and torch.isfinite(out).all()
