"""The contract every latent space keeps.

- Images in and out are float tensors (B, 3, H, W) in [-1, 1]; each space converts internally.
- ``encode(images) -> latents (B, C, h, w)`` in the space's own units (a VAE applies its own
  scaling/shift here: no 0.18215 outside the VAE adapter); ``decode(latents) -> images``.
  Deterministic by default (posterior mean); ``sample=True`` draws from the posterior.
- ``spec``: frozen record of name, channels, stride, image size, latent shape, version.
- ``stats``: per-channel mean/std of the latents fitted on data; ``normalize`` / ``denormalize``
  map to and from the unit-scale latents a generator sees.
- ``fingerprint()``: sha256 of (name, config, weights); keys the latent cache and results.
- ``save(dir)`` writes ``space.json`` + ``space.safetensors``; ``load_space(dir)`` rebuilds the
  space from them alone, building the architecture with ``pretrained=False`` and loading weights.

Every space factory (the object registered under a name) takes keyword arguments that are
JSON-able, returns a :class:`LatentSpace`, and accepts ``pretrained=False`` to build the same
architecture with random weights without any file or network access.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from latentbench.errors import UserError
from latentbench.files import load_safetensors, read_json_object
from latentbench.runs import atomic_path, atomic_write_json

SPACE_JSON = "space.json"
SPACE_WEIGHTS = "space.safetensors"


@dataclass(frozen=True)
class LatentSpec:
    """What a space produces. ``stride`` = image pixels per latent cell (image_size / h)."""

    name: str
    channels: int
    latent_size: int  # h == w
    image_size: int  # size of decode()'s output; encode() accepts this size
    version: str = "1"
    pixel_range: tuple[float, float] = (-1.0, 1.0)

    @property
    def stride(self) -> int:
        return self.image_size // self.latent_size

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.latent_size, self.latent_size)

    @property
    def latent_dim(self) -> int:
        return self.channels * self.latent_size**2

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(stride=self.stride, latent_shape=list(self.latent_shape))
        d["pixel_range"] = list(self.pixel_range)
        return d


@dataclass(frozen=True)
class LatentStats:
    """Per-channel statistics of a space's latents, fitted on data with a fixed seed."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_samples: int
    seed: int

    @classmethod
    def from_latents(cls, batches: Iterable[Tensor], seed: int) -> LatentStats:
        """Running float64 per-channel mean/std over batches of (B, C, h, w) latents."""
        total = sq = None
        count = 0
        n_images = 0
        for z in batches:
            z = z.detach().to(torch.float64)
            per_channel = z.transpose(0, 1).reshape(z.shape[1], -1)  # (C, B*h*w)
            s, s2 = per_channel.sum(1), per_channel.square().sum(1)
            total = s if total is None else total + s
            sq = s2 if sq is None else sq + s2
            count += per_channel.shape[1]
            n_images += z.shape[0]
        if total is None or count < 2:
            raise UserError("cannot fit latent statistics: no data")
        mean = total / count
        var = (sq / count - mean.square()).clamp_min(0) * count / (count - 1)
        std = var.sqrt().clamp_min(1e-6)
        return cls(tuple(mean.tolist()), tuple(std.tolist()), n_images, seed)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LatentStats:
        return cls(tuple(d["mean"]), tuple(d["std"]), int(d["num_samples"]), int(d["seed"]))


