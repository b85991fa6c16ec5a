"""latentbench.stats: intervals checked by their coverage on synthetic data with a known answer.

Every coverage test draws R samples with a fixed seed, builds R intervals and counts how many
contain the known value; :func:`assert_coverage` accepts the nominal level within a small
method slack plus 2.5 binomial standard errors. Fixed seeds make every number deterministic;
docs/statistics.md quotes them (``pytest -q tests/test_stats.py -rA -s`` prints each).
"""

from __future__ import annotations

import inspect
import json
import math

import numpy as np
import pytest
import torch
from scipy import stats as st

from latentbench import stats as S
from latentbench.atomic import dumps
from latentbench.errors import UserError
from latentbench.metrics.fid import FeatureStats, GroupedFeatureStats, frechet_interval


def assert_coverage(
    hits: np.ndarray, nominal: float, what: str, slack: float = 0.01, upper: float | None = None
) -> float:
    """hits (R,) bool: coverage within nominal +- (slack + 2.5 binomial SEs); ``upper`` allows
    a conservative method up to that coverage instead."""
    hits = np.asarray(hits, bool)
    coverage = float(hits.mean())
    tol = slack + 2.5 * math.sqrt(nominal * (1 - nominal) / hits.size)
    high = upper if upper is not None else nominal + tol
    print(
        f"\n{what}: coverage {coverage:.3f} of {hits.size}, accept {nominal - tol:.3f}..{high:.3f}"
    )
    assert nominal - tol <= coverage <= high, f"{what}: coverage {coverage:.3f}"
    return coverage


def draw(dist: str, shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, float]:
    """Samples of a distribution with a known mean."""
    rng = np.random.default_rng(seed)
    if dist == "normal":
        return rng.normal(2.0, 3.0, size=shape), 2.0
    if dist == "exponential":
        return rng.exponential(size=shape), 1.0
    if dist == "lognormal":
        return rng.lognormal(0.0, 1.0, size=shape), math.exp(0.5)
    raise ValueError(dist)


# -- means -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("dist", "n"),
    [("normal", 10), ("normal", 30), ("exponential", 30), ("normal", 200), ("exponential", 200)],
)
def test_mean_interval_covers_the_true_mean(dist: str, n: int) -> None:
    """n = 10 needs the expansion (plain BCa: ~0.90); skewed n = 10 is ~0.915 (docs)."""
    x, mean = draw(dist, (1000, n), seed=n)
    low, high = S.bootstrap_mean_bounds(x)
    assert_coverage((low <= mean) & (mean <= high), 0.95, f"mean {dist} n={n}")


@pytest.mark.parametrize("seed", range(4))
def test_mean_interval_is_scipys_bca_for_large_n(seed: int) -> None:
    """At n = 200 the expansion is < 1%: our BCa matches scipy's within Monte Carlo noise on
    very skewed values, where the percentile interval (no bias/skew correction) does not."""
    x = np.random.default_rng(seed).lognormal(0.0, 1.5, size=200)
    ours = S.mean_interval(x, n_resamples=20_000)
    seed_kw = "rng" if "rng" in inspect.signature(st.bootstrap).parameters else "random_state"
    ref, pct = (
        st.bootstrap(
            (x,), np.mean, method=m, n_resamples=20_000, **{seed_kw: np.random.default_rng(1)}
        )
        for m in ("BCa", "percentile")
    )
    width = ref.confidence_interval.high - ref.confidence_interval.low
    assert abs(ours.low - ref.confidence_interval.low) < 0.03 * width
    assert abs(ours.high - ref.confidence_interval.high) < 0.03 * width
    assert abs(pct.confidence_interval.low - ref.confidence_interval.low) > 0.04 * width


def test_mean_interval_level_is_the_coverage() -> None:
    """An 80% interval covers ~80%, and fails the 95% check: the check can fail."""
    x, mean = draw("exponential", (1000, 100), seed=7)
    low, high = S.bootstrap_mean_bounds(x, level=0.8)
    hits = (low <= mean) & (mean <= high)
    assert_coverage(hits, 0.8, "mean exponential n=100 at level 0.8")
    with pytest.raises(AssertionError):
        assert_coverage(hits, 0.95, "the same intervals against 0.95")


