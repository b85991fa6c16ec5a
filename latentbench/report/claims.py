"""The paper's claims C0-C5 as comparisons between measured intervals, with verdicts.

A claim is a list of pairwise comparisons ("PS-VAE's PSNR is above S-VAE's") between spaces
named by *role* (``S-VAE``, ``PS-VAE``, ...), which an experiment maps to its own space names.
Each comparison is judged with :func:`latentbench.stats.compare` on the two 95% intervals:

- ``holds``: every strict comparison is separated in the claimed direction and no comparison is
  separated against it (a weak "A >= B" comparison only needs A not to be worse);
- ``reversed``: some comparison is separated against the claimed direction;
- ``not separable at this budget``: neither (intervals overlap), or a value is missing.

Seeds: a value measured over several training seeds (``seeds: [0, 1]`` in an experiment) is the
mean over the seeds with each seed's own evaluation interval combined (the uncertainty of the
mean of all the evaluations); training variation is judged by the seeds themselves: a
comparison is separated only when every seed orders the two spaces the same way (seed k of one
space against seed k of the other), else it is "not separable" with the note "seeds disagree".
With two seeds a Student t interval over the seeds (the report's headline) has 1 degree of
freedom and separates almost nothing; the claims say instead what each seed shows.

The claims follow docs/method.md; nothing here is written by hand into a report.
"""

from __future__ import annotations

import enum
import functools
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from latentbench.report.load import Run, RunKind, load_run
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
        sign = (">" if self.higher_is_better else "<") + ("" if self.strict else "=")
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
class Measurement:
    """A role's value of a metric: its interval, and its per-seed values for a seed group."""

    interval: Interval
    seeds: tuple[float, ...] = ()  # in the order of the experiment's seed list


@dataclass(frozen=True)
class ComparisonResult:
    comparison: Comparison
    better: Interval | None
    worse: Interval | None
    verdict: Verdict | None  # None: a value is missing
    note: str = ""  # why a separated pair is not counted ("seeds disagree")

    @property
    def against(self) -> bool:
        return self.verdict is Verdict.WORSE

    @property
    def reading(self) -> str:
        """supports / against / not separable / missing."""
        if self.verdict is None:
            return "missing"
        return "supports" if self.supports else "against" if self.against else "not separable"

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


Table = Mapping[str, Mapping[str, "Interval | Measurement"]]  # role -> metric -> value


def _measurement(value: Interval | Measurement | None) -> Measurement | None:
    return Measurement(value) if isinstance(value, Interval) else value


def _judge(c: Comparison, table: Table) -> ComparisonResult:
    a = _measurement(table.get(c.better, {}).get(c.metric))
    b = _measurement(table.get(c.worse, {}).get(c.metric))
    if a is None or b is None or math.isnan(a.interval.value) or math.isnan(b.interval.value):
        return ComparisonResult(c, a and a.interval, b and b.interval, None)
    verdict = compare(a.interval, b.interval, c.higher_is_better)
    note = ""
    if verdict is not Verdict.TIE and (a.seeds or b.seeds):
        # every seed orders the pair the same way: seed k against seed k, or (different seed
        # counts, or one side a single run) every seed of one against every seed of the other
        xs, ys = a.seeds or (a.interval.value,), b.seeds or (b.interval.value,)
        pairs = zip(xs, ys) if len(xs) == len(ys) else itertools.product(xs, ys)
        sign = 1.0 if (verdict is Verdict.BETTER) == c.higher_is_better else -1.0
        if not all(sign * (x - y) > 0 for x, y in pairs):
            verdict, note = Verdict.TIE, "seeds disagree"
    return ComparisonResult(c, a.interval, b.interval, verdict, note)


def evaluate_claims(table: Table, claims: Sequence[Claim] = CLAIMS) -> list[ClaimResult]:
    """Judge every claim on ``table`` (role -> metric -> interval, or a :class:`Measurement`)."""
    return [ClaimResult(c, tuple(_judge(x, table) for x in c.comparisons)) for c in claims]


# -- the table, from run folders ---------------------------------------------------------------
# A claim metric -> the run kind that measures it and its metric names there, first found wins.
CLAIM_METRICS: dict[str, tuple[RunKind, tuple[str, ...]]] = {
    "psnr": (RunKind.RECON, ("psnr",)),
    # the probe fitted on the train split (recon's probe_data), else the cross-validated one
    "probe": (RunKind.RECON, ("probe/top1", "latent/probe_accuracy")),
    "gen": (RunKind.TRAIN_GEN, ("geneval",)),  # Shapes GenEval overall of a t2i generator
    "edit": (RunKind.TRAIN_GEN, ("edit/success",)),
    "final_tail": (RunKind.TOY_MANIFOLD, ("final_tail",)),
}
# the roles whose generators a claim compares (C3-C5)
GENERATION_ROLES = frozenset(
    r
    for c in CLAIMS
    for x in c.comparisons
    if x.metric in ("gen", "edit")
    for r in (x.better, x.worse)
)
ROLES: tuple[str, ...] = tuple(
    dict.fromkeys(r for c in CLAIMS for x in c.comparisons for r in (x.better, x.worse))
)


