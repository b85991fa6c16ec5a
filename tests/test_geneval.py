"""GenEval rules, metadata format, the oracle and broken generators, eval-gen on Shapes layouts."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from latentbench.bench.eval_gen import EvalGenConfig, run_eval_gen, suite_config, table_rows
from latentbench.data.shapes import (
    Color,
    Scene,
    ShapesRenderer,
    geneval_suite,
    oracle_rng,
    oracle_scene,
    write_oracle_layout,
)
from latentbench.errors import UserError
from latentbench.geneval import (
    Detection,
    GenevalRules,
    GenevalTask,
    Relation,
    Skipped,
    evaluate_entry,
    read_entries,
    relative_position,
    scan_folder,
    summarise,
    write_metadata,
)
from latentbench.metrics.shapes_detector import ShapesDetector
from latentbench.metrics.shapes_judge import ANALYTIC_RULES

SHAPES = EvalGenConfig(suite="geneval-shapes")  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def detector() -> ShapesDetector:
    return ShapesDetector()


# -- rules --------------------------------------------------------------------------------------


def test_relative_position_follows_geneval_margin_rule() -> None:
    a, b = (0, 0, 10, 10), (30, 0, 40, 10)
    assert relative_position(a, b) == {Relation.LEFT_OF}
    assert relative_position(b, a) == {Relation.RIGHT_OF}
    assert relative_position((0, 0, 10, 10), (0, 30, 10, 40)) == {Relation.ABOVE}
    # margin 0.1 * (10 + 10) = 2 on x: offset 5 -> 3 / 5 = 0.6 > 0.5 is "left of"; 3 -> 1 / 3 is not
    assert relative_position((0, 0, 10, 10), (5, 0, 15, 10)) == {Relation.LEFT_OF}
    assert relative_position((0, 0, 10, 10), (3, 0, 13, 10)) == set()
    # within the margin on both axes: no relation at all
    assert relative_position((0, 0, 10, 10), (1, 1, 11, 11)) == set()
    # a diagonal offset names both relations; a mostly horizontal one only the horizontal
    assert relative_position((0, 0, 10, 10), (30, 30, 40, 40)) == {Relation.LEFT_OF, Relation.ABOVE}
    assert relative_position((0, 0, 10, 10), (40, 8, 50, 18)) == {Relation.LEFT_OF}


def det(
    name: str, x: float, y: float = 10.0, color: str | None = None, score: float = 1.0
) -> Detection:
    return Detection(name, (x, y, x + 10, y + 10), color, score)


def test_include_exclude_and_counting() -> None:
    entry = {
        "tag": "counting",
        "prompt": "",
        "include": [{"class": "star", "count": 2}],
        "exclude": [{"class": "star", "count": 3}],
    }
    assert evaluate_entry([det("star", 0), det("star", 30)], entry, ANALYTIC_RULES)[0]
    ok, reason = evaluate_entry([det("star", 0)], entry, ANALYTIC_RULES)
    assert not ok and "expected star>=2, found 1" in reason
    ok, reason = evaluate_entry([det("star", x) for x in (0, 20, 40)], entry, ANALYTIC_RULES)
    assert not ok and "expected star<3, found 3" in reason
    # official thresholds: counting keeps only scores above 0.9, other tasks above 0.3
    low = [det("star", 0, score=0.95), det("star", 30, score=0.5)]
    assert not evaluate_entry(low, entry, GenevalRules())[0]
    single = {"tag": "single_object", "prompt": "", "include": [{"class": "star", "count": 1}]}
    assert evaluate_entry([det("star", 0, score=0.5)], single, GenevalRules())[0]
    assert not evaluate_entry([det("star", 0, score=0.2)], single, GenevalRules())[0]
    assert not evaluate_entry([det("circle", 0)], single, GenevalRules())[0]


def test_color_checks_the_most_confident_objects_only() -> None:
    entry = {
        "tag": "colors",
        "prompt": "",
        "include": [{"class": "circle", "count": 1, "color": "blue"}],
    }
    assert evaluate_entry(
        [det("circle", 0, color="blue", score=0.9), det("circle", 30, color="red", score=0.5)],
        entry,
    )[0]
    ok, reason = evaluate_entry(
        [det("circle", 0, color="blue", score=0.5), det("circle", 30, color="red", score=0.9)],
        entry,
    )
    assert not ok and "expected blue circle>=1" in reason
    assert not evaluate_entry([det("circle", 0, color=None)], entry)[0]


def test_position_and_color_attribution() -> None:
    entry = {
        "tag": "position",
        "prompt": "a photo of a star left of a circle",
        "include": [
            {"class": "circle", "count": 1},
            {"class": "star", "count": 1, "position": ["left of", 0]},
        ],
    }
    assert evaluate_entry([det("circle", 40), det("star", 0)], entry)[0]
    ok, reason = evaluate_entry([det("circle", 0), det("star", 40)], entry)
    assert not ok and "expected star left of target" in reason
    ok, reason = evaluate_entry([det("star", 0)], entry)
    assert not ok and "no target for star" in reason
    attr = {
        "tag": "color_attr",
        "prompt": "",
        "include": [
            {"class": "star", "count": 1, "color": "red"},
            {"class": "circle", "count": 1, "color": "blue"},
        ],
    }
    assert evaluate_entry([det("star", 0, color="red"), det("circle", 30, color="blue")], attr)[0]
    assert not evaluate_entry([det("star", 0, color="blue"), det("circle", 30, color="red")], attr)[
        0
    ]


def test_summary_is_the_mean_of_task_scores() -> None:
    rows = [
        ("single_object", True, 0),
        ("single_object", True, 1),
        ("counting", False, 2),
        ("counting", True, 2),
    ]
    s = summarise(rows)
    assert list(s.tasks) == ["single_object", "counting"]
    assert s.tasks["counting"].score == 0.5 and s.overall == pytest.approx(0.75)
    assert s.images == 4 and s.prompts == 3 and s.prompts_correct == 3


def test_metadata_round_trip_and_official_lines(tmp_path: Path) -> None:
    official = [
        '{"tag": "position", "include": [{"class": "dog", "count": 1}, {"class": "tv", "count": 1, '
        '"position": ["right of", 0]}], "prompt": "a photo of a tv right of a dog"}',
        '{"tag": "counting", "include": [{"class": "clock", "count": 2}], "exclude": '
        '[{"class": "clock", "count": 3}], "prompt": "a photo of two clocks"}',
    ]
    path = tmp_path / "evaluation_metadata.jsonl"
    path.write_text("\n".join(official) + "\n")
    entries = [e for _, e in read_entries(path, Skipped())]
    assert (
        entries[0]["include"][1]["position"] == ["right of", 0]
        and entries[1]["exclude"][0]["count"] == 3
    )
    suite = geneval_suite(3, seed=1)
    write_metadata(tmp_path / "ours.jsonl", suite)
    assert read_entries(tmp_path / "ours.jsonl", Skipped()) == list(enumerate(suite))
    path.write_text(
        official[0] + "\n{not json\n"
        '{"tag": "position", "prompt": "p", "include": '
        '[{"class": "a", "count": 1, "position": ["near", 0]}]}\n'
    )
    skipped = Skipped()
    assert [i for i, _ in read_entries(path, skipped)] == [0]  # bad lines: skipped, counted
    assert skipped.prompts == 2
    assert "evaluation_metadata.jsonl:2: not valid JSON" in skipped.reasons[0]
    assert "evaluation_metadata.jsonl:3: bad position ['near', 0]" in skipped.reasons[1]


# -- the oracle and broken generators -----------------------------------------------------------


def score_images(
    entries: list[dict], images: list[np.ndarray], detector: ShapesDetector
) -> dict[str, float]:
    rows = [
        (e["tag"], evaluate_entry(detector.detect(im).detections(), e, ANALYTIC_RULES)[0], i)
        for i, (e, im) in enumerate(zip(entries, images, strict=True))
    ]
    return {t: s.score for t, s in summarise(rows).tasks.items()}


def oracle(n_per_task: int, seed: int) -> tuple[list[dict], list[Scene]]:
    suite = geneval_suite(n_per_task, seed=seed)
    return suite, [oracle_scene(e, oracle_rng(seed, i, 0)) for i, e in enumerate(suite)]


@pytest.mark.parametrize(
    "n_per_task", [pytest.param(100), pytest.param(500, marks=pytest.mark.slow)]
)
def test_oracle_scores_at_least_099_on_every_task(
    n_per_task: int, detector: ShapesDetector
) -> None:
    suite, scenes = oracle(n_per_task, seed=3)
    renderer = ShapesRenderer(64)
    scores = score_images(suite, [renderer.render(s) for s in scenes], detector)
    assert set(scores) == {t.value for t in GenevalTask}
    assert min(scores.values()) >= 0.99, scores


def _derange_colors(scene: Scene) -> Scene:
    colors = list(Color)
    shift = lambda c: colors[(colors.index(c) + 3) % len(colors)]
    return dataclasses.replace(
        scene, objects=tuple(dataclasses.replace(o, color=shift(o.color)) for o in scene.objects)
    )


def _rotate(scene: Scene, fields: tuple[str, ...]) -> Scene:
    """Give each object the ``fields`` of the next one (a derangement when there are >= 2)."""
    objs = scene.objects
    moved = [{f: getattr(objs[(i + 1) % len(objs)], f) for f in fields} for i in range(len(objs))]
    return dataclasses.replace(
        scene, objects=tuple(dataclasses.replace(o, **m) for o, m in zip(objs, moved, strict=True))
    )


def _blur_to_8(image: np.ndarray) -> np.ndarray:
    s = image.shape[0]
    return np.asarray(
        Image.fromarray(image).resize((8, 8), Image.BOX).resize((s, s), Image.BILINEAR)
    )


def test_broken_images_fall_to_chance(detector: ShapesDetector) -> None:
    """Chance = the score of oracle images of other prompts of the same task. Each corruption is
    scored on the tasks it attacks."""
    suite, scenes = oracle(100, seed=4)
    renderer = ShapesRenderer(64)
    clean = [renderer.render(s) for s in scenes]
    tasks = [t.value for t in GenevalTask]
    by_task = {t: [i for i, e in enumerate(suite) if e["tag"] == t] for t in tasks}
    order = np.arange(len(suite))
    for idx in by_task.values():
        order[idx] = np.roll(idx, 7)
    chance = score_images(suite, [clean[j] for j in order], detector)
    rng = np.random.default_rng(0)
    corruptions: dict[str, tuple[Callable[[int], np.ndarray], list[str]]] = {
        "noise": (lambda i: rng.integers(0, 256, clean[i].shape, dtype=np.uint8), tasks),
        "blank": (lambda i: np.full_like(clean[i], 128), tasks),
        "blur8": (lambda i: _blur_to_8(clean[i]), tasks),
        "colors permuted": (
            lambda i: renderer.render(_derange_colors(scenes[i])),
            ["colors", "color_attr"],
        ),
        "objects shuffled": (
            lambda i: renderer.render(_rotate(scenes[i], ("cx", "cy", "size"))),
            ["position"],
        ),
        "colors swapped between objects": (
            lambda i: renderer.render(_rotate(scenes[i], ("color",))),
            ["color_attr"],
        ),
    }
    tolerance = 0.05  # ~4 binomial standard deviations at 100 prompts and p ~ 0.03
    for name, (corrupt, attacked) in corruptions.items():
        idx = [i for t in attacked for i in by_task[t]]
        scores = score_images([suite[i] for i in idx], [corrupt(i) for i in idx], detector)
        for t in attacked:
            assert scores[t] <= chance[t] + tolerance, (name, t, scores[t], chance[t])


# -- eval-gen --images on Shapes layouts, and the CLI ------------------------------------------


def test_oracle_layout_scores_one_and_writes_results(tmp_path: Path) -> None:
    n = write_oracle_layout(
        tmp_path, prompts_per_task=3, samples_per_prompt=2, image_size=64, seed=5
    )
    assert n == 36 and (tmp_path / "00017" / "samples" / "0001.png").is_file()
    assert json.loads((tmp_path / "00000" / "metadata.jsonl").read_text())["tag"] == "single_object"
    assert len(read_entries(tmp_path / "evaluation_metadata.jsonl", Skipped())) == 18
    res = run_eval_gen(SHAPES, images=tmp_path)
    r = res.results
    assert res.path == tmp_path / "results.json"
    assert json.loads(res.path.read_text())["per_image"] == r["per_image"]
    assert r["overall"] == 1.0 and r["num_images"] == 36 and r["num_prompts"] == 18
    assert r["detector"] == "shapes-analytic" and r["rules"]["threshold"] == 0.0
    assert table_rows(r)[-1] == ("overall", "36/36", "1.0000")
    # a truncated image is skipped and counted, and the reason is reported
    (tmp_path / "00000" / "samples" / "0000.png").write_bytes(b"\x89PNG broken")
    r = run_eval_gen(SHAPES, images=tmp_path).results
    assert r["skipped_images"] == 1 and r["num_images"] == 35
    single = r["tasks"]["single_object"]
    assert {k: single[k] for k in ("score", "correct", "total")} == {
        "score": 1.0,
        "correct": 5,
        "total": 5,
    }
    assert single["score/ci95_low"] < 1.0 == single["score/ci95_high"]  # Wilson, 5 of 5
    assert any("00000: unreadable image 0000.png" in s for s in r["skipped_reasons"])


def test_shapes_suite_records_and_takes_no_detector_options(
    tmp_path: Path, cli, capsys: pytest.CaptureFixture
) -> None:
    """geneval-shapes is judged analytically: the detector, its thresholds and CLIP are not
    recorded as if they ran (null), and a given one is refused, not silently ignored."""
    write_oracle_layout(tmp_path, prompts_per_task=1, samples_per_prompt=1, image_size=64, seed=5)
    saved = run_eval_gen(SHAPES, images=tmp_path).results["config"]
    unused = ("detector", "detector_model", "clip_model", "threshold", "counting_threshold")
    assert {k: saved[k] for k in (*unused, "clipscore")} == dict.fromkeys((*unused, "clipscore"))
    base = ("eval-gen", "--suite", "geneval-shapes", "--images", str(tmp_path), "-q")
    for extra in (("--detector", "owlv2", "--threshold", "0.9"), ("--no-clipscore",)):
        capsys.readouterr()
        assert cli(*base, *extra, "--out", str(tmp_path / "x.json")) == 2
        err = capsys.readouterr().err
        assert f"{extra[0]}" in err and "only --suite geneval" in err
        assert not (tmp_path / "x.json").exists()
    # geneval records the judge it runs: its defaults filled in
    natural = suite_config(EvalGenConfig(suite="geneval"))  # type: ignore[arg-type]
    assert natural.detector == "mask2former" and natural.clipscore is True


def test_layout_errors_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="images folder not found"):
        scan_folder(tmp_path / "missing", Skipped())
    with pytest.raises(UserError, match="nothing to score"):
        run_eval_gen(SHAPES, images=tmp_path)
    folder = tmp_path / "00000"
    (folder / "samples").mkdir(parents=True)
    (folder / "metadata.jsonl").write_text(
        json.dumps(
            {
                "tag": "single_object",
                "prompt": "a photo of a dog",
                "include": [{"class": "dog", "count": 1}],
            }
        )
    )
    Image.new("RGB", (64, 64)).save(folder / "samples" / "0000.png")
    with pytest.raises(UserError, match="'a photo of a dog': class 'dog' is not a shape"):
        run_eval_gen(SHAPES, images=tmp_path)


def test_cli_geneval_round_trip(tmp_path: Path, cli, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "gt"
    args = (
        "data",
        "shapes",
        "--geneval",
        "--out",
        str(out),
        "--prompts-per-task",
        "2",
        "--samples",
        "1",
        "-q",
    )
    assert cli(*args) == 0
    assert cli(*args) == 0  # its own earlier output is replaced
    assert (
        cli(
            "eval-gen",
            "--suite",
            "geneval-shapes",
            "--images",
            str(out),
            "--json",
            "-q",
        )
        == 0
    )
    printed = json.loads(capsys.readouterr().out)
    assert printed["overall"] == 1.0 and "per_image" not in printed
    saved = json.loads((out / "results.json").read_text())
    assert saved["tasks"]["position"]["total"] == 2 and len(saved["per_image"]) == 12
    assert {"torch", "latentbench"} <= saved["provenance"]["versions"].keys()  # and its config
    assert saved["config"]["suite"] == "geneval-shapes" and "git" in saved["provenance"]
    custom = tmp_path / "scores.json"
    assert (
        cli(
            "eval-gen",
            "--suite",
            "geneval-shapes",
            "--images",
            str(out),
            "--out",
            str(custom),
            "-q",
        )
        == 0
    )
    assert "overall" in capsys.readouterr().out and custom.is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("eval-gen", "runs/gen/x", "--suite", "geneval-shapes"),
            "runs/gen/x: not found (a train-gen run folder, a saved generator or a hub id)",
        ),
        (("eval-gen", "--suite", "geneval-shapes"), "--images DIR is required"),
        (
            ("eval-gen", "--suite", "nope", "--images", "."),
            "--suite: 'nope' is not one of geneval, geneval-shapes",
        ),
    ],
)
def test_cli_eval_gen_errors_are_one_line(
    args: tuple[str, ...],
    message: str,
    cli,
    capsys: pytest.CaptureFixture,
) -> None:
    assert cli(*args) == 2
    err = capsys.readouterr().err
    assert message in err and err.strip().count("\n") == 0