def test_few_values_use_student_t() -> None:
    """Below MIN_BOOTSTRAP_N the t interval is exact for normal values; a bootstrap, even
    expanded, stays inside the sample's range and covers less (normal n=5: 0.90)."""
    x, mean = draw("normal", (1000, 5), seed=5)
    intervals = [S.mean_interval(row) for row in x]
    assert {iv.method for iv in intervals} == {"Student t"}
    hits = np.array([iv.contains(mean) for iv in intervals])
    coverage = assert_coverage(hits, 0.95, "mean normal n=5")
    low, high = S.bootstrap_mean_bounds(x)
    assert np.mean((low <= mean) & (mean <= high)) < coverage - 0.03  # why not the bootstrap


def test_mean_interval_edge_cases() -> None:
    one = S.mean_interval([3.0])
    assert (one.value, one.low, one.high, one.n) == (3.0, -math.inf, math.inf, 1)
    assert one.method.startswith("none")
    flat = S.mean_interval([0.1] * 50)
    assert flat.low == flat.high == flat.value == pytest.approx(0.1)
    two = S.mean_interval([1.0, 2.0])  # t with 1 degree of freedom: +-12.7 sd / sqrt(2)
    assert two.low == pytest.approx(1.5 - 12.706 * math.sqrt(0.5) / math.sqrt(2), abs=1e-3)
    for bad in ([], [1.0, math.nan], [1.0, math.inf], [[1.0, 2.0]]):
        with pytest.raises(ValueError):
            S.mean_interval(bad)


def test_mean_interval_is_deterministic_and_cheap() -> None:
    x, _ = draw("exponential", (5000,), seed=3)
    a, b = S.mean_interval(x, seed=1), S.mean_interval(x, seed=1)
    assert a == b
    assert S.mean_interval(x, seed=2) != a  # the seed is used
    assert a.low < a.value < a.high
    low, high = S.bootstrap_mean_bounds(np.stack([x, x[::-1]]), seed=1)
    assert (low[0], high[0]) == pytest.approx((a.low, a.high), rel=1e-12)  # the same computation


# -- proportions ----------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [0.05, 0.5])
@pytest.mark.parametrize("n", [50, 200])
def test_wilson_exact_coverage(p: float, n: int) -> None:
    """Exact coverage (a sum over the binomial pmf, no simulation). Wilson's coverage oscillates
    with p around the nominal level (Brown, Cai & DasGupta 2001): 0.935..0.967 here."""
    k = np.arange(n + 1)
    intervals = [S.proportion_interval(int(i), n) for i in k]
    covered = np.array([iv.contains(p) for iv in intervals])
    coverage = float(st.binom.pmf(k, n, p)[covered].sum())
    print(f"\nWilson p={p} n={n}: exact coverage {coverage:.4f}")
    assert 0.93 <= coverage <= 0.975


def test_proportion_interval_edges() -> None:
    zero = S.proportion_interval(0, 50)
    assert zero.value == zero.low == 0.0 and 0.05 < zero.high < 0.09  # not degenerate at 0
    assert S.proportion_interval(50, 50).high == 1.0
    for k, n in ((3, 0), (-1, 5), (6, 5)):
        with pytest.raises(ValueError):
            S.proportion_interval(k, n)


def clustered_draw(m: float, prompts: int, reps: int, seed: int) -> np.ndarray:
    """Correct images out of 4 per prompt, prompt difficulty p_i ~ Beta with mean m: (R, P)."""
    rng = np.random.default_rng(seed)
    p = rng.beta(2 * m, 2 * (1 - m), size=(reps, prompts))  # strong within-prompt correlation
    return rng.binomial(4, p)


def test_clustered_proportion_covers_when_images_of_a_prompt_agree() -> None:
    """GenEval-like: 4 images per prompt that tend to agree. Wilson over images undercovers
    (~0.83); the design-effect interval over prompts covers."""
    k = clustered_draw(0.5, prompts=30, reps=1000, seed=3)
    clustered = [S.clustered_proportion_interval(row, [4] * row.size).contains(0.5) for row in k]
    naive = [S.proportion_interval(int(row.sum()), 4 * row.size).contains(0.5) for row in k]
    assert_coverage(np.array(clustered), 0.95, "clustered proportion, 30 prompts x 4, p=0.5")
    assert np.mean(naive) < 0.88


