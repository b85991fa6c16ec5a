"""The TAESD family: tiny distilled autoencoders (~1.2M parameters per half) of larger VAEs.

Images are (B, 3, H, W) in [-1, 1] at the interface ([0, 1] inside TAESD); every member has
stride 8. ``encode`` is deterministic (``sample`` is ignored) and returns latents that
approximate the *diffusion-space* latents of the parent VAE, i.e. scaled and shifted the way a
generator of that VAE uses them, so ``taesd`` latents live in the same units as the ``sd-vae``
space's:

| space     | latents approximate                                    | ch | diffusers hub id    |
|-----------|--------------------------------------------------------|----|---------------------|
| `taesd`   | SD 1.x/2.x VAE: 0.18215 * mean                         | 4  | madebyollin/taesd   |
| `taesdxl` | SDXL VAE: 0.13025 * mean                               | 4  | madebyollin/taesdxl |
| `taesd3`  | SD3 VAE: 1.5305 * (mean - 0.0609)                      | 16 | madebyollin/taesd3  |
| `taef1`   | FLUX.1 VAE: 0.3611 * (mean - 0.1159)                   | 16 | madebyollin/taef1   |
| `taef2`   | FLUX.2 VAE: mean, 2x2-patchified, batch-normalised     | 32 | none                |
|           | with the VAE's running stats, unpatchified to 32 ch    |    |                     |

``taesd`` ... ``taef1`` run on diffusers' ``AutoencoderTiny``. ``taef2`` adds a GroupNorm branch
to the three lowest-resolution blocks of encoder and decoder, which ``AutoencoderTiny`` lacks:
:class:`TinyAutoencoder` below is that architecture (the same layer layout and [-1, 1]
conventions as ``AutoencoderTiny``, so one key mapping loads upstream weights into both).

Weights, first match wins:
1. ``weights=`` (``--weights``): the encoder or decoder ``.pth`` file (its partner is found
   beside it), a folder holding ``{name}_encoder.pth`` and ``{name}_decoder.pth`` (directly or
   under ``taesd/``); for the first four also a diffusers ``AutoencoderTiny`` folder or hub id;
2. the folder named by ``$LATENTBENCH_WEIGHTS`` (directly or under ``taesd/``);
3. ``$LATENTBENCH_CACHE/weights/taesd`` (``~/.cache/latentbench/...``), filled by downloading the
   files of the madebyollin/taesd GitHub repository at a pinned commit, each verified against
   its recorded sha256 (or, where no sha256 is recorded, its git blob SHA-1 at that commit).
   ``HF_HUB_OFFLINE=1`` turns downloads off.
Only ``torch.load(weights_only=True)`` reads them. The sha256 of every file used is kept in
``space.weight_files`` for the run manifest; a local file that differs from the upstream one
(another release, a fine-tune) is used with a warning.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderTiny
from torch import Tensor, nn

from latentbench.config import ImageSize
from latentbench.errors import UserError
from latentbench.files import torch_load
from latentbench.hub import (
    WEIGHTS_ENV,
    download_weights,
    file_sha256,
    load_pretrained,
    weights_folders,
)
from latentbench.runs import cache_root
from latentbench.spaces.base import LatentSpace, LatentSpec
from latentbench.spaces.catalog import space_factory
from latentbench.spaces.vae import (
    DEFAULT_IMAGE_SIZE,
    arch_of,
    check_image_size,
    resize_to,
)

UPSTREAM_COMMIT = "5cccb12dc72074a4be35680c3b108548a7c69978"  # madebyollin/taesd, "FLUX.2 VAE"
UPSTREAM_URL = "https://raw.githubusercontent.com/madebyollin/taesd/{commit}/{filename}"


@dataclass(frozen=True)
class UpstreamFile:
    sha256: str | None  # None: not hashed yet (the git blob id still pins the content)
    git_blob: str  # `git hash-object` of the file at UPSTREAM_COMMIT


UPSTREAM_FILES: dict[str, UpstreamFile] = {
    "taesd_encoder.pth": UpstreamFile(None, "65f85afc58480128926e52086fbf0fdc61c2c9b5"),
    "taesd_decoder.pth": UpstreamFile(None, "5915a429fc08eba4adf62bf74f96705b8b0d5c1f"),
    "taesdxl_encoder.pth": UpstreamFile(None, "56dfb7ed13ac774bc28dcd981f072f26eb7c5e99"),
    "taesdxl_decoder.pth": UpstreamFile(None, "477bc7e9604f418029508e72ac8719bb9d048291"),
    "taesd3_encoder.pth": UpstreamFile(None, "9678667c0e3e4b648a36daaa8094b1732ae4fb67"),
    "taesd3_decoder.pth": UpstreamFile(None, "7943be72a9151d0b330c5d8a4fbb885d889b60a1"),
    "taef1_encoder.pth": UpstreamFile(None, "d8ee13fa3a1ff9a92643669d718e4b0827daafa5"),
    "taef1_decoder.pth": UpstreamFile(None, "b772c9c4e6d3b79d06b277be59296389591783d3"),
    "taef2_encoder.pth": UpstreamFile(
        "10a4e1021e89d7551eaf161352da8dbd0b1aa83872ae28b150c1df1ce2f147b6",
        "8d738aba02f7ba9d156712489322dc5c43d5db1c",
    ),
    "taef2_decoder.pth": UpstreamFile(
        "0a44a31e1ae59eb9dbf9359d24942fd3ef5928162c1800d97a28c61d51be0ab5",
        "f4da1ec48cb805b5ee8deb22cfad03f48fe52f64",
    ),
}


class Part(str, Enum):
    ENCODER = "encoder"
    DECODER = "decoder"


@dataclass(frozen=True)
class TinyVariant:
    name: str
    latent_channels: int
    hub_id: str | None  # a diffusers AutoencoderTiny on the hub; None: no diffusers format
    pooled_midblocks: bool  # taef2's GroupNorm branches

    def filename(self, part: Part) -> str:
        return f"{self.name}_{part.value}.pth"


VARIANTS: dict[str, TinyVariant] = {
    v.name: v
    for v in (
        TinyVariant("taesd", 4, "madebyollin/taesd", False),
        TinyVariant("taesdxl", 4, "madebyollin/taesdxl", False),
        TinyVariant("taesd3", 16, "madebyollin/taesd3", False),
        TinyVariant("taef1", 16, "madebyollin/taef1", False),
        TinyVariant("taef2", 32, None, True),
    )
}
STRIDE = 8  # TinyAutoencoder's; an AutoencoderTiny's follows its number of encoder stages


# -- the architecture (taef2; with pooled_midblocks=False it equals AutoencoderTiny) ------------
def _conv3x3(c_in: int, c_out: int, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=bias)


class TinyBlock(nn.Module):
    """Residual block ``relu(x + conv(x))``, conv = 3 x (3x3 conv) with ReLUs between.

    ``pooled`` first adds a branch that sees per-sample statistics of the whole feature map:
    1x1 conv (C -> 4C), GroupNorm (4 groups), ReLU, 1x1 conv (4C -> C).
    """

    def __init__(self, channels: int, pooled: bool = False) -> None:
        super().__init__()
        c = channels
        self.conv = nn.Sequential(
            _conv3x3(c, c), nn.ReLU(), _conv3x3(c, c), nn.ReLU(), _conv3x3(c, c)
        )
        self.pool = (
            nn.Sequential(
                nn.Conv2d(c, 4 * c, 1, bias=False),
                nn.GroupNorm(4, 4 * c),
                nn.ReLU(),
                nn.Conv2d(4 * c, c, 1, bias=False),
            )
            if pooled
            else None
        )

    def forward(self, x: Tensor) -> Tensor:  # (B, C, h, w) -> (B, C, h, w)
        if self.pool is not None:
            x = x + self.pool(x)
        return torch.relu(self.conv(x) + x)


class TinyEncoder(nn.Module):
    """(B, 3, H, W) in [-1, 1] -> (B, C, H/8, W/8): conv, block, then 3 stages of
    (stride-2 conv, 3 blocks), conv; the last stage's blocks are pooled when asked."""

    def __init__(self, latent_channels: int, pooled_midblocks: bool, width: int = 64) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv3x3(3, width), TinyBlock(width)]
        for stage in range(3):
            pooled = pooled_midblocks and stage == 2
            layers.append(_conv3x3(width, width, stride=2, bias=False))
            layers.extend(TinyBlock(width, pooled) for _ in range(3))
        layers.append(_conv3x3(width, latent_channels))
        self.layers = nn.Sequential(*layers)

    def forward(self, images: Tensor) -> Tensor:
        return self.layers(images.add(1).div(2))  # TAESD sees [0, 1]


