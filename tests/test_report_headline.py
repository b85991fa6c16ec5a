"""The report answers "which space?": headline table with intervals, marks only beyond them,
warnings on mismatched settings, links inside the report folder, the Spearman figure, seed
groups, wall-clock, --commit. Synthetic run folders in the key layout of docs/statistics.md."""

from __future__ import annotations

import ast
import csv
import html
import json
import re
import shutil
from pathlib import Path
from urllib.parse import unquote

import pytest
from PIL import Image
from scipy import stats
from test_report import _png

from latentbench.atomic import atomic_write_json
from latentbench.bench.seeds import aggregate_seeds
from latentbench.errors import UserError
from latentbench.report import write_report
from latentbench.report.catalog import Direction
from latentbench.report.differences import versus_initialisation
from latentbench.report.jsonfields import measured
from latentbench.report.load import load_runs
from latentbench.report.markdown import md_text
from latentbench.report.provenance import commit_line, device_text
from latentbench.report.significance import Mark, column_verdict, fmt_interval
from latentbench.runs import RunDir
from latentbench.stats import Interval, seed_aggregate, spearman_interval

SPACES = ("pixel", "semrec", "rae", "taef2")
# (value, half-width) per space; None: no interval recorded
PSNR = {"pixel": (40.0, 0.5), "semrec": (30.0, 0.5), "rae": (25.0, 0.5), "taef2": (28.0, 0.5)}
SSIM = {"pixel": (0.95, 0.02), "semrec": (0.94, 0.02), "rae": (0.80, 0.01), "taef2": (0.85, 0.01)}
LPIPS = {s: (0.1, 0.01) for s in SPACES}  # all equal
RFID = {"pixel": (1.0, None), "semrec": (5.0, None), "rae": (9.0, None), "taef2": (7.0, None)}
FD = {"pixel": (100.0, 5.0), "semrec": (80.0, 5.0), "rae": (150.0, 5.0), "taef2": (90.0, 4.97)}
GENEVAL = {"pixel": 0.30, "semrec": 0.32, "rae": 0.10, "taef2": 0.31}
SEEDS = (0, 1, 2)
CONFIG_HASH = "a" * 40


def _keyed(name: str, value: float, half: float | None) -> dict[str, float]:
    if half is None:
        return {name: value}
    return {name: value, f"{name}/ci95_low": value - half, f"{name}/ci95_high": value + half}


def _git(path: Path, git: str | None) -> None:
    info = json.loads((path / "manifest.json").read_text())
    atomic_write_json(path / "manifest.json", {**info, "git": git})


def _recon(root: Path) -> Path:
    run = RunDir.create(root, "recon", {"data": "shapes:64", "image_size": 64}, seed=0)
    info = run.manifest
    info.update(spaces={s: {} for s in SPACES}, git=CONFIG_HASH)
    atomic_write_json(run.path / "manifest.json", info)
    metrics = {}
    for i, s in enumerate(SPACES):
        m = {"num_images": 64, "latent/effective_rank": 3.0 + 5 * i}
        for name, table in (("psnr", PSNR), ("ssim", SSIM), ("lpips", LPIPS), ("rfid", RFID)):
            m.update(_keyed(name, *table[s]))
        m.update(_keyed("latent/probe_accuracy", 0.5 + 0.1 * i, 0.05 if s != "taef2" else None))
        metrics[s] = m
    metrics["taef2"]["latent/probe_accuracy"] = 0.99  # the highest, but without an interval
    run.write_metrics(metrics)
    _png(run.file("images", "grid.png"), (4 * 18, 5 * 18), 0)
    return run.path


def _gen_config(space: str, image_size: int = 64) -> dict:
    return {
        "train_gen": {"space": space, "task": "t2i", "data": "shapes:600"},
        "train_preset": {"image_size": image_size, "eval_samples": 60, "reference_images": 500},
        "space": {"name": space},
    }


def _log_curves(run: RunDir, space: str, scale: float = 1.0) -> None:
    for k, step in enumerate((0, 100, 200)):
        fd = (FD[space][0] + 200 / (1 + step / 50)) * scale
        seconds = 1.5 * step + 0.1
        run.log(step, "fd_efficientnet-lite0", fd, seconds=seconds, ci95_low=fd - 6,
                ci95_high=fd + 6, num_samples=60)  # fmt: skip
        g = GENEVAL[space] * k / 2
        run.log(step, "geneval", g, seconds=seconds, num_samples=60)
        run.log(step, "geneval/ci95_low", max(0.0, g - 0.05), seconds=seconds)
        run.log(step, "geneval/ci95_high", g + 0.05, seconds=seconds)
        run.log(step, "train/loss", 1 / (1 + step), seconds=seconds)


