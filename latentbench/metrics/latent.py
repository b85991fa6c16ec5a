"""Latent diagnostics: what a space keeps, and how close to its manifold its decoder stays.

Plain functions over a space and a batch of images (B, 3, H, W) in [-1, 1]; the recon runner and
``train-tokenizer --eval-data`` call them. Each states the variant it measures:

- :func:`channel_stats`: per-channel mean / std / max |z| / excess kurtosis of the raw latents.
- :func:`effective_rank`: exp(entropy of the normalised singular values) of the (N*h*w, C) token
  matrix, centred (Roy & Vetterli 2007): how many channels carry variance.
- :func:`linear_probe`: closed-form ridge regression onto one-hot labels from standardised pooled
  latents, fitted on a seeded ``train_fraction`` split and scored (top-1, top-5) on the rest, or
  fitted on a train set and scored on a separate test set (ImageNet's train / val protocol).
- :func:`decoder_robustness`: PSNR against the input of ``decode(denorm(norm(z) + sigma * eps))``
  over a sigma sweep on normalised latents (sigma = 0 is plain reconstruction PSNR).
- :func:`interpolation_fid` (iFID, arXiv 2603.05630): decode the midpoint of each normalised latent
  and its nearest other latent (L2), Frechet distance of their features to the data's.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from latentbench.errors import UserError
from latentbench.spaces.base import LatentSpace, LatentStats
from latentbench.stats import probe_heldout_warning, proportion_interval

DEFAULT_SIGMAS = (0.0, 0.1, 0.25, 0.5, 1.0)


class Pool(str, enum.Enum):
    MEAN = "mean"  # average over the latent grid: (N, C)
    FLATTEN = "flatten"  # the whole latent: (N, C*h*w)


@torch.inference_mode()
def encode_all(space: LatentSpace, images: Tensor, batch_size: int = 64) -> Tensor:
    """(N, 3, H, W) -> (N, C, h, w) float32 latents on the CPU (posterior means)."""
    out = [
        space.encode(images[i : i + batch_size]).float().cpu()
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(out)


@torch.inference_mode()
def decode_all(space: LatentSpace, latents: Tensor, batch_size: int = 64) -> Tensor:
    out = [
        space.decode(latents[i : i + batch_size]).float().cpu()
        for i in range(0, len(latents), batch_size)
    ]
    return torch.cat(out)


def channel_stats(latents: Tensor) -> dict[str, Any]:
    """Per-channel statistics of (N, C, h, w) latents, plus summaries (flat keys)."""
    x = latents.double().transpose(0, 1).flatten(1)  # (C, N*h*w)
    mean, std = x.mean(1), x.std(1)
    z = (x - mean[:, None]) / std.clamp_min(1e-12)[:, None]
    kurt = z.pow(4).mean(1) - 3.0
    return {
        "channel_mean": mean.tolist(),
        "channel_std": std.tolist(),
        "channel_absmax": x.abs().amax(1).tolist(),
        "channel_kurtosis": kurt.tolist(),
        "std_min": float(std.min()),
        "std_max": float(std.max()),
        "std_ratio": float(std.max() / std.min().clamp_min(1e-12)),
        "mean_abs_mean": float(mean.abs().mean()),
        "max_kurtosis": float(kurt.max()),
    }


def effective_rank(latents: Tensor) -> float:
    """Effective rank of the centred (N*h*w, C) token matrix of (N, C, h, w) latents."""
    tokens = latents.double().transpose(1, -1).reshape(-1, latents.shape[1])  # (N*h*w, C)
    s = torch.linalg.svdvals(tokens - tokens.mean(0))
    p = s / s.sum().clamp_min(1e-300)
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def pool_latents(latents: Tensor, pool: Pool | str = Pool.MEAN) -> Tensor:
    """(N, C, h, w) -> (N, F) probe features."""
    return latents.mean((2, 3)) if Pool(pool) is Pool.MEAN else latents.flatten(1)


def linear_probe(
    features: Tensor,
    labels: Tensor,
    *,
    train_fraction: float = 0.8,
    ridge: float = 1.0,
    seed: int = 0,
    test_features: Tensor | None = None,
    test_labels: Tensor | None = None,
) -> dict[str, Any]:
    """Top-1 and top-5 accuracy of a ridge-regression classifier on held-out images, the top-1
    with its Wilson interval (``accuracy/ci95_low``, ``accuracy/ci95_high``, ``accuracy/n``) and
    ``warnings`` (a line when the held-out split is below
    :data:`~latentbench.stats.MIN_PROBE_HELDOUT`).

    ``features`` (N, F), ``labels`` (N,) with -1 = unlabelled (dropped). Without a test set the
    probe fits on a seeded ``train_fraction`` split and is scored on the rest; with
    ``test_features`` / ``test_labels`` it fits on all of ``features`` (ImageNet's protocol:
    the train split) and is scored on the test set (the val split). Features are standardised
    with the training statistics; W = (X^T X + ridge * n I)^-1 X^T Y on one-hot Y (the dual
    form when F > n). ``top5`` is top-min(5, classes).
    """
    keep = labels >= 0
    x, y = features[keep].double(), labels[keep].long()
    if test_features is not None and test_labels is not None:
        keep_test = test_labels >= 0
        n_train = len(y)
        x = torch.cat([x, test_features[keep_test].double()])
        y = torch.cat([y, test_labels[keep_test].long()])
        tr, te = torch.arange(n_train), torch.arange(n_train, len(y))
        if len(te) == 0:
            raise UserError("linear probe: the test set has no labelled image")
    else:
        tr = te = None
    n = len(y)
    classes = int(y.max()) + 1 if n else 0
    if n < 4 or classes < 2:
        raise UserError(f"linear probe needs >= 4 labelled images of >= 2 classes (got {n})")
    if tr is None or te is None:
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        n_train = min(n - 1, max(1, int(round(train_fraction * n))))
        tr, te = perm[:n_train], perm[n_train:]
    mu, sd = x[tr].mean(0), x[tr].std(0).clamp_min(1e-8)
    xs = (x - mu) / sd
    xs = torch.cat([xs, torch.ones(n, 1, dtype=xs.dtype)], 1)  # bias column
    xt, yt = xs[tr], torch.nn.functional.one_hot(y[tr], classes).double()
    lam = ridge * len(tr)
    if xt.shape[1] <= len(tr):
        eye = torch.eye(xt.shape[1], dtype=xt.dtype)
        w = torch.linalg.solve(xt.T @ xt + lam * eye, xt.T @ yt)  # (F+1, K)
    else:
        eye = torch.eye(len(tr), dtype=xt.dtype)
        w = xt.T @ torch.linalg.solve(xt @ xt.T + lam * eye, yt)
    scores = xs[te] @ w  # (N_test, K)
    top = scores.topk(min(5, classes), dim=1).indices  # (N_test, 5)
    counts = torch.bincount(y[tr], minlength=classes).double()
    correct = int((top[:, 0] == y[te]).sum())
    warning = probe_heldout_warning(len(te))
    return {
        **proportion_interval(correct, len(te)).to_keys("accuracy"),
        "top5": float((top == y[te][:, None]).any(1).double().mean()),
        "majority_baseline": float((y[te] == counts.argmax()).double().mean()),
        "num_train": float(len(tr)),
        "num_test": float(len(te)),
        "num_classes": float(classes),
        "warnings": [warning] if warning else [],
    }


def _psnr(x: Tensor, y: Tensor) -> Tensor:
    from latentbench.metrics.pixel import psnr

    return psnr(x, y)


def _stats(space: LatentSpace, latents: Tensor) -> LatentStats:
    return space.stats or LatentStats.from_latents([latents], seed=0)


def _normalizer(stats: LatentStats) -> tuple[Tensor, Tensor]:
    mean = torch.tensor(stats.mean, dtype=torch.float32)[None, :, None, None]
    std = torch.tensor(stats.std, dtype=torch.float32)[None, :, None, None]
    return mean, std


def decoder_robustness(
    space: LatentSpace,
    images: Tensor,
    sigmas: Sequence[float] = DEFAULT_SIGMAS,
    *,
    seed: int = 0,
    batch_size: int = 64,
    latents: Tensor | None = None,
) -> dict[str, float]:
    """Mean PSNR (dB, vs ``images``) of decodes of noised normalised latents, per sigma.

    Latents are normalised with the space's stats (fitted on these latents when it has none).
    Keys ``psnr@sigma``. ``latents``: the images' latents when already encoded.
    """
    z = encode_all(space, images, batch_size) if latents is None else latents
    mean, std = _normalizer(_stats(space, z))
    zn = (z - mean) / std
    out = {}
    g = torch.Generator().manual_seed(seed)
    for sigma in sigmas:
        noisy = zn + sigma * torch.randn(zn.shape, generator=g)
        recon = decode_all(space, noisy * std + mean, batch_size)
        out[f"psnr@{sigma:g}"] = float(_psnr(recon, images.cpu()).mean())
    return out


def interpolation_fid(
    space: LatentSpace,
    images: Tensor,
    extractor: Any,
    *,
    batch_size: int = 64,
    latents: Tensor | None = None,
) -> dict[str, float]:
    """iFID: Frechet distance between features of ``images`` and of decoded NN midpoints.

    ``extractor``: a :class:`latentbench.metrics.features.FeatureExtractor` (images in [-1, 1]
    -> (B, D)). Returns ``ifid``, ``ifid_reference`` (FD of plain reconstructions, the floor) and
    ``nn_distance`` (mean normalised-latent distance to the nearest neighbour).
    """
    from latentbench.metrics.fid import FeatureStats

    if len(images) < 3:
        raise UserError(f"iFID needs >= 3 images, got {len(images)}")
    z = encode_all(space, images, batch_size) if latents is None else latents
    mean, std = _normalizer(_stats(space, z))
    zn = ((z - mean) / std).flatten(1)  # (N, C*h*w)
    dist = torch.cdist(zn, zn)  # (N, N)
    dist.fill_diagonal_(math.inf)
    nn_dist, nn_idx = dist.min(1)
    mid = (0.5 * (zn + zn[nn_idx])).view_as(z) * std + mean  # (N, C, h, w)

    def stats_of(batches: Tensor) -> FeatureStats:
        stats = FeatureStats(extractor.dims)
        for i in range(0, len(batches), batch_size):
            stats.update(extractor(batches[i : i + batch_size]))
        return stats

    data = stats_of(images.cpu())
    return {
        "ifid": data.frechet_distance(stats_of(decode_all(space, mid, batch_size))),
        "ifid_reference": data.frechet_distance(stats_of(decode_all(space, z, batch_size))),
        "nn_distance": float(nn_dist.mean()),
    }


def latent_diagnostics(
    space: LatentSpace,
    images: Tensor,
    labels: Tensor | None = None,
    *,
    extractor: Any = None,
    sigmas: Sequence[float] = DEFAULT_SIGMAS,
    pool: Pool | str = Pool.MEAN,
    seed: int = 0,
    batch_size: int = 64,
) -> dict[str, Any]:
    """All scalar diagnostics in one flat dict (``latent/...`` keys) for a results file.

    The probe runs when ``labels`` has >= 2 classes (its accuracy with a Wilson interval; a
    line in ``warnings`` when the held-out split is small), iFID when ``extractor`` is given.
    The images are encoded once; ``latent/seconds`` is what the diagnostics took.
    """
    clock = time.perf_counter()
    z = encode_all(space, images, batch_size)
    warnings: list[str] = []
    stats = channel_stats(z)
    out: dict[str, float] = {
        "latent/effective_rank": effective_rank(z),
        "latent/channels": float(z.shape[1]),
        **{f"latent/{k}": v for k, v in stats.items() if not k.startswith("channel_")},
    }
    if (
        labels is not None
        and int((labels >= 0).sum()) >= 4
        and len(labels[labels >= 0].unique()) > 1
    ):
        probe = linear_probe(pool_latents(z, pool), labels, seed=seed)
        accuracy = {k: v for k, v in probe.items() if k.startswith("accuracy")}
        out.update({f"latent/probe_{k}": v for k, v in accuracy.items()})
        out["latent/probe_top5"] = probe["top5"]
        out["latent/probe_majority_baseline"] = probe["majority_baseline"]
        warnings += [f"latent/probe_accuracy: {w}" for w in probe["warnings"]]
    robust = decoder_robustness(space, images, sigmas, seed=seed, batch_size=batch_size, latents=z)
    out.update({f"latent/robust_{k}": v for k, v in robust.items()})
    if extractor is not None:
        ifid = interpolation_fid(space, images, extractor, batch_size=batch_size, latents=z)
        out.update({f"latent/{k}": v for k, v in ifid.items()})
    out["latent/seconds"] = time.perf_counter() - clock
    if warnings:
        out["warnings"] = warnings
    return out