class TinyDecoder(nn.Module):
    """(B, C, h, w) -> (B, 3, 8h, 8w) in about [-1, 1]: soft clamp of the latents to (-3, 3),
    conv, ReLU, 3 stages of (3 blocks, 2x nearest upsample, conv), block, conv; the first
    stage's blocks are pooled when asked."""

    def __init__(self, latent_channels: int, pooled_midblocks: bool, width: int = 64) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv3x3(latent_channels, width), nn.ReLU()]
        for stage in range(3):
            pooled = pooled_midblocks and stage == 0
            layers.extend(TinyBlock(width, pooled) for _ in range(3))
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            layers.append(_conv3x3(width, width, bias=False))
        layers.extend([TinyBlock(width), _conv3x3(width, 3)])
        self.layers = nn.Sequential(*layers)

    def forward(self, latents: Tensor) -> Tensor:
        x = torch.tanh(latents / 3) * 3
        return self.layers(x).mul(2).sub(1)  # [0, 1] -> [-1, 1]


class TinyAutoencoder(nn.Module):
    def __init__(self, latent_channels: int, pooled_midblocks: bool) -> None:
        super().__init__()
        self.encoder = TinyEncoder(latent_channels, pooled_midblocks)
        self.decoder = TinyDecoder(latent_channels, pooled_midblocks)


