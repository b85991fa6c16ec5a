"""Frechet distances (rFID, FD-DINOv2, ...) from running feature statistics.

- :class:`FeatureStats` keeps float64 running sums (count, sum, sum of outer products): memory is
  O(D^2) whatever the number of images, batches can be added in any order, and two statistics
  merge by adding their sums (also what an all-reduce across processes does).
- :func:`frechet_distance` is the distance of Heusel et al. 2017 between two Gaussians, computed
  so that it is always a finite real number.
- :class:`GroupedFeatureStats` / :func:`frechet_interval` / :func:`fd_metrics`: the FD with its
  jackknife interval over G disjoint groups of the generated set, and the warning below one
  sample per feature dimension (docs/statistics.md).
- :func:`cached_reference_stats` computes the statistics of the real images once per (data,
  preprocessing, extractor variant) and keeps them on disk: recon of K spaces costs K + 1 feature
  passes, not 2K.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock
from torch import Tensor

from latentbench.atomic import atomic_path
from latentbench.errors import UserError
from latentbench.files import first_line, note
from latentbench.runs import cache_digest, cache_root
from latentbench.stats import (
    FD_GROUPS,
    Interval,
    fd_sample_warning,
    jackknife_interval,
)

STATS_FORMAT = 2  # bump when the statistics or their file change meaning


class FeatureStats:
    """Running first and second moments of (N, D) features, in float64.

    ``mean`` and ``cov`` are those of ``np.mean`` / ``np.cov(rowvar=False)`` (unbiased, N - 1),
    the estimator of torch-fidelity and pytorch-fid. The raw sums lose nothing that matters in
    float64 for network features (|x| ~ 1, N <= 1e6). ``meta`` is a JSON-able dict saved with them.

    While there are no more images than dimensions (N <= D), the features themselves are kept
    instead of the (D, D) sum of outer products: the covariance then has rank < N, and the
    Frechet distance between two such sets is computed exactly from the (N1, N2) cross product
    instead of (D, D) eigendecompositions (see :meth:`frechet_distance`). Past N = D the rows are
    summed into the (D, D) products and dropped: memory stays O(D^2).
    """

    def __init__(self, dims: int, meta: dict[str, Any] | None = None) -> None:
        self.n = 0
        self.sum = torch.zeros(dims, dtype=torch.float64)  # (D,)
        self.meta: dict[str, Any] = dict(meta or {})
        self._root: np.ndarray | None = None  # cached sqrt of cov (see frechet_distance)
        self.rows: Tensor | None = torch.zeros(0, dims, dtype=torch.float64)  # (N, D) while N <= D
        # (D, D) sum of x x^T, summed only once the rows are dropped: while they are kept it is
        # rows^T rows, and a set of a few hundred images never allocates D x D (32 MB at D = 2048)
        self._outer: Tensor | None = None

    @property
    def dims(self) -> int:
        return self.sum.shape[0]

    @property
    def outer(self) -> Tensor:
        """(D, D) float64: the sum of x x^T over every row."""
        if self.rows is not None:
            return self.rows.T @ self.rows
        assert self._outer is not None
        return self._outer

    def update(self, feats: Tensor) -> FeatureStats:
        """Add a batch of features (B, D)."""
        if feats.dim() != 2 or feats.shape[1] != self.dims:
            raise ValueError(f"expected features (B, {self.dims}), got {tuple(feats.shape)}")
        x = feats.detach().to("cpu", torch.float64)  # (B, D)
        return self._add(x.shape[0], x.sum(0), x, None)

    def merge(self, other: FeatureStats) -> FeatureStats:
        """Add the images of ``other`` (e.g. gathered from another process) to these."""
        if other.dims != self.dims:
            raise ValueError(f"cannot merge statistics of {other.dims} and {self.dims} dims")
        return self._add(other.n, other.sum, other.rows, other._outer)

    def _add(
        self, n: int, total: Tensor, rows: Tensor | None, outer: Tensor | None
    ) -> FeatureStats:
        """Add ``n`` rows with sum ``total`` (D,), given as the rows (n, D) or their ``outer``
        (D, D): the rows are kept while the count stays <= D, then only the sums."""
        if self.rows is not None and rows is not None and self.n + n <= self.dims:
            self.rows = torch.cat([self.rows, rows])
        else:
            if self._outer is None:
                self._outer = self.outer  # the kept rows' products, now summed
                self.rows = None
            if rows is not None:
                self._outer.addmm_(rows.T, rows)
            else:
                self._outer += outer
        self.n += n
        self.sum += total
        self._root = None
        return self

    @property
    def mean(self) -> np.ndarray:
        """(D,) float64."""
        self._need(1)
        return (self.sum / self.n).numpy()

    @property
    def cov(self) -> np.ndarray:
        """(D, D) float64, unbiased (divides by N - 1)."""
        self._need(2)
        mu = self.sum / self.n
        cov = (self.outer - self.n * torch.outer(mu, mu)) / (self.n - 1)
        return ((cov + cov.T) / 2).numpy()

    def _need(self, n: int) -> None:
        if self.n < n:
            raise UserError(f"feature statistics need at least {n} images, got {self.n}")

    def frechet_distance(self, other: FeatureStats) -> float:
        """Frechet distance to ``other``.

        With both feature sets kept (N <= D each), exactly, in O(N1 N2 D): writing the centred
        features as A (N1, D) and B (N2, D) scaled by 1/sqrt(N - 1), S1 = A^T A and S2 = B^T B,
        the non-zero eigenvalues of S1 S2 are those of (A B^T)(A B^T)^T, so
        tr((S1 S2)^(1/2)) is the sum of the singular values of A B^T (its nuclear norm).
        Otherwise through :func:`frechet_distance`; the square root of this covariance is kept
        for reuse, so scoring K spaces against one reference decomposes the reference once.
        """
        if self.rows is not None and other.rows is not None and min(self.n, other.n) >= 2:
            return _frechet_low_rank(self.rows.numpy(), other.rows.numpy())
        cov = self.cov  # (D, D), derived from the rows or the sums: computed once here
        if self._root is None:
            self._root = _psd_sqrt(_checked(cov))
        return _frechet(self.mean, cov, self._root, other.mean, other.cov)

    # -- files -------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write an .npz (n, sum, outer, meta as JSON) atomically."""
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(
                f,
                n=np.int64(self.n),
                sum=self.sum.numpy(),
                outer=self.outer.numpy(),
                rows=self.rows.numpy() if self.rows is not None else np.zeros((0, 0)),
                has_rows=np.bool_(self.rows is not None),
                meta=np.array(json.dumps(self.meta, sort_keys=True)),
                format=np.int64(STATS_FORMAT),
            )

    @classmethod
    def load(cls, path: str | Path) -> FeatureStats:
        with np.load(path, allow_pickle=False) as data:
            if int(data["format"]) != STATS_FORMAT:
                raise ValueError(f"{path}: statistics format {int(data['format'])}")
            stats = cls(int(data["sum"].shape[0]), json.loads(str(data["meta"])))
            stats.n = int(data["n"])
            stats.sum = torch.from_numpy(data["sum"].astype(np.float64))
            outer = torch.from_numpy(data["outer"].astype(np.float64))
            has_rows = bool(data["has_rows"])
            stats.rows = torch.from_numpy(data["rows"].astype(np.float64)) if has_rows else None
            stats._outer = None if has_rows else outer
        d = stats.dims
        rows_ok = stats.rows is None or tuple(stats.rows.shape) == (stats.n, d)
        if tuple(outer.shape) != (d, d) or stats.sum.dim() != 1 or not rows_ok:
            raise ValueError(f"{path}: inconsistent shapes (dims {d})")
        return stats

    @classmethod
    def from_batches(
        cls,
        extractor: Callable[[Tensor], Tensor],
        batches: Iterable[Tensor],
        dims: int | None = None,
        meta: dict[str, Any] | None = None,
    ) -> FeatureStats:
        """Statistics of ``extractor(images)`` over image batches (B, 3, H, W) in [-1, 1]."""
        stats: FeatureStats | None = cls(dims, meta) if dims is not None else None
        for images in batches:
            feats = extractor(images)  # (B, D)
            if stats is None:
                stats = cls(feats.shape[1], meta)
            stats.update(feats)
        if stats is None:
            raise UserError("no images to compute feature statistics from")
        return stats