def test_clustered_proportion_is_wilson_for_single_trials() -> None:
    k = np.array([1, 0, 1, 1, 0, 1, 1, 1, 0, 1])
    a = S.clustered_proportion_interval(k, np.ones_like(k))
    b = S.proportion_interval(int(k.sum()), k.size)
    assert (a.value, a.n) == (b.value, b.n)
    assert (a.low, a.high) == pytest.approx((b.low, b.high), abs=1e-12)
    none = S.clustered_proportion_interval([0, 0, 0], [4, 4, 4])  # all fail: n_eff = prompts
    assert none.value == 0.0 and none.high == pytest.approx(S.proportion_interval(0, 3).high)
    with pytest.raises(ValueError):
        S.clustered_proportion_interval([5], [4])


def test_stratified_mean_interval_covers_the_mean_of_group_means() -> None:
    """GenEval overall: six tasks of 30 prompts, per-prompt scores k/4, known task means."""
    task_means = [0.95, 0.8, 0.6, 0.4, 0.2, 0.1]
    groups = [
        clustered_draw(m, prompts=30, reps=1000, seed=i) / 4 for i, m in enumerate(task_means)
    ]
    low, high = S.bootstrap_mean_bounds(*groups)
    truth = float(np.mean(task_means))
    assert_coverage((low <= truth) & (truth <= high), 0.95, "stratified, 6 tasks x 30 prompts")
    one = S.stratified_mean_interval({f"t{i}": g[0] for i, g in enumerate(groups)})
    assert one.value == pytest.approx(np.mean([g[0].mean() for g in groups]))
    assert (one.low, one.high) == (low[0], high[0])
    assert one.n == 180


def test_stratified_mean_interval_edges() -> None:
    single = S.stratified_mean_interval({"a": [0.5], "b": [1.0]})
    assert single.value == 0.75 and single.low == -math.inf
    for outlier in (100.0, -100.0):  # a group of 2 (expanded z ~ 18) and a strong skew
        skewed = S.stratified_mean_interval({"a": [0.0, 1.0], "b": [0.0] * 9 + [outlier]})
        assert skewed.low < skewed.value < skewed.high
    with pytest.raises(ValueError):
        S.stratified_mean_interval({})
    with pytest.raises(ValueError):
        S.stratified_mean_interval({"a": [0.5], "b": []})


def test_probe_heldout_warning() -> None:
    assert S.probe_heldout_warning(S.MIN_PROBE_HELDOUT) is None
    line = S.probe_heldout_warning(20)
    assert line is not None and "20 samples < 100" in line and "\n" not in line


# -- Frechet distance -----------------------------------------------------------------------------
class GaussianPair:
    """A fixed reference, the feature statistics of 20,000 draws of N(0, S_r), and a generator
    N(0.2, diag(0.5..2)) in D dimensions; distances and intervals by the code recon and
    train-gen run (``metrics.fid``)."""

    def __init__(self, dims: int) -> None:
        rng = np.random.default_rng(0)
        a = rng.normal(size=(dims, dims)) / math.sqrt(dims)
        ref = rng.multivariate_normal(np.zeros(dims), np.eye(dims) + 0.5 * a @ a.T, 20_000)
        self.reference = FeatureStats(dims).update(torch.from_numpy(ref))
        self.scale = np.sqrt(np.linspace(0.5, 2.0, dims))
        self.dims = dims

    def generate(self, n: int, seed: int) -> np.ndarray:  # (N, D)
        return np.random.default_rng(seed).normal(size=(n, self.dims)) * self.scale + 0.2

    def fd(self, x: np.ndarray) -> float:
        """FD of the rows ``x`` (N, D) to the reference."""
        return self.reference.frechet_distance(FeatureStats(self.dims).update(torch.from_numpy(x)))

    def interval(self, x: np.ndarray, groups: int = S.FD_GROUPS) -> S.Interval:
        generated = GroupedFeatureStats(self.dims, groups).update(torch.from_numpy(x))
        return frechet_interval(self.reference, generated)


