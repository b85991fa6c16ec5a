"""``latentbench eval-gen``: GenEval-style scoring of text-to-image generators.

Two suites, one loop:

- ``geneval-shapes``: Shapes prompts, judged by the analytic Shapes detector (exact; thresholds 0,
  see :mod:`latentbench.metrics.shapes_judge`).
- ``geneval``: the official GenEval ``evaluation_metadata.jsonl`` (553 prompts) or Bagel's
  long-prompt rewrite ``evaluation_metadata_long.jsonl`` (same fields, longer ``prompt`` text),
  judged by an open detector from transformers (Mask2Former COCO or OWLv2) with GenEval's CLIP
  colour classifier. It is not GenEval's mmdetection judge, so results are labelled
  "GenEval-style (<detector>)". CLIPScore of every image against its prompt is reported too.

Images come from a trained generator (``RUN_DIR``: N samples per prompt, GenEval: 4, written in
GenEval's layout ``images/<index:05d>/samples/<k:04d>.png`` + ``metadata.jsonl``) or from a folder
in that layout produced by any other model. Results: ``results.json`` (per-task scores, overall =
mean of the task scores, the exact variant of every part, per-image rows) and ``per_prompt.csv``.

Bad inputs never crash the run: metadata lines that are not JSON or lack a tag/prompt/include are
skipped and counted, as are prompt folders without images and unreadable images; only a missing
file or folder, or nothing at all to score, is a UserError.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from latentbench.config import (
    Device,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Probability,
    SampleSteps,
    config,
    to_dict,
)
from latentbench.data import DEFAULT_MAX_PIXELS, MaxPixels
from latentbench.errors import UserError
from latentbench.gen.flow import Sampler
from latentbench.geneval import (
    GenevalRules,
    GenSuite,
    PromptImages,
    Skipped,
    read_entries,
    sample_path,
    scan_folder,
    write_prompt,
)
from latentbench.metrics.geneval import (
    Judge,
    NeuralJudge,
    score_prompts,
    suite_vocabulary,
    summarise_rows,
)
from latentbench.metrics.uncertainty import add_geneval_intervals
from latentbench.runs import (
    OutputKind,
    claim_output,
    existing_paths,
    mark_output,
    staged_dir,
    write_eval_results,
)

Progress = Callable[[int], None]


@config
class EvalGenConfig:
    """Settings of one eval-gen run. Defaults follow GenEval where it defines them."""

    suite: GenSuite = GenSuite.GENEVAL_SHAPES
    metadata: str | None = None  # evaluation_metadata(.long).jsonl; geneval-shapes: built-in suite
    samples_per_prompt: PositiveInt = 4  # GenEval: 4 images per prompt
    prompts_per_task: PositiveInt = 100  # built-in Shapes suite only
    limit: PositiveInt | None = None  # score the first N prompts only
    seed: NonNegativeInt = 0
    # The judge's options below are for ``geneval`` only (None: its default); the
    # ``geneval-shapes`` judge is analytic and takes none (see :func:`suite_config`).
    detector: str | None = None  # geneval: mask2former (None) | owlv2
    detector_model: str | None = None  # hub id or local folder (default: the kind's model)
    clip_model: str | None = None  # hub id or local folder (default: GenEval's ViT-L/14)
    threshold: Probability | None = None  # None: the detector's default rules
    counting_threshold: Probability | None = None
    clipscore: bool | None = None  # geneval: CLIPScore of each image with its prompt (None: yes)
    checkpoint: str | None = None  # RUN_DIR: step, folder, "init" (untrained); default last
    sample_steps: SampleSteps | None = None  # RUN_DIR: overrides of the run's sampling settings
    guidance: NonNegativeFloat | None = None
    sample_shift: PositiveFloat | None = None
    sampler: Sampler | None = None
    batch_size: PositiveInt = 16
    device: Device = None
    max_pixels: MaxPixels = DEFAULT_MAX_PIXELS  # larger images are skipped, not decoded

    def sampling(self) -> Any:
        """The :class:`~latentbench.bench.generator_runs.SamplingOptions` of a RUN_DIR eval."""
        from latentbench.bench.generator_runs import SamplingOptions

        return SamplingOptions(
            steps=self.sample_steps,
            guidance=self.guidance,
            shift=self.sample_shift,
            sampler=self.sampler,
            batch_size=self.batch_size,
        )


DEFAULT_DETECTOR = "mask2former"
# what the ``geneval`` judge takes and the analytic ``geneval-shapes`` judge does not: flag names
NEURAL_OPTIONS = {
    "detector": "--detector",
    "detector_model": "--detector-model",
    "clip_model": "--clip-model",
    "threshold": "--threshold",
    "counting_threshold": "--counting-threshold",
    "clipscore": "--clipscore/--no-clipscore",
}


# -- judges -------------------------------------------------------------------------------------
def suite_config(cfg: EvalGenConfig) -> EvalGenConfig:
    """The config as it runs, which is what results.json records: ``geneval`` gets its judge's
    defaults filled in (``detector`` mask2former, ``clipscore`` on); ``geneval-shapes`` uses none
    of the judge's options, so they stay None, and one that is set is a UserError rather than a
    setting recorded as if it ran."""
    if cfg.suite is GenSuite.GENEVAL:
        clipscore = True if cfg.clipscore is None else cfg.clipscore
        return replace(cfg, detector=cfg.detector or DEFAULT_DETECTOR, clipscore=clipscore)
    given = [flag for name, flag in NEURAL_OPTIONS.items() if getattr(cfg, name) is not None]
    if given:
        raise UserError(
            f"{', '.join(given)}: only --suite geneval takes {'it' if len(given) == 1 else 'them'}"
            f"; --suite {cfg.suite.value} is judged by the analytic Shapes detector (no detector, "
            "thresholds 0, no CLIP)"
        )
    return cfg


def build_judge(
    cfg: EvalGenConfig, entries: Sequence[dict[str, Any]], clip: Any | None = None
) -> Judge:
    """The suite's judge: analytic for Shapes; detector + CLIP colours for ``geneval``."""
    if cfg.suite is GenSuite.GENEVAL_SHAPES:
        from latentbench.metrics.shapes_judge import ShapesJudge, check_shapes_classes

        check_shapes_classes(entries)
        return ShapesJudge()
    from latentbench.metrics.detectors import build_detector

    detector = build_detector(
        cfg.detector or DEFAULT_DETECTOR, cfg.detector_model, device=cfg.device
    )
    rules = detector.default_rules
    overrides = {
        k: v
        for k, v in (("threshold", cfg.threshold), ("counting_threshold", cfg.counting_threshold))
        if v is not None
    }
    if overrides:
        rules = GenevalRules(**{**asdict(rules), **overrides})
    colors = None
    if any("color" in r for e in entries for r in e.get("include", [])):
        from latentbench.metrics.clip import ColorClassifier

        colors = ColorClassifier(clip if clip is not None else build_clip(cfg))
    return NeuralJudge(detector, colors, rules, suite_vocabulary(entries))


