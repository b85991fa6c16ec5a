"""The paper's generator: a Transfusion-style stack of Qwen2 decoder layers with a DDT head.

The paper initialises its 0.5B generator from Qwen2.5-0.5B and runs one stack of shared
transformer blocks over text and latent tokens. This module builds that stack with transformers'
``Qwen2Model`` from a :class:`transformers.Qwen2Config`:

- ``llm: qwen2.5-0.5b`` (default) is Qwen2.5-0.5B's architecture written here (896 wide, 24
  layers, 14 query / 2 key-value heads, vocabulary 151936, RoPE theta 1e6), so it builds offline
  with random weights; a dict holds any Qwen2Config fields (the tests' tiny stack); a hub id or a
  local folder loads that model's config and, with ``pretrained``, its weights
  (``trust_remote_code=False``; offline a hub id is an error, a folder works).
- text tokens enter through the LLM's own embedding table (``CondKind.TOKENS``: ids must be below
  the LLM's vocabulary; the table grows to ``vocab_size`` if the condition's vocabulary is larger)
  or as projected features of a frozen text encoder (``CondKind.FEATURES``). A class label has no
  token: its embedding is added to the latent tokens with the timestep's.
- latent tokens: the patchified latents through a linear embedding, plus fixed 2D sin-cos
  positions (:func:`~latentbench.gen.dit.sincos_2d`); noisy tokens also get the timestep
  embedding (and the pooled condition) added, as the paper adds the timestep to the latent tokens.
  Clean source tokens (editing) get a learned type embedding instead.
- sequence and mask: exactly the DiT's (:meth:`DiT.attention_mask`), i.e. [text ; noisy] and
  for editing [source ; text ; noisy] (``edit_layout``), text causal, latents attending to every
  latent. Every token also carries the LLM's rotary position = its index in the sequence.
- the noisy tokens' final hidden states (after the LLM's final RMSNorm) go through the wide DDT
  head of RAE (:class:`~latentbench.gen.dit.DDTHead`, 2 blocks of width 2048 by default, adaLN
  from the timestep and the pooled condition) to the velocity.

Same interface as :class:`~latentbench.gen.dit.DiT`: ``forward(x, t, cond) -> v`` on (B, C, h, w)
latents, ``patch``, ``num_tokens``, ``cond_spec``, ``channels``, ``latent_size``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentbench.config import NonNegativeInt, PositiveFloat, PositiveInt, config, from_dict
from latentbench.errors import UserError
from latentbench.gen.dit import (
    Condition,
    CondKind,
    CondSpec,
    DDTHead,
    DiT,
    EditLayout,
    FinalLayer,
    TokenGridModel,
    sincos_2d,
    timestep_features,
)

PAPER_LLM = "qwen2.5-0.5b"
# Qwen/Qwen2.5-0.5B's config.json architecture fields (494M parameters with tied embeddings).
QWEN25_05B: dict[str, Any] = {
    "vocab_size": 151936,
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
    "hidden_act": "silu",
    "tie_word_embeddings": True,
}


@config
class QwenGenConfig:
    """The paper's generator (module docstring). ``grid``: latent tokens per side."""

    llm: str | dict[str, Any] = PAPER_LLM  # built-in name, Qwen2Config fields, hub id or folder
    pretrained: bool = False  # load the LLM's weights from ``llm`` (a hub id or folder)
    grid: PositiveInt = 16
    ddt_width: PositiveInt | None = 2048  # None: a linear output layer instead of the DDT head
    ddt_depth: PositiveInt = 2
    ddt_heads: PositiveInt | None = None  # None: ddt_width // 64
    mlp_ratio: PositiveFloat = 4.0  # of the DDT blocks
    seed: NonNegativeInt = 0
    edit_layout: EditLayout = EditLayout.SOURCE_TEXT_NOISY


def qwen_config(llm: str | dict[str, Any]) -> Any:
    """A ``transformers.Qwen2Config`` from the built-in name, a dict of fields, a hub id or a
    folder (config only)."""
    from transformers import AutoConfig, Qwen2Config

    if isinstance(llm, dict):
        return Qwen2Config(**llm)
    if llm.lower() == PAPER_LLM:
        return Qwen2Config(**QWEN25_05B)
    from latentbench.hub import load_pretrained

    cfg = load_pretrained(AutoConfig, llm, "generator LLM", option="dit.llm=FOLDER")
    if cfg.model_type != "qwen2":
        raise UserError(f"generator LLM {llm!r} is a {cfg.model_type!r} model, not qwen2")
    return cfg