def test_fd_interval_covers_the_fd_at_this_sample_count() -> None:
    """The target is the median FD of many independent generated sets of the same size N (FD_N
    is biased upward; the interval is about the number reported for N samples). The jackknife
    is slightly conservative (docs/statistics.md); a bootstrap over rows misses almost always."""
    pair, n = GaussianPair(16), 100
    target = float(np.median([pair.fd(pair.generate(n, 10_000 + i)) for i in range(1000)]))
    sets = [pair.generate(n, i) for i in range(400)]
    hits = np.array([pair.interval(x).contains(target) for x in sets])
    assert_coverage(hits, 0.95, "FD D=16 N=100", upper=0.99)
    rng = np.random.default_rng(0)
    naive = []
    for x in sets[:50]:  # percentile bootstrap over rows: repeated rows inflate every FD
        boot = [pair.fd(x[rng.integers(0, n, n)]) for _ in range(40)]
        naive.append(np.quantile(boot, 0.025) <= target <= np.quantile(boot, 0.975))
    assert np.mean(naive) < 0.3


def test_fd_interval_is_the_jackknife_over_rows_i_mod_g() -> None:
    """frechet_interval, from scratch: the FD of all rows, and the G distances with the rows
    i % G == g left out, through the jackknife."""
    pair = GaussianPair(6)
    x = pair.generate(53, seed=1)
    interval = pair.interval(x, groups=5)
    group = np.arange(53) % 5
    left_out = [pair.fd(x[group != g]) for g in range(5)]
    expected = S.jackknife_interval(pair.fd(x), left_out, 53)  # summed in another order
    got = (interval.value, interval.low, interval.high)
    assert got == pytest.approx((expected.value, expected.low, expected.high), rel=1e-12)
    assert interval.n == 53 and 0.0 <= interval.low < interval.value < interval.high


def test_fd_interval_edges() -> None:
    pair = GaussianPair(4)
    tiny = pair.interval(pair.generate(2, seed=0))
    assert tiny.low == -math.inf and tiny.high == math.inf and math.isfinite(tiny.value)
    with pytest.raises(UserError, match="at least 1 images"):
        pair.interval(np.zeros((0, 4)))
    with pytest.raises(ValueError, match="expected features"):
        pair.interval(np.zeros((2, 5)))


def test_fd_sample_warning() -> None:
    assert S.fd_sample_warning(2048, 2048) is None
    line = S.fd_sample_warning(500, 2048)
    assert line is not None and line.startswith("FD on 500 samples < 2048 feature dimensions")


# -- Spearman -------------------------------------------------------------------------------------
@pytest.mark.parametrize("rho", [0.5, 0.9])
@pytest.mark.parametrize("n", [10, 30])
def test_spearman_interval_covers_the_true_rho(n: int, rho: float) -> None:
    """Bivariate normal with Pearson rho: Spearman's rho_s = 6 / pi * asin(rho / 2)."""
    truth = 6 / math.pi * math.asin(rho / 2)
    xy = np.random.default_rng(n).multivariate_normal([0, 0], [[1, rho], [rho, 1]], (600, n))
    hits = [S.spearman_interval(s[:, 0], s[:, 1]).contains(truth) for s in xy]
    assert_coverage(np.array(hits), 0.95, f"Spearman n={n} rho={rho}")


def test_spearman_interval_edges() -> None:
    few = S.spearman_interval([1, 2, 3], [3, 2, 1])
    assert (few.value, few.low, few.high) == (pytest.approx(-1.0), -1.0, 1.0)
    perfect = S.spearman_interval([1, 2, 3, 4, 5], [10, 20, 30, 40, 50])
    assert perfect.high == 1.0 and -1.0 < perfect.low < 0.9 and perfect.contains(perfect.value)
    flat = S.spearman_interval([1, 1, 1, 1, 1], [1, 2, 3, 4, 5])
    assert math.isnan(flat.value) and (flat.low, flat.high) == (-1.0, 1.0)
    with pytest.raises(ValueError):
        S.spearman_interval([1, 2, 3, 4], [1, 2, 3])


