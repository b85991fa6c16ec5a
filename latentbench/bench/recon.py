"""The reconstruction benchmark behind ``latentbench recon``.

For each space: one pass over the data (encode, decode once), every metric from that one decode:
PSNR / SSIM / LPIPS per image, running feature statistics of the reconstructions for each Frechet
distance, encode/decode throughput, latent statistics. The statistics of the source images are
computed once per (dataset, preprocessing, extractor) and cached, so K spaces cost K+1 feature
passes. The run folder is built under a temporary name and appears only when complete.

``fd`` and ``lpips`` default to ``auto``: the real rFID / LPIPS where their weights are found (or
download), else the offline variants (see :func:`~latentbench.metrics.features.build_fd_extractor`
and :func:`~latentbench.metrics.pixel.build_lpips`); what ``auto`` became is printed and written
to metrics.json (``auto``) and the manifest (``auto_choices``).
"""

from __future__ import annotations

import csv
import functools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import torch
import torch.nn.functional as F
from pydantic import AfterValidator
from torch import Tensor

from latentbench.atomic import atomic_path, atomic_write_json
from latentbench.config import Device, ImageSize, NonNegativeInt, PositiveInt, config, to_dict
from latentbench.data import (
    DEFAULT_MAX_PIXELS,
    MaxPixels,
    data_identity,
    data_paths,
    iter_batches,
    open_images,
)
from latentbench.errors import UserError
from latentbench.metrics.features import AUTO, AutoChoice, FeatureExtractor, build_fd_extractor
from latentbench.metrics.fid import (
    FeatureStats,
    GroupedFeatureStats,
    cached_reference_stats,
    fd_metrics,
    reference_stats_key,
)
from latentbench.metrics.pixel import (
    PSNR_VARIANT,
    SSIM_VARIANT,
    LPIPSChoice,
    LPIPSMetric,
    LPIPSNet,
    build_lpips,
    psnr,
    ssim,
    to_uint8,
)
from latentbench.runs import OutputKind, RunDir, claim_output, existing_paths, manifest, staged_dir
from latentbench.spaces import LatentSpace, build_spaces, space_origin
from latentbench.stats import mean_interval, proportion_interval
from latentbench.terminal import Progress, track

INCEPTION = "inception"


def _at_least_ssim_window(size: int) -> int:
    window = SSIM_VARIANT["win_size"]
    if size < window:
        raise ValueError(f"SSIM needs images of at least {window} px a side")
    return size


@config
class ReconConfig:
    """What ``latentbench recon`` measures. ``spaces`` may hold ``all`` or saved-space folders."""

    spaces: list[str]
    data: str
    image_size: Annotated[ImageSize, AfterValidator(_at_least_ssim_window)] = 256
    num_images: PositiveInt | None = None
    batch_size: PositiveInt = 8
    fd: list[str] = field(default_factory=lambda: [AUTO])  # feature extractors for FD; auto
    lpips: list[LPIPSChoice] = field(default_factory=lambda: [LPIPSChoice.AUTO])  # alex, vgg, auto
    lpips_random_backbone: bool = False  # offline demos/tests only; recorded in the metric name
    weights: str | None = None  # passed to spaces that take a `weights` option
    space_options: dict[str, Any] = field(default_factory=dict)  # to every space that takes them
    strict: bool = False  # every image is read before any work; an unreadable one is an error
    max_pixels: MaxPixels = DEFAULT_MAX_PIXELS  # larger images are skipped (None: no bound)
    seed: NonNegativeInt = 0
    grid_images: NonNegativeInt = 8
    save_images: bool = False  # write every original and reconstruction as PNG (uint8)
    # Images for the latent diagnostics (probe, noise robustness, iFID); 0: off. Off by default:
    # they decode every image 7 more times (README "Latent diagnostics" gives their cost).
    diagnostics: NonNegativeInt = 0
    probe_data: str | None = None  # linear probe fitted here (ImageNet train), scored on `data`
    probe_images: PositiveInt | None = None  # images of probe_data (None: all)
    device: Device = None
    num_workers: NonNegativeInt = 0