def needs_clip(cfg: EvalGenConfig, entries: Sequence[dict[str, Any]]) -> bool:
    """Whether ``geneval`` scoring needs CLIP (CLIPScore, or a prompt that names a colour)."""
    if cfg.suite is not GenSuite.GENEVAL:
        return False
    return cfg.clipscore is not False or any(
        "color" in r for e in entries for r in e.get("include", [])
    )


def build_clip(cfg: EvalGenConfig) -> Any:
    """The CLIP model of a config (colour classifier and CLIPScore share it)."""
    from latentbench.metrics.clip import GENEVAL_CLIP, ClipModel

    return ClipModel(cfg.clip_model or GENEVAL_CLIP, device=cfg.device)


# -- results ------------------------------------------------------------------------------------
def per_prompt_csv(rows: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    cols = ["index", "tag", "prompt", "samples", "correct", "accuracy", "clipscore"]
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


def table_rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(task, correct/total, score) per task, then the overall mean of the task scores."""
    tasks = results["tasks"]
    rows = [(t, f"{v['correct']}/{v['total']}", f"{v['score']:.4f}") for t, v in tasks.items()]
    n_ok = sum(v["correct"] for v in tasks.values())
    rows.append(("overall", f"{n_ok}/{results['num_images']}", f"{results['overall']:.4f}"))
    return rows


# -- sampling a trained generator -----------------------------------------------------------------
def write_samples(
    generator: Any,
    entries: Sequence[tuple[int, dict[str, Any]]],
    images_dir: Path,
    cfg: EvalGenConfig,
    progress: Progress | None = None,
) -> None:
    """N samples per prompt in GenEval's layout; image k of prompt j is sample j*N + k of the
    generator call (noise seeded by (seed, j*N + k)), so a prompt's images do not depend on the
    batch size. Prompts are sampled in chunks of ``batch_size`` images."""
    from latentbench.metrics.clip import to_pil

    n = cfg.samples_per_prompt
    opts = cfg.sampling()
    jobs = [(j, index, entry, k) for j, (index, entry) in enumerate(entries) for k in range(n)]
    for index, entry in entries:
        write_prompt(images_dir, index, entry)
    chunk = max(1, cfg.batch_size)
    for s in range(0, len(jobs), chunk):
        part = jobs[s : s + chunk]
        images = generator.text_to_image(
            [e["prompt"] for _, _, e, _ in part],
            seed=cfg.seed,
            options=opts,
            noise_indices=[j * n + k for j, _, _, k in part],
        )
        for (_, index, _, k), im in zip(part, to_pil(images)):
            im.save(sample_path(images_dir, index, k))
        if progress:
            progress(len(part))


def suite_entries(cfg: EvalGenConfig, skipped: Skipped) -> list[tuple[int, dict[str, Any]]]:
    """The prompts to sample: the metadata file, or the built-in Shapes suite."""
    if cfg.metadata:
        entries = read_entries(cfg.metadata, skipped)
    elif cfg.suite is GenSuite.GENEVAL_SHAPES:
        from latentbench.data.shapes import geneval_suite

        entries = list(enumerate(geneval_suite(cfg.prompts_per_task, cfg.seed)))
    else:
        raise UserError(
            "--suite geneval needs --metadata FILE (GenEval's prompts/evaluation_metadata.jsonl, "
            "or Bagel's evaluation_metadata_long.jsonl)"
        )
    return entries[: cfg.limit] if cfg.limit else entries


# -- the runner ---------------------------------------------------------------------------------
@dataclass
class EvalGenResult:
    results: dict[str, Any]
    path: Path  # results.json


@dataclass
class _Plan:
    """What to score and where the results go."""

    prompts: list[PromptImages]
    images_dir: Path
    results_path: Path
    entries: list[dict[str, Any]]
    skipped: Skipped
    generator: dict[str, Any] | None = None


def _sample_run(
    cfg: EvalGenConfig,
    run_dir: Path,
    out: Path | None,
    judge_for: Callable[[list[dict[str, Any]]], Judge],
    progress: Callable[[int], Progress] | None,
    overwrite: bool = False,
) -> tuple[_Plan, Judge]:
    """Sample the suite from a trained generator into ``out/images`` (GenEval's layout)."""
    from latentbench.bench.generator_runs import load_generator

    out_dir = out or run_dir / "eval-gen" / cfg.suite.value
    inputs = [run_dir, *existing_paths(cfg.metadata)]
    kind = OutputKind.EVAL_GEN
    claim_output(out_dir, kind, inputs=inputs, overwrite=overwrite, replaces=["images"])
    skipped = Skipped()
    entries = suite_entries(cfg, skipped)
    generator = load_generator(run_dir, checkpoint=cfg.checkpoint, device=cfg.device)
    variant = generator.variant(cfg.sampling(), cfg.seed)  # fails early on bad sampling settings
    judge = judge_for([e for _, e in entries])  # fails early on a bad detector / CLIP
    tick = progress(len(entries) * cfg.samples_per_prompt) if progress else None
    mark_output(out_dir, OutputKind.EVAL_GEN)
    with staged_dir(out_dir / "images") as tmp:  # replaces earlier samples only once complete
        write_samples(generator, entries, tmp, cfg, tick)
    plan = _Plan(
        scan_folder(out_dir / "images", Skipped()),
        out_dir / "images",
        out_dir / "results.json",
        [e for _, e in entries],
        skipped,
        variant,
    )
    return plan, judge


def _read_images(cfg: EvalGenConfig, images: Path, out: Path | None, overwrite: bool) -> _Plan:
    """Prompt folders of images made elsewhere; results beside them unless ``out`` says."""
    target = out or images
    path = target if target.suffix == ".json" else target / "results.json"
    own_folder = target.suffix != ".json" and target.resolve() != images.resolve()
    if own_folder:
        inputs = [images, *existing_paths(cfg.metadata)]
        claim_output(target, OutputKind.EVAL_GEN, inputs=inputs, overwrite=overwrite)
    else:
        _check_results_file(path, overwrite)
    skipped = Skipped()
    prompts = scan_folder(images, skipped)[: cfg.limit or None]
    if own_folder:
        mark_output(target, OutputKind.EVAL_GEN)
    return _Plan(prompts, images, path, [p.entry for p in prompts], skipped)


def _check_results_file(path: Path, overwrite: bool) -> None:
    """Before any work, for results written as a file (``--out X.json``, or beside the images):
    ``path`` and the ``per_prompt.csv`` beside it replace only an earlier eval-gen's results,
    unless ``overwrite``."""
    if path.is_dir():
        raise UserError(f"output {path} is a folder; name a .json file, or a folder without .json")
    if overwrite:
        return
    earlier = False
    with contextlib.suppress(OSError, ValueError):
        results = json.loads(path.read_text())
        earlier = isinstance(results, dict) and {"images_dir", "per_image"} <= results.keys()
    for file in (path, path.parent / "per_prompt.csv"):
        if (file.exists() or file.is_symlink()) and not earlier:
            raise UserError(
                f"{file} exists and is not an earlier eval-gen result; pass --overwrite to "
                "replace it, or name another --out"
            )


def _score(
    cfg: EvalGenConfig,
    plan: _Plan,
    judge: Judge,
    clip: Any | None,
    progress: Callable[[int], Progress] | None,
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """(results.json content so far, per-image rows, per-prompt rows) of a plan's images."""
    tick = progress(sum(len(p.samples) for p in plan.prompts)) if progress else None
    rows, per_prompt = score_prompts(
        plan.prompts,
        judge,
        plan.images_dir,
        plan.skipped,
        clip=clip,
        progress=tick,
        max_pixels=cfg.max_pixels,
    )
    results = summarise_rows(rows, judge, plan.skipped, cfg.suite)
    add_geneval_intervals(results, [(r["tag"], r["correct"], r["index"]) for r in rows])
    if clip is not None:
        from latentbench.metrics.clip import CLIPSCORE_VARIANT

        results["clipscore_variant"] = {**CLIPSCORE_VARIANT, "clip": clip.variant}
    return results, rows, per_prompt


def run_eval_gen(
    cfg: EvalGenConfig,
    *,
    run_dir: str | Path | None = None,
    images: str | Path | None = None,
    out: str | Path | None = None,
    progress: Callable[[int], Progress] | None = None,
    judge: Judge | None = None,
    overwrite: bool = False,
) -> EvalGenResult:
    """Sample ``run_dir``'s generator (or take ``images``), score, write results.

    ``out``: RUN_DIR mode: a folder (default ``RUN_DIR/eval-gen/<suite>``) that gets
    ``images/``, ``results.json`` and ``per_prompt.csv``; images mode: a ``.json`` file or a
    folder (default: the images folder). An output folder must be new, empty or an earlier
    eval-gen output, unless ``overwrite``. ``progress(total)`` returns a per-item callback;
    ``judge`` replaces the suite's judge (tests, custom detectors).
    """
    if (run_dir is None) == (images is None):
        raise UserError("give either RUN_DIR (sample a trained generator) or --images DIR")
    if cfg.samples_per_prompt < 1:
        raise UserError(f"--samples must be >= 1, got {cfg.samples_per_prompt}")
    if images is not None and cfg.metadata:
        raise UserError(
            "--metadata gives the prompts to sample RUN_DIR with; --images reads each prompt "
            "folder's own metadata.jsonl"
        )
    cfg = suite_config(cfg)
    suite = cfg.suite
    out_path = Path(out) if out else None
    clip: Any = None

    def judge_for(entries: list[dict[str, Any]]) -> Judge:
        nonlocal clip
        if judge is not None:
            return judge
        clip = build_clip(cfg) if needs_clip(cfg, entries) else None
        return build_judge(cfg, entries, clip)

    if run_dir is not None:
        plan, used = _sample_run(cfg, Path(run_dir), out_path, judge_for, progress, overwrite)
    else:
        plan = _read_images(cfg, Path(images), out_path, overwrite)  # type: ignore[arg-type]
        used = judge_for(plan.entries)
    if suite is GenSuite.GENEVAL and cfg.clipscore and clip is None:
        clip = build_clip(cfg)
    clip = clip if cfg.clipscore else None
    results, rows, per_prompt = _score(cfg, plan, used, clip, progress)
    sampled = run_dir is not None
    results.update(
        {
            "images_dir": str(plan.images_dir),
            "metadata": cfg.metadata,
            "samples_per_prompt": cfg.samples_per_prompt if sampled else None,
            "seed": cfg.seed if sampled else None,
            "generator": plan.generator,
            "config": to_dict(cfg),
            "per_image": rows,
        }
    )
    write_eval_results(
        plan.results_path,
        results,
        ("per_prompt.csv", per_prompt_csv(per_prompt)),
        run_dir if out is None else None,  # with --out, the run folder is left untouched
        headline_metrics(suite, results),
    )
    return EvalGenResult(results, plan.results_path)


def headline_metrics(suite: GenSuite, results: dict[str, Any]) -> dict[str, Any]:
    """``eval_gen/<suite>`` and ``eval_gen/<suite>/<task>``, for the run's metrics.json."""
    metrics: dict[str, Any] = {}
    key = f"eval_gen/{suite.value}"
    metrics[key] = results["overall"]
    metrics.update({f"{key}/{k}": v for k, v in results.items() if k.startswith("overall/")})
    for tag, t in results["tasks"].items():
        metrics[f"{key}/{tag}"] = t["score"]
        metrics.update({f"{key}/{tag}/{k[6:]}": v for k, v in t.items() if k.startswith("score/")})
    if "clipscore" in results:
        metrics[f"{key}/clipscore"] = results["clipscore"]
    return metrics