class LatentSpace(nn.Module, ABC):
    """Base class of every latent space; an ``nn.Module`` so ``.to()`` moves it whole."""

    registry_name: str = ""  # set by build_space; names the factory that rebuilds the space

    def __init__(self) -> None:
        super().__init__()
        self.stats: LatentStats | None = None

    # -- what a subclass implements --------------------------------------------------------------
    @property
    @abstractmethod
    def spec(self) -> LatentSpec: ...

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-able keyword arguments that rebuild this space through its factory."""

    @abstractmethod
    def _encode(self, images: Tensor, sample: bool, generator: torch.Generator | None) -> Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, C, h, w)."""

    @abstractmethod
    def _decode(self, latents: Tensor) -> Tensor:
        """(B, C, h, w) -> (B, 3, H, W), roughly in [-1, 1] (clamped by decode)."""

    # -- the public interface --------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """Of the first parameter; a space without weights keeps a buffer to carry .to()."""
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        for t in self.parameters():
            return t.dtype
        for t in self.buffers():
            if t.is_floating_point():
                return t.dtype
        return torch.float32

    def encode(
        self, images: Tensor, sample: bool = False, generator: torch.Generator | None = None
    ) -> Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"{self.spec.name}: expected (B, 3, H, W) images, got {images.shape}")
        return self._encode(images.to(self.device, self.dtype), sample, generator)

    def decode(self, latents: Tensor) -> Tensor:
        spec = self.spec
        if latents.ndim != 4 or latents.shape[1] != spec.channels:
            raise ValueError(
                f"{spec.name}: expected (B, {spec.channels}, h, w) latents, got {latents.shape}"
            )
        return self._decode(latents.to(self.device, self.dtype)).clamp(-1, 1)

    def reconstruct(self, images: Tensor) -> Tensor:
        return self.decode(self.encode(images))

    # -- normalisation ---------------------------------------------------------------------------
    def fit_stats(self, images: Iterable[Tensor], seed: int = 0) -> LatentStats:
        """Fit per-channel stats by encoding ``images`` (an iterable of (B, 3, H, W) batches)."""
        with torch.inference_mode():
            self.stats = LatentStats.from_latents((self.encode(x) for x in images), seed=seed)
        return self.stats

    def _stats_tensors(self, like: Tensor) -> tuple[Tensor, Tensor]:
        if self.stats is None:
            raise UserError(f"space {self.spec.name!r} has no latent stats: fit them first")
        mean = torch.tensor(self.stats.mean, device=like.device, dtype=like.dtype)
        std = torch.tensor(self.stats.std, device=like.device, dtype=like.dtype)
        return mean[None, :, None, None], std[None, :, None, None]

    def normalize(self, latents: Tensor) -> Tensor:
        mean, std = self._stats_tensors(latents)
        return (latents - mean) / std

    def denormalize(self, latents: Tensor) -> Tensor:
        mean, std = self._stats_tensors(latents)
        return latents * std + mean

    # -- identity, save, load --------------------------------------------------------------------
    def fingerprint(self) -> str:
        """sha256 over name, config and every weight; stats are not part of it."""
        return module_fingerprint([self.registry_name, self.config()], self)

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu").contiguous() for k, v in self.state_dict().items()}
        with atomic_path(directory / SPACE_WEIGHTS) as tmp:
            save_file(_untie(state), str(tmp))
        meta = {
            "space": self.registry_name or self.spec.name,
            "config": self.config(),
            "spec": self.spec.to_dict(),
            "stats": self.stats.to_dict() if self.stats else None,
            "fingerprint": self.fingerprint(),
        }
        atomic_write_json(directory / SPACE_JSON, meta)
        return directory


def _untie(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """safetensors refuses tensors that share memory: clone the repeats."""
    seen: set[int] = set()
    out = {}
    for k, v in state.items():
        ptr = v.untyped_storage().data_ptr() if v.numel() else -1
        out[k] = v.clone() if ptr in seen else v
        if ptr != -1:
            seen.add(ptr)
    return out


def read_space_meta(directory: str | Path) -> dict[str, Any]:
    """The JSON object in ``directory/space.json``, checked: ``space`` names the factory,
    ``config`` holds its options, ``stats`` (optional) is an object or null. A damaged file is one
    UserError line naming it."""
    path = Path(directory) / SPACE_JSON
    if not path.is_file():
        raise UserError(f"not a saved space (no {SPACE_JSON}): {directory}")
    meta = read_json_object(path, {"space": str, "config": dict})
    if not isinstance(meta.get("stats"), (dict, type(None))):
        raise UserError(f"{path}: 'stats' must be an object or null")
    return meta


def read_stats(directory: str | Path, meta: dict[str, Any]) -> LatentStats | None:
    """The latent statistics a saved space's ``space.json`` holds (None: none)."""
    if not meta.get("stats"):
        return None
    try:
        return LatentStats.from_dict(meta["stats"])
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(
            f"{Path(directory) / SPACE_JSON}: 'stats' are not latent statistics ({e!r})"
        ) from None


def load_weights(space: LatentSpace, directory: str | Path) -> None:
    path = Path(directory) / SPACE_WEIGHTS
    if not path.is_file():
        raise UserError(f"not a saved space (no {SPACE_WEIGHTS}): {directory}")
    try:
        missing, unexpected = space.load_state_dict(load_safetensors(path), strict=False)
    except RuntimeError as e:  # shape mismatches; one line of torch's list
        raise UserError(
            f"{path}: weights do not fit the architecture ({' '.join(str(e).split())[:300]})"
        ) from None
    if missing or unexpected:
        raise UserError(
            f"{path}: weights do not match the architecture "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )


def module_fingerprint(header: Any, module: nn.Module) -> str:
    """sha256 over ``header`` (JSON) and every tensor of ``module``'s state dict, 16 hex digits."""
    h = hashlib.sha256()
    h.update(json.dumps(header, sort_keys=True).encode())
    for key, value in sorted(module.state_dict().items()):
        h.update(key.encode())
        t = value.detach().to("cpu").contiguous()
        h.update(str(t.dtype).encode() + str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]
