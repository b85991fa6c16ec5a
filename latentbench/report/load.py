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
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latentbench.errors import UserError

MANIFEST = "manifest.json"
METRICS = "metrics.json"
CURVES = "metrics.jsonl"
GENEVAL_RESULTS = "results.json"
MAX_GENERIC_IMAGES = 24  # a run with --save-images holds thousands; the report shows a few
SKIP_KEYS = ("config",)  # metrics.json sections that are settings, not results
BOOKKEEPING = ("train/lr", "train/grad_norm")  # curves that are not results
VECTOR_KEYS = ("channel_mean", "channel_std", "channel_absmax", "channel_kurtosis")


class RunKind(str, enum.Enum):
    """What produced a run folder (``manifest["command"]``)."""

    RECON = "recon"
    TRAIN_GEN = "train-gen"
    TRAIN_TOKENIZER = "train-tokenizer"
    TOY_MANIFOLD = "toy-manifold"
    GENEVAL = "eval-gen"
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


@dataclass(frozen=True)
class Point:
    run: str
    space: str
    metric: str
    step: int
    value: float
    variant: str
    source: Path


@dataclass(frozen=True)
class ImageRef:
    run: str
    space: str
    path: Path
    role: ImageRole
    caption: str


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

    def readable(self, path: Path) -> bool:
        """Whether ``path`` is a regular file inside the run folder, links resolved. One that
        exists but is not (a link out of the folder, a device, a folder) goes to ``skipped``."""
        if not path.exists() and not path.is_symlink():
            return False
        reason = _outside(path, self.path)
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


# -- small helpers ------------------------------------------------------------------------------
def format_variant(variant: object) -> str:
    """A metric variant (dict, list or string) as one line: ``key: value; key: value``."""
    if variant is None or variant == {}:
        return ""
    if isinstance(variant, dict):
        return "; ".join(f"{k}: {format_variant(v)}" for k, v in variant.items())
    if isinstance(variant, (list, tuple)):
        return ", ".join(format_variant(v) for v in variant)
    return str(variant)


def _number(value: object) -> float | None:
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


def _outside(path: Path, root: Path) -> str:
    """'' when ``path`` is a regular file inside ``root`` once links are resolved, else why not."""
    real = path.resolve()
    if real != root.resolve() and root.resolve() not in real.parents:
        return "a link out of the run folder"
    return "" if real.is_file() else "not a regular file"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: unreadable JSON ({e})") from None


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line cut by a kill
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def flatten(metrics: dict[str, Any], prefix: str = "") -> tuple[dict[str, float], dict[str, list]]:
    """Nested metrics -> ({'a/b': scalar}, {'a/channel_std': [floats]}); other values dropped."""
    scalars: dict[str, float] = {}
    vectors: dict[str, list] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            if key in SKIP_KEYS and not prefix:
                continue
            s, v = flatten(value, f"{name}/")
            scalars.update(s)
            vectors.update(v)
        elif isinstance(value, list):
            numeric = all(_number(x) is not None for x in value)
            if numeric and name.rsplit("/", 1)[-1] in VECTOR_KEYS:
                vectors[name] = [float(x) for x in value]
        elif (number := _number(value)) is not None:
            scalars[name] = number
    return scalars, vectors


def per_space(metrics: dict[str, Any], spaces: Sequence[str], default: str) -> dict[str, dict]:
    """``metrics.json`` -> {space: metrics}: a dict of dicts is one entry per space; a flat one
    belongs to the run's only space (or ``default``)."""
    nested = bool(metrics) and all(isinstance(v, dict) for v in metrics.values())
    if nested and (not spaces or set(metrics) <= set(spaces)):
        return metrics
    return {spaces[0] if len(spaces) == 1 else default: metrics}


def space_label(name: object) -> str:
    """A space's label as the runners write it: a folder path's last component."""
    text = str(name)
    return Path(text).name if "/" in text or "\\" in text else text


