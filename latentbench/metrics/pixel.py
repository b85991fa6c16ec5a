"""Per-image reconstruction metrics: PSNR, SSIM and LPIPS, batched in torch.

All three score the images a user would get by saving the tensors to PNG: float images
(B, 3, H, W) in [-1, 1] are first quantised with :func:`to_uint8`
(``round((x + 1) * 127.5)``, clamped to [0, 255]). uint8 tensors are taken as they are, so a
caller can quantise once and pass the same uint8 batch to every metric.

- :func:`psnr` equals ``skimage.metrics.peak_signal_noise_ratio(a, b, data_range=255)`` per image;
  identical images (infinite PSNR) are capped at :data:`MAX_PSNR_DB` so that means stay finite.
- :func:`ssim` equals ``skimage.metrics.structural_similarity`` with the settings of
  :data:`SSIM_VARIANT` (Wang et al. 2004: 11-tap Gaussian window, sigma 1.5, population
  covariance), including skimage's border crop.
- :class:`LPIPSMetric` wraps the ``lpips`` package (real linear heads shipped with it); the
  AlexNet / VGG16 backbone weights are torchvision's ImageNet files. :func:`build_lpips` with
  ``auto`` (the default of ``recon --lpips``) uses the AlexNet LPIPS where its backbone is found
  or downloads, else no LPIPS (a random backbone only when asked for: its values are not LPIPS).

Every metric exposes a ``variant`` dict that the runner writes next to its value.
"""

from __future__ import annotations

import warnings
from enum import Enum
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from latentbench.errors import UserError, unknown_choice
from latentbench.files import torch_load
from latentbench.hub import WeightsFile, fetch_weights
from latentbench.metrics.auto import AutoChoice, first_available
from latentbench.metrics.quantize import QUANTISATION, from_uint8, to_uint8

MAX_PSNR_DB = 100.0
"""PSNR of identical images is +inf (as in skimage); it is capped here so means stay finite."""