def check_roles(roles: Mapping[str, str]) -> list[str]:
    """The problems of a role -> space mapping (an experiment's ``claims:``), one line each."""
    from difflib import get_close_matches

    bad = []
    for role in roles:
        if role not in ROLES:
            near = get_close_matches(role, ROLES, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else f"; roles: {', '.join(ROLES)}"
            bad.append(f"claims: unknown role {role!r}{hint}")
    return bad


def experiment_roles(run_dirs: Sequence[str | Path]) -> dict[str, str] | None:
    """The ``claims:`` roles that an experiment recorded in a given folder's experiment.json
    (``latentbench report runs/<experiment>``); None when no folder holds one."""
    import json

    for folder in run_dirs:
        path = Path(folder) / "experiment.json"
        if path.is_file() and not path.is_symlink():
            try:
                roles = json.loads(path.read_text()).get("experiment", {}).get("claims")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(roles, dict) and roles:
                return {str(k): str(v) for k, v in roles.items()}
    return None


def _combine_seeds(intervals: Sequence[Interval]) -> Interval:
    """The mean over seeds, each seed's evaluation interval combined as independent errors."""
    k = len(intervals)
    value = sum(i.value for i in intervals) / k
    down = math.sqrt(sum((i.value - i.low) ** 2 for i in intervals)) / k
    up = math.sqrt(sum((i.high - i.value) ** 2 for i in intervals)) / k
    method = f"mean of {k} seeds, their evaluation intervals combined"
    return Interval(value, value - down, value + up, sum(i.n for i in intervals), method)


def _find(run: Run, space: str, names: Sequence[str]) -> Interval | None:
    for name in names:
        for s in run.scalars:
            if s.space == space and s.metric == name and s.interval is not None:
                return s.interval
    return None


def _measure(
    run: Run, space: str, names: Sequence[str], load: Callable[[Path], Run]
) -> Measurement | None:
    """A run's value of the first of ``names`` for ``space`` (a seed group: see the module; its
    seed folders read by ``load``)."""
    if not run.seed_dirs:
        found = _find(run, space, names)
        return Measurement(found) if found is not None else None
    per_seed = [_find(load(path), space, names) for path in run.seed_dirs.values()]
    if not per_seed or any(i is None for i in per_seed):
        return None
    found_all = [i for i in per_seed if i is not None]
    return Measurement(_combine_seeds(found_all), tuple(i.value for i in found_all))


def claims_table(
    runs: Sequence[Run], roles: Mapping[str, str]
) -> dict[str, dict[str, Measurement]]:
    """role -> metric -> measurement, read from ``runs``; ``roles`` maps a role to a space name
    as the runs label it. The toy's roles 2-D / 8-D are its spaces ``2d`` and the other one."""
    roles = dict(roles)
    toy_spaces = sorted(
        {s.space for r in runs if r.kind is RunKind.TOY_MANIFOLD for s in r.scalars}
    )
    if "2d" in toy_spaces:
        roles.setdefault("2-D", "2d")
        roles.setdefault("8-D", next((s for s in toy_spaces if s != "2d"), "8d"))
    load = functools.cache(load_run)  # each seed folder read once, whatever role asks
    table: dict[str, dict[str, Measurement]] = {}
    for metric, (kind, names) in CLAIM_METRICS.items():
        # one metric name for every role (never one role's top1 against another's CV probe):
        # the name the most roles have, the first listed on a tie
        found = {name: _measure_roles(runs, roles, kind, name, load) for name in names}
        chosen = max(names, key=lambda name: len(found[name]))
        for role, measured in found[chosen].items():
            table.setdefault(role, {})[metric] = measured
    return table


def _measure_roles(
    runs: Sequence[Run],
    roles: Mapping[str, str],
    kind: RunKind,
    name: str,
    load: Callable[[Path], Run],
) -> dict[str, Measurement]:
    """role -> the first ``kind`` run's measurement of metric ``name`` for the role's space."""
    out: dict[str, Measurement] = {}
    for role, space in roles.items():
        for run in runs:
            if run.kind is kind and (found := _measure(run, space, (name,), load)) is not None:
                out[role] = found
                break
    return out


def _cell(iv: Interval | None) -> str:
    if iv is None:
        return "missing"
    half = iv.half_width
    if not math.isfinite(half):
        return f"{iv.value:.4g} (no interval)"
    return f"{iv.value:.4g} ± {half:.2g}"


CLAIMS_HEADER = (
    "claim",
    "statement",
    "measured (claimed better vs worse, 95% interval)",
    "verdict",
)


def claims_rows(results: Sequence[ClaimResult]) -> list[list[str]]:
    """One row of text cells per claim, in the order of :data:`CLAIMS_HEADER`."""
    rows = []
    for res in results:
        parts = []
        for r in res.results:
            seen = r.reading + (f", {r.note}" if r.note else "")
            parts.append(
                f"{r.comparison.describe()}: {_cell(r.better)} vs {_cell(r.worse)} ({seen})"
            )
        verdict = res.verdict.value
        if res.missing:
            verdict += f" (missing: {', '.join(res.missing)})"
        rows.append([res.claim.key, res.claim.statement, "; ".join(parts), verdict])
    return rows