class GroupedFeatureStats:
    """Feature statistics of one generated set, kept in G disjoint groups for the FD interval.

    Row i of the stream goes to group i % G (sizes differ by at most 1), as the delete-a-group
    jackknife of :func:`frechet_interval` wants. :meth:`total` is the
    plain :class:`FeatureStats` of all rows. Memory: G + 1 times one :class:`FeatureStats`.
    """

    def __init__(self, dims: int, groups: int = FD_GROUPS) -> None:
        self.groups = [FeatureStats(dims) for _ in range(groups)]
        self._seen = 0  # rows so far: the group of the next row

    @property
    def n(self) -> int:
        return self._seen

    @property
    def dims(self) -> int:
        return self.groups[0].dims

    def update(self, feats: Tensor) -> GroupedFeatureStats:
        """Add a batch of features (B, D)."""
        index = (torch.arange(feats.shape[0]) + self._seen) % len(self.groups)  # (B,)
        for g, stats in enumerate(self.groups):
            rows = feats[index.to(feats.device) == g]
            if len(rows):
                stats.update(rows)
        self._seen += feats.shape[0]
        return self

    def merge(self, other: GroupedFeatureStats) -> GroupedFeatureStats:
        """Add another process's groups, group by group."""
        for mine, theirs in zip(self.groups, other.groups):
            mine.merge(theirs)
        self._seen += other.n
        return self

    def total(self, without: int | None = None) -> FeatureStats:
        """All rows together (leaving out group ``without``)."""
        out = FeatureStats(self.dims)
        for g, stats in enumerate(self.groups):
            if g != without and stats.n:
                out.merge(stats)
        return out