def _gen_metrics(space: str) -> dict:
    m = {"steps": 200, "num_eval_samples": 60}
    m.update(_keyed("fd_efficientnet-lite0", *FD[space]))
    m.update(_keyed("geneval", GENEVAL[space], 0.05))
    return m


def _geneval_results(space: str) -> dict:
    g = GENEVAL[space]
    tasks = {
        t: {"score": g + d, "score/ci95_low": g + d - 0.1, "score/ci95_high": g + d + 0.1}
        for t, d in (("single_object", 0.2), ("counting", -0.05), ("colors", 0.0))
    }
    return {"suite": "geneval-shapes", "overall": g, "overall/ci95_low": g - 0.05,
            "overall/ci95_high": g + 0.05, "tasks": tasks, "num_images": 60}  # fmt: skip


def _seed_group(folder: Path, space: str) -> None:
    values = []
    for seed in SEEDS:
        run = RunDir.create(folder / f"seed_{seed}", "train-gen", _gen_config(space), seed=seed)
        _git(run.path, CONFIG_HASH)
        _log_curves(run, space, scale=1 + 0.02 * (seed - 1))
        fd = FD[space][0] + 2 * (seed - 1)
        values.append(fd)
        run.write_metrics({"fd_efficientnet-lite0": fd, "steps": 200})
    fd = FD[space][0]
    aggregate = _keyed("fd_efficientnet-lite0", fd, FD[space][1])
    aggregate.update({"fd_efficientnet-lite0/std": 2.0, "fd_efficientnet-lite0/n": 3,
                      "fd_efficientnet-lite0/values": values, "steps": 200})  # fmt: skip
    aggregate.update(_keyed("geneval", GENEVAL[space], 0.05))
    atomic_write_json(folder / "metrics.json", aggregate)


def make_comparison(root: Path) -> dict[str, Path]:
    """recon of 4 spaces; train-gen per space (taef2: 3 seeds); GenEval results with intervals."""
    gen = root / "gen"
    for space in SPACES[:3]:
        run = RunDir.create(gen / space, "train-gen", _gen_config(space), seed=0)
        _git(run.path, CONFIG_HASH)
        _log_curves(run, space)
        run.write_metrics(_gen_metrics(space))
        atomic_write_json(run.path / "results.json", _geneval_results(space))
        _png(run.file("images", "step_00000200.png"), (34, 34), 1)
    _seed_group(gen / "taef2", "taef2")
    return {"recon": _recon(root / "recon"), "gen": gen}


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], Path]:
    root = tmp_path_factory.mktemp("compare")
    runs = make_comparison(root / "runs")
    out = root / "reports" / "compare"
    write_report(list(runs.values()), out)
    return runs, out


def headline_cells(page: str) -> dict[str, dict[str, tuple[str, str]]]:
    """{column: {row text: (td class, cell text)}} of the headline table of index.html."""
    table = re.search(r'<table class="metrics headline".*?</table>', page, re.S).group(0)
    body = table.split("<tbody>")[1].split("</tbody>")[0]
    out: dict[str, dict[str, tuple[str, str]]] = {}
    for tr in re.findall(r"<tr>(.*?)</tr>", body, re.S):
        space = re.search(r'<td class="text">(.*?)</td>', tr).group(1)
        for col, cls, inner in re.findall(
            r'<td data-column="([^"]+)"(?: class="(\w+)")?[^>]*>(.*?)</td>', tr
        ):
            text = re.sub(r"<sup>.*?</sup>|<[^>]+>", "", inner)
            out.setdefault(col, {})[space] = (cls, html.unescape(text))
    return out


# -- significance, unit level ---------------------------------------------------------------------
def _iv(v: float, h: float) -> Interval:
    return Interval(v, v - h, v + h, 10, "test")


