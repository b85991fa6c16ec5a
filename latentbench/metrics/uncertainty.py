"""Intervals of the generation and editing scores, from the per-sample rows the scorers produce.

train-gen's evaluation, ``eval-gen`` and ``eval-edit`` call these, so all three write the same
keys (docs/statistics.md, "Keys"):

- GenEval, per task: :func:`~latentbench.stats.clustered_proportion_interval` over the task's
  prompts (the images of one prompt succeed or fail together); overall (the mean of the task
  scores): :func:`~latentbench.stats.stratified_mean_interval` of the per-prompt scores,
  resampled within each task.
- Edit success: :func:`~latentbench.stats.proportion_interval` (Wilson) over the edits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from latentbench.stats import (
    Interval,
    clustered_proportion_interval,
    interval_keys,
    proportion_interval,
    stratified_mean_interval,
)

GenevalRow = tuple[str, bool, Any]  # (task tag, correct, prompt id)


def geneval_intervals(rows: Iterable[GenevalRow]) -> tuple[dict[str, Interval], Interval | None]:
    """Per task and overall intervals of GenEval rows (tasks in the order they first appear).

    A task's value is correct / images, as :func:`latentbench.geneval.summarise` gives it. The
    overall value is the mean of those task scores; its interval is the stratified bootstrap's
    of the mean of per-prompt scores, centred on that value (the two are equal when every
    prompt has the same number of images, as GenEval's 4 per prompt)."""
    per_task: dict[str, dict[Any, list[int]]] = {}  # task -> prompt -> [correct, images]
    for tag, correct, prompt in rows:
        counts = per_task.setdefault(tag, {}).setdefault(prompt, [0, 0])
        counts[0] += bool(correct)
        counts[1] += 1
    tasks = {
        tag: clustered_proportion_interval(
            [c for c, _ in prompts.values()], [m for _, m in prompts.values()]
        )
        for tag, prompts in per_task.items()
    }
    if not tasks:
        return tasks, None
    by_prompt = {tag: [c / m for c, m in prompts.values()] for tag, prompts in per_task.items()}
    mean = stratified_mean_interval(by_prompt)
    value = sum(iv.value for iv in tasks.values()) / len(tasks)
    shift = value - mean.value
    overall = Interval(value, mean.low + shift, mean.high + shift, mean.n, mean.method)
    return tasks, overall


def geneval_keys(rows: Sequence[GenevalRow], prefix: str) -> dict[str, float | int]:
    """``prefix`` (overall) and ``prefix/<task>``, each with its interval keys (metrics.json)."""
    tasks, overall = geneval_intervals(rows)
    out: dict[str, float | int] = overall.to_keys(prefix) if overall is not None else {}
    for tag, iv in tasks.items():
        out.update(iv.to_keys(f"{prefix}/{tag}"))
    return out


def add_geneval_intervals(results: dict[str, Any], rows: Sequence[GenevalRow]) -> dict[str, Any]:
    """results.json of eval-gen, extended in its own layout: ``overall/ci95_low`` and
    ``overall/ci95_high`` next to ``overall``; ``score/ci95_low`` and ``score/ci95_high`` next
    to each ``tasks.<t>.score``. Returns ``results`` (changed in place)."""
    tasks, overall = geneval_intervals(rows)
    if overall is not None:
        low, high = interval_keys("overall")
        results.update({low: overall.low, high: overall.high, "overall/n": overall.n})
    for tag, iv in tasks.items():
        low, high = interval_keys("score")
        block = results.setdefault("tasks", {}).setdefault(tag, {})
        block.update({low: iv.low, high: iv.high, "prompts": iv.n})
    return results


def success_interval(successes: Sequence[bool]) -> Interval | None:
    """Wilson interval of a success rate over independent edits (None without edits)."""
    flags = [bool(s) for s in successes]
    return proportion_interval(sum(flags), len(flags)) if flags else None


def add_success_interval(block: dict[str, Any], successes: Sequence[bool]) -> dict[str, Any]:
    """``success/ci95_low``, ``success/ci95_high``, ``success/n`` next to ``block["success"]``."""
    iv = success_interval(successes)
    if iv is not None:
        block.update({k: v for k, v in iv.to_keys("success").items() if k != "success"})
    return block


def log_rows(metrics: dict[str, Any]) -> dict[str, tuple[float, dict[str, Any]]]:
    """One metrics.jsonl row per metric: ``{name: (value, extra)}`` with the interval in the
    row (``ci95_low``, ``ci95_high``, ``n``) instead of rows of its own; lists (``warnings``)
    and other non-numbers are left out."""
    suffixes = ("/ci95_low", "/ci95_high", "/n")
    out: dict[str, tuple[float, dict[str, Any]]] = {}
    for name, value in metrics.items():
        if (
            name.endswith(suffixes)
            or isinstance(value, bool)
            or not isinstance(value, (int, float))
        ):
            continue
        extra = {s[1:]: metrics[name + s] for s in suffixes if name + s in metrics}
        out[name] = (float(value), extra)
    return out
