"""The generator: one DiT-style transformer, identical for every latent space.

Sequence layout (docs/method.md, Transfusion-style)::

    text to image:  [text tokens ; noisy latent tokens]
    editing:        [clean source latent tokens ; instruction text tokens ; noisy latent tokens]

- text tokens: L tokens (learned embeddings of a word vocabulary, or projected features of a
  frozen text encoder);
- source tokens (editing only): the clean source latents, patchified like the noisy ones, plus a
  learned "source" type embedding;
- noisy tokens: the latents being denoised.

Attention mask, one rule for every layout: a token attends to every valid token before it
(causal), and latent tokens (source and noisy) also attend to every latent token. So text is
causal and sees the source latents before it, while source and noisy latents see each other fully
(the paper's editing layout). ``DiTConfig.edit_layout = text-source-noisy`` puts the text first
instead (an ablation: the text then never sees the source). A class label is not a token: as in
DiT it enters through adaLN alone, so a class-conditional model attends over exactly the latent
tokens, unmasked.

Timestep conditioning is adaLN-zero (DiT): every block gets shift/scale/gate from
``c = t_emb + pooled condition`` (the class embedding, or the masked mean of the text tokens).
Latent tokens get a fixed 2D sin-cos positional embedding; text tokens a learned 1D one.

Same generator for every space: the token grid (``grid x grid``) is fixed by the preset and the
patch size is ``latent_size // grid``, so every space gets the same number of tokens. Only the
patch embedding and the output projection depend on the channel count; every other parameter is
initialised from ``config.seed`` alone and is therefore bit-identical across spaces.

Optional wide DDT head (RAE): ``ddt_depth`` blocks of width ``ddt_width`` on the noisy tokens,
fed the trunk's output plus a fresh embedding of the noisy patches.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentbench.config import (
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    config,
    from_dict,
    to_dict,
)
from latentbench.errors import UserError, unknown_choice
from latentbench.nn.attention import Attention


class EditLayout(str, enum.Enum):
    """Where the clean source latents of an editing model sit in the sequence."""

    SOURCE_TEXT_NOISY = "source-text-noisy"  # the paper's: [source ; text ; noisy]
    TEXT_SOURCE_NOISY = "text-source-noisy"  # ablation: [text ; source ; noisy]


class CondKind(str, enum.Enum):
    CLASS = "class"  # integer labels
    TOKENS = "tokens"  # token ids of a learned vocabulary
    FEATURES = "features"  # features of a frozen text encoder


@config
class DiTConfig:
    """Architecture. Defaults the paper leaves open: GELU-tanh MLP of ratio 4, no QK-norm."""

    width: PositiveInt = 256
    depth: PositiveInt = 6
    heads: PositiveInt = 4
    mlp_ratio: PositiveFloat = 4.0
    grid: PositiveInt = 8  # tokens per side: every space gets grid*grid latent tokens
    ddt_width: PositiveInt | None = None  # None: no DDT head
    ddt_depth: PositiveInt = 2
    ddt_heads: PositiveInt | None = None  # None: ddt_width // 64
    seed: NonNegativeInt = 0  # initialisation seed (shared parts are identical across spaces)
    edit_layout: EditLayout = EditLayout.SOURCE_TEXT_NOISY  # editing sequence (module docstring)


PRESETS: dict[str, DiTConfig] = {
    "tiny": DiTConfig(width=128, depth=4, heads=4, grid=8),
    "small": DiTConfig(width=384, depth=12, heads=6, grid=16),
    "base": DiTConfig(width=768, depth=12, heads=12, grid=16),
    "large": DiTConfig(width=1024, depth=24, heads=16, grid=16),
    "xl": DiTConfig(width=1152, depth=28, heads=16, grid=16, ddt_width=2048, ddt_depth=2),
}


def preset(name: str, **overrides: object) -> DiTConfig:
    """The architecture preset ``name`` with field ``overrides`` (unknown fields: UserError)."""
    if name.lower() not in PRESETS:
        raise unknown_choice("DiT architecture preset", name, PRESETS)
    valid = [f.name for f in fields(DiTConfig)]
    for key in overrides:
        if key not in valid:
            raise UserError(f"DiT has no setting {key!r}; valid: {', '.join(valid)}")
    return from_dict(DiTConfig, {**to_dict(PRESETS[name.lower()]), **overrides}, "dit")


@config
class CondSpec:
    """What the generator is conditioned on."""

    kind: CondKind = CondKind.CLASS
    num_classes: NonNegativeInt = 0  # CLASS: labels 0..n-1, n is the null (dropped) label
    vocab_size: NonNegativeInt = 0  # TOKENS
    text_dim: NonNegativeInt = 0  # FEATURES
    max_len: PositiveInt = 1  # text tokens (unused for a class)
    edit: bool = False  # clean source latents in the sequence


@dataclass
class Condition:
    """A batch of conditions; the fields used depend on :class:`CondSpec`."""

    labels: Tensor | None = None  # (B,) long
    tokens: Tensor | None = None  # (B, L) long
    features: Tensor | None = None  # (B, L, Dt) float
    mask: Tensor | None = None  # (B, L) bool, True = real text token
    source: Tensor | None = None  # (B, C, h, w) clean source latents (normalised)

    def cat(self, other: Condition) -> Condition:
        def c(a: Tensor | None, b: Tensor | None) -> Tensor | None:
            return None if a is None else torch.cat([a, b])  # type: ignore[list-item]

        return Condition(
            c(self.labels, other.labels),
            c(self.tokens, other.tokens),
            c(self.features, other.features),
            c(self.mask, other.mask),
            c(self.source, other.source),
        )


# -- building blocks --------------------------------------------------------------------------
def sincos_2d(dim: int, grid: int) -> Tensor:
    """Fixed 2D sin-cos positional embedding, (grid*grid, dim), row-major over (y, x)."""
    if dim % 4:
        raise UserError(f"width {dim} must be divisible by 4 for the 2D positional embedding")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))  # (D/4,)
    coords = torch.arange(grid, dtype=torch.float64)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")  # (g, g) each

    def enc(pos: Tensor) -> Tensor:
        angles = pos.reshape(-1, 1) * omega[None]  # (g*g, D/4)
        return torch.cat([angles.sin(), angles.cos()], dim=1)  # (g*g, D/2)

    return torch.cat([enc(yy), enc(xx)], dim=1).float()  # (g*g, D)


def timestep_features(t: Tensor, dim: int = 256, max_period: float = 10000.0) -> Tensor:
    """(B,) times in [0, 1] -> (B, dim) sinusoidal features of 1000 t."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]  # (B, dim/2)
    return torch.cat([args.cos(), args.sin()], dim=1)


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return torch.addcmul(shift, x, 1 + scale)  # x (B, T, D); shift, scale (B, 1, D)


