"""``latentbench run EXPERIMENT.yaml``: one file describes a whole comparison.

Steps, in order: train tokenizers (each usable by its ``name`` as a space afterwards), the
reconstruction benchmark, generator runs, the report. Each step writes its folder under ``out``
and, when complete, a ``.done.json`` holding the step's key (a hash of its settings and of the
spaces it uses). Running the file again skips the steps whose key still matches and resumes the
others from their checkpoints, so a killed run continues where it stopped.

Spaces that cannot be built here (weights missing offline) are skipped with a note, unless the
experiment sets ``skip_unavailable: false``.

Paths in the file (data folders and captions files, ``preset: X.yaml``, ``init``, saved-space
folders, ``out``, ``report``) are relative to the file's folder, so ``latentbench run FILE`` works
from any folder; names (``tiny``, ``shapes:600``, registered spaces, tokenizer steps) stay names.
Without ``out`` / ``report`` the outputs go to ``runs/<name>`` / ``reports/<name>`` under the
current folder (a shipped experiment's folder is inside the installed package).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import field, fields, replace
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from latentbench.atomic import atomic_write_json
from latentbench.bench.generation import TrainGenConfig
from latentbench.bench.recon import ReconConfig
from latentbench.bench.tokenizer import TrainTokenizerConfig
from latentbench.bench.toy_manifold import ToyConfig
from latentbench.config import (
    FolderName,
    NonNegativeInt,
    config,
    from_dict,
    load_yaml,
    to_dict,
)
from latentbench.configs import ConfigKind, config_path, is_yaml_path
from latentbench.data import DataKind, data_paths
from latentbench.errors import UserError
from latentbench.runs import OutputKind, claim_output, existing_paths, mark_output, space_label
from latentbench.spaces import (
    LatentSpace,
    build_space,
    options_for,
    saved_fingerprint,
    space_origin,
    try_space,
)
from latentbench.spaces.resolve import space_names, unused_options

DONE = ".done.json"


@config
class TokenizerStep(TrainTokenizerConfig):
    """A ``train-tokenizer`` run: its settings, plus a ``name`` that later steps use as a space.
    ``init`` may name an earlier step; ``data`` and ``seed`` default to the experiment's."""

    data: str | None = None
    name: FolderName = ""  # default: the space's name
    seeds: list[NonNegativeInt] | None = None  # one run per seed; later steps use the first

    def __post_init__(self) -> None:
        self.name = self.name or self.space


@config
class ReconStep(ReconConfig):
    """The ``recon`` benchmark: its settings; ``spaces`` may name tokenizer steps."""

    data: str | None = None  # default: the experiment's data
    seed: NonNegativeInt | None = None  # default: experiment seed + 1, i.e. images not trained on


@config
class GenerationStep(TrainGenConfig):
    """``train-gen`` over ``spaces`` (which may name tokenizer steps), with its settings."""

    space: str | None = None  # not used: a step names its spaces
    data: str | None = None  # default: the experiment's data
    seed: NonNegativeInt | None = None  # default: the experiment's seed
    spaces: Annotated[list[str], Field(min_length=1, validate_default=True)] = field(
        default_factory=list
    )  # required
    name: FolderName = "gen"
    seeds: list[NonNegativeInt] | None = None  # one run per seed and space, and their aggregate

    def __post_init__(self) -> None:
        if self.space is not None:
            raise ValueError(f"a generation step lists spaces: [...], not space: {self.space}")


@config
class ToyStep(ToyConfig):
    """The toy C0 (``toy-manifold``): its settings."""

    seed: NonNegativeInt | None = None  # default: the experiment's seed