def test_column_verdict_marks_only_separated_bests() -> None:
    sep = column_verdict([("a", 10, _iv(10, 1)), ("b", 5, _iv(5, 1))], Direction.HIGHER)
    assert sep.marks == {0: Mark.BEST} and "a best" in sep.text
    tie = column_verdict([("a", 10, _iv(10, 3)), ("b", 8, _iv(8, 3)), ("c", 1, _iv(1, 1))],
                         Direction.HIGHER)  # fmt: skip
    assert Mark.BEST not in tie.marks.values() and tie.marks == {0: Mark.TIE, 1: Mark.TIE}
    assert tie.text.startswith("tie: a, b")
    equal = column_verdict([("a", 3, _iv(3, 0)), ("b", 3, _iv(3, 0))], Direction.LOWER)
    assert equal.marks == {} and equal.text == "all equal"
    bare = column_verdict([("a", 10, None), ("b", 1, _iv(1, 0.1))], Direction.HIGHER)
    assert Mark.BEST not in bare.marks.values()  # a value without an interval is never marked
    lower = column_verdict([("a", 10, _iv(10, 1)), ("b", 5, _iv(5, 1))], Direction.LOWER)
    assert lower.marks == {1: Mark.BEST}
    assert column_verdict([("a", 1, _iv(1, 1)), None], Direction.HIGHER).marks == {}
    assert column_verdict([("a", 1, _iv(1, 1)), ("b", 9, None)], Direction.NONE).text == ""


def test_value_plus_minus_half_interval() -> None:
    assert fmt_interval(29.0347, Interval(29.0347, 28.62, 29.44, 64, "t")) == "29.03 \u00b1 0.41"
    assert fmt_interval(251.2, Interval(251.2, 231.0, 271.4, 36, "t")) == "251 \u00b1 20"
    assert fmt_interval(0.5, None) == "0.5"
    assert fmt_interval(0.5, Interval(0.5, float("-inf"), float("inf"), 1, "t")) == "0.5"
    # one side unbounded: the bound that exists is shown (a best mark must show why)
    assert fmt_interval(30.0, Interval(30.0, 29.5, float("inf"), 3, "t")) == "30 (\u2265 29.5)"
    assert fmt_interval(30.0, Interval(30.0, float("-inf"), 31.0, 3, "t")) == "30 (\u2264 31)"


def test_measured_reads_both_seed_aggregate_layouts() -> None:
    """``m/std``, ``m/values``... next to ``m`` (flat), or ``stats.seed_aggregate``'s dict
    under ``m`` (nested, its ``mean`` the value); null bounds read as unbounded."""
    nested = measured({"fd": seed_aggregate([1.0, 2.0, 3.0]), "config": {"x": 1}})
    assert list(nested) == ["fd"]
    fd = nested["fd"]
    assert (fd.value, fd.std, fd.seeds) == (2.0, 1.0, (1.0, 2.0, 3.0))
    assert fd.interval.contains(2.0) and fd.interval.low < 1.0 < 3.0 < fd.interval.high
    flat = measured({"fd": 2.0, "fd/std": 1.0, "fd/values": [1, 2, 3], "fd/n": 3,
                     "fd/ci95_low": None, "fd/ci95_high": None, "psnr": 30})  # fmt: skip
    assert set(flat) == {"fd", "psnr"} and flat["psnr"].interval is None
    assert flat["fd"].interval.low == float("-inf") and flat["fd"].seeds == (1.0, 2.0, 3.0)
    bad = measured({"psnr": 30, "psnr/ci95_low": "x", "psnr/ci95_high": 31})
    assert bad["psnr"].interval is None  # a bound of the wrong type: no interval


# -- the report -----------------------------------------------------------------------------------
def test_headline_comes_first_with_intervals(compared) -> None:
    _, out = compared
    page = (out / "index.html").read_text()
    assert page.index('<table class="metrics headline"') == page.index("<table")
    cells = headline_cells(page)
    assert len(cells) <= 10
    assert set(cells) >= {"psnr", "ssim", "lpips", "rfid", "gen_fd", "geneval", "steps", "seconds"}
    assert cells["psnr"]["pixel"][1].startswith("40.00 \u00b1 0.50")
    assert cells["gen_fd"]["taef2"][1] == "90.0 \u00b1 5.0"  # the seed aggregate's interval
    assert set(cells["psnr"]) == set(SPACES)
    assert cells["seconds"]["pixel"][1] == "300.1"  # last logged seconds (no interval)
    assert cells["seconds"]["taef2"][1].startswith("300.1")  # 3 seeds, same wall-clock