def upstream_to_diffusers(
    encoder_state: dict[str, Tensor], decoder_state: dict[str, Tensor]
) -> dict[str, Tensor]:
    """Upstream ``{name}_{encoder,decoder}.pth`` keys -> the ``AutoencoderTiny`` layout.

    The encoder keys only gain a prefix; upstream's decoder starts with a parameter-free clamp
    layer (index 0) that the diffusers layout applies in ``forward``, so its indices drop by one.
    """
    state = {f"encoder.layers.{k}": v for k, v in encoder_state.items()}
    for key, value in decoder_state.items():
        index, rest = key.split(".", 1)
        state[f"decoder.layers.{int(index) - 1}.{rest}"] = value
    return state


# -- the space -----------------------------------------------------------------------------------
class TinyAutoencoderSpace(LatentSpace):
    def __init__(
        self,
        variant: TinyVariant,
        model: AutoencoderTiny | TinyAutoencoder,
        image_size: int,
        weight_files: dict[str, dict[str, str]] | None = None,
    ) -> None:
        super().__init__()
        self.variant = variant
        self.model = model.eval()
        self.stride = (
            2 ** (len(model.config.num_encoder_blocks) - 1)
            if isinstance(model, AutoencoderTiny)
            else STRIDE
        )
        self.image_size = check_image_size(variant.name, image_size, self.stride)
        self.weight_files = weight_files or {}  # part -> {"file", "sha256"}; for the manifest

    @property
    def latent_channels(self) -> int:
        if isinstance(self.model, AutoencoderTiny):
            return int(self.model.config.latent_channels)
        return self.variant.latent_channels

    @property
    def spec(self) -> LatentSpec:
        return LatentSpec(
            self.variant.name, self.latent_channels, self.image_size // self.stride, self.image_size
        )

    def resolved_options(self) -> dict[str, Any]:
        """A diffusers model's architecture, read from its config: rebuild offline."""
        return {"arch": arch_of(self.model)} if isinstance(self.model, AutoencoderTiny) else {}

    def _encode(self, images: Tensor, sample: bool, generator: torch.Generator | None) -> Tensor:
        return self.model.encoder(resize_to(images, self.image_size))  # (B, C, S/8, S/8)

    def _decode(self, latents: Tensor) -> Tensor:
        return self.model.decoder(latents)  # (B, 3, S, S)


