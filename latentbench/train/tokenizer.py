"""Tokenizer training: losses, recipes (stages and controls) and the :class:`TokenizerTask`.

The task is trained by the one loop (:class:`latentbench.train.loop.TrainLoop`); nothing here
steps an optimizer. Recipes (:class:`Recipe`):

- ``svae`` (stage 1): encoder frozen; E_s / D_s learn L_s (l2 + cosine between D_s(f_l) and the
  frozen encoder's features) + KL; the pixel decoder learns L_P on ``f_l.detach()``.
- ``psvae`` (stage 2): everything trains, no detach; L_s against a frozen copy of the encoder as it
  was at the start of the stage (start stage 2 from stage 1's output, whose encoder is the
  original) + KL + L_P.
- ``pvae``: the semrec architecture, everything trains, L_P + KL only (no L_s).
- ``rae``: encoder frozen; the ViT decoder learns L_P on noise-augmented latents.
- ``rae-hd``: encoder and decoder train; L_P + feature consistency (l2 + cosine) to a frozen copy.

L_P = l1 * |x - x'| + perceptual + adaptive-weight hinge GAN (PatchGAN, from ``gan_start``).
Total = semantic_weight * L_s + kl_weight * KL / (3 H W) + pixel_weight * L_P (+ the
discriminator's loss).

KL normalisation, as LDM's (``LPIPSWithDiscriminator``): LDM sums |x - x'| + LPIPS over the 3HW
pixel elements of each image and the KL over the latent elements of each image, averages both over
the batch and weights the KL by ``kl_weight`` (1e-6). latentbench's pixel losses are means over
the pixel elements, i.e. LDM's sums divided by 3HW; so ``KL`` here is LDM's per-image sum (logged
as ``kl``, in nats per image) and enters divided by 3HW too. The balance of KL and L1 is then
LDM's at the same ``kl_weight``, whatever the latent and image shapes.

Choices the paper leaves open (config fields, defaults here): semantic:pixel = 0.1:1 (the paper's
second reading); l2:cosine = 1:1; KL weight 1e-6 (LDM's, normalised as above); GAN weight 0.5
(LDM) from step 50k at paper scale. Perceptual: ``lpips-vgg`` (LDM's choice) where its
VGG weights can be downloaded; offline the default is ``effnet-lite0``, an LPIPS-style distance on
the real ImageNet features of EfficientNet-Lite0 (channel-normalised, squared difference, spatial
mean, 4 levels of stride 2..16, no learned heads): LPIPS with its real linear heads on a random
backbone measures little, while these are trained features that exist offline.

The discriminator trains in the same optimizer step as the tokenizer: its hinge loss sees
``recon.detach()``, and the generator's adversarial term runs the discriminator with detached
parameters, so each loss reaches only its own parameters and the one-loss loop needs no change.
"""

from __future__ import annotations

import copy
import enum
from dataclasses import dataclass, field
from typing import Annotated, Any

import torch
import torch.nn.functional as F
from pydantic import BeforeValidator
from torch import Tensor, nn
from torch.func import functional_call
from torch.utils.data import Dataset

from latentbench.config import NonNegativeFloat, NonNegativeInt, PositiveInt, config
from latentbench.errors import UserError
from latentbench.nn.patchgan import PatchGAN, adaptive_weight, hinge_d_loss, hinge_g_loss
from latentbench.spaces import SPACES, space_info, trainable_space_names
from latentbench.spaces.base import LatentSpace, module_fingerprint
from latentbench.train.loop import LoopConfig, StepContext


class Recipe(str, enum.Enum):
    SVAE = "svae"
    PSVAE = "psvae"
    PVAE = "pvae"
    RAE = "rae"
    RAE_HD = "rae-hd"


class CacheFeatures(str, enum.Enum):
    """Whether training precomputes what never changes during a run (module docstring)."""

    AUTO = "auto"  # on when the cache of the training data stays under CACHE_LIMIT_BYTES
    ON = "on"
    OFF = "off"


class PerceptualKind(str, enum.Enum):
    LPIPS_VGG = "lpips-vgg"
    LPIPS_ALEX = "lpips-alex"
    EFFNET_LITE0 = "effnet-lite0"
    NONE = "none"


