"""Diffusers ``AutoencoderKL`` spaces: SD, SDXL, SD3 and Flux VAEs by preset name, or any model.

``encode`` returns the latents a diffusion model of that VAE sees: the posterior mean (or a
posterior sample with ``sample=True``), shifted and scaled by the space,
``z = (mean - shift) * scale``. ``decode`` inverts it: ``vae.decode(z / scale + shift)``.
Those two numbers live here and nowhere else in latentbench.

| preset     | weights (hub id, subfolder)                        | latent ch | scale   | shift  |
|------------|----------------------------------------------------|-----------|---------|--------|
| `sd-vae`   | stabilityai/sd-vae-ft-ema                          | 4         | 0.18215 | 0      |
| `sdxl-vae` | stabilityai/sdxl-vae                               | 4         | 0.13025 | 0      |
| `sd3-vae`  | stabilityai/stable-diffusion-3-medium-diffusers/vae | 16       | 1.5305  | 0.0609 |
| `flux-vae` | black-forest-labs/FLUX.1-dev/vae                   | 16        | 0.3611  | 0.1159 |
| `vae`      | ``model=`` (hub id or folder)                      | config    | config  | config |

The numbers are the ``scaling_factor`` / ``shift_factor`` of each model's diffusers config.
Every VAE here has stride 8; images of another size than ``image_size`` are resized
(bicubic, antialiased) before encoding, as in the pixel space.

Weights come from ``model`` (a hub id, or a local folder in diffusers format, e.g. made with
``save_pretrained`` or ``hf download``), loaded with ``from_pretrained``. With
``pretrained=False`` the architecture is built offline from ``arch`` (a diffusers config dict),
else from the preset's known architecture; the space's config keeps ``arch`` so a saved space
(space.json + space.safetensors) rebuilds without the network.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor

from latentbench.config import ImageSize
from latentbench.errors import UserError
from latentbench.hub import load_pretrained
from latentbench.spaces.base import LatentSpace, LatentSpec
from latentbench.spaces.catalog import space_factory

DEFAULT_IMAGE_SIZE = 256

# The SD 1.x / 2.x / SDXL AutoencoderKL (83.7M parameters, stride 8).
SD_ARCH: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "act_fn": "silu",
    "latent_channels": 4,
    "norm_num_groups": 32,
    "use_quant_conv": True,
    "use_post_quant_conv": True,
    "mid_block_add_attention": True,
}
# SD3 and FLUX.1: the same trunk with 16 latent channels and no (post-)quant convs.
SD3_ARCH: dict[str, Any] = {
    **SD_ARCH,
    "latent_channels": 16,
    "use_quant_conv": False,
    "use_post_quant_conv": False,
}


@dataclass(frozen=True)
class VAEPreset:
    name: str
    model: str  # hub id
    subfolder: str | None
    scale: float
    shift: float
    arch: dict[str, Any] = field(repr=False)


PRESETS: dict[str, VAEPreset] = {
    p.name: p
    for p in (
        VAEPreset("sd-vae", "stabilityai/sd-vae-ft-ema", None, 0.18215, 0.0, SD_ARCH),
        VAEPreset("sdxl-vae", "stabilityai/sdxl-vae", None, 0.13025, 0.0, SD_ARCH),
        VAEPreset(
            "sd3-vae",
            "stabilityai/stable-diffusion-3-medium-diffusers",
            "vae",
            1.5305,
            0.0609,
            SD3_ARCH,
        ),
        VAEPreset("flux-vae", "black-forest-labs/FLUX.1-dev", "vae", 0.3611, 0.1159, SD3_ARCH),
    )
}
_PRESET_BY_MODEL = {p.model: p for p in PRESETS.values()}


class DiffusersVAESpace(LatentSpace):
    """A diffusers ``AutoencoderKL`` with the space's own ``(z - shift) * scale``."""

    def __init__(
        self,
        vae: AutoencoderKL,
        *,
        name: str,
        image_size: int,
        scale: float,
        shift: float,
        model: str | None,
        subfolder: str | None,
    ) -> None:
        super().__init__()
        self.vae = vae.eval()
        self.name, self.model, self.subfolder = name, model, subfolder
        self.scale, self.shift = float(scale), float(shift)
        self.stride = 2 ** (len(vae.config.block_out_channels) - 1)
        self.image_size = check_image_size(name, image_size, self.stride)

    @property
    def spec(self) -> LatentSpec:
        channels = self.vae.config.latent_channels
        return LatentSpec(self.name, channels, self.image_size // self.stride, self.image_size)

    def resolved_options(self) -> dict[str, Any]:
        """The hub id, scale, shift and architecture read while loading: rebuild offline."""
        return {
            "model": self.model,
            "subfolder": self.subfolder,
            "scale": self.scale,
            "shift": self.shift,
            "arch": arch_of(self.vae),
        }

    def _encode(self, images: Tensor, sample: bool, generator: torch.Generator | None) -> Tensor:
        images = resize_to(images, self.image_size)  # (B, 3, S, S) in [-1, 1]
        posterior = self.vae.encode(images).latent_dist
        z = posterior.sample(generator) if sample else posterior.mean  # (B, C, S/8, S/8)
        return (z - self.shift) * self.scale

    def _decode(self, latents: Tensor) -> Tensor:
        return self.vae.decode(latents / self.scale + self.shift).sample  # (B, 3, S, S)


# -- shared helpers (also used by the TAESD spaces) ----------------------------------------------
def check_image_size(name: str, image_size: int, stride: int) -> int:
    if image_size < stride or image_size % stride:
        raise UserError(f"{name}: image_size {image_size} must be a positive multiple of {stride}")
    return int(image_size)


def resize_to(images: Tensor, size: int) -> Tensor:
    """(B, 3, H, W) -> (B, 3, size, size); bicubic + antialias, identity when already that size."""
    if images.shape[-2:] == (size, size):
        return images
    return F.interpolate(images, size=(size, size), mode="bicubic", antialias=True)


def arch_of(model: ModelMixin) -> dict[str, Any]:
    """The JSON-able constructor arguments in a diffusers model's config (other keys dropped)."""
    params = inspect.signature(type(model).__init__).parameters
    return {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in model.config.items()
        if k in params and k != "self"
    }


# -- factories -----------------------------------------------------------------------------------
def build_vae_space(
    name: str,
    *,
    model: str | None,
    subfolder: str | None,
    scale: float | None,
    shift: float | None,
    arch: dict[str, Any] | None,
    image_size: int,
    pretrained: bool,
    preset: VAEPreset | None = None,
) -> DiffusersVAESpace:
    """Build a VAE space: ``preset`` supplies the defaults of ``model``/``subfolder``/``scale``/
    ``shift``/``arch``; the generic ``vae`` space has no preset and reads them from the model."""
    preset = preset or _PRESET_BY_MODEL.get(model or "")
    model = model or (preset.model if preset else None)
    subfolder = _subfolder(model, subfolder, preset)
    if pretrained:
        if model is None:
            raise UserError(f"{name}: pass model=HUB_ID or a local folder of an AutoencoderKL")
        vae = load_pretrained(AutoencoderKL, model, "diffusers AutoencoderKL", subfolder=subfolder)
    else:
        vae = AutoencoderKL.from_config(arch or _offline_arch(name, model, subfolder, preset))
    if not isinstance(vae, AutoencoderKL):
        raise UserError(f"{name}: {model!r} is a {type(vae).__name__}, not an AutoencoderKL")
    if scale is None:
        scale = preset.scale if preset else vae.config.scaling_factor
    if shift is None:
        shift = preset.shift if preset else (vae.config.shift_factor or 0.0)
    return DiffusersVAESpace(
        vae,
        name=name,
        image_size=image_size,
        scale=scale,
        shift=shift,
        model=model,
        subfolder=subfolder,
    )


def _subfolder(model: str | None, subfolder: str | None, preset: VAEPreset | None) -> str | None:
    """An explicit subfolder wins; a preset's subfolder applies to its hub id, and to a local
    folder only when the folder has it (a folder that is the VAE itself needs none)."""
    if subfolder is not None or preset is None or model is None:
        return subfolder
    if model == preset.model:
        return preset.subfolder
    local = Path(model).expanduser()
    if local.is_dir() and preset.subfolder and (local / preset.subfolder).is_dir():
        return preset.subfolder
    return None


def _offline_arch(
    name: str, model: str | None, subfolder: str | None, preset: VAEPreset | None
) -> dict[str, Any]:
    """Architecture for ``pretrained=False``: the preset's, a local folder's config.json, or,
    with no model at all, the SD-VAE architecture."""
    if preset is not None:
        return preset.arch
    if model is None:
        return SD_ARCH
    local = Path(model).expanduser() / (subfolder or "")
    if (local / "config.json").is_file():
        return dict(AutoencoderKL.load_config(str(local)))
    raise UserError(
        f"{name}: cannot build {model!r} without its weights: pass arch= (a diffusers "
        f"AutoencoderKL config) or a local folder (model=PATH)"
    )


def _vae_factory(name: str, doc: str) -> Callable[..., DiffusersVAESpace]:
    """The registered factory of the VAE space ``name`` (a preset of :data:`PRESETS`, or the
    generic ``vae``): one signature for all of them, so their options cannot drift apart."""

    def factory(
        model: str | None = None,
        subfolder: str | None = None,
        scale: float | None = None,
        shift: float | None = None,
        arch: dict[str, Any] | None = None,
        image_size: ImageSize = DEFAULT_IMAGE_SIZE,
        pretrained: bool = True,
    ) -> DiffusersVAESpace:
        return build_vae_space(
            name,
            model=model,
            subfolder=subfolder,
            scale=scale,
            shift=shift,
            arch=arch,
            image_size=image_size,
            pretrained=pretrained,
            preset=PRESETS.get(name),
        )

    factory.__name__ = factory.__qualname__ = name.replace("-", "_")
    factory.__doc__ = doc
    return space_factory(name)(factory)


vae_space = _vae_factory(
    "vae",
    """Any diffusers AutoencoderKL (hub id or local folder); scale/shift default to the model
    config's ``scaling_factor`` / ``shift_factor`` (0 when absent). With ``pretrained=False``
    and no model, the SD-VAE architecture.""",
)
sd_vae = _vae_factory(
    "sd-vae", "SD 1.x/2.x VAE (stabilityai/sd-vae-ft-ema): 4 channels, stride 8, scale 0.18215."
)
sdxl_vae = _vae_factory(
    "sdxl-vae", "SDXL VAE (stabilityai/sdxl-vae): 4 channels, stride 8, scale 0.13025."
)
sd3_vae = _vae_factory(
    "sd3-vae",
    "SD3 VAE (stable-diffusion-3-medium-diffusers/vae): 16 ch, scale 1.5305, shift 0.0609.",
)
flux_vae = _vae_factory(
    "flux-vae", "FLUX.1 VAE (black-forest-labs/FLUX.1-dev/vae): 16 ch, scale 0.3611, shift 0.1159."
)