def _pair(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    if x.shape != y.shape or x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(
            f"expected two (B, 3, H, W) batches of one shape, got {x.shape}, {y.shape}"
        )
    return to_uint8(x), to_uint8(y.to(x.device))


# -- PSNR -----------------------------------------------------------------------------------------
PSNR_VARIANT: dict[str, Any] = {
    "name": "psnr",
    "reference": "skimage.metrics.peak_signal_noise_ratio",
    "input": QUANTISATION,
    "data_range": 255,
    "mse": "mean over all pixels and channels of one image",
    "max_db": MAX_PSNR_DB,
}


def psnr(x: Tensor, y: Tensor, *, max_db: float | None = MAX_PSNR_DB) -> Tensor:
    """PSNR in dB of each image pair, on uint8 images with data range 255. Returns (B,) float64.

    ``max_db`` caps identical pairs (+inf in skimage); ``None`` keeps the +inf.
    """
    a, b = _pair(x, y)  # (B, 3, H, W) uint8
    mse = (a.double() - b.double()).square().flatten(1).mean(1)  # (B,)
    out = 10.0 * torch.log10(255.0**2 / mse)  # mse == 0 -> +inf
    return out if max_db is None else out.clamp(max=max_db)


psnr.variant = PSNR_VARIANT  # type: ignore[attr-defined]


# -- SSIM -----------------------------------------------------------------------------------------
SSIM_VARIANT: dict[str, Any] = {
    "name": "ssim",
    "reference": "skimage.metrics.structural_similarity",
    "input": QUANTISATION,
    "data_range": 255,
    "channel_axis": "mean of the per-channel SSIM (channel_axis=-1)",
    "gaussian_weights": True,
    "sigma": 1.5,
    "truncate": 3.5,
    "win_size": 11,
    "use_sample_covariance": False,
    "K1": 0.01,
    "K2": 0.03,
    "border_crop": 5,
    "dtype": "float64",
}


def _gaussian_taps(sigma: float, truncate: float) -> Tensor:
    """scipy.ndimage's normalised 1-D Gaussian: radius int(truncate * sigma + 0.5). (K,)"""
    radius = int(truncate * sigma + 0.5)
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    taps = torch.exp(-0.5 * (t / sigma) ** 2)
    return taps / taps.sum()


def _valid_filter_matrix(size: int, taps: Tensor) -> Tensor:
    """(size, size - K + 1) banded matrix M with (x @ M)[j] = sum_k taps[k] x[j + k]."""
    k = taps.shape[0]
    cols = torch.arange(size - k + 1)
    m = torch.zeros(size, size - k + 1, dtype=taps.dtype)
    m[cols[:, None] + torch.arange(k)[None, :], cols[:, None]] = taps
    return m


def ssim(x: Tensor, y: Tensor, *, chunk: int = 8) -> Tensor:
    """Mean SSIM of each image pair, as skimage computes it. Returns (B,) float64.

    Equals ``structural_similarity(a, b, channel_axis=-1, data_range=255, gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False)`` on the uint8 images (see :data:`SSIM_VARIANT`).
    skimage filters with ``mode='reflect'`` and then drops a border of (win_size - 1) // 2 = 5
    pixels before averaging; the kept pixels never see the padding, so an unpadded ("valid")
    separable filter gives exactly the cropped map. The filter runs in float64 as two banded
    matrix products (BLAS: several times faster on CPU than a float64 depthwise convolution),
    ``chunk`` images at a time to bound memory. Images must be at least 11 px a side.
    """
    a, b = _pair(x, y)
    v = SSIM_VARIANT
    if min(a.shape[-2:]) < v["win_size"]:
        raise ValueError(
            f"SSIM needs images of at least {v['win_size']}x{v['win_size']} px, "
            f"got {tuple(a.shape[-2:])}"
        )
    taps = _gaussian_taps(v["sigma"], v["truncate"]).to(a.device)  # (11,)
    filter_h = _valid_filter_matrix(a.shape[-2], taps).T  # (H - 10, H)
    filter_w = _valid_filter_matrix(a.shape[-1], taps)  # (W, W - 10)
    c1 = (v["K1"] * v["data_range"]) ** 2
    c2 = (v["K2"] * v["data_range"]) ** 2
    out = []
    for i in range(0, a.shape[0], chunk):
        p, q = a[i : i + chunk].double(), b[i : i + chunk].double()  # (b, 3, H, W)
        maps = torch.cat([p, q, p * p, q * q, p * q], dim=1)  # (b, 15, H, W)
        maps = filter_h @ (maps @ filter_w)  # (b, 15, H - 10, W - 10)
        ux, uy, uxx, uyy, uxy = maps.split(p.shape[1], dim=1)  # each (b, 3, H - 10, W - 10)
        vx, vy, vxy = uxx - ux * ux, uyy - uy * uy, uxy - ux * uy  # population (co)variances
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
        out.append(s.mean(dim=(2, 3)).mean(dim=1))  # (b,): mean per channel, then over channels
    return torch.cat(out)


ssim.variant = SSIM_VARIANT  # type: ignore[attr-defined]


# -- LPIPS ----------------------------------------------------------------------------------------
class LPIPSNet(str, Enum):
    """Backbones of the ``lpips`` package that latentbench offers."""

    ALEX = "alex"
    VGG = "vgg"

    @classmethod
    def parse(cls, value: LPIPSNet | str) -> LPIPSNet:
        try:
            return cls(value)
        except ValueError:
            raise unknown_choice("LPIPS net", str(value), [m.value for m in cls]) from None


# torchvision's ImageNet weights for each backbone, the files lpips.LPIPS(pretrained=True) loads.
LPIPS_BACKBONE_FILES = {
    LPIPSNet.ALEX: "alexnet-owt-7be5be79.pth",
    LPIPSNet.VGG: "vgg16-397923af.pth",
}
_TORCHVISION_URL = "https://download.pytorch.org/models/"


class LPIPSMetric(nn.Module):
    """LPIPS v0.1 distance of each image pair through the ``lpips`` package. Returns (B,) float64.

    Args:
        net: backbone, ``alex`` (default, the usual reporting choice) or ``vgg``.
        weights: torchvision's ImageNet file for that backbone (``alexnet-owt-7be5be79.pth`` or
            ``vgg16-397923af.pth``), or a folder holding it. Without it: the folder named by
            ``$LATENTBENCH_WEIGHTS``, then torch's hub cache, then a download from
            download.pytorch.org (what ``lpips`` itself does). Offline with no file: UserError.
        allow_random_backbone: build ``lpips.LPIPS(pnet_rand=True)`` (random backbone, the real
            linear heads) when no local file is found; nothing is downloaded then. For tests and
            offline demos only: the variant name says ``-randbackbone``; the values are not LPIPS.
        quantize: score the uint8 (PNG) images, like PSNR / SSIM (default True).
    """

    def __init__(
        self,
        net: LPIPSNet | str = LPIPSNet.ALEX,
        weights: str | Path | None = None,
        *,
        allow_random_backbone: bool = False,
        quantize: bool = True,
    ) -> None:
        super().__init__()
        import lpips

        self.net = LPIPSNet.parse(net)
        self.quantize = quantize
        file_name = LPIPS_BACKBONE_FILES[self.net]
        found: WeightsFile | None = fetch_weights(
            file_name,
            _TORCHVISION_URL + file_name,
            weights,
            what=f"the LPIPS {self.net.value} backbone",
            allow_missing=allow_random_backbone,
        )
        # pnet_rand=True: lpips builds the backbone without downloading; the heads are real.
        with warnings.catch_warnings():  # torchvision's notice about lpips' `pretrained=` call
            warnings.simplefilter("ignore", UserWarning)
            self.model = lpips.LPIPS(
                net=self.net.value, version="0.1", pnet_rand=True, verbose=False
            )
        if found is not None:
            self.model.net.load_state_dict(_lpips_backbone_state(self.model.net, found.path))
        self.model.requires_grad_(False).eval()
        name = f"lpips-{self.net.value}" + ("" if found else "-randbackbone")
        self.variant: dict[str, Any] = {
            "name": name,
            "package": "lpips",
            "version": "0.1",
            "net": self.net.value,
            "backbone_weights": found.describe() if found else "random (pnet_rand=True)",
            "input": QUANTISATION if quantize else "float [-1, 1]",
            "reduction": "spatial average of each image",
        }

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        device = next(self.model.parameters()).device
        if self.quantize or x.dtype == torch.uint8:
            a, b = _pair(x, y)
            x, y = from_uint8(a), from_uint8(b)
        with torch.inference_mode():
            # channels-last: AlexNet's convolutions run ~1.25x faster on CPU, same distances
            d = self.model(
                x.to(device, torch.float, memory_format=torch.channels_last),
                y.to(device, torch.float, memory_format=torch.channels_last),
            )  # (B, 1, 1, 1)
        return d.flatten().double()  # (B,), a normal tensor again


def _lpips_backbone_state(net: nn.Module, path: Path) -> dict[str, Tensor]:
    """Map torchvision's ``features.<i>.*`` keys onto lpips' ``slice<k>.<i>.*`` (same index i)."""
    state = torch_load(path)
    try:
        return {key: state["features." + key.split(".", 1)[1]] for key in net.state_dict()}
    except (KeyError, TypeError, AttributeError):
        raise UserError(f"{path} is not a torchvision state dict for this LPIPS backbone") from None


class LPIPSChoice(str, Enum):
    """What ``--lpips`` asks for: one of the nets, or ``auto`` (the real one where it loads)."""

    ALEX = "alex"
    VGG = "vgg"
    AUTO = "auto"


def build_lpips(
    choice: LPIPSChoice, *, random_backbone: bool = False
) -> tuple[LPIPSMetric | None, AutoChoice | None]:
    """The LPIPS metric of ``choice`` and, for ``auto``, what it became (else None).

    ``auto``: LPIPS-AlexNet where the backbone file is found or downloads; else, with
    ``random_backbone``, the heads on a random backbone (named ``-randbackbone``), otherwise no
    LPIPS at all (None): a random-backbone number is not LPIPS and should not appear in a table
    unless asked for. An explicit net that cannot load stays an error.
    """
    choice = LPIPSChoice(choice)
    if choice is not LPIPSChoice.AUTO:
        net = LPIPSNet(choice.value)
        return LPIPSMetric(net, allow_random_backbone=random_backbone), None
    fallback: tuple[str, Any] = (
        ("alex-randbackbone", lambda: LPIPSMetric(LPIPSNet.ALEX, allow_random_backbone=True))
        if random_backbone
        else ("none", lambda: None)
    )
    return first_available("lpips", [("alex", lambda: LPIPSMetric(LPIPSNet.ALEX)), fallback])
