"""PSNR / SSIM against scikit-image, LPIPS against the lpips package, on the same uint8 images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data as skdata
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.transform import resize

from latentbench.errors import UserError
from latentbench.metrics.pixel import (
    LPIPS_BACKBONE_FILES,
    MAX_PSNR_DB,
    PSNR_VARIANT,
    SSIM_VARIANT,
    LPIPSMetric,
    LPIPSNet,
    psnr,
    ssim,
)
from latentbench.metrics.quantize import from_uint8, to_uint8

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    """The four scikit-image photos resized to 256x256, (4, 3, 256, 256) uint8."""
    out = []
    for name in PHOTOS:
        img = resize(getattr(skdata, name)(), (256, 256), anti_aliasing=True, preserve_range=True)
        out.append(torch.from_numpy(np.round(img).astype(np.uint8)).permute(2, 0, 1))
    return torch.stack(out)


def degrade(images: torch.Tensor, seed: int, noise: float = 8.0) -> torch.Tensor:
    """Blur (3x3 box) plus Gaussian noise: a plausible reconstruction. uint8 in, uint8 out."""
    g = torch.Generator().manual_seed(seed)
    x = F.avg_pool2d(images.float(), 3, stride=1, padding=1, count_include_pad=False)
    x = x + noise * torch.randn(x.shape, generator=g)
    return x.round().clamp(0, 255).to(torch.uint8)


def random_uint8(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)


def hwc(images: torch.Tensor) -> list[np.ndarray]:
    return [img.permute(1, 2, 0).numpy() for img in images]


def skimage_ssim(a: np.ndarray, b: np.ndarray) -> float:
    return structural_similarity(
        a,
        b,
        channel_axis=-1,
        data_range=255,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )


# -- quantisation -----------------------------------------------------------------------------
def test_uint8_round_trip_and_clamp() -> None:
    grid = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16).expand(1, 3, 16, 16)
    assert torch.equal(to_uint8(from_uint8(grid)), grid)
    assert to_uint8(grid) is grid
    x = torch.tensor([-1.5, -1.0, 0.0, 1.0, 2.0, float("nan")]).view(1, 1, 1, 6)
    assert to_uint8(x).flatten().tolist() == [0, 0, 128, 255, 255, 0]


# -- PSNR ---------------------------------------------------------------------------------------
def test_psnr_matches_skimage(photos: torch.Tensor) -> None:
    pairs = [
        (photos, degrade(photos, 0)),
        (random_uint8((3, 3, 24, 40), 1), random_uint8((3, 3, 24, 40), 2)),
    ]
    for a, b in pairs:
        ours = psnr(from_uint8(a), from_uint8(b))  # float input, quantised inside
        ref = [peak_signal_noise_ratio(x, y, data_range=255) for x, y in zip(hwc(a), hwc(b))]
        assert ours.dtype == torch.float64 and ours.shape == (a.shape[0],)
        np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-12)
        assert torch.equal(psnr(a, b), ours)  # uint8 input gives the same


def test_psnr_of_identical_images_is_capped(photos: torch.Tensor) -> None:
    assert PSNR_VARIANT["max_db"] == MAX_PSNR_DB == 100.0
    assert torch.all(psnr(photos, photos) == MAX_PSNR_DB)
    assert torch.all(torch.isinf(psnr(photos, photos, max_db=None)))


# -- SSIM ---------------------------------------------------------------------------------------
def test_ssim_matches_skimage_on_real_photos(photos: torch.Tensor) -> None:
    for seed, noise in ((0, 8.0), (1, 30.0)):
        b = degrade(photos, seed, noise)
        ours = ssim(from_uint8(photos), from_uint8(b))
        ref = np.array([skimage_ssim(x, y) for x, y in zip(hwc(photos), hwc(b))])
        assert ours.shape == (4,) and ours.dtype == torch.float64
        assert ref.min() > 0.05 and ref.max() < 0.99  # a meaningful range, not trivial
        np.testing.assert_allclose(ours.numpy(), ref, atol=1e-9)


def test_ssim_matches_skimage_on_random_images() -> None:
    a = random_uint8((3, 3, 37, 52), 3)  # odd, non-square sizes
    b_indep = random_uint8((3, 3, 37, 52), 4)
    b_close = degrade(a, 5, noise=20.0)
    for b in (b_indep, b_close):
        ours = ssim(a, b)
        ref = [skimage_ssim(x, y) for x, y in zip(hwc(a), hwc(b))]
        np.testing.assert_allclose(ours.numpy(), ref, atol=1e-9)


def test_ssim_identical_and_variant(photos: torch.Tensor) -> None:
    torch.testing.assert_close(ssim(photos, photos), torch.ones(4, dtype=torch.float64))
    assert SSIM_VARIANT["gaussian_weights"] and SSIM_VARIANT["sigma"] == 1.5
    assert SSIM_VARIANT["use_sample_covariance"] is False and SSIM_VARIANT["border_crop"] == 5
    with pytest.raises(ValueError, match="11x11"):
        ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="one shape"):
        ssim(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 17))


# -- LPIPS --------------------------------------------------------------------------------------
def random_alexnet_file(folder: Path) -> Path:
    """torchvision AlexNet with random weights, saved under torchvision's ImageNet file name."""
    import torchvision

    torch.manual_seed(0)
    path = folder / LPIPS_BACKBONE_FILES[LPIPSNet.ALEX]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)
    return path