def build_llm(cfg: QwenGenConfig) -> nn.Module:
    """The ``Qwen2Model`` (no LM head): random from the config, or the pretrained weights."""
    from transformers import Qwen2Model

    hf = qwen_config(cfg.llm)
    hf._attn_implementation = "sdpa"  # takes the boolean (B, 1, T, T) mask as it is
    if cfg.pretrained:
        if isinstance(cfg.llm, dict) or cfg.llm.lower() == PAPER_LLM:
            raise UserError(
                "pretrained generator LLM: set dit.llm to a hub id (Qwen/Qwen2.5-0.5B) or folder"
            )
        from latentbench.hub import load_pretrained

        return load_pretrained(
            Qwen2Model, cfg.llm, "generator LLM", option="dit.llm=FOLDER", config=hf
        )
    torch.manual_seed(cfg.seed)
    return Qwen2Model(hf)


class QwenGenerator(TokenGridModel):
    """Flow-matching generator on a Qwen2 stack; predicts the velocity (module docstring)."""

    cfg: QwenGenConfig

    def __init__(self, cfg: QwenGenConfig, channels: int, latent_size: int, cond: CondSpec) -> None:
        super().__init__(cfg, channels, latent_size, cond)
        self.llm = build_llm(cfg)
        d, p_dim = self.llm.config.hidden_size, channels * self.patch**2
        gen = torch.Generator().manual_seed(cfg.seed + 1)
        if cond.kind is CondKind.TOKENS and cond.vocab_size > self.llm.config.vocab_size:
            self.llm.resize_token_embeddings(cond.vocab_size)
        if cond.kind is CondKind.FEATURES:
            self.text_proj = nn.Sequential(nn.LayerNorm(cond.text_dim), nn.Linear(cond.text_dim, d))
        if cond.kind is CondKind.CLASS:
            self.class_embed = nn.Embedding(cond.num_classes + 1, d)  # +1: the null label
        self.t_embed = nn.Sequential(nn.Linear(256, d), nn.SiLU(), nn.Linear(d, d))
        self.x_embed = nn.Linear(p_dim, d)
        if cond.edit:
            self.src_embed = nn.Linear(p_dim, d)
            self.src_type = nn.Parameter(torch.randn(1, 1, d, generator=gen) * 0.02)
        self.register_buffer("pos", sincos_2d(d, cfg.grid), persistent=False)  # (N, D)
        self.head = DDTHead(d, cfg, p_dim) if cfg.ddt_width else None  # type: ignore[arg-type]
        self.final = None if self.head else FinalLayer(d, p_dim)
        for name, module in self.named_modules():
            if name.startswith("llm"):
                continue
            if isinstance(module, nn.Linear):
                if name.endswith("ada") or name.endswith("final.linear"):
                    nn.init.zeros_(module.weight)  # adaLN-zero, zero output: v = 0 at the start
                else:
                    nn.init.xavier_uniform_(module.weight, generator=gen)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    @property
    def num_tokens(self) -> int:
        return self.cfg.grid**2

    def patchify(self, x: Tensor) -> Tensor:
        return DiT.patchify(self, x)  # type: ignore[arg-type]  # (B, N, P)

    def unpatchify(self, x: Tensor) -> Tensor:
        return DiT.unpatchify(self, x)  # type: ignore[arg-type]  # (B, C, h, w)

    def _text(self, cond: Condition) -> tuple[Tensor | None, Tensor | None, Tensor]:
        """-> text tokens (B, L, D), mask (B, L) (None for a class), pooled condition (B, D)."""
        kind = self.cond_spec.kind
        if kind is CondKind.CLASS:
            if cond.labels is None:
                raise ValueError("class-conditional generator needs cond.labels")
            return None, None, self.class_embed(cond.labels)
        if cond.mask is None:
            raise ValueError(f"{kind.value}-conditional generator needs cond.mask")
        if kind is CondKind.TOKENS:
            if cond.tokens is None:
                raise ValueError("token-conditional generator needs cond.tokens")
            tok = self.llm.get_input_embeddings()(cond.tokens)  # (B, L, D): the LLM's own
        else:
            if cond.features is None:
                raise ValueError("feature-conditional generator needs cond.features")
            tok = self.text_proj(cond.features)  # (B, L, D)
        m = cond.mask.to(tok.dtype)[..., None]  # (B, L, 1)
        return tok, cond.mask, (tok * m).sum(1) / m.sum(1).clamp_min(1)

    def forward(self, x: Tensor, t: Tensor, cond: Condition) -> Tensor:
        """x (B, C, h, w) noisy normalised latents, t (B,) in [0, 1] -> velocity (B, C, h, w)."""
        if x.shape[1:] != (self.channels, self.latent_size, self.latent_size):
            raise ValueError(
                f"expected (B, {self.channels}, {self.latent_size}, ..), got {x.shape}"
            )
        b = x.shape[0]
        patches = self.patchify(x)  # (B, N, P)
        text, text_mask, pooled = self._text(cond)
        c = self.t_embed(timestep_features(t).to(patches.dtype)) + pooled  # (B, D)
        noisy = self.x_embed(patches) + self.pos + c[:, None]  # (B, N, D)
        lead: list[Tensor] = []
        trail = [noisy]
        if self.cond_spec.edit:
            if cond.source is None:
                raise ValueError("editing generator needs cond.source")
            src = self.src_embed(self.patchify(cond.source)) + self.pos + self.src_type
            if EditLayout(self.cfg.edit_layout) is EditLayout.SOURCE_TEXT_NOISY:
                lead = [src]
            else:
                trail = [src, noisy]
        seq = torch.cat([*lead, *([] if text is None else [text]), *trail], dim=1)  # (B, T, D)
        n_lead = sum(s.shape[1] for s in lead)
        n_trail = sum(s.shape[1] for s in trail)
        if text_mask is None:  # a class: latents only, all attending to all
            text_mask = torch.ones(b, 0, dtype=torch.bool, device=x.device)
        mask = DiT.attention_mask(text_mask, n_trail, n_lead)  # (B, 1, T, T)
        positions = torch.arange(seq.shape[1], device=x.device)[None].expand(b, -1)  # (B, T)
        rope = self.llm.rotary_emb(seq, positions)
        h = seq
        for layer in self.llm.layers:
            h = layer(h, attention_mask=mask, position_ids=positions, position_embeddings=rope)
            h = h[0] if isinstance(h, tuple) else h
        out = self.llm.norm(h)[:, -noisy.shape[1] :]  # (B, N, D): the noisy tokens
        ca = F.silu(c)
        v = self.head(out, patches, ca) if self.head is not None else self.final(out, ca)
        return self.unpatchify(v)  # (B, C, h, w)


