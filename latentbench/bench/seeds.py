"""One run per training seed, and their aggregate: ``--seeds 0,1,2`` of ``train-tokenizer`` and
``train-gen`` (and ``seeds: [0, 1, 2]`` in an experiment's tokenizer and generation steps).

Each seed k runs the command as it would run alone, into ``<out>/seed_<k>/``; ``<out>`` gets a
``metrics.json`` that aggregates them with :func:`latentbench.stats.seed_aggregate`: for every
numeric metric m that all seeds have,

    m (the mean over seeds), m/std, m/ci95_low, m/ci95_high (Student t over seeds), m/n,
    m/values (one per seed, in the order of ``seeds``)

plus ``seeds`` and the distinct ``warnings`` lines of the runs. Nested metrics (train-gen of
several spaces: ``{space: {metric: value}}``) are aggregated per space. A seed's own interval
keys (``m/ci95_low``, ...) are not aggregated: the spread over seeds replaces them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from latentbench.atomic import atomic_write_json
from latentbench.errors import UserError
from latentbench.runs import OutputKind, claim_output, mark_output
from latentbench.stats import interval_keys, seed_aggregate

_PER_RUN_SUFFIXES = ("/ci95_low", "/ci95_high", "/n", "/std", "/values")


def parse_seeds(text: str | None) -> list[int] | None:
    """``"0,1,2"`` -> [0, 1, 2]; None or empty -> None. Distinct non-negative integers."""
    if text is None or not text.strip():
        return None
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds {text!r}: expected integers separated by commas") from None
    if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds {text!r}: expected distinct non-negative integers")
    return seeds


def seed_dir(out: str | Path, seed: int) -> Path:
    return Path(out) / f"seed_{seed}"


def seed_input(path: str | None, seed: int) -> str | None:
    """An input folder of a per-seed run (``--init`` of stage 2): its ``seed_<k>`` when it is
    itself a seeds output, else the folder as given."""
    if path is None:
        return None
    per_seed = seed_dir(path, seed)
    return str(per_seed) if per_seed.is_dir() else path


def run_seeds(
    seeds: Sequence[int],
    out: str | Path,
    kind: OutputKind,
    run_one: Callable[[int, Path], dict[str, Any]],
    *,
    overwrite: bool = False,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """``run_one(seed, folder)`` for each seed into ``out/seed_<k>``, then the aggregate into
    ``out/metrics.json`` (returned). ``out`` must be new, empty or an earlier ``kind`` output."""
    if not seeds:
        raise UserError("--seeds: no seed given")
    out = claim_output(out, kind, overwrite=overwrite)
    mark_output(out, kind)
    per_seed: dict[int, dict[str, Any]] = {}
    for seed in seeds:
        echo(f"seed {seed}: {seed_dir(out, seed)}")
        per_seed[seed] = run_one(seed, seed_dir(out, seed))
    aggregate = {**aggregate_seeds([per_seed[s] for s in seeds]), "seeds": list(seeds)}
    atomic_write_json(out / "metrics.json", aggregate)
    return aggregate


def aggregate_seeds(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The metrics of one run per seed -> their aggregate (see the module docstring)."""
    first = runs[0]
    out: dict[str, Any] = {}
    for key, value in first.items():
        values = [r.get(key) for r in runs]
        if isinstance(value, dict) and all(isinstance(v, dict) for v in values):
            out[key] = aggregate_seeds(values)  # type: ignore[arg-type]
        elif key.endswith(_PER_RUN_SUFFIXES) or not all(_is_number(v) for v in values):
            continue
        else:
            agg = seed_aggregate([float(v) for v in values])  # type: ignore[arg-type]
            out[key] = agg.pop("mean")
            out.update({f"{key}/{k}": v for k, v in agg.items()})
            _cover_evaluation_error(out, runs, key)
    warnings = [w for r in runs for w in r.get("warnings", []) if isinstance(w, str)]
    if warnings:  # every distinct line of any seed, in first-seen order
        out["warnings"] = list(dict.fromkeys(warnings))
    return out


def _cover_evaluation_error(out: dict[str, Any], runs: Sequence[dict[str, Any]], key: str) -> None:
    """Widen the interval over seeds in ``out`` to cover the seeds' own evaluation intervals,
    combined as independent errors of their mean (where every seed has both bounds): seeds that
    happen to score alike (a coarse GenEval score) must not make a zero-width interval."""
    low, high = interval_keys(key)
    lows, highs = [r.get(low) for r in runs], [r.get(high) for r in runs]
    if not all(_is_number(v) for v in (*lows, *highs)) or not _is_number(out.get(low)):
        return
    values, k = [float(r[key]) for r in runs], len(runs)
    down = math.sqrt(sum((v - lo) ** 2 for v, lo in zip(values, lows))) / k
    up = math.sqrt(sum((hi - v) ** 2 for v, hi in zip(values, highs))) / k
    out[low], out[high] = min(out[low], out[key] - down), max(out[high], out[key] + up)


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


# -- the commands ---------------------------------------------------------------------------------
def train_tokenizer_seeds(
    job: Any,
    seeds: Sequence[int],
    out: str | Path | None,
    *,
    resume: bool = False,
    quiet: bool = False,
    overwrite: bool = False,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """``train-tokenizer --seeds``: ``job`` (a TrainTokenizerConfig) once per seed. A stage-2
    ``init`` that is itself a seeds output starts seed k from its ``seed_<k>``."""
    from dataclasses import replace

    from latentbench.bench.tokenizer import train_tokenizer

    out = Path(out or f"runs/tokenizers/{job.space}-stage{job.stage}")

    def one(seed: int, folder: Path) -> dict[str, Any]:
        cfg = replace(job, seed=seed, init=seed_input(job.init, seed))
        run_resume = resume and (folder / "manifest.json").is_file()
        return train_tokenizer(cfg, folder, resume=run_resume, quiet=quiet, overwrite=overwrite)

    return run_seeds(seeds, out, OutputKind.TRAIN_TOKENIZER, one, overwrite=overwrite, echo=echo)


def train_gen_seeds(
    spaces: list[str],
    base: Any,
    seeds: Sequence[int],
    out: str | Path,
    *,
    resume: bool = False,
    quiet: bool = True,
    overwrite: bool = False,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """``train-gen --seeds``: every space once per seed (``base`` a TrainGenConfig); the
    aggregate is per space."""
    from dataclasses import replace

    from latentbench.bench.generation import train_generators

    def one(seed: int, folder: Path) -> dict[str, Any]:
        cfg = replace(base, seed=seed)
        return train_generators(
            spaces, cfg, folder, resume=resume, quiet=quiet, echo=echo, overwrite=overwrite
        )

    return run_seeds(seeds, out, OutputKind.TRAIN_GEN, one, overwrite=overwrite, echo=echo)
