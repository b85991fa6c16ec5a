"""Which metric goes where in the report, and which way is better.

- :func:`direction`: higher / lower / no direction, from :data:`DIRECTIONS` (first match wins);
- :func:`role`: a headline candidate, a latent diagnostic, a training number, or other;
- :data:`HEADLINE`: the columns of the headline table ("which space?"), each a pattern over the
  metric names of one kind of run; the first metric that matches fills the column.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from latentbench.report.load import WALL_CLOCK, RunKind


class Direction(str, enum.Enum):
    HIGHER = "higher"
    LOWER = "lower"
    NONE = "none"

    @property
    def arrow(self) -> str:
        return {"higher": "\u2191", "lower": "\u2193", "none": ""}[self.value]


# (pattern searched in the metric name, direction); first match wins.
DIRECTIONS: tuple[tuple[str, Direction], ...] = (
    (r"majority_baseline|nn_distance|num_|channels|latent_size|seconds", Direction.NONE),
    (r"^train/(lr|grad_norm)$", Direction.NONE),
    (r"lpips", Direction.LOWER),
    (r"(^|/)[ri]?fid|(^|/)fd(_|$)", Direction.LOWER),
    (r"psnr|ssim", Direction.HIGHER),
    (r"geneval|accuracy|probe|success", Direction.HIGHER),
    (r"images_per_s", Direction.HIGHER),
    (r"(^|/|_)l1(_|$)|loss|tail|^train/", Direction.LOWER),
)


def direction(metric: str) -> Direction:
    for pattern, d in DIRECTIONS:
        if re.search(pattern, metric):
            return d
    return Direction.NONE


class Role(str, enum.Enum):
    """Which table a metric goes to."""

    RESULT = "result"  # the per-benchmark result tables (and the headline)
    DIAGNOSTIC = "diagnostic"  # latent diagnostics: probe, robustness, channel statistics
    TRAINING = "training"  # losses and throughput of training


def role(metric: str) -> Role:
    if metric.startswith("latent/"):
        return Role.DIAGNOSTIC
    if re.search(r"^train/|^train_|(^|/)loss|images_per_s|^params$", metric):
        return Role.TRAINING
    return Role.RESULT


# what a generation-quality metric is called: FID, FD with any extractor
GEN_FD = r"fid|fd|fd_.+"


@dataclass(frozen=True)
class HeadlineColumn:
    key: str  # the column's id (and the metric name in the Spearman figure)
    label: str  # the header text (the metric name found is shown under it)
    kinds: tuple[RunKind, ...]  # the runs it is read from
    pattern: str  # matched in full against the metric names of those runs
    unit: str = ""


HEADLINE: tuple[HeadlineColumn, ...] = (
    HeadlineColumn("psnr", "PSNR", (RunKind.RECON,), r"psnr", "dB"),
    HeadlineColumn("ssim", "SSIM", (RunKind.RECON,), r"ssim"),
    HeadlineColumn("lpips", "LPIPS", (RunKind.RECON,), r"lpips.*"),
    HeadlineColumn("rfid", "rFID", (RunKind.RECON,), r"rfid|" + GEN_FD),
    HeadlineColumn("gen_fd", "generation FD", (RunKind.TRAIN_GEN,), GEN_FD),
    HeadlineColumn("geneval", "GenEval", (RunKind.TRAIN_GEN, RunKind.GENEVAL), r"geneval"),
    HeadlineColumn("steps", "training steps", (RunKind.TRAIN_GEN,), r"steps"),
    HeadlineColumn("seconds", "wall-clock", (RunKind.TRAIN_GEN,), "|".join(WALL_CLOCK), "s"),
)
RECON_COLUMNS = ("psnr", "ssim", "lpips", "rfid")  # x of "does reconstruction predict generation?"
GENERATION_COLUMNS = ("gen_fd", "geneval")  # y: the first one that has values

TITLES = {
    RunKind.RECON.value: "Reconstruction",
    RunKind.TRAIN_GEN.value: "Generation (final evaluation of each generator run)",
    RunKind.TRAIN_TOKENIZER.value: "Tokenizer training",
    RunKind.TOY_MANIFOLD.value: "Toy manifold (C0)",
    RunKind.GENEVAL.value: "GenEval (Shapes)",
}
