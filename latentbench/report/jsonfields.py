"""Reading the JSON files of a run defensively: a field of the wrong type reads as absent.

- :func:`flatten`: nested ``metrics.json`` -> ``{"a/b": number}`` (+ per-channel vectors);
- :func:`leaves`: the same, keeping every leaf (null bounds, lists of per-seed values);
- :func:`measured`: each metric with its interval, std and per-seed values, read from the keys
  ``<m>/ci95_low``, ``<m>/ci95_high``, ``<m>/n``, ``<m>/std``, ``<m>/values`` (or ``<m>/mean``
  for the value itself) that the producers write next to ``<m>`` (docs/statistics.md).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latentbench.errors import UserError
from latentbench.stats import Interval

SKIP_KEYS = ("config",)  # metrics.json sections that are settings, not results
VECTOR_KEYS = ("channel_mean", "channel_std", "channel_absmax", "channel_kurtosis")
# keys written next to a metric <m> as <m>/<suffix>: its uncertainty, not metrics of their own
UNCERTAINTY = ("ci95_low", "ci95_high", "n", "std", "values", "mean")


def number(value: object) -> float | None:
    """A finite float from a JSON scalar (bools and strings are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def obj(value: object) -> dict[str, Any]:
    """A JSON object field, or {} when the file holds something else there."""
    return value if isinstance(value, dict) else {}


def items(value: object) -> list[Any]:
    """A JSON array field, or [] when the file holds something else there."""
    return value if isinstance(value, list) else []


def format_variant(variant: object) -> str:
    """A metric variant (dict, list or string) as one line: ``key: value; key: value``."""
    if variant is None or variant == {}:
        return ""
    if isinstance(variant, dict):
        return "; ".join(f"{k}: {format_variant(v)}" for k, v in variant.items())
    if isinstance(variant, (list, tuple)):
        return ", ".join(format_variant(v) for v in variant)
    return str(variant)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a JSON file (binary content)") from None
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: unreadable JSON ({e})") from None


def leaves(metrics: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested metrics -> every leaf by its ``a/b`` name (settings sections left out)."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            if not (key in SKIP_KEYS and not prefix):
                out.update(leaves(value, f"{prefix}{key}/"))
        else:
            out[f"{prefix}{key}"] = value
    return out


def flatten(metrics: dict[str, Any]) -> tuple[dict[str, float], dict[str, list]]:
    """Nested metrics -> ({'a/b': number}, {'a/channel_std': [floats]}); other values dropped."""
    scalars: dict[str, float] = {}
    vectors: dict[str, list] = {}
    for name, value in leaves(metrics).items():
        if isinstance(value, list):
            numeric = all(number(x) is not None for x in value)
            if numeric and name.rsplit("/", 1)[-1] in VECTOR_KEYS:
                vectors[name] = [float(x) for x in value]
        elif (v := number(value)) is not None:
            scalars[name] = v
    return scalars, vectors


@dataclass(frozen=True)
class Measured:
    """A metric's value with what the run recorded about its uncertainty."""

    value: float
    interval: Interval | None = None  # None: no bounds recorded; -inf/inf: recorded unbounded
    std: float | None = None  # over seeds
    seeds: tuple[float, ...] = ()  # one value per seed


def is_uncertainty_key(name: str, flat: dict[str, Any]) -> bool:
    """``<m>/ci95_low`` (etc.) of a metric ``<m>`` the same file holds."""
    base, _, suffix = name.rpartition("/")
    return bool(base) and suffix in UNCERTAINTY and (base in flat or f"{base}/mean" in flat)


def measured(metrics: dict[str, Any]) -> dict[str, Measured]:
    """Every numeric metric of ``metrics`` (nested or flat ``a/b`` keys) with its interval."""
    flat = leaves(metrics)
    out: dict[str, Measured] = {}
    for name, raw in flat.items():
        if is_uncertainty_key(name, flat) and not name.endswith("/mean"):
            continue
        base = name.removesuffix("/mean") if is_uncertainty_key(name, flat) else name
        if base in out or (base != name and base in flat):
            continue  # <m> itself wins over <m>/mean
        value = number(raw)
        if value is None:
            continue
        try:
            interval = Interval.from_keys({**flat, base: value}, base)
        except (TypeError, ValueError):  # a bound or count of the wrong type: no interval
            interval = None
        seeds = tuple(v for x in items(flat.get(f"{base}/values")) if (v := number(x)) is not None)
        out[base] = Measured(value, interval, number(flat.get(f"{base}/std")), seeds)
    return out


def per_space(metrics: dict[str, Any], spaces: Sequence[str], default: str) -> dict[str, dict]:
    """``metrics.json`` -> {space: metrics}: a dict of dicts is one entry per space; a flat one
    belongs to the run's only space (or ``default``)."""
    nested = bool(metrics) and all(isinstance(v, dict) for v in metrics.values())
    if nested and (not spaces or set(metrics) <= set(spaces)):
        return metrics
    return {spaces[0] if len(spaces) == 1 else default: metrics}