class Block(Attention):
    """Pre-norm transformer block with adaLN-zero modulation.

    Its attention is :class:`~latentbench.nn.attention.Attention`, inherited rather than held so
    that the parameters keep the names (``qkv``, ``proj``) of the checkpoints written before.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__(dim, heads)  # qkv, proj
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.ada = nn.Linear(dim, 6 * dim)  # input: SiLU(c)

    def forward(self, x: Tensor, c: Tensor, mask: Tensor | None) -> Tensor:
        # x (B, T, D); c (B, D) already passed through SiLU; mask (B, 1, T, T) bool or None
        s1, g1, a1, s2, g2, a2 = self.ada(c)[:, None].chunk(6, dim=-1)  # 6 x (B, 1, D)
        h = modulate(self.norm1(x), s1, g1)
        x = torch.addcmul(x, a1, super().forward(h, mask))  # attention
        h = modulate(self.norm2(x), s2, g2)
        h = self.fc2(F.gelu(self.fc1(h), approximate="tanh"))  # (B, T, D)
        return torch.addcmul(x, a2, h)


class FinalLayer(nn.Module):
    def __init__(self, dim: int, out: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Linear(dim, 2 * dim)
        self.linear = nn.Linear(dim, out)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift, scale = self.ada(c)[:, None].chunk(2, dim=-1)  # (B, 1, D) each
        return self.linear(modulate(self.norm(x), shift, scale))  # (B, T, out)


class DDTHead(nn.Module):
    """Wide head on the noisy tokens: trunk features + re-embedded noisy patches -> velocity."""

    def __init__(self, width: int, cfg: DiTConfig, patch_dim: int) -> None:
        super().__init__()
        w = cfg.ddt_width or width
        heads = cfg.ddt_heads or max(1, w // 64)
        self.inp = nn.Linear(width, w)
        self.cond = nn.Linear(width, w)
        self.x_embed = nn.Linear(patch_dim, w)  # depends on channels
        self.register_buffer("pos", sincos_2d(w, cfg.grid), persistent=False)
        self.blocks = nn.ModuleList(Block(w, heads, cfg.mlp_ratio) for _ in range(cfg.ddt_depth))
        self.final = FinalLayer(w, patch_dim)

    def forward(self, trunk: Tensor, patches: Tensor, c: Tensor) -> Tensor:
        # trunk (B, N, D); patches (B, N, P); c (B, D) after SiLU
        h = self.inp(trunk) + self.x_embed(patches) + self.pos  # (B, N, W)
        ch = F.silu(self.cond(c))  # (B, W)
        for blk in self.blocks:
            h = blk(h, ch, None)
        return self.final(h, ch)  # (B, N, P)


# -- the model --------------------------------------------------------------------------------
CHANNEL_DEPENDENT = ("x_embed", "src_embed", "final.linear", "head.x_embed", "head.final.linear")


class TokenGridModel(nn.Module):
    """What every generator network shares: its config ``cfg`` (with a token ``grid``), its
    conditioning, and (B, C, h, w) latents of ``channels`` x ``latent_size``^2 cut into
    ``grid`` x ``grid`` tokens of ``patch`` x ``patch`` latent pixels."""

    def __init__(self, cfg: Any, channels: int, latent_size: int, cond: CondSpec) -> None:
        super().__init__()
        if latent_size % cfg.grid:
            raise UserError(
                f"latent size {latent_size} is not a multiple of the token grid {cfg.grid}: "
                f"pick a preset/grid that divides it"
            )
        self.cfg, self.cond_spec = cfg, cond
        self.channels, self.latent_size = channels, latent_size
        self.patch = latent_size // cfg.grid


class DiT(TokenGridModel):
    """Flow-matching transformer over (B, C, h, w) latents; predicts the velocity."""

    cfg: DiTConfig

    def __init__(self, cfg: DiTConfig, channels: int, latent_size: int, cond: CondSpec) -> None:
        super().__init__(cfg, channels, latent_size, cond)
        d, p_dim = cfg.width, channels * self.patch**2

        self.t_embed = nn.Sequential(nn.Linear(256, d), nn.SiLU(), nn.Linear(d, d))
        if cond.kind is CondKind.CLASS:
            self.cond_embed: nn.Module = nn.Embedding(cond.num_classes + 1, d)  # +1: null
        elif cond.kind is CondKind.TOKENS:
            self.cond_embed = nn.Embedding(cond.vocab_size, d)
        else:
            self.cond_embed = nn.Sequential(
                nn.LayerNorm(cond.text_dim), nn.Linear(cond.text_dim, d)
            )
        self.text_pos = (  # learned 1D positions of the text tokens; a class has no token
            None if cond.kind is CondKind.CLASS else nn.Parameter(torch.zeros(1, cond.max_len, d))
        )
        self.pool = nn.Linear(d, d)  # pooled condition -> adaLN vector
        self.x_embed = nn.Linear(p_dim, d)
        if cond.edit:
            self.src_embed = nn.Linear(p_dim, d)
            self.src_type = nn.Parameter(torch.zeros(1, 1, d))
        self.register_buffer("pos", sincos_2d(d, cfg.grid), persistent=False)  # (N, D)
        self.blocks = nn.ModuleList(Block(d, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.head = DDTHead(d, cfg, p_dim) if cfg.ddt_width else None
        self.final = None if self.head else FinalLayer(d, p_dim)
        self.reset_parameters()

    @property
    def num_tokens(self) -> int:
        return self.cfg.grid**2

    # -- initialisation ------------------------------------------------------------------------
    def reset_parameters(self) -> None:
        """Seeded init: shared parts from ``seed``, channel-dependent parts from ``seed + 1``.

        Linear layers: Xavier-uniform, zero bias; adaLN and output projections: zero
        (adaLN-zero); embeddings and text positions: N(0, 0.02).
        """
        shared = torch.Generator().manual_seed(self.cfg.seed)
        io = torch.Generator().manual_seed(self.cfg.seed + 1)
        for name, module in self.named_modules():
            gen = io if name in CHANNEL_DEPENDENT else shared
            if isinstance(module, nn.Linear):
                if name.endswith("ada") or name.endswith("final.linear"):
                    nn.init.zeros_(module.weight)
                else:
                    nn.init.xavier_uniform_(module.weight, generator=gen)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.02, generator=gen)
        if self.text_pos is not None:
            nn.init.normal_(self.text_pos, std=0.02, generator=shared)
        if self.cond_spec.edit:
            nn.init.normal_(self.src_type, std=0.02, generator=shared)

    # -- patches -------------------------------------------------------------------------------
    def patchify(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape  # (B, C, g*p, g*p)
        g, p = self.cfg.grid, self.patch
        x = x.reshape(b, c, g, p, g, p).permute(0, 2, 4, 3, 5, 1)  # (B, g, g, p, p, C)
        return x.reshape(b, g * g, p * p * c)  # (B, N, P)

    def unpatchify(self, x: Tensor) -> Tensor:
        b = x.shape[0]  # (B, N, P)
        g, p, c = self.cfg.grid, self.patch, self.channels
        x = x.reshape(b, g, g, p, p, c).permute(0, 5, 1, 3, 2, 4)  # (B, C, g, p, g, p)
        return x.reshape(b, c, g * p, g * p)

    # -- condition -----------------------------------------------------------------------------
    def _condition_tokens(self, cond: Condition) -> tuple[Tensor | None, Tensor | None, Tensor]:
        """-> text tokens (B, L, D) and mask (B, L) bool (both None for a class), pooled (B, D)."""
        kind = self.cond_spec.kind
        if kind is CondKind.CLASS:
            if cond.labels is None:
                raise ValueError("class-conditional DiT needs cond.labels")
            pooled = self.cond_embed(cond.labels)  # (B, D): adaLN only, no token
            return None, None, pooled
        raw = cond.tokens if kind is CondKind.TOKENS else cond.features
        if raw is None or cond.mask is None:
            raise ValueError(f"{kind.value}-conditional DiT needs cond.{kind.value} and cond.mask")
        tok = self.cond_embed(raw)  # (B, L, D)
        tok = tok + self.text_pos[:, : tok.shape[1]]  # type: ignore[index]
        m = cond.mask.to(tok.dtype)[..., None]  # (B, L, 1)
        pooled = (tok * m).sum(1) / m.sum(1).clamp_min(1)  # (B, D)
        return tok, cond.mask, pooled

    @staticmethod
    def attention_mask(text_mask: Tensor, num_latents: int, num_leading: int = 0) -> Tensor:
        """(B, L) valid-text mask -> (B, 1, T, T) bool over the sequence
        [``num_leading`` latents ; L text ; ``num_latents`` latents], T = num_leading + L +
        num_latents: a query sees every valid key before it, and latents see all latents."""
        b, n_text = text_mask.shape
        n = num_leading + n_text + num_latents
        dev = text_mask.device
        idx = torch.arange(n, device=dev)
        is_latent = (idx < num_leading) | (idx >= num_leading + n_text)  # (T,)

        def ones(k: int) -> Tensor:
            return torch.ones(b, k, dtype=torch.bool, device=dev)

        key_ok = torch.cat([ones(num_leading), text_mask, ones(num_latents)], 1)  # (B, T)
        causal = idx[None, :] <= idx[:, None]  # (T, T) key <= query
        allowed = causal | (is_latent[:, None] & is_latent[None, :])  # (T, T)
        allowed = allowed[None] & key_ok[:, None, :]  # (B, T, T)
        allowed |= torch.eye(n, dtype=torch.bool, device=dev)[None]  # never an empty row
        return allowed[:, None]

    # -- forward -------------------------------------------------------------------------------
    def forward(self, x: Tensor, t: Tensor, cond: Condition) -> Tensor:
        """x (B, C, h, w) noisy normalised latents, t (B,) in [0, 1] -> velocity (B, C, h, w)."""
        if x.shape[1:] != (self.channels, self.latent_size, self.latent_size):
            raise ValueError(
                f"expected (B, {self.channels}, {self.latent_size}, ..), got {x.shape}"
            )
        patches = self.patchify(x)  # (B, N, P)
        noisy = self.x_embed(patches) + self.pos  # (B, N, D)
        n_lat = noisy.shape[1]
        lead: list[Tensor] = []  # latents before the text
        trail = [noisy]  # latents after the text
        if self.cond_spec.edit:
            if cond.source is None:
                raise ValueError("editing DiT needs cond.source")
            src = self.src_embed(self.patchify(cond.source)) + self.pos + self.src_type  # (B,N,D)
            if EditLayout(self.cfg.edit_layout) is EditLayout.SOURCE_TEXT_NOISY:
                lead = [src]
            else:
                trail = [src, noisy]
        ctok, text_mask, pooled = self._condition_tokens(cond)  # (B, L, D)
        text = [] if ctok is None else [ctok]
        seq = torch.cat([*lead, *text, *trail], dim=1)  # (B, T, D)
        mask = None
        if text_mask is not None:
            n_lead = sum(t.shape[1] for t in lead)
            n_trail = sum(t.shape[1] for t in trail)
            mask = self.attention_mask(text_mask, n_trail, n_lead)  # (B, 1, T, T)
        c = F.silu(self.t_embed(timestep_features(t).to(seq.dtype)) + self.pool(pooled))  # (B, D)
        for blk in self.blocks:
            seq = blk(seq, c, mask)
        out = seq[:, -n_lat:]  # (B, N, D): the noisy tokens
        v = self.head(out, patches, c) if self.head is not None else self.final(out, c)  # (B,N,P)
        return self.unpatchify(v)  # (B, C, h, w)