# -- reading one run ----------------------------------------------------------------------------
def is_run_dir(path: Path) -> bool:
    return (path / MANIFEST).is_file() or _is_geneval_results(path / GENEVAL_RESULTS)


def _is_geneval_results(path: Path) -> bool:
    if not path.is_file() or _outside(path, path.parent):
        return False
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and "tasks" in data and "overall" in data


def expand(paths: Iterable[str | Path]) -> list[Path]:
    """Run folders from the command line: a run folder, or a folder of run folders (e.g. the
    ``--out`` of ``train-gen``, one run per space). Anything else is a UserError."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            raise UserError(f"run folder not found: {path}")
        if is_run_dir(path):
            out.append(path)
            continue
        children = sorted(p for p in path.iterdir() if p.is_dir() and is_run_dir(p))
        if not children:
            raise UserError(
                f"{path} is not a run folder (no {MANIFEST} or GenEval {GENEVAL_RESULTS}, "
                "and no run folders inside)"
            )
        out.extend(children)
    if not out:
        raise UserError("no run folder given")
    return out


def unique_names(paths: Sequence[Path]) -> list[str]:
    """Folder names; where two collide, parent/name; then a #n suffix."""
    names = [p.name or str(p) for p in paths]
    for i, p in enumerate(paths):
        if names.count(names[i]) > 1:
            names[i] = f"{p.parent.name}/{p.name}"
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            names[i] = f"{name} #{seen[name]}"
    return names


def load_runs(paths: Iterable[str | Path]) -> list[Run]:
    """Every run of ``paths`` (see :func:`expand`), read into :class:`Run` records."""
    dirs = expand(paths)
    return [load_run(p, name) for p, name in zip(dirs, unique_names(dirs))]


def load_run(path: str | Path, name: str | None = None) -> Run:
    path = Path(path)
    name = name or path.name
    if not (path / MANIFEST).is_file():
        if _is_geneval_results(path / GENEVAL_RESULTS):
            if reason := _outside(path / GENEVAL_RESULTS, path):
                raise UserError(f"{path / GENEVAL_RESULTS}: {reason}; not read")
            run = Run(name, path, RunKind.GENEVAL, {"command": RunKind.GENEVAL.value})
            _read_geneval(run, path / GENEVAL_RESULTS, space=name)
            return run
        raise UserError(f"{path} is not a run folder (no {MANIFEST})")
    if reason := _outside(path / MANIFEST, path):
        raise UserError(f"{path / MANIFEST}: {reason}; not read")
    manifest = _read_json(path / MANIFEST)
    if not isinstance(manifest, dict):
        raise UserError(f"{path / MANIFEST}: not a manifest (a JSON object)")
    run = Run(name, path, RunKind.of(manifest.get("command")), manifest)
    READERS.get(run.kind, _read_generic)(run)
    if not (path / METRICS).is_file():
        _scalars_from_curves(run)
    if _is_geneval_results(path / GENEVAL_RESULTS) and run.readable(path / GENEVAL_RESULTS):
        spaces = {s.space for s in run.scalars} or {name}
        _read_geneval(run, path / GENEVAL_RESULTS, space=sorted(spaces)[0])
    if run.skipped:
        shown = ", ".join(run.skipped[:5]) + (", ..." if len(run.skipped) > 5 else "")
        run.notes.append(f"{len(run.skipped)} file(s) not read: {shown}")
    return run