@config
class LossConfig:
    """Loss weights and switches. Defaults: paper scale (see the module docstring)."""

    semantic_weight: NonNegativeFloat = 0.1
    pixel_weight: NonNegativeFloat = 1.0
    l2_weight: NonNegativeFloat = 1.0
    cosine_weight: NonNegativeFloat = 1.0
    kl_weight: NonNegativeFloat = 1e-6  # LDM's, on the per-image KL over 3HW (module docstring)
    l1_weight: NonNegativeFloat = 1.0
    perceptual: PerceptualKind = PerceptualKind.LPIPS_VGG
    perceptual_weight: NonNegativeFloat = 1.0
    gan_weight: NonNegativeFloat = 0.5  # 0 disables the discriminator
    gan_start: NonNegativeInt = 50_000  # optimizer step at which the adversarial terms switch on
    disc_channels: PositiveInt = 64
    disc_layers: PositiveInt = 3
    consistency_weight: NonNegativeFloat = 1.0  # rae-hd: feature consistency to the frozen encoder
    noise_tau: NonNegativeFloat = 0.8  # rae / rae-hd: decoder-input noise sigma ~ |N(0, tau^2)|


def _on_off(value: Any) -> Any:
    """YAML 1.1 reads a bare ``on`` / ``off`` as true / false: take them back."""
    if isinstance(value, bool):
        return CacheFeatures.ON if value else CacheFeatures.OFF
    return value