def frechet_interval(reference: FeatureStats, generated: GroupedFeatureStats) -> Interval:
    """FD of the generated set to ``reference`` with its delete-a-group jackknife interval
    (docs/statistics.md): G + 1 distances; each one exact and cheap while N <= D."""
    total = generated.total()
    value = reference.frechet_distance(total)
    used = [g for g, stats in enumerate(generated.groups) if stats.n]
    if total.n < 3 or any(total.n - generated.groups[g].n < 2 for g in used):
        return jackknife_interval(value, [], total.n)  # unbounded
    left_out = [reference.frechet_distance(generated.total(without=g)) for g in used]
    return jackknife_interval(value, left_out, total.n)


def fd_metrics(
    key: str, reference: FeatureStats, generated: GroupedFeatureStats
) -> tuple[dict[str, float | int], list[str]]:
    """``key`` with its interval keys (:meth:`Interval.to_keys`), and the warning to record
    when there are fewer samples than feature dimensions (:func:`fd_sample_warning`)."""
    warning = fd_sample_warning(generated.n, generated.dims)
    return frechet_interval(reference, generated).to_keys(key), [
        f"{key}: {warning}"
    ] if warning else []


# -- the Frechet distance -------------------------------------------------------------------------
def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)), a finite float >= 0.

    How the trace term is computed: (S1 S2)^(1/2) is not symmetric, and ``scipy.linalg.sqrtm``
    on it can return complex parts or NaN for the singular covariances of few images (hence the
    usual eps-offset fallback, which changes the value). But S1 S2 has the same eigenvalues as
    the symmetric positive semi-definite A = S1^(1/2) S2 S1^(1/2), so tr((S1 S2)^(1/2)) = sum of
    sqrt(eigvalsh(A)). Both decompositions are symmetric (``eigh``); eigenvalues below zero
    are round-off and are set to 0. The result is real by construction, needs no eps, and
    agrees with torch-fidelity (which takes the real part of the complex square roots of
    eigvals(S1 S2)) to round-off; a result below 0 (round-off on identical statistics) is 0.
    Statistics with NaN or inf are a UserError.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = (
        _checked(np.asarray(sigma1, np.float64)),
        _checked(np.asarray(sigma2, np.float64)),
    )
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(
            f"mismatched statistics: {mu1.shape} {sigma1.shape}, {mu2.shape} {sigma2.shape}"
        )
    return _frechet(mu1, sigma1, _psd_sqrt(sigma1), mu2, sigma2)


FRECHET_VARIANT: dict[str, Any] = {
    "name": "frechet-distance",
    "covariance": "unbiased (N - 1), from float64 running sums",
    "trace_sqrt": "sum sqrt(eigvalsh(S1^1/2 S2 S1^1/2)), negative round-off clipped to 0; "
    "with N <= D images on both sides, the nuclear norm of the centred cross product (exact)",
    "reference": "torch_fidelity.metric_fid.fid_statistics_to_metric (agrees to 1e-4 relative)",
}
frechet_distance.variant = FRECHET_VARIANT  # type: ignore[attr-defined]


