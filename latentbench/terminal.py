"""What the commands print: a compact metrics table, progress of long phases.

- :func:`metrics_table`: one row per space; by default the headline columns only (the metrics
  that carry an interval, shown as "value ± half-interval", plus images and throughput);
  ``wide`` adds every other scalar. Everything is in metrics.json either way.
- :class:`Progress`: a rich progress bar on a terminal; elsewhere (a log file, CI) plain lines
  every ``every_s`` seconds and at the end, never carriage-return bars.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TextIO, TypeVar

from rich.table import Table

from latentbench.stats import Interval

T = TypeVar("T")

SHORT_NAMES = {
    "num_images": "images",
    "skipped_images": "skipped",
    "encode_images_per_s": "enc img/s",
    "decode_images_per_s": "dec img/s",
    "train_images_per_s": "train img/s",
}
HEADLINE_COUNTS = ("num_images", "encode_images_per_s", "decode_images_per_s", "steps")
HEADLINE_WITH_SLASH = ("edit/success",)  # headline metrics whose name has a '/'
_INTERVAL_SUFFIXES = ("/ci95_low", "/ci95_high", "/n", "/std", "/values")


def _scalar(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def table_columns(results: Mapping[str, Any], wide: bool = False) -> list[str]:
    """The metric columns: headline ones (``wide``: every scalar), in first-seen order, of the
    entries of ``results`` that are metric dicts (not e.g. the ``seeds`` list)."""
    columns: list[str] = []
    for metrics in (m for m in results.values() if isinstance(m, Mapping)):
        for key, value in metrics.items():
            if key in columns or not _scalar(value) or key.endswith(_INTERVAL_SUFFIXES):
                continue
            values = metrics.get(f"{key}/values")  # a seed aggregate: a setting if all equal
            setting = isinstance(values, list) and len(set(values)) <= 1
            has_interval = f"{key}/ci95_low" in metrics and not setting
            headline = (has_interval and ("/" not in key or key in HEADLINE_WITH_SLASH)) or (
                key in HEADLINE_COUNTS
            )
            if wide or headline:
                columns.append(key)
    return columns


def cell(metrics: Mapping[str, Any], key: str) -> str:
    """ "value ± half-interval" (4 significant digits), the plain value without an interval."""
    value = metrics.get(key)
    if value is None:
        return ""
    if not _scalar(value):
        return str(value)
    iv = Interval.from_keys(metrics, key)
    if iv is None:
        return f"{value:.4g}"
    if not (math.isfinite(iv.low) and math.isfinite(iv.high)):
        return f"{value:.4g} ± ?"
    return f"{value:.4g} ± {iv.half_width:.2g}"


def metrics_table(results: Mapping[str, Any], title: str, wide: bool = False) -> Table:
    """One row per space (entries of ``results`` that are metric dicts)."""
    rows = {k: v for k, v in results.items() if isinstance(v, Mapping)}
    columns = table_columns(rows, wide)
    caption = "± half the 95% interval" + ("" if wide else "; --wide: every column")
    table = Table("space", *(SHORT_NAMES.get(c, c) for c in columns), title=title, caption=caption)
    for name, metrics in rows.items():
        table.add_row(name, *(cell(metrics, c) for c in columns))
    return table


def warnings_of(results: Mapping[str, Any]) -> list[str]:
    """The ``warnings`` lines of each space's metrics, prefixed by the space."""
    return [
        f"{name}: {line}"
        for name, metrics in results.items()
        if isinstance(metrics, Mapping)
        for line in metrics.get("warnings", [])
    ]


class Progress:
    """Progress of one phase of ``total`` items (``initial`` done already, e.g. on resume): a
    rich bar on a terminal, else a plain line every ``every_s`` seconds and one at the end
    (``stream``: default stderr)."""

    def __init__(
        self,
        total: int | None,
        desc: str,
        *,
        disable: bool = False,
        initial: int = 0,
        every_s: float = 10.0,
        stream: TextIO | None = None,
    ) -> None:
        self.total, self.desc, self.disable, self.every_s = total, desc, disable, every_s
        self.stream = stream or sys.stderr
        self.done, self.postfix = initial, ""
        self._start = self._last = time.perf_counter()
        self._bar: Any = None
        if not disable and self.stream.isatty():
            from rich.console import Console
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(console=Console(file=self.stream), transient=False)
            self._bar.start()
            self._task = self._bar.add_task(desc, total=total, completed=initial)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.disable:
            return
        if self._bar is not None:
            self._bar.update(self._task, advance=n, description=self._label())
            return
        now = time.perf_counter()
        if now - self._last >= self.every_s:
            self._last = now
            self._line()

    def set_postfix(self, **values: Any) -> None:
        self.postfix = " ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        if self.disable:
            return
        if self._bar is not None:
            self._bar.update(self._task, description=self._label())
            self._bar.stop()
            self._bar = None
        else:
            self._line()
        self.disable = True  # closing twice prints once

    def _label(self) -> str:
        return f"{self.desc} {self.postfix}".strip()

    def _line(self) -> None:
        of = f"/{self.total}" if self.total is not None else ""
        seconds = time.perf_counter() - self._start
        self.stream.write(f"{self._label()}: {self.done}{of} ({seconds:.0f} s)\n")
        self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def track(
    items: Iterable[T], total: int | None, desc: str, *, disable: bool = False
) -> Iterator[T]:
    """Iterate ``items`` with a :class:`Progress`."""
    with Progress(total, desc, disable=disable) as bar:
        for item in items:
            yield item
            bar.update(1)
