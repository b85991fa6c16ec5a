"""The claims table: verdicts follow the intervals, in both directions."""

from __future__ import annotations

import math

from latentbench.report.claims import (
    CLAIMS,
    Claim,
    ClaimVerdict,
    Comparison,
    claims_markdown,
    evaluate_claims,
)
from latentbench.stats import Interval


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
    text = claims_markdown(results)
    assert text.count("\n") == 2 + len(CLAIMS)
    assert "not separable at this budget (missing:" in text
    table = {"PS-VAE": {"edit": iv(0.8, 0.05)}, "RAE": {"edit": iv(0.2, 0.05)}}
    assert "0.8 ± 0.05 vs 0.2 ± 0.05 | holds |" in claims_markdown(
        [r for r in evaluate_claims(table) if r.claim.key == "C5"]
    )