def paper_generator_config(overrides: dict[str, Any], seed: int = 0) -> QwenGenConfig:
    """The ``paper`` preset: :class:`QwenGenConfig` defaults with ``overrides`` (the run's
    ``dit:`` section; unknown keys are one-line errors)."""
    cfg = from_dict(QwenGenConfig, {"seed": seed, **overrides}, "dit (paper generator)")
    if isinstance(cfg.llm, str) and Path(cfg.llm).expanduser().is_dir():
        cfg.llm = str(Path(cfg.llm).expanduser())
    return cfg


def paper_generator(
    overrides: dict[str, Any], channels: int, latent_size: int, cond: CondSpec, seed: int = 0
) -> QwenGenerator:
    """The ``paper`` preset's network for a space's latent shape."""
    return QwenGenerator(paper_generator_config(overrides, seed), channels, latent_size, cond)


PAPER_PRESET = "paper"  # the generator preset of this module; every other name is a DiT preset


def build_generator(
    preset_name: str,
    overrides: dict[str, Any],
    channels: int,
    latent_size: int,
    cond: CondSpec,
    seed: int = 0,
) -> nn.Module:
    """The generator of preset ``preset_name``: the paper's (``paper``) or a DiT preset, with
    the run's ``dit:`` ``overrides``."""
    if preset_name.lower() == PAPER_PRESET:
        return paper_generator(overrides, channels, latent_size, cond, seed)
    from latentbench.gen.dit import preset

    return DiT(preset(preset_name, **{"seed": seed, **overrides}), channels, latent_size, cond)