def build_tiny_space(
    name: str,
    image_size: int,
    weights: str | None,
    arch: dict[str, Any] | None,
    pretrained: bool,
) -> TinyAutoencoderSpace:
    variant = VARIANTS[name]
    if pretrained and weights is not None and _is_diffusers_source(weights):
        if variant.hub_id is None:
            raise UserError(f"{name}: has no diffusers format; pass its .pth files (weights=PATH)")
        model = load_pretrained(
            AutoencoderTiny, weights, "diffusers AutoencoderTiny", option="weights=PATH"
        )
        if model.config.latent_channels != variant.latent_channels:
            raise UserError(
                f"{name}: {weights!r} has {model.config.latent_channels} latent channels, "
                f"expected {variant.latent_channels}"
            )
        return TinyAutoencoderSpace(variant, model, image_size)
    model = _new_model(variant, arch)
    if not pretrained:
        return TinyAutoencoderSpace(variant, model, image_size)
    files = find_weight_files(variant, weights)
    state = upstream_to_diffusers(
        _torch_load(files[Part.ENCODER]), _torch_load(files[Part.DECODER])
    )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise UserError(
            f"{name}: {files[Part.ENCODER]} / {files[Part.DECODER]} do not fit the {name} "
            f"architecture ({first})"
        ) from e
    recorded = {p.value: {"file": str(f), "sha256": file_sha256(f)} for p, f in files.items()}
    return TinyAutoencoderSpace(variant, model, image_size, recorded)


def _new_model(variant: TinyVariant, arch: dict[str, Any] | None) -> nn.Module:
    if variant.pooled_midblocks:
        return TinyAutoencoder(variant.latent_channels, pooled_midblocks=True)
    return AutoencoderTiny.from_config(arch or {"latent_channels": variant.latent_channels})


def _is_diffusers_source(weights: str) -> bool:
    """A diffusers folder (config.json) or something shaped like a hub id that is no path."""
    path = Path(weights).expanduser()
    if path.exists():
        return path.is_dir() and (path / "config.json").is_file()
    return re.fullmatch(r"[\w.-]+/[\w.-]+", weights) is not None and not weights.endswith(".pth")


# -- finding, downloading and checking the upstream files ----------------------------------------
def find_weight_files(variant: TinyVariant, weights: str | None) -> dict[Part, Path]:
    """The encoder and decoder files of ``variant``, in the order of the module docstring."""
    names = {part: variant.filename(part) for part in Part}
    if weights is not None:
        files = _from_option(variant, Path(weights).expanduser(), names)
    else:
        env = weights_folders()  # $LATENTBENCH_WEIGHTS; _in_folder also looks in its taesd/
        files = _in_folder(env[0], names) if env else None
        if files is None:
            return {part: _cached_or_downloaded(variant, name) for part, name in names.items()}
    for part, path in files.items():
        if not matches_upstream(path, names[part]):
            warnings.warn(
                f"{path} differs from upstream {names[part]} at madebyollin/taesd@"
                f"{UPSTREAM_COMMIT[:7]}; using it anyway",
                stacklevel=3,
            )
    return files


def _in_folder(folder: Path, names: dict[Part, str]) -> dict[Part, Path] | None:
    for candidate in (folder, folder / "taesd"):
        if all((candidate / name).is_file() for name in names.values()):
            return {part: candidate / name for part, name in names.items()}
    return None


