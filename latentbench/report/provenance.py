"""Where each run's numbers come from: the commit it was made from, and the settings that
must match for two rows of one table to be compared (data, image size, sample count,
reference set).

- :func:`check_commit`: ``report --commit C`` refuses (UserError) unless every run, every seed
  of a seed group included, was made from C with a clean tree;
- :func:`commit_line`: what the report says about the commits of its runs;
- :func:`mismatch_warnings`: one line per setting that differs between the runs of a table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from latentbench.errors import UserError
from latentbench.report.jsonfields import format_variant, items, obj, read_json
from latentbench.report.load import MANIFEST, Run, RunKind, outside

DIRTY = "+dirty"


# -- commits ------------------------------------------------------------------------------------
def run_commits(run: Run) -> list[str]:
    """The git field of the run's manifest, and of each seed's ('' when unknown)."""
    found = [run.git]
    for folder in run.seed_dirs.values():
        path = folder / MANIFEST
        if path.is_file() and not outside(path, run.path):
            git = obj(read_json(path)).get("git")
            found.append(git if isinstance(git, str) else "")
    return list(dict.fromkeys(found))


def _describe(git: str) -> str:
    if not git:
        return "an unknown commit"
    if git.endswith(DIRTY):
        return f"commit {git.removesuffix(DIRTY)[:12]} with uncommitted changes (a dirty tree)"
    return f"commit {git[:12]}"


def check_commit(runs: Sequence[Run], commit: str, here: str | None) -> None:
    """UserError unless every run was made from ``commit`` (a full hash or a prefix of >= 7
    characters) with a clean tree, and the report is written from it too (``here``: the
    latentbench checkout's ``runs.git_hash()``, None outside a git checkout)."""
    wanted = commit.strip().lower()
    if len(wanted) < 7:
        raise UserError(f"--commit {commit!r}: give at least 7 characters of the hash")
    for run in runs:
        for git in run_commits(run):
            if git.endswith(DIRTY) or not git.lower().startswith(wanted):
                raise UserError(
                    f"--commit {commit}: run {run.name} was made from {_describe(git)}; "
                    "a report is labelled only with the commit all its runs were made from"
                )
    if not here or here.endswith(DIRTY) or not here.lower().startswith(wanted):
        raise UserError(
            f"--commit {commit}: this report would be written from {_describe(here or '')}; "
            "check out that commit (clean) to label a report with it"
        )


def commit_line(runs: Sequence[Run], commit: str | None) -> str:
    """One sentence on the commits of the runs (after :func:`check_commit` when ``commit``)."""
    if commit:
        return f"All runs were made from commit {commit} (checked, clean tree)."
    by: dict[str, list[str]] = {}
    for run in runs:
        for git in run_commits(run):
            by.setdefault(git, []).append(run.name)
    parts = [f"{_describe(g)} ({len(names)} run(s))" for g, names in by.items()]
    if len(by) == 1:
        return f"All runs were made from {_describe(next(iter(by)))}; not checked (--commit)."
    return "Runs from several commits: " + "; ".join(parts) + "."


# -- the Runs table (index.html and README.md) ---------------------------------------------------
def seeds_text(run: Run) -> str:
    """The seeds of a seed group, else the seed the manifest records ('' if none)."""
    seed = run.manifest.get("seed")
    return ", ".join(map(str, run.seed_dirs)) or ("" if seed is None else str(seed))


def device_text(manifest: dict[str, Any]) -> str:
    """The platform and GPUs (or cpu) a manifest records ('' if none)."""
    device = obj(manifest.get("device"))
    gpus = ", ".join(map(str, items(device.get("gpus")))) or ("cpu" if device else None)
    return ", ".join(str(x) for x in (device.get("platform"), gpus) if x)


# -- settings -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Setting:
    """What two compared numbers must share; None where the run does not say."""

    data: str | None = None
    image_size: str | None = None
    samples: str | None = None
    reference: str | None = None


FIELDS = (
    ("data", "data"),
    ("image_size", "image size"),
    ("samples", "sample count"),
    ("reference", "reference set"),
)


def _text(value: Any) -> str | None:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 60.0 from metrics.json and 60 from a config are one sample count
    return None if value is None or value == {} else format_variant(value)


def _first(*values: Any) -> str | None:
    return next((t for v in values if (t := _text(v)) is not None), None)


def _scalar(run: Run, space: str, *metrics: str) -> float | None:
    for metric in metrics:
        for s in run.scalars:
            if s.space == space and s.metric == metric:
                return s.value
    return None


def settings(run: Run) -> list[tuple[str, Setting]]:
    """(row label, setting) of each space of the run."""
    config = obj(run.manifest.get("config"))
    spaces = list(dict.fromkeys(s.space for s in run.scalars)) or [run.name]
    if run.kind is RunKind.RECON:
        data, size = _text(config.get("data")), _text(config.get("image_size"))
        return [
            (s, Setting(data, size, _text(_scalar(run, s, "num_images")), data)) for s in spaces
        ]
    if run.kind is RunKind.TRAIN_GEN:
        gen, preset = obj(config.get("train_gen")), obj(config.get("train_preset"))
        spec = obj(obj(config.get("space")).get("spec"))
        fd = sorted({s.metric for s in run.scalars if s.metric.startswith(("fd_", "fid"))})
        ref_images = _first(preset.get("reference_images"), gen.get("reference_images"))
        parts = [_text(gen.get("data")), ref_images and f"{ref_images} images", ", ".join(fd)]
        # only an FD is computed against a reference set: a run without one names none
        no_fd = not fd or gen.get("fd_extractor") == "none"
        reference = None if no_fd else ", ".join(p for p in parts if p)
        setting = Setting(
            _text(gen.get("data")),
            _first(preset.get("image_size"), gen.get("image_size"), spec.get("image_size")),
            _first(_scalar(run, spaces[0], "num_eval_samples"), preset.get("eval_samples")),
            reference,
        )
        return [(s, setting) for s in spaces]
    if run.kind is RunKind.GENEVAL:
        n = _scalar(run, spaces[0], "num_images")
        return [(s, Setting(None, None, _text(n), None)) for s in spaces]
    setting = Setting(_text(config.get("data")), _text(config.get("image_size")))
    return [(s, setting) for s in spaces]


def mismatch_warnings(runs: Iterable[Run], what: str) -> list[str]:
    """'<what> differ in <field>: a: x; b: y' for each field with more than one known value."""
    rows = [(f"{label} ({run.name})" if label != run.name else label, s)
            for run in runs for label, s in settings(run)]  # fmt: skip
    out = []
    for attr, name in FIELDS:
        values = {label: getattr(s, attr) for label, s in rows if getattr(s, attr) is not None}
        if len(set(values.values())) > 1:
            shown = "; ".join(f"{label}: {v}" for label, v in values.items())
            out.append(f"{what} differ in {name}: {shown}")
    return out
