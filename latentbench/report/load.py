"""Read run folders into one flat model for the report: scalars, curves, images, notes.

Nothing here recomputes a metric: every number comes from a file of the run folder, and each
record keeps that file (``source``) so the report can link the number back to it.

The kind of a run is read from ``manifest["command"]`` (:class:`RunKind`); a command this module
does not know is read generically: any scalars of ``metrics.json`` (nested dicts flattened with
``/``; a dict of dicts is one row per space), every ``metrics.jsonl`` curve, and the PNGs under
``images/`` and beside the manifest. A GenEval ``results.json`` (``eval-gen``) is a run on its own
when its folder has no manifest, and adds its scores to a run folder that holds one.

Only regular files inside the run folder are read (links are followed only while they stay
inside it); anything else is listed in ``Run.skipped`` and in the run's notes. A manifest field
of the wrong type is read as absent.

Metric variants: a curve point's variant is its extra keys in ``metrics.jsonl`` (e.g.
``extractor``, ``num_samples``); a final scalar takes ``manifest["metric_variants"][name]`` when
the run records one (recon), else the variant of the last curve point of the same name.

Uncertainty: a metric ``<m>`` carries the interval of ``<m>/ci95_low`` / ``<m>/ci95_high`` (and
``<m>/std``, ``<m>/values`` of a seed aggregate) when the file holds them; a curve row carries
``ci95_low`` / ``ci95_high`` as extra keys or as rows named ``<m>/ci95_low``, and ``seconds``
(wall-clock since the start). A seed group is a folder ``<space>/`` with run folders
``seed_<k>/`` and an aggregate ``metrics.json`` beside them, or one space of a
``train-gen --space A,B --seeds`` output (``seed_<k>/<space>/``, the aggregate's entry of that
space; :mod:`latentbench.report.folders`): one run, whose numbers come from the aggregate and
whose curves are the per-seed curves (``Point.seed``). A curve of any other run carries the seed
its manifest records.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from latentbench.errors import UserError
from latentbench.files import read_jsonl
from latentbench.report.folders import (
    GENEVAL_RESULTS,
    MANIFEST,
    expand,
    is_geneval_results,
    outside,
    seed_dirs,
    space_seed_groups,
    unique_names,
)
from latentbench.report.jsonfields import (
    Measured,
    flatten,
    format_variant,
    items,
    measured,
    number,
    obj,
    per_space,
    read_json,
)
from latentbench.runs import OutputKind, space_label
from latentbench.stats import Interval, proportion_interval, t_interval

METRICS = "metrics.json"
CURVES = "metrics.jsonl"
MAX_GENERIC_IMAGES = 24  # a run with --save-images holds thousands; the report shows a few
BOOKKEEPING = ("train/lr", "train/grad_norm")  # curves that are not results
# a run's training wall-clock in metrics.json, the first found
WALL_CLOCK = ("train_seconds", "wall_seconds", "wall_clock_s", "seconds")
CURVE_BOUNDS = ("ci95_low", "ci95_high")


class RunKind(str, enum.Enum):
    """What produced a run folder (``manifest["command"]``): a command this module reads
    specifically (named as its output folders are, :class:`~latentbench.runs.OutputKind`), or any
    other (generic)."""

    RECON = OutputKind.RECON.value
    TRAIN_GEN = OutputKind.TRAIN_GEN.value
    TRAIN_TOKENIZER = OutputKind.TRAIN_TOKENIZER.value
    TOY_MANIFOLD = OutputKind.TOY_MANIFOLD.value
    GENEVAL = OutputKind.EVAL_GEN.value
    GENERIC = "generic"

    @classmethod
    def of(cls, command: object) -> RunKind:
        try:
            kind = cls(str(command))
        except ValueError:
            return cls.GENERIC
        return kind


class ImageRole(str, enum.Enum):
    RECON = "recon"  # reconstruction grid: originals, then one row per space
    SAMPLES = "samples"  # generator samples
    EDITS = "edits"  # edit before/after
    OTHER = "other"


@dataclass(frozen=True)
class Scalar:
    run: str
    space: str
    metric: str
    value: float
    variant: str
    source: Path  # the file the number was read from
    interval: Interval | None = None  # None: the run recorded none
    std: float | None = None  # over seeds (a seed aggregate)
    seeds: tuple[float, ...] = ()  # per-seed values (a seed aggregate)


@dataclass(frozen=True)
class Point:
    run: str
    space: str
    metric: str
    step: int
    value: float
    variant: str
    source: Path
    low: float | None = None  # the interval recorded with the point, if any
    high: float | None = None
    seconds: float | None = None  # wall-clock since the start of the run
    seed: int | None = None  # the seed it was trained with (a seed group: which seed's curve)


@dataclass(frozen=True)
class ImageRef:
    run: str
    space: str
    path: Path
    role: ImageRole
    caption: str
    rows: tuple[str, ...] = ()  # a grid's row names, top to bottom (recon: originals, spaces)


@dataclass(frozen=True)
class PromptResult:
    """One scored GenEval sample (the prompt is user text: escape it when rendering)."""

    run: str
    tag: str
    prompt: str
    correct: bool
    reason: str


@dataclass
class Run:
    name: str  # unique label in the report
    path: Path
    kind: RunKind
    manifest: dict[str, Any]
    scalars: list[Scalar] = field(default_factory=list)
    curves: list[Point] = field(default_factory=list)
    images: list[ImageRef] = field(default_factory=list)
    vectors: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # (space, key)
    prompts: list[PromptResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # files not read, with the reason
    seed_dirs: dict[int, Path] = field(default_factory=dict)  # seed -> run folder (seed group)
    # a space's seed group of a `train-gen --space A,B --seeds` output: its key in the aggregate
    group_key: str | None = None

    def readable(self, path: Path) -> bool:
        """Whether ``path`` is a regular file inside the run folder, links resolved. One that
        exists but is not (a link out of the folder, a device, a folder) goes to ``skipped``."""
        if not path.exists() and not path.is_symlink():
            return False
        reason = outside(path, self.path)
        if reason:
            self.skipped.append(f"{path.relative_to(self.path).as_posix()} ({reason})")
        return not reason

    @property
    def command(self) -> str:
        return str(self.manifest.get("command", self.kind.value))

    @property
    def benchmark(self) -> str:
        """The comparison table a run belongs to: its kind, or its command when generic."""
        return self.kind.value if self.kind is not RunKind.GENERIC else self.command

    @property
    def files_root(self) -> Path:
        """Where the run's images are: the first seed's folder of a seed group, else the run."""
        return next(iter(self.seed_dirs.values()), self.path)

    @property
    def git(self) -> str:
        """The commit the run was made from ('+dirty': uncommitted changes), '' if unknown."""
        value = self.manifest.get("git")
        return value if isinstance(value, str) else ""


def load_runs(paths: Iterable[str | Path]) -> list[Run]:
    """Every run of ``paths`` (see :func:`~latentbench.report.folders.expand`), read into
    :class:`Run` records."""
    found = expand(paths)
    names = unique_names([f.label for f in found])
    return [load_run(f.path, name, f.space) for f, name in zip(found, names)]


def load_run(path: str | Path, name: str | None = None, space: str | None = None) -> Run:
    """The run of folder ``path``; ``space``: that space's seed group of a ``train-gen --space
    A,B --seeds`` output ``path`` (:func:`~latentbench.report.folders.space_seed_groups`)."""
    path = Path(path)
    name = name or space or path.name
    seeds = space_seed_groups(path).get(space, {}) if space else seed_dirs(path)
    if space and not seeds:
        raise UserError(f"{path}: no seed_<k>/{space}/ run folder")
    own = path / MANIFEST
    if not own.is_file() and not seeds:
        if is_geneval_results(path / GENEVAL_RESULTS):
            if reason := outside(path / GENEVAL_RESULTS, path):
                raise UserError(f"{path / GENEVAL_RESULTS}: {reason}; not read")
            run = Run(name, path, RunKind.GENEVAL, {"command": RunKind.GENEVAL.value})
            _read_geneval(run, path / GENEVAL_RESULTS, space=name)
            return run
        raise UserError(f"{path} is not a run folder (no {MANIFEST})")
    source = own if own.is_file() else next(iter(seeds.values())) / MANIFEST
    if reason := outside(source, path):
        raise UserError(f"{source}: {reason}; not read")
    manifest = read_json(source)
    if not isinstance(manifest, dict):
        raise UserError(f"{source}: not a manifest (a JSON object)")
    run = Run(
        name, path, RunKind.of(manifest.get("command")), manifest, seed_dirs=seeds, group_key=space
    )
    READERS.get(run.kind, _read_generic)(run)
    if not (path / METRICS).is_file():
        _scalars_from_curves(run)
    results = path / GENEVAL_RESULTS
    if not space and is_geneval_results(results) and run.readable(results):
        spaces = {s.space for s in run.scalars} or {name}
        _read_geneval(run, results, space=sorted(spaces)[0])
    if seeds:
        run.notes.append(f"{len(seeds)} seed(s): " + ", ".join(map(str, seeds)))
    if run.skipped:
        shown = ", ".join(run.skipped[:5]) + (", ..." if len(run.skipped) > 5 else "")
        run.notes.append(f"{len(run.skipped)} file(s) not read: {shown}")
    return run


def _curve_files(run: Run) -> list[tuple[int | None, Path]]:
    """(seed, metrics.jsonl): each seed's of a seed group, else the run's own with the seed its
    manifest records (None if none)."""
    if run.seed_dirs:
        return [(seed, folder / CURVES) for seed, folder in run.seed_dirs.items()]
    seed = run.manifest.get("seed")
    return [(seed if type(seed) is int else None, run.path / CURVES)]


def _bound_rows(rows: list[dict[str, Any]]) -> dict[tuple[int, str], dict[str, float]]:
    """Rows named ``<m>/ci95_low`` / ``<m>/ci95_high``: {(step, m): {"ci95_low": v, ...}}."""
    out: dict[tuple[int, str], dict[str, float]] = {}
    for row in rows:
        base, _, suffix = str(row.get("name", "")).rpartition("/")
        value, step = number(row.get("value")), row.get("step")
        if base and suffix in CURVE_BOUNDS and value is not None and isinstance(step, int):
            out.setdefault((step, base), {})[suffix] = value
    return out


def _curve_points(run: Run, space_of=None) -> None:
    """metrics.jsonl -> Points; extra keys of a row (but its bounds and seconds) are its
    variant."""
    skip = ("step", "name", "value", "seconds", *CURVE_BOUNDS)
    for seed, source in _curve_files(run):
        rows = read_jsonl(source) if run.readable(source) else []
        bounds = _bound_rows(rows)
        for row in rows:
            value, metric, step = number(row.get("value")), row.get("name"), row.get("step")
            if value is None or not isinstance(metric, str) or type(step) is not int:
                continue
            if metric.rpartition("/")[2] in CURVE_BOUNDS:
                continue
            got = bounds.get((step, metric), {})
            got.update({k: v for k in CURVE_BOUNDS if (v := number(row.get(k))) is not None})
            variant = format_variant({k: v for k, v in row.items() if k not in skip})
            space, metric = space_of(metric) if space_of else (run.name, metric)
            low, high, seconds = got.get("ci95_low"), got.get("ci95_high"), row.get("seconds")
            run.curves.append(
                Point(
                    run.name,
                    space,
                    metric,
                    step,
                    value,
                    variant,
                    source,
                    low,
                    high,
                    number(seconds),
                    seed,
                )
            )


def _scalars_from_curves(run: Run) -> None:
    """An unfinished run (no metrics.json): the last logged value of each curve."""
    last: dict[tuple[str, str], Point] = {}
    for p in run.curves:
        if p.metric not in BOOKKEEPING and p.step >= last.get((p.space, p.metric), p).step:
            last[(p.space, p.metric)] = p
    for p in last.values():
        variant = "; ".join(x for x in (p.variant, f"last logged value, step {p.step}") if x)
        run.scalars.append(Scalar(run.name, p.space, p.metric, p.value, variant, p.source))


def _last_variants(run: Run) -> dict[tuple[str, str], str]:
    return {(p.space, p.metric): p.variant for p in run.curves}


def _scalar(run: Run, space: str, metric: str, m: Measured, variant: str, source: Path) -> Scalar:
    return Scalar(run.name, space, metric, m.value, variant, source, m.interval, m.std, m.seeds)


def _add_metrics(
    run: Run,
    metrics: dict[str, Any],
    spaces: Sequence[str],
    variants: dict[str, Any] | None = None,
) -> None:
    """Scalars (with their intervals) and channel vectors of a metrics.json, one space or a
    dict per space."""
    source = run.path / METRICS
    from_curves = _last_variants(run)
    for space, values in per_space(metrics, spaces, run.name).items():
        if not isinstance(values, dict):
            continue
        for metric, m in measured(values).items():
            variant = (
                format_variant((variants or {}).get(metric))
                if variants and metric in variants
                else from_curves.get((space, metric), "")
            )
            run.scalars.append(_scalar(run, space, metric, m, variant, source))
        for key, vec in flatten(values)[1].items():
            run.vectors[(space, key)] = vec


def _wall_clock(run: Run, space: str) -> None:
    """A run's training wall-clock when metrics.json holds none: the last ``seconds`` of its
    curves (the mean over seeds, with a t interval, for a seed group)."""
    if any(s.metric in WALL_CLOCK for s in run.scalars):
        return
    last: dict[int | None, Point] = {}
    for p in run.curves:
        if p.seconds is not None and p.step >= last.get(p.seed, p).step:
            last[p.seed] = p
    if not last:
        return
    values = [p.seconds for p in last.values() if p.seconds is not None]
    iv = t_interval(values) if len(values) > 1 else None
    source = next(iter(last.values())).source
    variant = f"last logged seconds ({len(values)} seed(s))" if run.seed_dirs else "last logged"
    m = Measured(iv.value if iv else values[0], iv, None, tuple(values) if iv else ())
    run.scalars.append(_scalar(run, space, WALL_CLOCK[0], m, variant, source))


def _pngs(folder: Path, limit: int) -> list[Path]:
    if not folder.is_dir():
        return []
    found = sorted(folder.rglob("*.png"), key=lambda p: (len(p.relative_to(folder).parts), p))
    return found[:limit]


def _generic_images(run: Run, space: str, skip: Iterable[Path] = ()) -> None:
    skip = set(skip)
    root = run.files_root
    found = sorted(root.glob("*.png")) + _pngs(root / "images", MAX_GENERIC_IMAGES)
    for p in found[:MAX_GENERIC_IMAGES]:
        if p in skip or not run.readable(p):
            continue
        rel = p.relative_to(run.path).as_posix()
        role = ImageRole.EDITS if "edit" in rel.lower() else ImageRole.OTHER
        run.images.append(ImageRef(run.name, space, p, role, f"{run.name}: {rel}"))


# -- the kinds ----------------------------------------------------------------------------------
# recon's train-split probe scored on ``probe/num_test`` images: runs before its intervals were
# written get them here, from the two recorded numbers (Wilson, one trial per test image)
_PROBE_RATES = ("probe/top1", "probe/top5")


def _probe_intervals(run: Run) -> None:
    tests = {s.space: s.value for s in run.scalars if s.metric == "probe/num_test"}
    for i, s in enumerate(run.scalars):
        n = int(tests.get(s.space, 0))
        if s.metric in _PROBE_RATES and s.interval is None and n > 0 and 0 <= s.value <= 1:
            run.scalars[i] = replace(s, interval=proportion_interval(round(s.value * n), n))


def _read_recon(run: Run) -> None:
    spaces = [str(s) for s in obj(run.manifest.get("spaces"))]
    _add_metrics(run, _read_metrics(run), spaces, obj(run.manifest.get("metric_variants")))
    _probe_intervals(run)
    grid = run.files_root / "images" / "grid.png"
    if run.readable(grid):
        shown = spaces or sorted({s.space for s in run.scalars})
        caption = f"{run.name}: rows are the originals, then " + ", ".join(shown)
        rows = ("original", *shown)
        run.images.append(ImageRef(run.name, "", grid, ImageRole.RECON, caption, rows))
    run.notes += [str(n) for n in items(run.manifest.get("skipped_spaces"))]
    skipped = items(run.manifest.get("skipped_files"))
    if skipped:
        run.notes.append(f"{len(skipped)} unreadable image file(s) skipped")


def _train_gen_space(run: Run) -> str:
    config = obj(run.manifest.get("config"))
    name = obj(config.get("space")).get("name") or obj(config.get("train_gen")).get("space")
    return space_label(name) if name else run.name


def _read_train_gen(run: Run) -> None:
    space = _train_gen_space(run)
    _curve_points(run, lambda metric: (space, metric))
    metrics = _read_metrics(run)
    variants = {}
    if metrics.get("fd_extractor") is not None:
        variants = {k: metrics["fd_extractor"] for k in metrics if k.startswith("fd_")}
    _add_metrics(run, {k: v for k, v in metrics.items() if k != "fd_extractor"}, [space])
    for i, s in enumerate(run.scalars):
        if s.metric in variants and not s.variant:
            run.scalars[i] = replace(s, variant=format_variant(variants[s.metric]))
    _wall_clock(run, space)
    task = str(obj(obj(run.manifest.get("config")).get("train_gen")).get("task", ""))
    images = run.files_root / "images"
    steps = [p for p in sorted(images.glob("step_*.png")) if run.readable(p)]
    if steps:
        last = steps[-1]
        step = int(re.sub(r"\D", "", last.stem) or 0)
        edit = task == "edit"
        role = ImageRole.EDITS if edit else ImageRole.SAMPLES
        what = "edited samples" if edit else "samples"
        run.images.append(ImageRef(run.name, space, last, role, f"{space}: {what} at step {step}"))
    _generic_images(run, space, skip=images.glob("step_*.png"))


def _read_tokenizer(run: Run) -> None:
    space = run.name  # the folder is the saved space; recon labels it by the folder's name
    _curve_points(run, lambda metric: (space, metric))
    _add_metrics(run, _read_metrics(run), [space])
    _generic_images(run, space)


_TOY_CURVE = re.compile(r"^(final_)?tail_(\w+)$")


def _read_toy(run: Run) -> None:
    def split(metric: str) -> tuple[str, str]:
        m = _TOY_CURVE.match(metric)
        return (m.group(2), f"{m.group(1) or ''}tail") if m else (run.name, metric)

    _curve_points(run, split)
    variant = "mean distance to the manifold of the 5% farthest samples"
    for metric, m in measured(_read_metrics(run)).items():
        space, name = split(metric)
        run.scalars.append(_scalar(run, space, name, m, variant, run.path / METRICS))
    _generic_images(run, "")


def _read_generic(run: Run) -> None:
    _curve_points(run)
    _add_metrics(run, _read_metrics(run), [], obj(run.manifest.get("metric_variants")))
    _generic_images(run, "")


def _read_metrics(run: Run) -> dict[str, Any]:
    path = run.path / METRICS
    if not run.readable(path):
        if not path.exists() and not path.is_symlink():
            run.notes.append(f"no {METRICS} (an unfinished run?)")
        return {}
    data = read_json(path)
    if not isinstance(data, dict):
        return {}
    run.notes += [str(w) for w in items(data.get("warnings"))]  # e.g. FD on too few samples
    if run.group_key is not None:  # {space: aggregate} of train-gen --space A,B --seeds
        data = obj(data.get(run.group_key))
        if not data:
            run.notes.append(f"{METRICS} holds no entry for {run.group_key} (an unfinished run?)")
        run.notes += [str(w) for w in items(data.get("warnings"))]
    return data


def _read_geneval(run: Run, path: Path, space: str) -> None:
    """``results.json`` of eval-gen: ``overall`` and ``tasks.<t>.score``, each with its
    ``/ci95_low`` / ``/ci95_high`` when recorded."""
    data = read_json(path)
    if not isinstance(data, dict):
        return
    variant = format_variant(
        {
            "suite": data.get("suite"),
            "detector": data.get("detector"),
            "rules": data.get("rules"),
            "images": data.get("num_images"),
        }
    )

    found = measured({k: v for k, v in data.items() if k != "per_image"})

    def add(metric: str, key: str) -> None:
        if key in found:
            run.scalars.append(_scalar(run, space, metric, found[key], variant, path))

    add("geneval", "overall")
    for tag in obj(data.get("tasks")):
        add(f"geneval/{tag}", f"tasks/{tag}/score")
    add("prompt_accuracy", "prompt_accuracy")
    add("num_images", "num_images")
    for row in items(data.get("per_image")):
        if isinstance(row, dict):
            run.prompts.append(
                PromptResult(
                    run.name,
                    str(row.get("tag", "")),
                    str(row.get("prompt", "")),
                    bool(row.get("correct")),
                    str(row.get("reason", "")),
                )
            )


READERS = {
    RunKind.RECON: _read_recon,
    RunKind.TRAIN_GEN: _read_train_gen,
    RunKind.TRAIN_TOKENIZER: _read_tokenizer,
    RunKind.TOY_MANIFOLD: _read_toy,
}
