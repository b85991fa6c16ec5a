"""The claims table: verdicts follow the intervals, in both directions."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from latentbench.errors import UserError
from latentbench.experiment import load_experiment
from latentbench.report.claims import (
    CLAIMS,
    CLAIMS_HEADER,
    Claim,
    ClaimVerdict,
    Comparison,
    claims_rows,
    claims_table,
    evaluate_claims,
)
from latentbench.report.load import load_runs
from latentbench.runs import RunDir
from latentbench.stats import Interval, Verdict


def iv(value: float, half: float = 0.5) -> Interval:
    return Interval(value, value - half, value + half, n=100, method="test")


ORDER = Claim("C1", "a < b < c", (Comparison("psnr", "b", "a"), Comparison("psnr", "c", "b")))


def test_separated_in_the_claimed_direction_holds() -> None:
    table = {"a": {"psnr": iv(10)}, "b": {"psnr": iv(12)}, "c": {"psnr": iv(14)}}
    [res] = evaluate_claims(table, [ORDER])
    assert res.verdict is ClaimVerdict.HOLDS


def test_one_separated_reversal_reverses_the_claim() -> None:
    table = {"a": {"psnr": iv(10)}, "b": {"psnr": iv(12)}, "c": {"psnr": iv(10.8)}}
    [res] = evaluate_claims(table, [ORDER])
    assert res.verdict is ClaimVerdict.REVERSED


def test_overlapping_intervals_are_not_separable() -> None:
    table = {"a": {"psnr": iv(10)}, "b": {"psnr": iv(10.6)}, "c": {"psnr": iv(14)}}
    [res] = evaluate_claims(table, [ORDER])
    assert res.verdict is ClaimVerdict.NOT_SEPARABLE


def test_lower_is_better_and_weak_comparisons() -> None:
    toy = Claim("C0", "", (Comparison("tail", "2d", "8d", higher_is_better=False),))
    [res] = evaluate_claims({"2d": {"tail": iv(1)}, "8d": {"tail": iv(3)}}, [toy])
    assert res.verdict is ClaimVerdict.HOLDS
    weak = Claim("C2", "", (Comparison("probe", "ps", "s", strict=False),))
    [tie] = evaluate_claims({"ps": {"probe": iv(0.5)}, "s": {"probe": iv(0.6)}}, [weak])
    assert tie.verdict is ClaimVerdict.HOLDS  # ">=" only needs "not worse"
    [worse] = evaluate_claims({"ps": {"probe": iv(0.5)}, "s": {"probe": iv(2.0)}}, [weak])
    assert worse.verdict is ClaimVerdict.REVERSED


def test_missing_values_are_named_and_never_hold() -> None:
    nan = Interval(math.nan, -math.inf, math.inf, n=0, method="test")
    [res] = evaluate_claims({"a": {"psnr": iv(10)}, "b": {"psnr": nan}}, [ORDER])
    assert res.verdict is ClaimVerdict.NOT_SEPARABLE
    assert res.missing == ["c"]


def test_every_shipped_claim_is_judged_and_rendered() -> None:
    results = evaluate_claims({})
    assert [r.claim.key for r in results] == ["C0", "C1", "C2", "C3", "C4", "C5"]
    rows = claims_rows(results)
    assert len(rows) == len(CLAIMS) and all(len(row) == len(CLAIMS_HEADER) for row in rows)
    assert any(row[3].startswith("not separable at this budget (missing:") for row in rows)
    table = {"PS-VAE": {"edit": iv(0.8, 0.05)}, "RAE": {"edit": iv(0.2, 0.05)}}
    [c5] = claims_rows([r for r in evaluate_claims(table) if r.claim.key == "C5"])
    assert c5[2].endswith("0.8 ± 0.05 vs 0.2 ± 0.05 (supports)") and c5[3] == "holds"


# -- from run folders ------------------------------------------------------------------------
def _keys(name: str, value: float, half: float) -> dict[str, float]:
    return {name: value, f"{name}/ci95_low": value - half, f"{name}/ci95_high": value + half}


def _write_runs(
    root: Path, psvae_seeds: tuple[float, float], rae_seeds: tuple[float, float] = (0.20, 0.22)
) -> None:
    """recon of svae / psvae / rae, a t2i seed group per space, the toy."""
    recon = RunDir.create(root / "recon", "recon", {"spaces": ["svae", "psvae", "rae"]}, seed=1)
    recon.write_metrics(
        {
            "svae": {**_keys("psnr", 13.0, 0.4), **_keys("probe/top1", 0.50, 0.03)},
            "psvae": {**_keys("psnr", 16.0, 0.4), **_keys("probe/top1", 0.52, 0.03)},
            "rae": {**_keys("psnr", 15.0, 0.4)},
        }
    )
    seeds = {"psvae": psvae_seeds, "rae": rae_seeds, "svae": (0.30, 0.31)}
    for space, values in seeds.items():
        for seed, value in enumerate(values):
            config = {"train_gen": {"space": space, "task": "t2i"}}
            run = RunDir.create(root / "t2i" / space / f"seed_{seed}", "train-gen", config, seed)
            run.write_metrics(_keys("geneval", value, 0.02))
    toy = RunDir.create(root / "toy", "toy-manifold", {"steps": 20}, seed=0)
    toy.write_metrics({**_keys("final_tail_2d", 0.05, 0.01), **_keys("final_tail_8d", 0.2, 0.02)})


ROLES = {"S-VAE": "svae", "PS-VAE": "psvae", "RAE": "rae"}


def test_claims_are_read_from_run_folders(tmp_path: Path) -> None:
    _write_runs(tmp_path, psvae_seeds=(0.40, 0.44))
    table = claims_table(load_runs([tmp_path / d for d in ("recon", "t2i", "toy")]), ROLES)
    assert table["S-VAE"]["psnr"].interval.low == pytest.approx(12.6)
    assert table["PS-VAE"]["probe"].interval.value == pytest.approx(0.52)
    gen = table["PS-VAE"]["gen"]  # two seeds: the mean, their +-0.02 combined: 0.02 * sqrt(2) / 2
    assert gen.seeds == pytest.approx((0.40, 0.44))
    assert gen.interval.value == pytest.approx(0.42)
    assert gen.interval.high - gen.interval.value == pytest.approx(0.02 / math.sqrt(2))
    assert table["8-D"]["final_tail"].interval.value == pytest.approx(0.2)
    verdicts = {r.claim.key: r.verdict for r in evaluate_claims(table)}
    assert verdicts["C0"] is ClaimVerdict.HOLDS  # 2-D's tail below 8-D's
    # 13 < 15 < 16 supports C1, but its channel sweep was not run: not judged as a whole
    [c1] = [r for r in evaluate_claims(table) if r.claim.key == "C1"]
    assert [r.reading for r in c1.results] == ["supports", "supports", "missing"]
    assert verdicts["C1"] is ClaimVerdict.NOT_SEPARABLE
    assert c1.missing == ["PS-VAE (more channels)", "PS-VAE (fewer channels)"]
    assert verdicts["C4"] is ClaimVerdict.HOLDS  # PS-VAE 0.42 >= S-VAE 0.305 > RAE 0.21


def test_separated_means_whose_seeds_disagree_are_not_separable(tmp_path: Path) -> None:
    # RAE's seeds 0.00 / 0.40 (mean 0.20) against S-VAE's 0.30 / 0.31: the combined intervals
    # separate the means (S-VAE > RAE), but seed 1 orders the pair the other way
    _write_runs(tmp_path, psvae_seeds=(0.40, 0.44), rae_seeds=(0.0, 0.40))
    table = claims_table(load_runs([tmp_path / d for d in ("recon", "t2i", "toy")]), ROLES)
    [c4] = [r for r in evaluate_claims(table) if r.claim.key == "C4"]
    strict = c4.results[1]
    assert strict.comparison.describe() == "S-VAE > RAE on gen"
    assert strict.note == "seeds disagree" and strict.verdict is Verdict.TIE
    assert c4.verdict is ClaimVerdict.NOT_SEPARABLE
    assert "(not separable, seeds disagree)" in claims_rows([c4])[0][2]


def test_experiment_claims_roles_are_checked(tmp_path: Path) -> None:
    base = "name: x\ndata: shapes:8\nrecon: {spaces: [pixel]}\n"
    (tmp_path / "bad.yaml").write_text(base + "claims: {PS-VAE: pixel, SVAE: pixel}\n")
    with pytest.raises(UserError, match="unknown role 'SVAE' \\(did you mean 'S-VAE'\\?\\)"):
        load_experiment(tmp_path / "bad.yaml")
    (tmp_path / "gone.yaml").write_text(base + "claims: {PS-VAE: psvae}\n")
    with pytest.raises(UserError, match="PS-VAE -> 'psvae' is no space of this experiment"):
        load_experiment(tmp_path / "gone.yaml")
    (tmp_path / "ok.yaml").write_text(base + "claims: {PS-VAE: pixel}\n")
    assert load_experiment(tmp_path / "ok.yaml").claims == {"PS-VAE": "pixel"}


def test_an_older_recon_probe_without_bounds_gets_its_wilson_interval(tmp_path: Path) -> None:
    recon = RunDir.create(tmp_path / "recon", "recon", {"spaces": ["svae"]}, seed=1)
    recon.write_metrics({"svae": {"probe/top1": 0.5, "probe/num_test": 1000}})
    table = claims_table(load_runs([tmp_path / "recon"]), {"S-VAE": "svae"})
    probe = table["S-VAE"]["probe"].interval
    assert (probe.low, probe.high) == pytest.approx((0.469, 0.531), abs=1e-3)


def test_seeds_that_disagree_are_caught_whatever_the_seed_counts() -> None:
    from latentbench.report.claims import Measurement

    # PS-VAE's seeds 0.90 / 0.55 against RAE's three 0.60: the means separate (0.725 vs 0.6),
    # but PS-VAE's seed 1 is below every RAE seed
    claim = Claim("C5", "PS-VAE > RAE", (Comparison("edit", "PS-VAE", "RAE"),))
    psvae = Measurement(iv(0.725, 0.01), (0.90, 0.55))
    for rae in (Measurement(iv(0.6, 0.01), (0.6, 0.6, 0.6)), Measurement(iv(0.6, 0.01))):
        [result] = evaluate_claims({"PS-VAE": {"edit": psvae}, "RAE": {"edit": rae}}, [claim])
        assert result.results[0].note == "seeds disagree"
        assert result.verdict is ClaimVerdict.NOT_SEPARABLE


def test_one_claim_metric_is_read_under_one_name_for_every_role(tmp_path: Path) -> None:
    """P-VAE has no probe/top1 with an interval: PS-VAE's top1 must not meet P-VAE's
    cross-validated probe. The name the most roles have is used for all of them (top1 first
    when every role has it)."""
    recon = RunDir.create(tmp_path / "recon", "recon", {}, seed=0)
    metrics = {}
    for space, top1, cv in (("psvae", 0.6, 0.95), ("pvae", None, 0.90), ("svae", 0.5, 0.7)):
        metrics[space] = {
            "latent/probe_accuracy": cv,
            **iv(cv, 0.01).to_keys("latent/probe_accuracy"),
        }
        if top1 is not None:
            metrics[space] |= iv(top1, 0.01).to_keys("probe/top1")
    recon.write_metrics(metrics)
    roles = {"PS-VAE": "psvae", "P-VAE": "pvae", "S-VAE": "svae"}
    table = claims_table(load_runs([tmp_path / "recon"]), roles)
    probes = {role: table[role]["probe"].interval.value for role in roles}
    assert probes == pytest.approx({"PS-VAE": 0.95, "P-VAE": 0.90, "S-VAE": 0.7})  # all CV
    del roles["P-VAE"]
    table = claims_table(load_runs([tmp_path / "recon"]), roles)
    probes = {role: table[role]["probe"].interval.value for role in roles}
    assert probes == pytest.approx({"PS-VAE": 0.6, "S-VAE": 0.5})  # all top1
