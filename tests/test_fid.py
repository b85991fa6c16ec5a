"""Running feature statistics, the Frechet distance against torch-fidelity, and the stats cache."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_fidelity.metric_fid import fid_statistics_to_metric

from latentbench.errors import UserError
from latentbench.metrics.fid import (
    FeatureStats,
    cached_reference_stats,
    default_cache_dir,
    frechet_distance,
)


def torch_fidelity_fd(mu1, s1, mu2, s2) -> float:
    out = fid_statistics_to_metric({"mu": mu1, "sigma": s1}, {"mu": mu2, "sigma": s2}, False)
    return out["frechet_inception_distance"]


def random_features(n: int, d: int, seed: int, scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((d, d)) / np.sqrt(d)
    return np.abs(rng.standard_normal((n, d)) @ mix * scale + 0.3)  # (N, D), like ReLU features


def rotated(eigenvalues: np.ndarray, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((len(eigenvalues),) * 2))
    return (q * eigenvalues) @ q.T


# -- FeatureStats -------------------------------------------------------------------------------
def test_running_stats_equal_numpy_and_merge() -> None:
    feats = random_features(300, 24, 0)
    stats = FeatureStats(24)
    for chunk in np.array_split(feats, 7):
        stats.update(torch.from_numpy(chunk))
    np.testing.assert_allclose(stats.mean, feats.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.cov, np.cov(feats, rowvar=False), rtol=1e-9, atol=1e-12)
    assert stats.n == 300 and stats.outer.shape == (24, 24)  # memory does not grow with N

    a, b = FeatureStats(24), FeatureStats(24)
    a.update(torch.from_numpy(feats[:100]))
    b.update(torch.from_numpy(feats[100:]))
    merged = a.merge(b)
    np.testing.assert_allclose(merged.cov, stats.cov, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="merge"):
        merged.merge(FeatureStats(5))
    with pytest.raises(ValueError, match=r"\(B, 24\)"):
        merged.update(torch.zeros(3, 5))


@pytest.mark.parametrize("split", [(5, 10), (5, 30), (30, 5), (30, 30), (0, 40)])
def test_merge_across_the_rows_to_sums_switch_keeps_every_moment(split: tuple[int, int]) -> None:
    """Below D = 24 rows are kept, above only sums: a merge of any two kinds equals one stream."""
    n1, n2 = split
    feats = random_features(n1 + n2, 24, 3)
    whole = FeatureStats(24).update(torch.from_numpy(feats))
    a = FeatureStats(24).update(torch.from_numpy(feats[:n1]))
    merged = a.merge(FeatureStats(24).update(torch.from_numpy(feats[n1:])))
    assert merged.n == whole.n == n1 + n2
    assert (merged.rows is None) == (whole.rows is None) == (n1 + n2 > 24)
    np.testing.assert_allclose(merged.outer.numpy(), feats.T @ feats, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(merged.cov, np.cov(feats, rowvar=False), rtol=1e-9, atol=1e-12)


def test_stats_save_load_round_trip(tmp_path: Path) -> None:
    stats = FeatureStats(8, meta={"extractor": {"name": "x"}})
    stats.update(torch.from_numpy(random_features(20, 8, 1)))
    stats.save(tmp_path / "s.npz")
    back = FeatureStats.load(tmp_path / "s.npz")
    assert back.n == 20 and back.meta == stats.meta
    assert torch.equal(back.sum, stats.sum) and torch.equal(back.outer, stats.outer)
    assert [p.name for p in tmp_path.iterdir()] == ["s.npz"]  # no temp file left behind


def test_too_few_images_is_a_user_error() -> None:
    stats = FeatureStats(4).update(torch.zeros(1, 4))
    with pytest.raises(UserError, match="at least 2 images"):
        _ = stats.cov


# -- Frechet distance vs torch-fidelity ---------------------------------------------------------
def stats_of(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return feats.mean(0), np.cov(feats, rowvar=False)


def two_sets(n1: int, n2: int, d: int, seed: int) -> tuple[np.ndarray, ...]:
    return (
        *stats_of(random_features(n1, d, seed)),
        *stats_of(random_features(n2, d, seed + 1, scale=1.3)),
    )


CASES = {
    # full rank, as with many images
    "full-rank": lambda: two_sets(800, 800, 64, 0),
    # N < D: both covariances singular, as with a few images (the usual sqrtm trouble spot)
    "rank-deficient": lambda: two_sets(20, 30, 96, 2),
    # eigenvalues from 1e-12 to 1e2
    "ill-conditioned": lambda: (
        np.zeros(64),
        rotated(np.logspace(-12, 2, 64), 4),
        np.full(64, 0.1),
        rotated(np.logspace(-10, 1, 64), 5),
    ),
    # one singular, one well-conditioned
    "mixed": lambda: (
        *stats_of(random_features(10, 48, 6)),
        np.zeros(48),
        rotated(np.linspace(0.5, 2, 48), 7),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_frechet_distance_agrees_with_torch_fidelity(case: str) -> None:
    mu1, s1, mu2, s2 = CASES[case]()
    ours = frechet_distance(mu1, s1, mu2, s2)
    theirs = torch_fidelity_fd(mu1, s1, mu2, s2)
    assert isinstance(ours, float) and np.isfinite(ours) and ours > 0
    assert abs(ours - theirs) <= 1e-4 * abs(theirs)
    assert abs(frechet_distance(mu2, s2, mu1, s1) - ours) <= 1e-6 * ours  # symmetric


def test_frechet_distance_of_identical_statistics_is_zero_not_nan() -> None:
    mu, sigma = stats_of(random_features(10, 64, 8))  # singular
    fd = frechet_distance(mu, sigma, mu, sigma)
    assert fd == pytest.approx(0.0, abs=1e-8 * np.trace(sigma)) and fd >= 0.0
    with pytest.raises(UserError, match="NaN"):
        frechet_distance(mu, np.full_like(sigma, np.nan), mu, sigma)


def test_stats_method_reuses_the_reference_square_root() -> None:
    ref = FeatureStats(32).update(torch.from_numpy(random_features(100, 32, 9)))
    others = [
        FeatureStats(32).update(torch.from_numpy(random_features(50, 32, s))) for s in (10, 11)
    ]
    for other in others:
        expected = frechet_distance(ref.mean, ref.cov, other.mean, other.cov)
        assert ref.frechet_distance(other) == pytest.approx(expected, rel=1e-10)
    assert ref._root is not None
    ref.update(torch.zeros(1, 32))
    assert ref._root is None  # updated statistics drop the cached root


def test_low_rank_path_equals_the_eigen_path_and_torch_fidelity(tmp_path: Path) -> None:
    """Few images (N <= D): exact from the (N1, N2) cross product, same value as (D, D) work."""
    ref = FeatureStats(64).update(torch.from_numpy(random_features(20, 64, 1)))
    other = FeatureStats(64).update(torch.from_numpy(random_features(12, 64, 2)))
    assert ref.rows is not None and ref.rows.shape == (20, 64)
    fast = ref.frechet_distance(other)
    assert ref._root is None  # no D x D decomposition was needed
    eigen = frechet_distance(ref.mean, ref.cov, other.mean, other.cov)
    theirs = torch_fidelity_fd(ref.mean, ref.cov, other.mean, other.cov)
    # The eigen path takes sqrt of the round-off eigenvalues (~1e-15) of a rank-deficient product,
    # each adding ~3e-8: the two agree to ~1e-7 relative, the low-rank one being the exact one.
    assert fast == pytest.approx(eigen, rel=1e-6)
    assert abs(fast - theirs) <= 1e-4 * abs(theirs)
    ref.save(tmp_path / "ref.npz")
    loaded = FeatureStats.load(tmp_path / "ref.npz")
    assert loaded.rows is not None and loaded.frechet_distance(other) == pytest.approx(fast)
    ref.update(torch.from_numpy(random_features(50, 64, 3)))  # now N > D: rows are dropped
    assert ref.rows is None
    expected = frechet_distance(ref.mean, ref.cov, other.mean, other.cov)
    assert ref.frechet_distance(other) == pytest.approx(expected, rel=1e-10)
    ref.save(tmp_path / "big.npz")
    assert FeatureStats.load(tmp_path / "big.npz").rows is None


# -- cached reference statistics ----------------------------------------------------------------
class MeanColour(torch.nn.Module):
    """A cheap extractor: per-channel means and mean squares. (B, 6)"""

    def __init__(self, version: str = "1") -> None:
        super().__init__()
        self.variant = {"name": "mean-colour", "version": version}
        self.calls = 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        x = images.double()
        return torch.cat([x.mean((2, 3)), x.square().mean((2, 3))], dim=1)


def image_batches(seed: int, n_batches: int = 3, delay: float = 0.0):
    def batches():
        g = torch.Generator().manual_seed(seed)
        for _ in range(n_batches):
            time.sleep(delay)
            yield torch.rand(4, 3, 8, 8, generator=g) * 2 - 1

    return batches


def test_reference_stats_are_computed_once(tmp_path: Path) -> None:
    extractor = MeanColour()
    key = {"data": "shapes:12", "image_size": 8}
    first = cached_reference_stats(tmp_path, key, extractor, image_batches(0))
    assert extractor.calls == 3 and first.n == 12
    [path] = tmp_path.glob("*.npz")
    assert path.name.startswith("mean-colour-")

    def must_not_run():
        raise AssertionError("cache miss")

    again = cached_reference_stats(tmp_path, dict(key), extractor, must_not_run)
    assert torch.equal(again.outer, first.outer) and extractor.calls == 3

    cached_reference_stats(tmp_path, {**key, "image_size": 16}, extractor, image_batches(0))
    cached_reference_stats(tmp_path, key, MeanColour(version="2"), image_batches(0))
    assert len(list(tmp_path.glob("*.npz"))) == 3  # new key or new extractor variant: new entry


def test_corrupt_cache_file_is_recomputed(tmp_path: Path) -> None:
    extractor = MeanColour()
    cached_reference_stats(tmp_path, {"k": 1}, extractor, image_batches(0))
    [path] = tmp_path.glob("*.npz")
    path.write_bytes(b"not a zip")
    stats = cached_reference_stats(tmp_path, {"k": 1}, extractor, image_batches(0))
    assert stats.n == 12 and extractor.calls == 6


def test_default_cache_dir_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LATENTBENCH_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c" / "fid"
    cached_reference_stats(None, {"k": 1}, MeanColour(), image_batches(0))
    assert len(list((tmp_path / "c" / "fid").glob("*.npz"))) == 1


def test_concurrent_callers_compute_once(tmp_path: Path) -> None:
    extractor = MeanColour()
    results: list[FeatureStats] = []

    def worker() -> None:
        batches = image_batches(0, delay=0.2)
        results.append(cached_reference_stats(tmp_path, {"k": 1}, extractor, batches))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert extractor.calls == 3  # one pass of 3 batches; the others waited and loaded it
    assert all(torch.equal(r.outer, results[0].outer) for r in results)


# -- end to end: our FID equals torch-fidelity's on the same PNGs -------------------------------
def png_set(folder: Path, seed: int, n: int, contrast: float) -> torch.Tensor:
    """n smooth random images saved as PNGs in ``folder``; returns them, (n, 3, 48, 48) uint8."""
    from PIL import Image

    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 6, 6, generator=g) * 2 - 1
    x = torch.nn.functional.interpolate(x * contrast, size=48, mode="bicubic").clamp(-1, 1)
    images = ((x + 1) * 127.5).round().to(torch.uint8)
    folder.mkdir()
    for i, img in enumerate(images):
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(folder / f"{i:03d}.png")
    return images


@pytest.mark.slow  # ~60 CPU-seconds, most of it torch-fidelity's own pass over the images
@pytest.mark.filterwarnings("ignore::UserWarning")  # torch-fidelity's DataLoader worker count
def test_fid_end_to_end_equals_torch_fidelity(inception_weights: Path, tmp_path: Path) -> None:
    import torch_fidelity

    from latentbench.metrics.features import build_extractor
    from latentbench.metrics.pixel import from_uint8

    a = png_set(tmp_path / "a", seed=1, n=10, contrast=1.0)
    b = png_set(tmp_path / "b", seed=2, n=10, contrast=0.5)
    extractor = build_extractor("inception", weights=inception_weights)
    stats_a = FeatureStats.from_batches(extractor, [from_uint8(a[:6]), from_uint8(a[6:])])
    stats_b = FeatureStats.from_batches(extractor, [from_uint8(b)])
    ours = stats_a.frechet_distance(stats_b)
    theirs = torch_fidelity.calculate_metrics(
        input1=str(tmp_path / "a"),
        input2=str(tmp_path / "b"),
        fid=True,
        feature_extractor_weights_path=str(inception_weights),
        cuda=False,
        cache=False,
        verbose=False,
        batch_size=10,
    )["frechet_inception_distance"]
    assert theirs > 1e-3  # the stand-in network separates the two sets
    assert ours == pytest.approx(theirs, rel=1e-3)