@config
class TokenizerConfig:
    """One training run: the space's options, the losses, the loop, the stats fit."""

    space: dict[str, Any] = field(default_factory=dict)  # build_space options
    loss: LossConfig = field(default_factory=LossConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    stats_images: PositiveInt = 512  # training images encoded to fit the exported space's stats
    # precompute the constant inputs (module docstring); YAML's bare on / off read as booleans
    cache_features: Annotated[CacheFeatures, BeforeValidator(_on_off)] = CacheFeatures.AUTO


def recipe_for(space: str, stage: int) -> Recipe:
    """Which recipe trains registered space ``space`` at ``stage`` (the catalog's recipes)."""
    recipe = space_info(space).recipes.get(stage) if space in SPACES else None
    if recipe is None:
        valid = ", ".join(
            f"{s} --stage {k}" for s in trainable_space_names() for k in space_info(s).recipes
        )
        raise UserError(f"no training recipe for space {space!r} at stage {stage}; valid: {valid}")
    return Recipe(recipe)


# -- losses ----------------------------------------------------------------------------------------
def kl_loss(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) of (B, ...) posteriors: summed over each image's latent
    elements, averaged over the batch (LDM's ``posteriors.kl()`` summed / B)."""
    kl = 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar)
    return kl.flatten(1).sum(1).mean()


def feature_losses(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """(l2, 1 - cosine) between (B, D, h, w) feature grids; cosine over D per location."""
    l2 = F.mse_loss(pred, target)
    cos = 1.0 - F.cosine_similarity(pred, target, dim=1).mean()
    return l2, cos


class Lite0Perceptual(nn.Module):
    """LPIPS-style distance on real EfficientNet-Lite0 features (levels at stride 2, 4, 8, 16)."""

    def __init__(self) -> None:
        super().__init__()
        import timm

        from latentbench.spaces.backbones import lite0_state_dict

        self.net = timm.create_model(
            "tf_efficientnet_lite0", pretrained=False, features_only=True, out_indices=(0, 1, 2, 3)
        )
        state = lite0_state_dict()
        self.net.load_state_dict({k: state[k] for k in self.net.state_dict()})
        self.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> Lite0Perceptual:
        return super().train(False)  # BatchNorm statistics stay the pretrained ones

    def levels(self, x: Tensor) -> list[Tensor]:
        """(B, 3, H, W) in [-1, 1] (Lite0's own normalisation) -> 4 channel-normalised feature
        maps (B, C_l, H / s_l, W / s_l), s_l = 2, 4, 8, 16."""
        return [F.normalize(f, dim=1, eps=1e-8) for f in self.net(x)]

    def forward(self, x: Tensor, y: Tensor, y_levels: list[Tensor] | None = None) -> Tensor:
        """(B, 3, H, W) pairs -> (B,) distances; ``y_levels``: ``levels(y)``, precomputed."""
        total = x.new_zeros(x.shape[0])
        feats_x, feats_y = self.levels(x), y_levels or self.levels(y)
        for fx, fy in zip(feats_x, feats_y):
            total = total + (fx - fy).square().sum(1).mean((1, 2))
        return total / len(feats_x)


class LPIPSPerceptual(nn.Module):
    """``lpips.LPIPS`` with its pretrained backbone, found as ``recon --lpips`` finds it
    (:class:`~latentbench.metrics.pixel.LPIPSMetric`: ``$LATENTBENCH_WEIGHTS``, torch's cache,
    else a download), without torchvision's warnings."""

    def __init__(self, net: str) -> None:
        super().__init__()
        from latentbench.metrics.pixel import LPIPSMetric

        try:
            self.lpips = LPIPSMetric(net, quantize=False).model
        except (UserError, OSError, RuntimeError) as e:  # offline: no file, no download
            why = str(e) if isinstance(e, UserError) else type(e).__name__
            raise UserError(
                f"perceptual loss lpips-{net}: {why}; offline, set loss.perceptual to "
                "effnet-lite0 or none"
            ) from None
        self.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> LPIPSPerceptual:
        return super().train(False)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.lpips(x, y).flatten()


def build_perceptual(kind: PerceptualKind) -> nn.Module | None:
    kind = PerceptualKind(kind)
    if kind is PerceptualKind.NONE:
        return None
    if kind is PerceptualKind.EFFNET_LITE0:
        return Lite0Perceptual()
    return LPIPSPerceptual("vgg" if kind is PerceptualKind.LPIPS_VGG else "alex")


# -- the model the loop trains ---------------------------------------------------------------------
class TokenizerModel(nn.Module):
    """The space plus an optional discriminator: everything with trained state, one forward."""

    def __init__(self, space: LatentSpace, recipe: Recipe, noise_tau: float, disc: PatchGAN | None):
        super().__init__()
        self.space, self.disc = space, disc
        self.recipe, self.noise_tau = recipe, noise_tau

    def forward(
        self, images: Tensor, adversarial: bool, features: Tensor | None = None
    ) -> dict[str, Tensor]:
        """``features``: the frozen encoder's features of ``images``, precomputed (svae, rae)."""
        if self.recipe in (Recipe.RAE, Recipe.RAE_HD):
            out = self.space.train_outputs(images, self.noise_tau, features)
        else:
            detach = self.recipe is Recipe.SVAE
            out = self.space.train_outputs(images, detach_pixel_input=detach, features=features)
        if adversarial and self.disc is not None:
            frozen = {k: v.detach() for k, v in self.disc.named_parameters()}
            out["logits_fake_g"] = functional_call(self.disc, frozen, (out["recon"],))
            out["logits_real"] = self.disc(images)
            out["logits_fake_d"] = self.disc(out["recon"].detach())
        return out


class TokenizerTask:
    """A :class:`~latentbench.train.loop.TrainTask` for every tokenizer recipe."""

    def __init__(self, space: LatentSpace, recipe: Recipe, loss: LossConfig) -> None:
        self.recipe, self.cfg = Recipe(recipe), loss
        space.requires_grad_(True)
        if self.recipe in (Recipe.SVAE, Recipe.RAE):
            space.encoder.requires_grad_(False)
        # The frozen teacher: the encoder as it is now. Not part of the model (never saved).
        self.teacher: nn.Module | None = None
        if self.recipe in (Recipe.PSVAE, Recipe.RAE_HD):
            self.teacher = copy.deepcopy(space.encoder).eval().requires_grad_(False)
        disc = None
        if loss.gan_weight > 0:
            disc = PatchGAN(loss.disc_channels, loss.disc_layers)
        self.model = TokenizerModel(space, self.recipe, loss.noise_tau, disc)
        self.perceptual = build_perceptual(loss.perceptual) if loss.perceptual_weight > 0 else None

    def _to(self, device: torch.device) -> None:
        for m in (self.teacher, self.perceptual):
            if m is not None:
                m.to(device)

    # -- what never changes during a run ---------------------------------------------------------
    def frozen_encoder(self) -> nn.Module | None:
        """The module whose features are constant: the frozen encoder (svae, rae) or the frozen
        teacher (psvae, rae-hd); None for pvae."""
        if self.recipe in (Recipe.SVAE, Recipe.RAE):
            return self.model.space.encoder
        return self.teacher

    def constants_fingerprint(self) -> str:
        """Names what :meth:`constants` computes: the frozen encoder's and perceptual net's
        weights and settings (the data part of a cache key is the data's)."""
        modules = nn.ModuleDict()
        for name, module in (("encoder", self.frozen_encoder()), ("perceptual", self.perceptual)):
            if module is not None:
                modules[name] = module
        has_levels = isinstance(self.perceptual, Lite0Perceptual)
        return module_fingerprint(["tokenizer-constants", has_levels, CONSTANTS_VERSION], modules)

    @torch.no_grad()
    def constants(self, images: Tensor) -> dict[str, Tensor]:
        """(B, 3, H, W) -> everything per image that the loss needs and that never changes:
        ``images``, ``features`` (the frozen encoder's), ``perceptual_<l>`` (the perceptual
        net's levels of the target images, where the loss allows it: effnet-lite0)."""
        out = {"images": images}
        frozen = self.frozen_encoder()
        if frozen is not None:
            out["features"] = frozen.eval()(images)  # (B, D, h, w); encoders run in eval mode
        if isinstance(self.perceptual, Lite0Perceptual):
            for i, level in enumerate(self.perceptual.levels(images)):
                out[f"perceptual_{i}"] = level
        return out

    # -- the loss --------------------------------------------------------------------------------
    def loss(self, model: nn.Module, batch: Any, ctx: StepContext) -> dict[str, Tensor]:
        cfg, recipe = self.cfg, self.recipe
        self._to(ctx.device)
        images = getattr(batch, "images", batch).to(ctx.device)  # (B, 3, H, W)
        cached = batch if isinstance(batch, ConstantsBatch) else ConstantsBatch(images)
        cached = cached.to(ctx.device)
        adversarial = cfg.gan_weight > 0 and ctx.step >= cfg.gan_start
        encoder_features = cached.features if recipe in (Recipe.SVAE, Recipe.RAE) else None
        out = model(images, adversarial, encoder_features)
        terms: dict[str, Tensor] = {}
        total = images.new_zeros(())

        if recipe in (Recipe.SVAE, Recipe.PSVAE, Recipe.PVAE):
            terms["kl"] = kl_loss(out["mean"], out["logvar"])  # per image
            total = total + cfg.kl_weight * terms["kl"] / images[0].numel()  # over 3HW
        if recipe in (Recipe.SVAE, Recipe.PSVAE):
            target = self._teacher_features(images, out["features"], cached.features)
            terms["sem_l2"], terms["sem_cos"] = feature_losses(out["rec_features"], target)
            terms["semantic"] = (
                cfg.l2_weight * terms["sem_l2"] + cfg.cosine_weight * terms["sem_cos"]
            )
            total = total + cfg.semantic_weight * terms["semantic"]
        if recipe is Recipe.RAE_HD:
            target = self._teacher_features(images, out["features"], cached.features)
            l2, cos = feature_losses(out["features"], target)
            terms["consistency"] = cfg.l2_weight * l2 + cfg.cosine_weight * cos
            total = total + cfg.consistency_weight * terms["consistency"]

        recon = out["recon"]
        terms["l1"] = (recon - images).abs().mean()
        rec = cfg.l1_weight * terms["l1"]
        if isinstance(self.perceptual, Lite0Perceptual):
            terms["perceptual"] = self.perceptual(recon, images, cached.perceptual).mean()
            rec = rec + cfg.perceptual_weight * terms["perceptual"]
        elif self.perceptual is not None:
            terms["perceptual"] = self.perceptual(recon, images).mean()
            rec = rec + cfg.perceptual_weight * terms["perceptual"]
        pixel = rec
        if "logits_fake_g" in out:
            terms["gan_g"] = hinge_g_loss(out["logits_fake_g"])
            terms["gan_d"] = hinge_d_loss(out["logits_real"], out["logits_fake_d"])
            space = getattr(model, "module", model).space
            if torch.is_grad_enabled():
                weight = cfg.gan_weight * adaptive_weight(
                    rec, terms["gan_g"], space.pixel_last_layer
                )
            else:
                weight = torch.tensor(cfg.gan_weight, device=images.device)
            terms["gan_weight"] = weight
            pixel = pixel + weight * terms["gan_g"]
            total = total + terms["gan_d"]
        terms["pixel"] = pixel
        total = total + cfg.pixel_weight * pixel
        return {"loss": total, **{k: v.detach() for k, v in terms.items()}}

    def _teacher_features(self, images: Tensor, features: Tensor, cached: Tensor | None) -> Tensor:
        """The frozen encoder's features: the (frozen) encoder's own in stage 1, else the copy's
        (``cached``: precomputed)."""
        if self.teacher is None:
            return features.detach()
        if cached is not None:
            return cached
        with torch.no_grad():
            return self.teacher(images)


# -- precomputed constants ---------------------------------------------------------------------
CONSTANTS_VERSION = "1"  # bump when TokenizerTask.constants changes what it computes
CACHE_LIMIT_BYTES = 4 * 2**30  # cache_features auto: precompute when the cache stays below this


@dataclass
class ConstantsBatch:
    """A training batch with its precomputed constants (None: computed in the step)."""

    images: Tensor  # (B, 3, H, W)
    features: Tensor | None = None  # (B, D, h, w) the frozen encoder's
    perceptual: list[Tensor] | None = None  # perceptual levels of ``images``

    def to(self, device: torch.device) -> ConstantsBatch:
        levels = None if self.perceptual is None else [p.to(device) for p in self.perceptual]
        feats = None if self.features is None else self.features.to(device)
        return ConstantsBatch(self.images.to(device), feats, levels)


def collate_constants(items: list[dict[str, Tensor]]) -> ConstantsBatch:
    """Items of :class:`~latentbench.data.cache.CachedFeatures` -> one :class:`ConstantsBatch`."""
    stacked = {k: torch.stack([it[k] for it in items]) for k in items[0]}
    levels = sorted((k for k in stacked if k.startswith("perceptual_")), key=lambda k: int(k[11:]))
    return ConstantsBatch(
        stacked["images"], stacked.get("features"), [stacked[k] for k in levels] or None
    )


def cached_constants(
    task: TokenizerTask, dataset: Dataset, mode: CacheFeatures, *, quiet: bool = True
) -> Dataset | None:
    """The training data with :meth:`TokenizerTask.constants` precomputed once into the feature
    cache (reused by later runs of the same encoder, perceptual net and data), or None when
    ``mode`` is off, or auto and the cache would exceed :data:`CACHE_LIMIT_BYTES` or the data
    has no spec to key it by."""
    from latentbench.data import collate_images
    from latentbench.data.cache import CachedFeatures, build_feature_cache

    mode = CacheFeatures(mode)
    if mode is CacheFeatures.OFF:
        return None
    if mode is CacheFeatures.AUTO:
        if not getattr(dataset, "spec", None):
            return None
        probe = next(
            (it for it in (dataset[i] for i in range(len(dataset))) if it["image"] is not None),
            None,
        )
        if probe is None:
            return None
        per_item = sum(
            v[0].numel() * 4 for v in task.constants(collate_images([probe]).images).values()
        )
        if per_item * len(dataset) > CACHE_LIMIT_BYTES:
            return None
    cache = build_feature_cache(task.constants_fingerprint(), dataset, task.constants, quiet=quiet)
    return CachedFeatures(cache)


def export_space(model: nn.Module) -> LatentSpace:
    """The trained space inside a (possibly EMA or wrapped) :class:`TokenizerModel`."""
    return getattr(model, "module", model).space