@pytest.mark.filterwarnings("ignore::UserWarning")  # torchvision on lpips' `pretrained=`
def test_lpips_equals_the_lpips_package(no_weights: Path) -> None:
    """Same backbone file: lpips.LPIPS(net='alex') reads it from the hub cache, we from a path."""
    import lpips

    cached = random_alexnet_file(no_weights / "hub" / "checkpoints")
    ref = lpips.LPIPS(net="alex", verbose=False).eval()  # pnet_rand=False: torchvision's loader
    state = torch.load(cached, weights_only=True)
    assert torch.equal(ref.net.slice1[0].weight, state["features.0.weight"])

    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 64, 64, generator=g) * 2 - 1
    y = (x + 0.3 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    xq, yq = from_uint8(to_uint8(x)), from_uint8(to_uint8(y))
    with torch.no_grad():
        expected = ref(xq, yq).flatten().double()
        expected_float = ref(x, y).flatten().double()

    for weights in (cached.parent, None):  # a folder holding the file; the hub cache
        metric = LPIPSMetric("alex", weights=weights)
        torch.testing.assert_close(metric(x, y), expected, rtol=1e-6, atol=1e-7)
        assert metric.variant["name"] == "lpips-alex"
        assert metric.variant["backbone_weights"]["file"] == "alexnet-owt-7be5be79.pth"
        assert metric.variant["backbone_weights"]["official"] is False  # random, not ImageNet
    unquantised = LPIPSMetric(LPIPSNet.ALEX, weights=cached, quantize=False)
    torch.testing.assert_close(unquantised(x, y), expected_float, rtol=1e-6, atol=1e-7)
    assert torch.all(metric(x, x) == 0) and torch.all(expected > 0)


def test_lpips_weights_from_env_folder(
    no_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    random_alexnet_file(tmp_path / "weights")
    monkeypatch.setenv("LATENTBENCH_WEIGHTS", str(tmp_path / "weights"))
    assert LPIPSMetric("alex").variant["name"] == "lpips-alex"


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_missing_backbone_names_the_file(no_weights: Path, net: str) -> None:
    with pytest.raises(UserError) as err:
        LPIPSMetric(net)
    message = str(err.value)
    assert f"$LATENTBENCH_WEIGHTS/{LPIPS_BACKBONE_FILES[LPIPSNet(net)]}" in message
    assert "weights=PATH" not in message  # not an option of recon
    assert "\n" not in message


def test_lpips_random_backbone_keeps_real_heads(no_weights: Path) -> None:
    import lpips

    metric = LPIPSMetric("alex", allow_random_backbone=True)
    assert metric.variant["name"] == "lpips-alex-randbackbone"
    assert "random" in metric.variant["backbone_weights"]
    heads = torch.load(
        Path(lpips.__file__).parent / "weights/v0.1/alex.pth", map_location="cpu", weights_only=True
    )
    assert torch.equal(metric.model.lin0.model[1].weight, heads["lin0.model.1.weight"])
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    d = metric(x, x.flip(-1))
    assert d.shape == (2,) and torch.all(d > 0) and not d.requires_grad


def test_lpips_bad_net() -> None:
    with pytest.raises(UserError, match="alex, vgg"):
        LPIPSMetric("squeeze")


def test_lpips_explicit_missing_path(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        LPIPSMetric("alex", weights=tmp_path / "nope.pth")