def test_marks_only_beyond_the_intervals(compared) -> None:
    _, out = compared
    cells = headline_cells((out / "index.html").read_text())
    assert cells["psnr"]["pixel"] == ("best", "40.00 \u00b1 0.50 \u2605")  # separated
    assert [c for c, _ in cells["psnr"].values()].count("best") == 1
    assert cells["gen_fd"]["semrec"][0] == "best"  # lower FD, beyond the intervals
    # ssim: pixel and semrec overlap -> a tie, no star
    assert {s for s, (c, _) in cells["ssim"].items() if c == "tie"} == {"pixel", "semrec"}
    assert not any("\u2605" in t for _, t in cells["ssim"].values())
    assert not any(c for c, _ in cells["lpips"].values())  # all equal: no mark at all
    assert not any(c == "best" for c, _ in cells["rfid"].values())  # no intervals: no mark
    page = (out / "index.html").read_text()
    assert "tie: pixel, semrec not separable" in page and "all equal" in page
    assert "no intervals: nothing marked" in page
    # the diagnostic whose best value has no interval is not marked
    diag = page.split('data-table="diagnostic"')[1].split("</table>")[0]
    assert "\u2605" not in diag
    readme = (out / "README.md").read_text()
    assert "**40.00 \u00b1 0.50** \u2605" in readme and readme.count("\u2605") >= 3


def test_links_resolve_inside_the_report_folder(compared, tmp_path: Path) -> None:
    _, out = compared
    moved = tmp_path / "committed"
    shutil.copytree(out, moved)  # the report alone, without the runs
    page = (moved / "index.html").read_text()
    readme = (moved / "README.md").read_text()
    links = re.findall(r'href="([^"]+)"', page)
    links += re.findall(r"\]\(([^ )]+)(?: \"[^\"]*\")?\)", readme)
    assert len(links) > 20
    for link in links:
        path = (moved / unquote(html.unescape(link))).resolve()
        assert moved.resolve() in path.parents, link
        assert path.is_file(), link
    assert (moved / "sources" / "recon" / "metrics.json").is_file()
    assert (moved / "sources" / "taef2" / "seed_2" / "metrics.jsonl").is_file()