# -- seeds ---------------------------------------------------------------------------------------
def test_seed_aggregate() -> None:
    agg = S.seed_aggregate([1.0, 2.0, 4.0])
    low, high = st.t.interval(0.95, 2, loc=7 / 3, scale=st.sem([1.0, 2.0, 4.0]))
    assert agg["mean"] == pytest.approx(7 / 3) and agg["n"] == 3
    assert agg["std"] == pytest.approx(np.std([1.0, 2.0, 4.0], ddof=1))
    assert agg["values"] == [1.0, 2.0, 4.0]
    assert (agg["ci95_low"], agg["ci95_high"]) == pytest.approx((low, high))
    one = json.loads(dumps(S.seed_aggregate([5.0])))  # JSON: undefined numbers are null
    assert one == {
        "mean": 5.0,
        "std": None,
        "n": 1,
        "values": [5.0],
        "ci95_low": None,
        "ci95_high": None,
    }


def test_t_interval_covers_normal_seeds() -> None:
    x, mean = draw("normal", (2000, 3), seed=11)
    hits = [S.t_interval(row).contains(mean) for row in x]
    assert_coverage(np.array(hits), 0.95, "t interval normal n=3")


# -- keys and comparisons ------------------------------------------------------------------------
def test_keys_round_trip_through_metrics_json() -> None:
    iv = S.Interval(31.2, 30.9, 31.5, 500, "test")
    keys = iv.to_keys("psnr")
    assert keys == {"psnr": 31.2, "psnr/ci95_low": 30.9, "psnr/ci95_high": 31.5, "psnr/n": 500}
    back = S.Interval.from_keys(json.loads(dumps(keys)), "psnr")
    assert back is not None and (back.value, back.low, back.high, back.n) == (31.2, 30.9, 31.5, 500)
    unbounded = json.loads(dumps(S.mean_interval([1.0]).to_keys("lpips")))
    assert unbounded["lpips/ci95_low"] is None  # JSON has no inf
    back = S.Interval.from_keys(unbounded, "lpips")
    assert back is not None and (back.low, back.high) == (-math.inf, math.inf)
    assert S.Interval.from_keys({"psnr": 31.2}, "psnr") is None  # no interval recorded
    inverted = {"psnr": 30.0, "psnr/ci95_low": 31.0, "psnr/ci95_high": 29.0}
    assert S.Interval.from_keys(inverted, "psnr") is None  # not an interval: never marked best
    assert S.interval_keys("fid", level=0.9) == ("fid/ci90_low", "fid/ci90_high")


def iv(value: float, half: float) -> S.Interval:
    return S.Interval(value, value - half, value + half, 10, "test")


def test_compare_verdicts() -> None:
    a, b, c = iv(10, 1), iv(7, 1), iv(8.5, 1)
    assert S.compare(a, b, higher_is_better=True) is S.Verdict.BETTER
    assert S.compare(a, b, higher_is_better=False) is S.Verdict.WORSE
    assert S.compare(b, a, higher_is_better=True) is S.Verdict.WORSE
    assert S.compare(a, c, higher_is_better=True) is S.Verdict.TIE  # overlap
    assert S.compare(iv(10, 1), iv(8, 1), True) is S.Verdict.TIE  # touching bounds: a tie


def test_best_index_marks_only_a_separated_best() -> None:
    assert S.best_index([iv(7, 1), iv(10, 1), iv(4, 1)], higher_is_better=True) == 1
    assert S.best_index([iv(7, 1), iv(10, 1), iv(4, 1)], higher_is_better=False) == 2
    assert S.best_index([iv(7, 1), iv(10, 1), iv(9.5, 1)], higher_is_better=True) is None
    assert S.best_index([iv(10, 1), iv(7, 1), iv(2, 20)], higher_is_better=True) is None
    assert S.best_index([iv(5, 0)] * 4, higher_is_better=True) is None  # all equal
    assert S.best_index([iv(5, 0), iv(5, 0), iv(3, 0)], higher_is_better=True) is None  # tie
    assert S.best_index([None, iv(10, 1), iv(4, 1)], higher_is_better=True) == 1
    assert S.best_index([iv(10, 1), None], higher_is_better=True) is None  # nothing to beat
    nan = S.Interval(math.nan, -1.0, 1.0, 3, "test")
    assert S.best_index([nan, iv(10, 1), iv(4, 1)], higher_is_better=True) == 1
    unbounded = S.mean_interval([1.0])
    assert S.best_index([iv(10, 1), unbounded], higher_is_better=True) is None


