"""The paper's claims C0-C5 as comparisons between measured intervals, with verdicts.

A claim is a list of pairwise comparisons ("PS-VAE's PSNR is above S-VAE's") between spaces
named by *role* (``S-VAE``, ``PS-VAE``, ...), which an experiment maps to its own space names.
Each comparison is judged with :func:`latentbench.stats.compare` on the two 95% intervals:

- ``holds``: every strict comparison is separated in the claimed direction and no comparison is
  separated against it (a weak "A >= B" comparison only needs A not to be worse);
- ``reversed``: some comparison is separated against the claimed direction;
- ``not separable at this budget``: neither (intervals overlap), or a value is missing.

The claims follow docs/method.md; nothing here is written by hand into a report.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from latentbench.stats import Interval, Verdict, compare


class ClaimVerdict(str, enum.Enum):
    HOLDS = "holds"
    REVERSED = "reversed"
    NOT_SEPARABLE = "not separable at this budget"


@dataclass(frozen=True)
class Comparison:
    """``better`` beats ``worse`` on ``metric`` (``strict``: beyond the intervals; else only
    "not worse", the paper's ">=")."""

    metric: str
    better: str  # a role
    worse: str  # a role
    higher_is_better: bool = True
    strict: bool = True

    def describe(self) -> str:
        sign = ">" if self.strict else ">="
        return f"{self.better} {sign} {self.worse} on {self.metric}"


@dataclass(frozen=True)
class Claim:
    key: str  # C0 ... C5
    statement: str
    comparisons: tuple[Comparison, ...]


def _ordered(metric: str, order: Sequence[str], higher: bool = True) -> tuple[Comparison, ...]:
    """``order`` from worst to best: each neighbour pair strictly."""
    return tuple(
        Comparison(metric, better=b, worse=a, higher_is_better=higher)
        for a, b in zip(order, order[1:], strict=False)
    )


# Metric keys are those of the run folders: recon's metrics.json, train-gen's final metrics,
# toy-manifold's. ``gen`` is the generation quality the experiment compares (GenEval overall on
# Shapes; ``edit/success`` for editing).
CLAIMS: tuple[Claim, ...] = (
    Claim(
        "C0",
        "a flow model learns a 2-D manifold worse when it is embedded in 8-D (tail distance)",
        (Comparison("final_tail", better="2-D", worse="8-D", higher_is_better=False),),
    ),
    Claim(
        "C1",
        "reconstruction S-VAE < RAE < PS-VAE, and more PS-VAE channels reconstruct better",
        _ordered("psnr", ("S-VAE", "RAE", "PS-VAE"))
        + (Comparison("psnr", better="PS-VAE (more channels)", worse="PS-VAE (fewer channels)"),),
    ),
    Claim(
        "C2",
        "PS-VAE keeps the encoder's linear probe (not worse than S-VAE); P-VAE loses it",
        (
            Comparison("probe", better="PS-VAE", worse="P-VAE"),
            Comparison("probe", better="PS-VAE", worse="S-VAE", strict=False),
        ),
    ),
    Claim(
        "C3",
        "RAE-HD reconstructs best and generates worst",
        (
            Comparison("psnr", better="RAE-HD", worse="PS-VAE"),
            Comparison("gen", better="PS-VAE", worse="RAE-HD"),
        ),
    ),
    Claim(
        "C4",
        "text-to-image at equal budget: PS-VAE >= S-VAE > RAE",
        (
            Comparison("gen", better="PS-VAE", worse="S-VAE", strict=False),
            Comparison("gen", better="S-VAE", worse="RAE"),
        ),
    ),
    Claim(
        "C5",
        "editing at equal budget: PS-VAE > RAE",
        (Comparison("edit", better="PS-VAE", worse="RAE"),),
    ),
)


@dataclass(frozen=True)
class ComparisonResult:
    comparison: Comparison
    better: Interval | None
    worse: Interval | None
    verdict: Verdict | None  # None: a value is missing

    @property
    def against(self) -> bool:
        return self.verdict is Verdict.WORSE

    @property
    def supports(self) -> bool:
        if self.verdict is None:
            return False
        if self.comparison.strict:
            return self.verdict is Verdict.BETTER
        return self.verdict is not Verdict.WORSE


@dataclass(frozen=True)
class ClaimResult:
    claim: Claim
    results: tuple[ComparisonResult, ...]

    @property
    def verdict(self) -> ClaimVerdict:
        if any(r.against for r in self.results):
            return ClaimVerdict.REVERSED
        if self.results and all(r.supports for r in self.results):
            return ClaimVerdict.HOLDS
        return ClaimVerdict.NOT_SEPARABLE

    @property
    def missing(self) -> list[str]:
        """Roles with no measured value (the claim cannot be judged without them)."""
        out: list[str] = []
        for r in self.results:
            for role, iv in ((r.comparison.better, r.better), (r.comparison.worse, r.worse)):
                if iv is None and role not in out:
                    out.append(role)
        return out


Table = Mapping[str, Mapping[str, Interval]]  # role -> metric -> interval


def _judge(c: Comparison, table: Table) -> ComparisonResult:
    a = table.get(c.better, {}).get(c.metric)
    b = table.get(c.worse, {}).get(c.metric)
    if a is None or b is None or math.isnan(a.value) or math.isnan(b.value):
        return ComparisonResult(c, a, b, None)
    return ComparisonResult(c, a, b, compare(a, b, c.higher_is_better))


def evaluate_claims(table: Table, claims: Sequence[Claim] = CLAIMS) -> list[ClaimResult]:
    """Judge every claim on ``table`` (role -> metric -> interval)."""
    return [ClaimResult(c, tuple(_judge(x, table) for x in c.comparisons)) for c in claims]


def _cell(iv: Interval | None) -> str:
    if iv is None:
        return "missing"
    half = iv.half_width
    if not math.isfinite(half):
        return f"{iv.value:.4g} (no interval)"
    return f"{iv.value:.4g} ± {half:.2g}"


def claims_markdown(results: Sequence[ClaimResult]) -> str:
    """The claims table as Markdown: claim, comparison, measured values, verdict."""
    lines = [
        "| claim | comparison | measured (better vs worse, 95% CI) | verdict |",
        "|---|---|---|---|",
    ]
    for res in results:
        parts = [
            f"{r.comparison.describe()}: {_cell(r.better)} vs {_cell(r.worse)}" for r in res.results
        ]
        verdict = res.verdict.value
        if res.missing:
            verdict += f" (missing: {', '.join(res.missing)})"
        lines.append(
            f"| {res.claim.key} | {res.claim.statement} | {'; '.join(parts)} | {verdict} |"
        )
    return "\n".join(lines) + "\n"