def _frechet(
    mu1: np.ndarray, sigma1: np.ndarray, root1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    for arr in (mu1, mu2, sigma2):
        _checked(arr)
    a = root1 @ sigma2 @ root1  # (D, D), symmetric PSD up to round-off
    eig = np.linalg.eigvalsh((a + a.T) / 2).clip(min=0.0)  # (D,)
    diff = mu1 - mu2
    fd = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.sqrt(eig).sum()
    return max(float(fd), 0.0)


def _frechet_low_rank(x1: np.ndarray, x2: np.ndarray) -> float:
    """Frechet distance of two feature sets (N1, D), (N2, D) with N <= D, without D x D work."""
    for arr in (x1, x2):
        _checked(arr)
    mu1, mu2 = x1.mean(0), x2.mean(0)
    a = (x1 - mu1) / np.sqrt(len(x1) - 1)  # (N1, D): S1 = a^T a
    b = (x2 - mu2) / np.sqrt(len(x2) - 1)  # (N2, D): S2 = b^T b
    trace_sqrt = np.linalg.svd(a @ b.T, compute_uv=False).sum()
    diff = mu1 - mu2
    fd = diff @ diff + np.square(a).sum() + np.square(b).sum() - 2.0 * trace_sqrt
    return max(float(fd), 0.0)


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root of a PSD matrix by eigendecomposition. (D, D)"""
    w, v = np.linalg.eigh((sigma + sigma.T) / 2)
    return (v * np.sqrt(w.clip(min=0.0))) @ v.T


def _checked(a: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(a)):
        raise UserError("feature statistics contain NaN or inf (are the decoded images finite?)")
    return a


# -- cached statistics of the real images ---------------------------------------------------------
def default_cache_dir() -> Path:
    """``fid/`` under the cache root (:func:`latentbench.runs.cache_root`)."""
    return cache_root() / "fid"


def reference_key(key: dict[str, Any], extractor: Any) -> dict[str, Any]:
    """Everything the cached statistics depend on."""
    return {"format": STATS_FORMAT, "data": key, "extractor": extractor.variant}


def reference_stats_key(
    data: str, image_size: int, num_images: int, preprocessing: str, extractor: Any
) -> dict[str, Any]:
    """What defines the real images whose statistics are cached (recon and train-gen alike)."""
    return {
        "data": data,
        "image_size": image_size,
        "num_images": num_images,
        "preprocessing": preprocessing,
        "extractor": extractor.variant,
    }


def cached_reference_stats(
    cache_dir: str | Path | None,
    key: dict[str, Any],
    extractor: Any,
    batches: Callable[[], Iterable[Tensor]],
) -> FeatureStats:
    """Statistics of the real images, computed once and cached on disk.

    Args:
        cache_dir: folder of the cache (None: :func:`default_cache_dir`).
        key: what defines the images: data spec, image size, preprocessing, number of images,
            seed... (JSON-able). The extractor's ``variant`` is added to it.
        extractor: a :class:`~latentbench.metrics.features.FeatureExtractor`.
        batches: called only on a cache miss; yields image batches (B, 3, H, W) in [-1, 1].

    The file is ``<extractor>-<sha256 of the key>.npz`` and holds the key, which is checked on
    load. A file lock makes a second process wait for the first one's result instead of
    computing it again; the file is written atomically (temp file + rename).
    """
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    full = reference_key(key, extractor)
    canonical = json.dumps(full, sort_keys=True, default=str)
    digest = cache_digest(full)
    name = re.sub(r"[^\w.-]+", "_", str(extractor.variant.get("name", "features")))
    path = cache / f"{name}-{digest}.npz"
    cache.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        stats = _load_if_matching(path, canonical)
        if stats is None:
            stats = FeatureStats.from_batches(extractor, batches(), meta={"key": canonical})
            stats.save(path)
    return stats


def _load_if_matching(path: Path, canonical: str) -> FeatureStats | None:
    """The cached statistics of ``canonical``; None (recompute) when there are none, when they
    belong to another key, or when the file is damaged or of an older format (said in a note)."""
    if not path.is_file():
        return None
    try:
        stats = FeatureStats.load(path)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        note(f"reference statistics {path} are unreadable ({first_line(e)}); computing them again")
        return None
    return stats if stats.meta.get("key") == canonical else None