@dataclass
class SpaceResult:
    metrics: dict[str, Any]
    rows: list[dict[str, Any]]
    grid: Tensor | None  # (G, 3, H, W) reconstructions of the first images
    skipped: list[tuple[str, str]]  # (file key, reason) of unreadable images


def fd_key(extractor: str) -> str:
    return "rfid" if extractor == INCEPTION else f"fd_{extractor}"


def lpips_key(net: LPIPSNet, random_backbone: bool) -> str:
    base = "lpips" if net is LPIPSNet.ALEX else f"lpips_{net.value}"
    return f"{base}_randbackbone" if random_backbone else base


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def resolve_spaces(
    cfg: ReconConfig, device: torch.device
) -> tuple[dict[str, LatentSpace], list[str]]:
    """Build the spaces, labelled by name (a saved space: its folder's name).

    With ``all``, spaces that cannot be built here (e.g. weights missing offline) are skipped
    with a note; a space named explicitly must build.
    """
    built = build_spaces(
        cfg.spaces, image_size=cfg.image_size, weights=cfg.weights, options=cfg.space_options
    )
    return {k: s.to(device).eval() for k, s in built.spaces.items()}, built.notes


class Recon:
    """One benchmark over one dataset; :meth:`run_space` measures one space."""

    def __init__(self, cfg: ReconConfig, device: torch.device, quiet: bool = True) -> None:
        self.cfg, self.device, self.quiet = cfg, device, quiet
        self.dataset = self._open(cfg.data, cfg.num_images, strict=cfg.strict)
        self.auto: list[AutoChoice] = []  # what each `auto` option became
        self.lpips: dict[str, LPIPSMetric] = {}
        for choice in cfg.lpips:
            metric, auto = build_lpips(choice, random_backbone=cfg.lpips_random_backbone)
            self.auto += [auto] if auto else []
            if metric is not None:
                random = metric.variant["name"].endswith("-randbackbone")
                self.lpips[lpips_key(metric.net, random)] = metric.to(device)
        self.extractors: dict[str, FeatureExtractor] = {}
        for name in cfg.fd:
            extractor, auto = build_fd_extractor(name)
            self.auto += [auto] if auto else []
            self.extractors[auto.chosen if auto else name] = extractor.to(device)
        self.reference: dict[str, FeatureStats] = {}
        self.probe_dataset = None
        if cfg.probe_data is not None:
            # generated data (Shapes) at the benchmark's seed + 1: item i of seed s is drawn from
            # (s, i) alone, so the same seed would put the test images into the train split
            self.probe_dataset = self._open(cfg.probe_data, cfg.probe_images, seed=1)

    def _open(self, data: str, limit: int | None, strict: bool = False, seed: int = 0) -> Any:
        """The images of ``data`` at the benchmark's size and pixel limit, generated data at the
        benchmark's seed + ``seed``."""
        cfg = self.cfg
        return open_images(
            data,
            cfg.image_size,
            limit=limit,
            strict=strict,
            seed=cfg.seed + seed,
            max_pixels=cfg.max_pixels,
            quiet=self.quiet,
        )

    def batches(self, desc: str) -> Iterable[Any]:
        """The batches, with a progress bar (plain lines when stderr is not a terminal)."""
        n = -(-len(self.dataset) // self.cfg.batch_size)
        it = iter_batches(self.dataset, self.cfg.batch_size, num_workers=self.cfg.num_workers)
        return track(it, n, desc, disable=self.quiet)

    def images(self, desc: str) -> Iterable[Tensor]:
        """The source images, batch by batch, on the device."""
        return (b.images.to(self.device) for b in self.batches(desc))

    def variants(self) -> dict[str, Any]:
        out: dict[str, Any] = {"psnr": PSNR_VARIANT, "ssim": SSIM_VARIANT}
        out.update({k: m.variant for k, m in self.lpips.items()})
        out.update({fd_key(k): e.variant for k, e in self.extractors.items()})
        out["preprocessing"] = getattr(self.dataset, "preprocessing", "center-crop+resize")
        return out

    def reference_stats(self) -> dict[str, FeatureStats]:
        """Source-image feature statistics per extractor: computed once, then cached."""
        for name, extractor in self.extractors.items():
            if name in self.reference:
                continue
            key = reference_stats_key(
                data_identity(self.dataset),
                self.cfg.image_size,
                len(self.dataset),
                self.variants()["preprocessing"],
                extractor,
            )
            images = functools.partial(self.images, f"reference {name}")
            self.reference[name] = cached_reference_stats(None, key, extractor, images)
        return self.reference

    @torch.inference_mode()
    def run_space(
        self, space: LatentSpace, label: str, image_dir: Path | None = None
    ) -> SpaceResult:
        """Measure one space (``label``: its name in the results and progress lines); with
        ``image_dir``, also write every reconstruction as PNG."""
        cfg, spec = self.cfg, space.spec
        fake = {name: GroupedFeatureStats(e.dims) for name, e in self.extractors.items()}
        rows: list[dict[str, Any]] = []
        probe_images: list[Tensor] = []  # the first cfg.diagnostics images, for diagnostics
        probe_labels: list[Tensor] = []
        grid: list[Tensor] = []
        pooled: list[Tensor] = []  # (B, C) mean-pooled latents of every image, for the probe
        labels: list[Tensor] = []
        skipped: list[tuple[str, str]] = []
        t_enc = t_dec = 0.0
        for batch in self.batches(f"recon {label}"):
            skipped += batch.skipped
            x = batch.images.to(self.device)  # (B, 3, S, S) in [-1, 1]
            if not len(x):
                continue
            x_in = _resize(x, spec.image_size)
            _sync(self.device)
            t0 = time.perf_counter()
            z = space.encode(x_in)  # (B, C, h, w)
            _sync(self.device)
            t1 = time.perf_counter()
            y = space.decode(z)  # (B, 3, S', S')
            _sync(self.device)
            t_enc, t_dec = t_enc + t1 - t0, t_dec + time.perf_counter() - t1
            pooled.append(z.float().mean((2, 3)).cpu())
            labels.append(batch.labels)
            y = _resize(y.float(), x.shape[-1])
            # Quantised once: every metric, and every saved PNG, sees these same uint8 images.
            xq, yq = to_uint8(x), to_uint8(y)  # (B, 3, S, S) uint8
            per_image = {"psnr": psnr(xq, yq), "ssim": ssim(xq, yq)}
            per_image.update({k: m(xq, yq) for k, m in self.lpips.items()})
            for name, extractor in self.extractors.items():
                fake[name].update(extractor(yq))
            if image_dir is not None:
                _save_pngs(image_dir, batch.keys, yq)
            for i, key in enumerate(batch.keys):
                rows.append({"key": key, **{k: float(v[i]) for k, v in per_image.items()}})
            if sum(len(p) for p in probe_images) < cfg.diagnostics:
                probe_images.append(x.cpu())
                probe_labels.append(batch.labels)
            if sum(len(g) for g in grid) < cfg.grid_images:
                grid.append(y[: cfg.grid_images].cpu())
        n = len(rows)
        if n == 0:
            raise UserError(f"no readable image in {cfg.data} ({len(skipped)} skipped)")
        metrics = per_image_means(rows)
        warnings: list[str] = []
        for name, stats in fake.items():
            fd, warned = fd_metrics(fd_key(name), self.reference[name], stats)
            metrics.update(fd)
            warnings += warned
        metrics.update(
            num_images=n,
            skipped_images=len(skipped),
            encode_images_per_s=n / max(t_enc, 1e-9),
            decode_images_per_s=n / max(t_dec, 1e-9),
        )
        if probe_images:
            with Progress(1, f"diagnostics {label}", disable=self.quiet) as bar:
                diagnostics = self.diagnostics(space, probe_images, probe_labels)
                bar.update()
            warnings += diagnostics.pop("warnings", [])
            metrics.update(diagnostics)
        if self.probe_dataset is not None:
            metrics.update(self.train_split_probe(space, torch.cat(pooled), torch.cat(labels)))
        if warnings:
            metrics["warnings"] = warnings
        grid_t = torch.cat(grid)[: cfg.grid_images] if grid else None
        return SpaceResult(metrics, rows, grid_t, skipped)

    def diagnostics(
        self, space: LatentSpace, images: list[Tensor], labels: list[Tensor]
    ) -> dict[str, Any]:
        """Latent diagnostics on the first images: channel statistics, effective rank, linear
        probe (when the data has labels and no ``probe_data`` gives the better probe: fitted on
        its own images and scored on every image, not on a fifth of these), decoder robustness
        to latent noise, iFID (with the first Frechet extractor)."""
        from latentbench.metrics.latent import latent_diagnostics

        n = self.cfg.diagnostics
        x = _resize(torch.cat(images)[:n], space.spec.image_size).to(self.device)
        y = None if self.probe_dataset is not None else torch.cat(labels)[:n]
        extractor = next(iter(self.extractors.values()), None)
        return latent_diagnostics(
            space, x, y, extractor=extractor, seed=self.cfg.seed, batch_size=self.cfg.batch_size
        )

    def train_split_probe(
        self, space: LatentSpace, test: Tensor, test_labels: Tensor
    ) -> dict[str, float]:
        """The linear probe fitted on ``probe_data``'s mean-pooled latents and scored on those of
        every image of ``data`` (``test`` (N, C)): keys ``probe/top1``, ``probe/top5``, ..."""
        from latentbench.metrics.latent import linear_probe

        train, train_labels = [], []
        assert self.probe_dataset is not None
        it = iter_batches(self.probe_dataset, self.cfg.batch_size, num_workers=self.cfg.num_workers)
        for batch in it:
            if len(batch):
                x = _resize(batch.images.to(self.device), space.spec.image_size)
                train.append(space.encode(x).float().mean((2, 3)).cpu())  # (B, C)
                train_labels.append(batch.labels)
        probe = linear_probe(
            torch.cat(train), torch.cat(train_labels), test_features=test, test_labels=test_labels
        )
        n = int(probe["num_test"])  # every test image is one trial: Wilson intervals
        return {
            **proportion_interval(round(probe["accuracy"] * n), n).to_keys("probe/top1"),
            **proportion_interval(round(probe["top5"] * n), n).to_keys("probe/top5"),
            "probe/num_train": probe["num_train"],
            "probe/num_test": n,
        }

    def originals(self) -> Tensor:
        for batch in iter_batches(self.dataset, self.cfg.grid_images):
            return batch.images
        return torch.empty(0, 3, self.cfg.image_size, self.cfg.image_size)


def per_image_means(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The mean of each per-image metric with its bootstrap 95% interval
    (:meth:`~latentbench.stats.Interval.to_keys`: ``psnr``, ``psnr/ci95_low``, ...)."""
    out: dict[str, Any] = {}
    for k in (k for k in rows[0] if k != "key"):
        out.update(mean_interval([r[k] for r in rows]).to_keys(k))
    return out


def _resize(x: Tensor, size: int) -> Tensor:
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bicubic", antialias=True).clamp(-1, 1)


def run_recon(
    cfg: ReconConfig,
    out: str | Path,
    quiet: bool = True,
    echo: Callable[[str], None] = print,
    overwrite: bool = False,
    spaces: dict[str, LatentSpace] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run the benchmark and write the run folder ``out``; returns metrics per space.
    ``spaces``: the spaces of ``cfg.spaces`` already built, by label (default: built here).

    ``out`` is replaced when complete; it must be new, empty or an earlier recon run, unless
    ``overwrite`` (:func:`latentbench.runs.claim_output`)."""
    inputs = existing_paths(*cfg.spaces, cfg.weights, *cfg.space_options.values())
    claim_output(
        out,
        OutputKind.RECON,
        inputs=inputs,
        data=data_paths(cfg.data, cfg.probe_data),
        overwrite=overwrite,
        cache=True,
    )
    device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(cfg.seed)
    recon = Recon(cfg, device, quiet)
    for choice in recon.auto:
        echo(f"note: {choice.note()}")
    auto = {c.option: c.to_dict() for c in recon.auto}
    if spaces is None:
        spaces, notes = resolve_spaces(cfg, device)
    else:
        spaces, notes = {k: s.to(device).eval() for k, s in spaces.items()}, []
    for note in notes:
        echo(note)
    recon.reference_stats()
    with staged_dir(out, OutputKind.RECON) as tmp:
        results: dict[str, SpaceResult] = {}
        for label, space in spaces.items():
            image_dir = tmp / "images" / "recon" / label if cfg.save_images else None
            results[label] = recon.run_space(space, label, image_dir)
            if auto:
                results[label].metrics["auto"] = auto
            space.to("cpu")
        if cfg.save_images:
            for batch in iter_batches(recon.dataset, cfg.batch_size):
                _save_pngs(tmp / "images" / "original", batch.keys, batch.images)
        skipped = next(iter(results.values())).skipped
        if skipped:
            names = ", ".join(k for k, _ in skipped[:5]) + (", ..." if len(skipped) > 5 else "")
            echo(f"skipped {len(skipped)} unreadable image(s): {names}")

        run = RunDir(tmp)
        config = to_dict(cfg)
        info = manifest("recon", config, cfg.seed)
        info.update(
            metric_variants=recon.variants(),
            auto_choices=auto,
            spaces={k: _space_info(s) for k, s in spaces.items()},
            skipped_spaces=notes,
            skipped_files=[{"key": k, "error": e} for k, e in skipped],
        )
        atomic_write_json(tmp / "manifest.json", info)
        metrics = {k: r.metrics for k, r in results.items()}
        run.write_metrics(next(iter(metrics.values())) if len(metrics) == 1 else metrics)
        rows = [{"space": k, **row} for k, r in results.items() for row in r.rows]
        _write_rows(tmp / "per_image.csv", rows)
        _write_grid(tmp / "images" / "grid.png", recon.originals(), results)
    return {k: r.metrics for k, r in results.items()}


def _space_info(space: LatentSpace) -> dict[str, Any]:
    return {
        "registry_name": space.registry_name,
        "source": space_origin(space.registry_name),  # builtin, or a plugin and its release
        "config": space.config(),
        "spec": space.spec.to_dict(),
        "fingerprint": space.fingerprint(),
    }


def _save_pngs(directory: Path, keys: list[str], images: Tensor) -> None:
    """(B, 3, H, W) in [-1, 1] -> PNGs holding exactly the uint8 images the metrics saw."""
    from PIL import Image

    for key, img in zip(keys, to_uint8(images.cpu())):
        path = directory / (Path(key).with_suffix("").as_posix().replace("/", "__") + ".png")
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(path)


def _write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def _write_grid(path: Path, originals: Tensor, results: dict[str, SpaceResult]) -> None:
    """Rows: originals, then one row of reconstructions per space."""
    from torchvision.utils import save_image

    rows = [originals] + [r.grid for r in results.values() if r.grid is not None]
    g = min(len(r) for r in rows)
    if g == 0:
        return
    size = originals.shape[-1]
    tiles = torch.cat([_resize(r[:g].float(), size) for r in rows])
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_image((tiles + 1) / 2, tmp, nrow=g, padding=2, format="png")