# -- coverage grid (slow): the tables of docs/statistics.md ---------------------------------------
# `pytest -m slow -s tests/test_stats.py` prints every cell. Each cell must reach its floor: the
# nominal 0.95 less Monte Carlo noise, lower where the docs say a method undercovers.
def assert_cell(hits: np.ndarray, floor: float, what: str, ceiling: float = 0.995) -> None:
    coverage = float(np.mean(hits))
    print(f"\nGRID {what}: {coverage:.3f} ({len(hits)} intervals, floor {floor})")
    assert floor <= coverage <= ceiling, f"{what}: coverage {coverage:.3f}"


@pytest.mark.slow
@pytest.mark.parametrize("n", [10, 30, 100, 1000])
@pytest.mark.parametrize(
    ("dist", "floors"),
    [
        ("normal", (0.93, 0.93, 0.93, 0.93)),
        ("exponential", (0.89, 0.92, 0.92, 0.92)),
        ("lognormal", (0.85, 0.88, 0.89, 0.92)),  # heavy right tail: every method undercovers
    ],
)
def test_grid_mean(dist: str, floors: tuple[float, ...], n: int) -> None:
    x, mean = draw(dist, (2000 if n < 1000 else 1000, n), seed=100 + n)
    low, high = S.bootstrap_mean_bounds(x)
    assert_cell(
        (low <= mean) & (mean <= high), floors[[10, 30, 100, 1000].index(n)], f"mean {dist} n={n}"
    )


@pytest.mark.slow
@pytest.mark.parametrize("prompts", [10, 30, 90])
def test_grid_stratified(prompts: int) -> None:
    task_means = [0.95, 0.8, 0.6, 0.4, 0.2, 0.1]
    groups = [clustered_draw(m, prompts, 2000, seed=50 + i) / 4 for i, m in enumerate(task_means)]
    low, high = S.bootstrap_mean_bounds(*groups)
    truth = float(np.mean(task_means))
    assert_cell((low <= truth) & (truth <= high), 0.93, f"stratified 6 tasks x {prompts} prompts")


@pytest.mark.slow
@pytest.mark.parametrize("prompts", [10, 30, 100])
@pytest.mark.parametrize("m", [0.05, 0.2, 0.5, 0.9])
def test_grid_clustered_proportion(m: float, prompts: int) -> None:
    k = clustered_draw(m, prompts, 1000, seed=60)
    hits = [S.clustered_proportion_interval(row, [4] * prompts).contains(m) for row in k]
    naive = np.mean([S.proportion_interval(int(r.sum()), 4 * prompts).contains(m) for r in k])
    assert_cell(np.array(hits), 0.90, f"clustered p={m} {prompts} prompts x 4 (naive {naive:.3f})")


@pytest.mark.slow
@pytest.mark.parametrize(("dims", "n"), [(8, 100), (16, 200), (16, 1000), (32, 64), (32, 16)])
def test_grid_fd(dims: int, n: int) -> None:
    pair = GaussianPair(dims)
    target = float(np.median([pair.fd(pair.generate(n, 10_000 + i)) for i in range(2000)]))
    hits = [pair.interval(pair.generate(n, i)).contains(target) for i in range(500)]
    ceiling = 0.995 if n >= 2 * dims else 1.0  # fewer samples than ~2 D: conservative (docs)
    assert_cell(np.array(hits), 0.92, f"FD D={dims} N={n}", ceiling)


@pytest.mark.slow
@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
@pytest.mark.parametrize("n", [5, 10, 30, 100])
def test_grid_spearman(n: int, rho: float) -> None:
    truth = 6 / math.pi * math.asin(rho / 2)
    xy = np.random.default_rng(70 + n).multivariate_normal([0, 0], [[1, rho], [rho, 1]], (2000, n))
    hits = [S.spearman_interval(s[:, 0], s[:, 1]).contains(truth) for s in xy]
    assert_cell(np.array(hits), 0.93, f"Spearman n={n} rho={rho}", 0.995 if n >= 10 else 1.0)