def _curve_points(run: Run, space_of=None) -> None:
    """metrics.jsonl -> Points; extra keys of a row are its variant."""
    source = run.path / CURVES
    for row in _read_jsonl(source) if run.readable(source) else []:
        value, metric = _number(row.get("value")), row.get("name")
        if value is None or not isinstance(metric, str) or not isinstance(row.get("step"), int):
            continue
        extra = {k: v for k, v in row.items() if k not in ("step", "name", "value")}
        space, metric = space_of(metric) if space_of else (run.name, metric)
        run.curves.append(
            Point(run.name, space, metric, row["step"], value, format_variant(extra), source)
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


def _add_metrics(
    run: Run,
    metrics: dict[str, Any],
    spaces: Sequence[str],
    variants: dict[str, Any] | None = None,
) -> None:
    """Scalars (and channel vectors) of a metrics.json, one space or a dict per space."""
    source = run.path / METRICS
    from_curves = _last_variants(run)
    for space, values in per_space(metrics, spaces, run.name).items():
        if not isinstance(values, dict):
            continue
        scalars, vectors = flatten(values)
        for metric, value in scalars.items():
            variant = (
                format_variant((variants or {}).get(metric))
                if variants and metric in variants
                else from_curves.get((space, metric), "")
            )
            run.scalars.append(Scalar(run.name, space, metric, value, variant, source))
        for key, vec in vectors.items():
            run.vectors[(space, key)] = vec


def _pngs(folder: Path, limit: int) -> list[Path]:
    if not folder.is_dir():
        return []
    found = sorted(folder.rglob("*.png"), key=lambda p: (len(p.relative_to(folder).parts), p))
    return found[:limit]


def _generic_images(run: Run, space: str, skip: Iterable[Path] = ()) -> None:
    skip = set(skip)
    found = sorted(run.path.glob("*.png")) + _pngs(run.path / "images", MAX_GENERIC_IMAGES)
    for p in found[:MAX_GENERIC_IMAGES]:
        if p in skip or not run.readable(p):
            continue
        rel = p.relative_to(run.path).as_posix()
        role = ImageRole.EDITS if "edit" in rel.lower() else ImageRole.OTHER
        run.images.append(ImageRef(run.name, space, p, role, f"{run.name}: {rel}"))


# -- the kinds ----------------------------------------------------------------------------------
def _read_recon(run: Run) -> None:
    spaces = [str(s) for s in obj(run.manifest.get("spaces"))]
    _add_metrics(run, _read_metrics(run), spaces, obj(run.manifest.get("metric_variants")))
    grid = run.path / "images" / "grid.png"
    if run.readable(grid):
        shown = spaces or sorted({s.space for s in run.scalars})
        caption = f"{run.name}: rows are the originals, then " + ", ".join(shown)
        run.images.append(ImageRef(run.name, "", grid, ImageRole.RECON, caption))
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
            run.scalars[i] = Scalar(
                s.run, s.space, s.metric, s.value, format_variant(variants[s.metric]), s.source
            )
    task = str(obj(obj(run.manifest.get("config")).get("train_gen")).get("task", ""))
    steps = [p for p in sorted((run.path / "images").glob("step_*.png")) if run.readable(p)]
    if steps:
        last = steps[-1]
        step = int(re.sub(r"\D", "", last.stem) or 0)
        edit = task == "edit"
        role = ImageRole.EDITS if edit else ImageRole.SAMPLES
        what = "edited samples" if edit else "samples"
        run.images.append(ImageRef(run.name, space, last, role, f"{space}: {what} at step {step}"))
    _generic_images(run, space, skip=(run.path / "images").glob("step_*.png"))


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
    scalars, _ = flatten(_read_metrics(run))
    for metric, value in scalars.items():
        space, name = split(metric)
        variant = "mean distance to the manifold of the 5% farthest samples"
        run.scalars.append(Scalar(run.name, space, name, value, variant, run.path / METRICS))
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
    data = _read_json(path)
    return data if isinstance(data, dict) else {}


def _read_geneval(run: Run, path: Path, space: str) -> None:
    data = _read_json(path)
    variant = format_variant(
        {
            "suite": data.get("suite"),
            "detector": data.get("detector"),
            "rules": data.get("rules"),
            "images": data.get("num_images"),
        }
    )

    def add(metric: str, value: object) -> None:
        if (number := _number(value)) is not None:
            run.scalars.append(Scalar(run.name, space, metric, number, variant, path))

    add("geneval", data.get("overall"))
    for tag, task in obj(data.get("tasks")).items():
        add(f"geneval/{tag}", obj(task).get("score"))
    add("prompt_accuracy", data.get("prompt_accuracy"))
    add("num_images", data.get("num_images"))
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