def test_sources_copy_only_regular_files_inside_the_run(tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text('{"leaked": 1}')
    run = RunDir.create(tmp_path / "runs" / "r", "train-gen", _gen_config("pixel"))
    run.write_metrics(_gen_metrics("pixel"))
    (run.path / "results.json").symlink_to(secret)  # a link out of the run: not copied
    out = tmp_path / "report"
    write_report([run.path], out)
    copied = {p.relative_to(out).as_posix() for p in (out / "sources").rglob("*") if p.is_file()}
    assert copied == {"sources/r/manifest.json", "sources/r/metrics.json"}
    assert not [p for p in (out / "sources").rglob("*") if p.is_symlink()]


def test_spearman_figure_and_rho(compared) -> None:
    _, out = compared
    assert (out / "figures" / "recon_vs_generation.png").stat().st_size > 5000
    page = (out / "index.html").read_text()
    assert "Does reconstruction predict generation?" in page
    psnr = [PSNR[s][0] for s in SPACES]
    fd = [FD[s][0] for s in SPACES]
    rho = spearman_interval(psnr, fd)
    assert rho.value == pytest.approx(stats.spearmanr(psnr, fd).statistic)
    line = f"rho = {rho.value:.2f}, 95% interval [{rho.low:.2f}, {rho.high:.2f}] over 4 spaces"
    assert f"PSNR (dB): {line}" in page
    assert "latent/effective_rank: rho =" in page  # a diagnostic against generation too
    assert "LPIPS: rho undefined (LPIPS is the same for all 4 spaces)" in page


def test_differences_against_initialisation_and_between_spaces(compared) -> None:
    _, out = compared
    page = html.unescape((out / "index.html").read_text())
    metric = "fd_efficientnet-lite0"
    # pixel: 140 +- 6 at step 200 vs 300 +- 6 at step 0 (the curves of the fixture)
    line = f"pixel: {metric} 140.0 \u00b1 6.0 at step 200 vs 300.0 \u00b1 6.0 at step 0: better"
    assert line in page
    assert f"taef2: {metric} " in page  # the seed group: mean and t band over its 3 seeds
    assert f"pixel vs semrec on {metric}: semrec better beyond the intervals" in page
    assert f"semrec vs taef2 on {metric}: semrec better beyond the intervals" in page


def test_a_generator_not_separable_from_its_start_is_said(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "flat", "train-gen", _gen_config("pixel"))
    for step, fd in ((0, 300.0), (200, 295.0)):
        run.log(step, "fd_x", fd, ci95_low=fd - 10, ci95_high=fd + 10)
    lines = versus_initialisation(load_runs([run.path]), "fd_x")
    assert lines == [
        "pixel: fd_x 295 \u00b1 10 at step 200 vs 300 \u00b1 10 at step 0: NOT separable from "
        "its untrained initialisation"
    ]


def test_figures_geneval_bars_wall_clock_and_seeds(compared) -> None:
    runs, out = compared
    figures = {p.name for p in (out / "figures").glob("*.png")}
    assert {"geneval_tasks.png", "curve_fd_efficientnet-lite0.png", "recon__images_grid.png"} <= (
        figures
    )
    page = (out / "index.html").read_text()
    assert "fd_efficientnet-lite0 vs step and wall-clock" in page
    loaded = {r.name: r for r in load_runs([runs["gen"]])}
    taef2 = loaded["taef2"]
    assert sorted(taef2.seed_dirs) == list(SEEDS)
    assert {p.seed for p in taef2.curves} == set(SEEDS)
    fd = next(s for s in taef2.scalars if s.metric == "fd_efficientnet-lite0")
    assert fd.std == 2.0 and len(fd.seeds) == 3 and fd.interval.high == pytest.approx(94.97)
    pixel = loaded["pixel"]
    tasks = {s.metric: s for s in pixel.scalars if s.metric.startswith("geneval/")}
    assert tasks["geneval/counting"].interval.low == pytest.approx(0.15)
    g = [p for p in pixel.curves if p.metric == "geneval" and p.step == 200][0]
    assert (g.low, g.high, g.seconds) == (pytest.approx(0.25), pytest.approx(0.35), 300.1)
    assert not [p for p in pixel.curves if p.metric.endswith("ci95_low")]
    curves = (out / "curves.csv").read_text().splitlines()
    assert curves[0].startswith("run,kind,space,metric,step,seconds,seed,value,ci95_low")
    with Image.open(out / "figures" / "recon__images_grid.png") as im:  # redrawn with row names
        assert im.size[0] > 4 * 18 * 2


def test_warning_when_settings_differ(compared, tmp_path: Path) -> None:
    runs = make_comparison(tmp_path / "runs")
    odd = RunDir.create(tmp_path / "runs" / "odd", "train-gen", _gen_config("sd-vae", 32))
    odd.write_metrics({**_gen_metrics("pixel"), "num_eval_samples": 12})
    out = tmp_path / "report"
    write_report([*runs.values(), odd.path], out)
    page = (out / "index.html").read_text()
    warnings = re.findall(r'<p class="warning">(.*?)</p>', page)
    assert any("generation runs differ in image size" in w and "(odd): 32" in w for w in warnings)
    assert any("differ in sample count" in w and "(odd): 12" in w for w in warnings)
    assert "differ in image size" in (out / "README.md").read_text()
    _, same = compared  # the same settings everywhere: no warning
    assert 'class="warning"' not in (same / "index.html").read_text()


def test_a_run_without_fd_names_no_reference_set(tmp_path: Path) -> None:
    """A train-gen run with fd_extractor none computed no FD: the report does not warn that its
    'reference set' differs from the FD runs' (it had none)."""
    runs = make_comparison(tmp_path / "runs")
    config = _gen_config("sd-vae")
    config["train_gen"]["fd_extractor"] = "none"
    config["train_preset"]["reference_images"] = None
    plain = RunDir.create(tmp_path / "runs" / "nofd", "train-gen", config, seed=0)
    plain.write_metrics({"steps": 200, "num_eval_samples": 60})
    older = RunDir.create(tmp_path / "runs" / "nofd-old", "train-gen", _gen_config("sd-vae"))
    older.write_metrics({"steps": 200, "num_eval_samples": 60})  # recorded 500, ran no FD
    out = tmp_path / "report"
    write_report([*runs.values(), plain.path, older.path], out)
    assert "reference set" not in (out / "index.html").read_text()
    assert "reference set" not in (out / "README.md").read_text()


def _train_gen_seeds(out: Path, spaces: tuple[str, ...]) -> dict:
    """``train-gen --space A,B --seeds 0,1 --out OUT``'s layout: OUT/seed_<k>/<space>/ run
    folders, OUT/seed_<k>/metrics.json per seed and the aggregate OUT/metrics.json."""
    per_seed = []
    for seed in (0, 1):
        summary = {}
        for space in spaces:
            run = RunDir.create(out / f"seed_{seed}" / space, "train-gen", _gen_config(space),
                                seed=seed)  # fmt: skip
            _log_curves(run, space, scale=1 + 0.1 * seed)
            summary[space] = {**_gen_metrics(space), "fd_efficientnet-lite0": 100.0 + 10 * seed}
            run.write_metrics(summary[space])
        atomic_write_json(out / f"seed_{seed}" / "metrics.json", summary)
        per_seed.append(summary)
    aggregate = {**aggregate_seeds(per_seed), "seeds": [0, 1]}
    atomic_write_json(out / "metrics.json", aggregate)
    return aggregate


def test_train_gen_seeds_output_is_one_seed_group_per_space(tmp_path: Path) -> None:
    """`train-gen --space A,B --seeds` writes OUT/seed_<k>/<space>/: the report reads it as one
    seed group per space, its numbers from the aggregate's entry of that space."""
    aggregate = _train_gen_seeds(tmp_path / "gs", ("pixel", "rae"))
    single = RunDir.create(tmp_path / "single", "train-gen", _gen_config("semrec"), seed=7)
    _log_curves(single, "semrec")
    single.write_metrics(_gen_metrics("semrec"))
    runs = {r.name: r for r in load_runs([tmp_path / "gs", single.path])}
    assert sorted(runs) == ["pixel", "rae", "single"]
    pixel = runs["pixel"]
    assert pixel.seed_dirs == {k: tmp_path / "gs" / f"seed_{k}" / "pixel" for k in (0, 1)}
    fd = next(s for s in pixel.scalars if s.metric == "fd_efficientnet-lite0")
    assert fd.value == aggregate["pixel"]["fd_efficientnet-lite0"] == 105.0
    assert fd.seeds == (100.0, 110.0) and fd.std == aggregate["pixel"]["fd_efficientnet-lite0/std"]
    assert {s.space for s in pixel.scalars} == {"pixel"} and {p.seed for p in pixel.curves} == {
        0,
        1,
    }
    assert {p.seed for p in runs["single"].curves} == {7}  # the seed its manifest records
    out = tmp_path / "report"
    write_report([tmp_path / "gs", single.path], out)
    readme = (out / "README.md").read_text()
    head = "| run | command | git commit | seed(s) | time | device | notes |"
    assert head in readme  # the page's Runs columns
    rows = {line.split(" | ")[0].split("]")[0].strip("|[ "): line for line in readme.splitlines()
            if line.startswith("| [")}  # fmt: skip
    assert " | 0, 1 | " in rows["pixel"] and " | 7 | " in rows["single"]
    device = device_text(runs["single"].manifest)
    assert device and f" | {md_text(device)} | " in rows["single"]
    curves = list(csv.DictReader((out / "curves.csv").open()))
    assert {r["seed"] for r in curves if r["run"] == "single"} == {"7"}
    assert {r["seed"] for r in curves if r["run"] == "rae"} == {"0", "1"}


def test_commit_label_is_checked(tmp_path: Path, monkeypatch) -> None:
    runs = make_comparison(tmp_path / "runs")
    out = tmp_path / "report"
    monkeypatch.setattr("latentbench.report.git_hash", lambda: CONFIG_HASH + "+dirty")
    with pytest.raises(UserError, match="written from commit aaaaaaaaaaaa with uncommitted"):
        write_report(list(runs.values()), out, commit=CONFIG_HASH)
    monkeypatch.setattr("latentbench.report.git_hash", lambda: CONFIG_HASH)
    with pytest.raises(UserError, match="recon was made from commit aaaaaaaaaaaa"):
        write_report(list(runs.values()), out, commit="b" * 40)
    with pytest.raises(UserError, match="at least 7 characters"):
        write_report(list(runs.values()), out, commit="aaa")
    assert not out.exists()
    write_report(list(runs.values()), out, commit=CONFIG_HASH[:10])
    assert f"All runs were made from commit {CONFIG_HASH[:10]}" in (out / "index.html").read_text()
    _git(runs["gen"] / "taef2" / "seed_1", CONFIG_HASH + "+dirty")
    with pytest.raises(UserError, match="taef2 was made from .*dirty tree"):
        write_report(list(runs.values()), tmp_path / "r2", commit=CONFIG_HASH)
    assert not (tmp_path / "r2").exists()
    line = commit_line(load_runs(runs.values()), None)
    assert "Runs from several commits" in line and "uncommitted changes (a dirty tree)" in line


def test_report_modules_stay_small() -> None:
    """No report module over 600 lines, no function over 80."""
    folder = Path(__file__).resolve().parents[1] / "latentbench" / "report"
    for path in folder.glob("*.py"):
        text = path.read_text()
        assert len(text.splitlines()) <= 600, path.name
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                assert length <= 80, f"{path.name}:{node.name} has {length} lines"