@config
class Experiment:
    name: FolderName
    data: str = "shapes:2000"
    seed: NonNegativeInt = 0
    out: str | None = None  # default runs/<name>
    report: str | None = None  # default reports/<name>
    skip_unavailable: bool = True
    tokenizers: list[TokenizerStep] = field(default_factory=list)
    recon: ReconStep | None = None
    generation: list[GenerationStep] = field(default_factory=list)
    toy: ToyStep | None = None  # the toy C0 (toy-manifold) into out/toy
    # the claims table (docs/method.md C0-C5): role (S-VAE, PS-VAE, RAE, ...) -> step / space name
    claims: dict[str, str] = field(default_factory=dict)


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment file (or a shipped experiment's name), its paths made
    absolute; every problem is one line naming the key."""
    path = config_path(ConfigKind.EXPERIMENTS, path)
    raw = load_yaml(path)
    raw.setdefault("name", Path(path).stem)
    _resolve_paths(raw, path.absolute().parent)
    exp = from_dict(Experiment, raw, str(path))
    if not (exp.tokenizers or exp.recon or exp.generation or exp.toy):
        raise UserError(f"{path}: no step to run; give tokenizers:, recon:, generation: or toy:")
    names = [t.name for t in exp.tokenizers]
    if len(set(names)) != len(names):
        raise UserError(f"{path}: tokenizer names must be unique, got {names}")
    from latentbench.report.claims import check_roles

    if problems := check_roles(exp.claims):
        raise UserError(f"{path}: {problems[0]}")
    known = {
        *names,
        *(exp.recon.spaces if exp.recon else ()),
        *(n for g in exp.generation for n in g.spaces),
    }
    for role, name in exp.claims.items():
        if name not in known:
            raise UserError(f"{path}: claims: {role} -> {name!r} is no space of this experiment")
    _check_space_options(exp, path)
    return exp


def _check_space_options(exp: Experiment, path: Path) -> None:
    """A ``space_options`` key that none of a step's spaces takes is an error (as ``recon -o``),
    before any folder is made. A tokenizer step's output is a saved space: it takes none."""
    tokenizers = {t.name for t in exp.tokenizers}
    steps = [("recon", exp.recon)] if exp.recon else []
    steps += [(f"generation[{i}]", g) for i, g in enumerate(exp.generation)]
    for where, step in steps:
        names = [n for n in space_names(step.spaces) if n not in tokenizers]  # all: expanded
        if unused := unused_options(names, step.space_options):
            raise UserError(
                f"{path}: {where}.space_options: no space of this step takes the option(s) "
                f"{', '.join(unused)}"
            )


def _settings(step: Any, cls: type) -> dict[str, Any]:
    """The fields of command config ``cls`` that ``step`` (a subclass instance) holds."""
    return {f.name: getattr(step, f.name) for f in fields(cls)}


# Data SPECs that are names, not paths (``shapes-edits`` is train-gen's edit data).
DATA_NAMES = {k.value for k in DataKind if k not in (DataKind.FOLDER, DataKind.CAPTIONS)}
DATA_NAMES.add("shapes-edits")


def _resolve_paths(raw: dict[str, Any], base: Path) -> None:
    """Make the paths of a raw experiment dict relative to ``base`` (in place); names stay."""

    def sections(key: str) -> list[dict[str, Any]]:
        value = raw.get(key)
        items = value if isinstance(value, list) else [value]
        return [item for item in items if isinstance(item, dict)]

    tokenizers = sections("tokenizers")
    tokenizer_names = {n for step in tokenizers if isinstance(n := step.get("name"), str)}

    def path(value: str) -> str:
        return str(base / Path(value).expanduser())

    def data(value: str) -> str:
        return value if value.partition(":")[0].strip() in DATA_NAMES else path(value)

    def space(value: str) -> str:
        """A saved-space folder is written as a path (``./svae``, ``runs/x/svae``)."""
        is_path = "/" in value or value.startswith((".", "~"))
        return path(value) if is_path and value not in tokenizer_names else value

    def update(section: dict[str, Any], key: str, how: Callable[[str], str]) -> None:
        value = section.get(key)
        if isinstance(value, str):
            section[key] = how(value)
        elif isinstance(value, list):
            section[key] = [how(v) if isinstance(v, str) else v for v in value]

    for key in ("out", "report"):
        update(raw, key, path)
    update(raw, "data", data)
    for step in tokenizers:
        update(step, "data", data)
        update(step, "eval_data", data)
        update(step, "preset", lambda v: path(v) if is_yaml_path(v) else v)
        update(step, "init", lambda v: v if v in tokenizer_names else path(v))
    for step in sections("recon") + sections("generation"):
        update(step, "data", data)
        update(step, "probe_data", data)
        update(step, "spaces", space)


def _key(*parts: Any) -> str:
    blob = json.dumps([to_dict(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _done(folder: Path, key: str) -> bool:
    marker = folder / DONE
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()).get("key") == key
    except json.JSONDecodeError:
        return False


def _mark_done(folder: Path, key: str, seconds: float) -> None:
    atomic_write_json(folder / DONE, {"key": key, "seconds": round(seconds, 1)})


class ExperimentRunner:
    """Runs the steps of an :class:`Experiment`; ``echo`` prints progress lines."""

    def __init__(
        self, exp: Experiment, quiet: bool, echo: Callable[[str], None], overwrite: bool = False
    ) -> None:
        self.exp, self.quiet, self.echo, self.overwrite = exp, quiet, echo, overwrite
        self.out = Path(exp.out or f"runs/{exp.name}")
        self.report = Path(exp.report or f"reports/{exp.name}")
        self.tokenizer_dirs: dict[str, Path] = {}
        self.notes: list[str] = []
        self.unavailable: set[str] = set()
        # every step's key, in order (with the code's commit: the report's key)
        self.keys: list[str] = []
        self.ran = False  # whether a step did any work in this call

    def is_done(self, folder: Path, key: str) -> bool:
        self.keys.append(key)
        return _done(folder, key)

    def mark_done(self, folder: Path, key: str, seconds: float) -> None:
        self.ran = True
        _mark_done(folder, key, seconds)

    # -- spaces ----------------------------------------------------------------------------------
    def resolve_space(self, name: str) -> str:
        """A tokenizer step's name -> its output folder; anything else as given."""
        return str(self.tokenizer_dirs[name]) if name in self.tokenizer_dirs else name

    def available(
        self,
        names: list[str],
        image_size: int,
        options: dict[str, Any] | None = None,
        weights: str | None = None,
    ) -> dict[str, LatentSpace]:
        """The spaces that build here, built once (by step name); the others are noted (or are
        an error)."""
        built: dict[str, LatentSpace] = {}
        for name in names:
            if name in self.unavailable:
                continue
            target = self.resolve_space(name)
            opts = options_for(target, image_size=image_size, weights=weights, options=options)
            if not self.exp.skip_unavailable:
                space, why = build_space(target, **opts), None
            else:
                space, why = try_space(target, **opts)
            if space is None:
                self.unavailable.add(name)
                self.note(str(why))
                continue
            built[name] = space
        if not built:
            raise UserError(f"none of the spaces {names} can be built here")
        return built

    def note(self, message: str) -> None:
        self.notes.append(message)
        self.echo(f"note: {message}")

    def space_identity(self, name: str) -> str:
        """What a step's key depends on for this space: a trained folder's fingerprint; a
        plugin's release (upgrading the plugin runs the steps that use it again)."""
        origin = space_origin(name)
        plugin = f"{name} {origin}" if origin.startswith("plugin:") else name
        return saved_fingerprint(self.resolve_space(name)) or plugin

    def claim(self) -> None:
        """Check ``out`` and ``report`` before any step (the report must not hold the runs)."""
        exp, recon = self.exp, self.exp.recon
        specs = [exp.data, *(g.data for g in exp.generation), recon.data if recon else None]
        specs.append(recon.probe_data if recon else None)
        specs += [s for t in exp.tokenizers for s in (t.data, t.eval_data)]
        spaces = [n for g in exp.generation for n in g.spaces] + (recon.spaces if recon else [])
        spaces += [t.init for t in exp.tokenizers]
        inputs, data = existing_paths(*spaces), data_paths(*specs)
        kind = OutputKind.EXPERIMENT
        claim_output(self.out, kind, inputs=inputs, data=data, overwrite=self.overwrite, cache=True)
        inputs.append(self.out)
        claim_output(
            self.report, OutputKind.REPORT, inputs=inputs, data=data, overwrite=self.overwrite
        )

    # -- steps -----------------------------------------------------------------------------------
    def run(self) -> Path:
        start = time.perf_counter()
        self.claim()
        mark_output(self.out, OutputKind.EXPERIMENT)
        for step in self.exp.tokenizers:
            self.tokenizer(step)
        run_dirs: list[Path] = []
        if self.exp.recon is not None:
            run_dirs.append(self.recon(self.exp.recon))
        for step in self.exp.generation:
            run_dirs.append(self.generation(step))
        if self.exp.toy is not None:
            run_dirs.append(self.toy(self.exp.toy))
        run_dirs += [self.tokenizer_dirs[t.name] for t in self.exp.tokenizers]
        report = self.report
        from latentbench.runs import git_hash, latentbench_version

        # the code that writes the report; a tree with uncommitted changes: always written
        code = git_hash() or latentbench_version()
        key = _key(self.keys, str(report), self.exp.claims, code)
        if not self.ran and not code.endswith("+dirty") and _done(report, key):
            self.echo(f"[report] done already: {report} (nothing ran, the code is the same)")
            return report
        self.echo(f"[report] {report}")
        from latentbench.report import write_report

        write_report(
            run_dirs,
            report,
            title=f"latentbench: {self.exp.name}",
            overwrite=self.overwrite,
            claims=self.exp.claims or None,
        )
        atomic_write_json(
            self.out / "experiment.json",
            {
                "experiment": to_dict(self.exp),
                "notes": self.notes,
                "report": str(report),
                "seconds_this_call": round(time.perf_counter() - start, 1),
            },
        )
        _mark_done(report, key, time.perf_counter() - start)
        return report

    def tokenizer(self, step: TokenizerStep) -> None:
        from latentbench.bench.tokenizer import train_tokenizer

        folder = self.out / "tokenizers" / step.name
        init = str(self.tokenizer_dirs.get(step.init, step.init)) if step.init else None
        data = step.data or self.exp.data
        seed = self.exp.seed if step.seed is None else step.seed
        key = _key(step, data, seed, self.space_identity(step.init) if step.init else None)
        self.tokenizer_dirs[step.name] = folder
        if self.is_done(folder, key):
            self.echo(f"[tokenizer {step.name}] done already: {folder}")
            return
        self.echo(f"[tokenizer {step.name}] train-tokenizer --space {step.space} -> {folder}")
        t0 = time.perf_counter()
        job = TrainTokenizerConfig(
            **{**_settings(step, TrainTokenizerConfig), "data": data, "init": init, "seed": seed}
        )
        if step.seeds:  # folder/seed_<k> each, the aggregate in folder; later steps: the first
            from latentbench.bench.seeds import seed_dir, train_tokenizer_seeds

            train_tokenizer_seeds(job, step.seeds, folder, resume=True, quiet=self.quiet)
            self.tokenizer_dirs[step.name] = seed_dir(folder, step.seeds[0])
        else:
            resume = (folder / "manifest.json").is_file()
            train_tokenizer(job, folder, resume=resume, quiet=self.quiet)
        self.mark_done(folder, key, time.perf_counter() - t0)

    def toy(self, step: ToyStep) -> Path:
        from latentbench.bench.toy_manifold import run_toy_manifold

        folder = self.out / "toy"
        seed = self.exp.seed if step.seed is None else step.seed
        cfg = ToyConfig(**{**_settings(step, ToyConfig), "seed": seed})
        key = _key(cfg)
        if self.is_done(folder, key):
            self.echo(f"[toy] done already: {folder}")
            return folder
        self.echo(f"[toy] toy-manifold -> {folder}")
        t0 = time.perf_counter()
        run_toy_manifold(cfg, folder, quiet=self.quiet, overwrite=False)
        self.mark_done(folder, key, time.perf_counter() - t0)
        return folder

    def recon(self, step: ReconStep) -> Path:
        from latentbench.bench.recon import run_recon

        folder = self.out / "recon"
        built = self.available(step.spaces, step.image_size, step.space_options, step.weights)
        names = list(built)
        data = step.data or self.exp.data
        seed = self.exp.seed + 1 if step.seed is None else step.seed
        key = _key(step, data, seed, names, [self.space_identity(n) for n in names])
        if self.is_done(folder, key):
            self.echo(f"[recon] done already: {folder}")
            return folder
        self.echo(f"[recon] {', '.join(names)} on {data} -> {folder}")
        t0 = time.perf_counter()
        cfg = ReconConfig(
            **{
                **_settings(step, ReconConfig),
                "spaces": [self.resolve_space(n) for n in names],
                "data": data,
                "seed": seed,
            }
        )
        by_label = {space_label(self.resolve_space(n)): s for n, s in built.items()}
        run_recon(cfg, folder, quiet=self.quiet, echo=self.echo, spaces=by_label)
        self.mark_done(folder, key, time.perf_counter() - t0)
        return folder

    def generation(self, step: GenerationStep) -> Path:
        from latentbench.bench.generation import train_generator

        folder = self.out / step.name
        base = TrainGenConfig(
            **{
                **_settings(step, TrainGenConfig),
                "space": "multi",
                "data": step.data or self.exp.data,
                "seed": self.exp.seed if step.seed is None else step.seed,
            }
        )
        image_size = _image_size(base)
        for name, space in self.available(step.spaces, image_size, base.space_options).items():
            run = folder / Path(name).name
            key = _key(base, self.space_identity(name), *([step.seeds] if step.seeds else []))
            if self.is_done(run, key):
                self.echo(f"[{step.name} {name}] done already: {run}")
                continue
            self.echo(f"[{step.name} {name}] train-gen --task {step.task.value} -> {run}")
            t0 = time.perf_counter()
            cfg = replace(base, space=self.resolve_space(name))

            def one(
                seed: int | None, folder: Path, cfg: TrainGenConfig = cfg, space: Any = space
            ) -> dict[str, Any]:
                cfg = cfg if seed is None else replace(cfg, seed=seed)
                resume = (folder / "manifest.json").is_file()
                return train_generator(
                    cfg, folder, resume=resume, quiet=self.quiet, echo=self.echo, space=space
                )

            if step.seeds:  # run/seed_<k> each, their aggregate in run/metrics.json
                from latentbench.bench.seeds import run_seeds

                run_seeds(step.seeds, run, OutputKind.TRAIN_GEN, one, echo=self.echo)
            else:
                one(None, run)
            self.mark_done(run, key, time.perf_counter() - t0)
        return folder


def _image_size(cfg: Any) -> int:
    from latentbench.bench.generation import resolve

    return resolve(cfg).train.image_size


def with_generation_seeds(exp: Experiment, seeds: list[int]) -> Experiment:
    """``exp`` with its generators trained on ``seeds`` instead, into their own folders
    (``<step>-seeds-2-3``), reported apart (``reports/<name>-seeds-2-3``): the tokenizers, recon
    and toy steps are shared with the experiment's own runs (done once), the generators and the
    verdicts that rest on them are measured again. With a ``claims:`` block only the spaces
    whose generation a claim compares are trained again (the others decide no verdict)."""
    from latentbench.report.claims import GENERATION_ROLES

    tag = "seeds-" + "-".join(map(str, seeds))
    named = {name for role, name in exp.claims.items() if role in GENERATION_ROLES}
    steps = []
    for g in exp.generation:
        spaces = [s for s in g.spaces if s in named] if named else g.spaces
        if spaces:
            steps.append(replace(g, spaces=spaces, seeds=list(seeds), name=f"{g.name}-{tag}"))
    report = f"{exp.report or f'reports/{exp.name}'}-{tag}"
    return replace(exp, generation=steps, report=report)


def run_experiment(
    path: str | Path,
    quiet: bool = False,
    echo: Callable[[str], None] = print,
    overwrite: bool = False,
    generation_seeds: list[int] | None = None,
) -> Path:
    """Run (or continue) the experiment file ``path``; returns the report folder. Its ``out``
    and ``report`` folders must be new, empty or this command's earlier output, unless
    ``overwrite``. ``generation_seeds``: see :func:`with_generation_seeds`."""
    exp = load_experiment(path)
    if generation_seeds:
        exp = with_generation_seeds(exp, generation_seeds)
    return ExperimentRunner(exp, quiet, echo, overwrite).run()
