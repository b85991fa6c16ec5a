"""The contract every latent space keeps.

- Images in and out are float tensors (B, 3, H, W) in [-1, 1]; each space converts internally.
- ``encode(images) -> latents (B, C, h, w)`` in the space's own units (a VAE applies its own
  scaling/shift here: no 0.18215 outside the VAE adapter); ``decode(latents) -> images``.
  Deterministic by default (posterior mean); ``sample=True`` draws from the posterior.
- ``spec``: frozen record of name, channels, stride, image size, latent shape, version.
- ``stats``: per-channel mean/std of the latents fitted on data; ``normalize`` / ``denormalize``
  map to and from the unit-scale latents a generator sees.
- ``fingerprint()``: sha256 of (name, config, weights); keys the latent cache and results.
- ``save_pretrained(dir)`` writes ``config.json`` + ``model.safetensors`` (huggingface_hub's
  ``PyTorchModelHubMixin``, so ``push_to_hub`` works too); ``LatentSpace.from_pretrained(dir or
  hub id)`` (= :func:`latentbench.spaces.load_space`) rebuilds the space from them alone, building
  the architecture with ``pretrained=False`` and loading the weights. Folders saved before
  (``space.json`` + ``space.safetensors``) load the same way.
- ``encode`` / ``decode`` hand the space its input in channels-last memory format (oneDNN's and
  cuDNN's fast convolution layout: TAESD runs 1.2-1.4x faster on 2 CPU cores at 256 px, the
  results agree to float rounding) and return contiguous tensors.

Every space factory (the object registered under a name) takes keyword arguments that are
JSON-able, returns a :class:`LatentSpace`, and accepts ``pretrained=False`` to build the same
architecture with random weights without any file or network access. The space's config is
captured from that call (:func:`latentbench.spaces.catalog.space_factory`): the options it was
given, plus what the space resolved while building (:meth:`LatentSpace.resolved_options`: a
VAE's architecture read from its hub config, a tokenizer's full typed config).
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
from huggingface_hub import ModelCard, PyTorchModelHubMixin
from safetensors.torch import save_file
from torch import Tensor, nn

from latentbench.atomic import atomic_path, atomic_write_json
from latentbench.errors import UserError
from latentbench.hub import hub_snapshot
from latentbench.spaces.catalog import call_factory, code_identity
from latentbench.spaces.saved import CONFIG_JSON, WEIGHTS_FILE, find_saved, load_weights, read_meta


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


class LatentSpace(
    nn.Module,
    PyTorchModelHubMixin,
    ABC,
    library_name="latentbench",
    tags=["latentbench", "latent-space"],
):
    """Base class of every latent space; an ``nn.Module`` so ``.to()`` moves it whole."""

    registry_name: str = ""  # the factory that rebuilds the space; set as it is built
    init_options: dict[str, Any]  # the options of that factory call (catalog.factory_options)

    def __init__(self) -> None:
        super().__init__()
        self.stats: LatentStats | None = None
        self.init_options = {}

    # -- what a subclass implements --------------------------------------------------------------
    @property
    @abstractmethod
    def spec(self) -> LatentSpec: ...

    def resolved_options(self) -> dict[str, Any]:
        """Factory options this space resolved while building (e.g. an architecture read from a
        hub config) that its factory needs to rebuild it offline; added to :meth:`config`."""
        return {}

    def config(self) -> dict[str, Any]:
        """JSON-able keyword arguments that rebuild this space through its factory."""
        return {**self.init_options, **self.resolved_options()}

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
        x = images.to(self.device, self.dtype, memory_format=torch.channels_last)
        z = self._encode(x, sample, generator)
        spec, (b, _, h, w) = self.spec, images.shape
        # At the spec's image size the latent shape is known; at another, the channels only.
        known = spec.latent_shape if h == w == spec.image_size else (spec.channels,)
        if z.ndim != 4 or tuple(z.shape[: 1 + len(known)]) != (b, *known):
            says = ", ".join(map(str, known)) + ("" if len(known) == 3 else ", h, w")
            raise UserError(
                f"space {self._label}: encode gave latents {tuple(z.shape)} for {h}x{w} "
                f"images, where its spec says (B, {says})"
            )
        if z.device.type != "meta" and not torch.isfinite(z).all():  # meta: `plan`'s dry run
            raise UserError(f"space {self._label}: encode gave non-finite latents")
        return z.contiguous()

    def decode(self, latents: Tensor) -> Tensor:
        spec = self.spec
        if latents.ndim != 4 or latents.shape[1] != spec.channels:
            raise ValueError(
                f"{spec.name}: expected (B, {spec.channels}, h, w) latents, got {latents.shape}"
            )
        z = latents.to(self.device, self.dtype, memory_format=torch.channels_last)
        x = self._decode(z)
        b, _, h, w = latents.shape
        size = spec.image_size if h == w == spec.latent_size else None
        wrong = x.ndim != 4 or x.shape[:2] != (b, 3)
        if wrong or (size is not None and tuple(x.shape[2:]) != (size, size)):
            says = f"(B, 3, {size}, {size})" if size is not None else "(B, 3, H, W)"
            raise UserError(
                f"space {self._label}: decode gave images {tuple(x.shape)} for latents "
                f"{tuple(latents.shape)}, where its spec says {says}"
            )
        return x.clamp(-1, 1).contiguous()

    @property
    def _label(self) -> str:
        """How errors name the space: its registered name (a plugin's spec may name another)."""
        return repr(self.registry_name or self.spec.name)

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
        """sha256 over name, config, code (a plugin's release, the spec's version: see
        :func:`~latentbench.spaces.catalog.code_identity`) and every weight; not the stats."""
        code = code_identity(self.registry_name, self.spec.version)
        return module_fingerprint([self.registry_name, self.config(), *code], self)

    def saved_meta(self) -> dict[str, Any]:
        """What ``config.json`` holds: the factory's name and options, spec, stats, fingerprint."""
        return {
            "space": self.registry_name or self.spec.name,
            "config": self.config(),
            "spec": self.spec.to_dict(),
            "stats": self.stats.to_dict() if self.stats else None,
            "fingerprint": self.fingerprint(),
        }

    def _save_pretrained(self, save_directory: Path) -> None:
        """The mixin's hook: ``model.safetensors`` and ``config.json``, each written atomically."""
        state = {k: v.detach().to("cpu").contiguous() for k, v in self.state_dict().items()}
        with atomic_path(save_directory / WEIGHTS_FILE) as tmp:
            save_file(_untie(state), str(tmp))
        atomic_write_json(save_directory / CONFIG_JSON, self.saved_meta())

    def generate_model_card(self, *args: Any, **kwargs: Any) -> ModelCard:
        """The mixin's README.md, saying what the space is and how to load it."""
        card = super().generate_model_card(*args, **kwargs)
        spec = self.spec
        c, h, w = spec.latent_shape
        card.text = (
            f"A latentbench latent space: "
            f"`{self.registry_name or spec.name}`, images of {spec.image_size} px to latents "
            f"{c} x {h} x {w} (stride {spec.stride}); fingerprint `{self.fingerprint()}`.\n\n"
            "Load it with `latentbench.load_space(FOLDER_OR_HUB_ID)`; `config.json` names its "
            "factory and options, `model.safetensors` holds its weights.\n"
        )
        return card

    def save(self, directory: str | Path) -> Path:
        """``save_pretrained(directory)``; returns the folder."""
        self.save_pretrained(directory)
        return Path(directory)

    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls, source: str | Path, *, device: Any = None, revision: str | None = None
    ) -> LatentSpace:
        """Rebuild a saved space from its folder (either format, :mod:`.saved`) or a hub id:
        the registered factory with the saved options and ``pretrained=False``, then the weights
        and statistics. A damaged folder (truncated or garbage JSON / safetensors, missing keys,
        options the space does not take) is one UserError line naming the file."""
        folder = Path(source).expanduser()
        if not folder.is_dir():
            files = [CONFIG_JSON, WEIGHTS_FILE]
            folder = hub_snapshot(str(source), files, "saved space", revision=revision)
        saved = find_saved(folder)
        if saved is None:
            raise UserError(f"not a saved space (no {CONFIG_JSON} naming a space): {source}")
        meta = read_meta(saved)
        try:
            stats = LatentStats.from_dict(meta["stats"]) if meta.get("stats") else None
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(
                f"{saved.meta_file}: 'stats' are not latent statistics ({e!r})"
            ) from None
        try:
            space = call_factory(meta["space"], {**meta["config"], "pretrained": False})
        except UserError as e:
            raise UserError(f"{saved.meta_file}: {e}") from None
        if not isinstance(space, LatentSpace):
            raise UserError(f"{saved.meta_file}: {meta['space']!r} does not build a LatentSpace")
        load_weights(space, saved)
        space.stats = stats
        return space.to(device) if device is not None else space


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