def _from_option(variant: TinyVariant, path: Path, names: dict[Part, str]) -> dict[Part, Path]:
    if path.is_dir():
        found = _in_folder(path, names)
        if found is None:
            raise UserError(
                f"{variant.name}: {path} holds no {names[Part.ENCODER]} + "
                f"{names[Part.DECODER]} (looked in it and in its taesd/ subfolder)"
            )
        return found
    if not path.is_file():
        raise UserError(f"{variant.name}: weights {str(path)!r}: no such file or folder")
    # A file names one half; the other half sits beside it with encoder <-> decoder swapped.
    for part, other in ((Part.ENCODER, Part.DECODER), (Part.DECODER, Part.ENCODER)):
        if part.value in path.name:
            partner = path.with_name(path.name.replace(part.value, other.value))
            if not partner.is_file():
                raise UserError(f"{variant.name}: {path} needs its {other.value} {partner}")
            return {part: path, other: partner}
    raise UserError(
        f"{variant.name}: cannot tell whether {path} is the encoder or the decoder: "
        f"pass a file named like {names[Part.ENCODER]}, or its folder"
    )


def cache_dir() -> Path:
    """``weights/taesd`` under the cache root (:func:`latentbench.runs.cache_root`)."""
    return cache_root() / "weights" / "taesd"


def upstream_url(filename: str) -> str:
    return UPSTREAM_URL.format(commit=UPSTREAM_COMMIT, filename=filename)


def _cached_or_downloaded(variant: TinyVariant, filename: str) -> Path:
    target = cache_dir() / filename
    if target.is_file() and matches_upstream(target, filename):
        return target
    url = upstream_url(filename)
    how = (
        f"pass weights=PATH (--weights; a file or folder), put it in the folder named by "
        f"${WEIGHTS_ENV} (or its taesd/ subfolder), or go online to download {url}"
    )
    return download_weights(
        url, target, variant.name, how, verify=lambda p: matches_upstream(p, filename)
    )


def git_blob_sha1(path: Path) -> str:
    """What ``git hash-object`` prints: sha1 over ``b"blob <size>\\0"`` + the content."""
    h = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def matches_upstream(path: Path, filename: str) -> bool:
    """Whether ``path`` is upstream's ``filename``: its sha256 where recorded, else its git blob."""
    known = UPSTREAM_FILES.get(filename)
    if known is None:
        return False
    if known.sha256 is not None:
        return file_sha256(path) == known.sha256
    return git_blob_sha1(path) == known.git_blob


def _torch_load(path: Path) -> dict[str, Tensor]:
    state = torch_load(path)
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise UserError(f"{path}: expected a state dict of tensors")
    return state


# -- factories -----------------------------------------------------------------------------------
def _tiny_factory(name: str, doc: str) -> Callable[..., TinyAutoencoderSpace]:
    """The registered factory of the TAESD space ``name`` (those with a diffusers ``arch``)."""

    def factory(
        weights: str | None = None,
        arch: dict[str, Any] | None = None,
        image_size: ImageSize = DEFAULT_IMAGE_SIZE,
        pretrained: bool = True,
    ) -> TinyAutoencoderSpace:
        return build_tiny_space(name, image_size, weights, arch, pretrained)

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = doc
    return space_factory(name)(factory)


taesd = _tiny_factory(
    "taesd", "TAESD for SD 1.x/2.x: 4 channels, stride 8, latents ~ 0.18215 * SD-VAE mean."
)
taesdxl = _tiny_factory(
    "taesdxl", "TAESD for SDXL: 4 channels, stride 8, latents ~ 0.13025 * SDXL-VAE mean."
)
taesd3 = _tiny_factory(
    "taesd3", "TAESD for SD3: 16 channels, stride 8, latents ~ 1.5305 * (SD3-VAE mean - 0.0609)."
)
taef1 = _tiny_factory(
    "taef1",
    "TAESD for FLUX.1: 16 channels, stride 8, latents ~ 0.3611 * (FLUX.1-VAE mean - 0.1159).",
)


@space_factory("taef2")
def taef2(
    weights: str | None = None,
    image_size: ImageSize = DEFAULT_IMAGE_SIZE,
    pretrained: bool = True,
) -> TinyAutoencoderSpace:
    """TAESD for FLUX.2: 32 channels, stride 8, latents ~ the FLUX.2 VAE's batch-normalised
    latents (see the module docstring); needs its .pth files (no diffusers format)."""
    return build_tiny_space("taef2", image_size, weights, None, pretrained)
