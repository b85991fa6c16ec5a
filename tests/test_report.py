"""latentbench report: run folders in, one self-contained comparison page out (never recomputes)."""

from __future__ import annotations

import csv
import html
import json
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from PIL import Image

from latentbench.atomic import atomic_write_json
from latentbench.errors import UserError
from latentbench.report import write_report
from latentbench.report.catalog import Direction, direction
from latentbench.report.load import ImageRole, RunKind, load_runs
from latentbench.runs import RunDir

EVIL_PROMPT = "a red circle <script>document.title='PWNED';window.__pwned=1;</script>"
EVIL_SPACE = "semrec<img src=x onerror=\"document.title='PWNED'\">"
PSNR_VARIANT = {"name": "psnr", "data_range": 255}


def _png(path: Path, size: tuple[int, int], seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def make_runs(root: Path) -> dict[str, Path]:
    """Small synthetic run folders of every kind, written with the real RunDir API."""
    runs: dict[str, Path] = {}

    # recon: two spaces (one with HTML in its name), variants, latent diagnostics, a grid.
    recon = RunDir.create(root / "recon", "recon", {"data": "shapes:8"}, seed=0)
    info = recon.manifest
    info.update(
        metric_variants={"psnr": PSNR_VARIANT, "lpips": "alex, real heads", "rfid": "inception"},
        spaces={"pixel": {"spec": {}}, EVIL_SPACE: {"spec": {}}},
        skipped_spaces=["taef2: skipped: weights not found"],
        skipped_files=[],
    )
    atomic_write_json(recon.path / "manifest.json", info)
    recon.write_metrics(
        {
            "pixel": {
                "psnr": 40.0,
                "psnr/ci95_low": 39.5,
                "psnr/ci95_high": 40.5,
                "ssim": 0.99,
                "lpips": 0.01,
                "rfid": 0.5,
                "num_images": 8,
            },
            EVIL_SPACE: {
                "psnr": 28.5,
                "psnr/ci95_low": 28.0,
                "psnr/ci95_high": 29.0,
                "ssim": 0.81,
                "lpips": 0.12,
                "rfid": 4.25,
                "num_images": 8,
                "latent/robust_psnr@0": 28.5,
                "latent/robust_psnr@0.5": 21.0,
                "latent/probe_accuracy": 0.75,
                "latent/probe_majority_baseline": 0.25,
                "latent": {"channel_std": [1.0, 0.5, 0.25], "channel_mean": [0.1, -0.2, 0.0]},
            },
        }
    )
    _png(recon.file("images", "grid.png"), (66, 34), 0)
    runs["recon"] = recon.path

    # train-gen: one run per space under gen/, convergence curves, sample grids.
    gen = root / "gen"
    for i, space in enumerate(("pixel", "semrec")):
        run = RunDir.create(
            gen / space,
            "train-gen",
            {"space": {"name": space}, "train_gen": {"space": space, "task": "t2i"}},
            seed=0,
        )
        for step in (0, 100, 200):
            fd = 300.0 / (1 + step / 50) + 10 * i
            run.log(step, "fd_inception", fd, extractor="inception-v3-compat", num_samples=60)
            run.log(step, "geneval", step / 400 + 0.1 * i, num_samples=60)
            run.log(step, "geneval/counting", step / 500, num_samples=60)
            run.log(step, "train/loss", 1.0 / (1 + step), num_samples=60)
            run.log(step, "train/lr", 1e-3)
            _png(run.file("images", f"step_{step:08d}.png"), (34, 34), step + i)
        run.write_metrics({"fd_inception": fd, "geneval": 0.5 + 0.1 * i, "steps": 200})
    atomic_write_json(gen / "metrics.json", {"pixel": {}, "semrec": {}})  # the summary
    runs["gen"] = gen

    # train-gen, edit task: its sample grid is an edit grid.
    edit = RunDir.create(
        root / "edit-pixel",
        "train-gen",
        {"space": {"name": "pixel"}, "train_gen": {"task": "edit"}},
    )
    edit.log(0, "edit/success", 0.25)
    _png(edit.file("images", "step_00000000.png"), (34, 34), 9)
    runs["edit"] = edit.path

    # GenEval results folder (eval-gen --images DIR): no manifest, a prompt with a script tag.
    geneval = root / "geneval-oracle"
    geneval.mkdir()
    atomic_write_json(
        geneval / "results.json",
        {
            "suite": "geneval-shapes",
            "detector": "shapes-analytic",
            "rules": {"threshold": 0.0},
            "overall": 0.9,
            "tasks": {"counting": {"score": 0.8, "correct": 4, "total": 5}},
            "num_images": 5,
            "prompt_accuracy": 1.0,
            "per_image": [
                {"tag": "counting", "prompt": EVIL_PROMPT, "correct": False, "reason": "2 != 3"},
                {"tag": "counting", "prompt": "two squares", "correct": True, "reason": ""},
            ],
        },
    )
    runs["geneval"] = geneval

    # train-tokenizer: the folder is the saved space; loss curves, held-out PSNR and probe.
    tok = RunDir.create(root / "semrec-s1", "train-tokenizer", {"space": "semrec"}, seed=0)
    for step in (5, 10):
        tok.log(step, "train/loss", 2.0 / step)
    tok.write_metrics({"train/loss": 0.2, "eval/psnr": 19.5, "eval/probe_latent": 0.6})
    runs["tokenizer"] = tok.path

    # toy-manifold: tail curves per ambient dimension.
    toy = RunDir.create(root / "toy", "toy-manifold", {"steps": 20}, seed=0)
    for step in (10, 20):
        toy.log(step, "tail_2d", 1.0 / step)
        toy.log(step, "tail_8d", 2.0 / step)
    toy.write_metrics(
        {
            "config": {"steps": 20},
            "tail_2d": [0.1, 0.05],
            "final_tail_2d": 0.05,
            "final_tail_8d": 0.1,
            "steps": [10, 20],
        }
    )
    _png(toy.file("tail.png"), (40, 20), 4)
    runs["toy"] = toy.path

    # An unknown command: generic scalars, curves and images.
    other = RunDir.create(root / "plugin-bench", "my-plugin-bench", {}, seed=1)
    other.write_metrics({"accuracy": 0.5, "config": {"lr": 0.1}, "note": "text"})
    other.log(1, "score", 0.1)
    other.log(2, "score", 0.2)
    _png(other.file("images", "view.png"), (20, 10), 3)
    runs["generic"] = other.path
    return runs


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], Path]:
    root = tmp_path_factory.mktemp("report")
    runs = make_runs(root / "runs")
    out = root / "reports" / "demo"
    write_report(list(runs.values()), out)
    return runs, out


def test_writes_every_output(built) -> None:
    _, out = built
    for name in ("index.html", "README.md", "metrics.csv", "curves.csv"):
        assert (out / name).is_file(), name
    figures = {p.name for p in (out / "figures").glob("*.png")}
    for name in (
        "table_headline.png",
        "geneval_tasks.png",
        "curve_fd_inception.png",
        "curve_geneval.png",
        "curve_geneval_tasks.png",
        "curve_train.png",
        "latent_robustness.png",
        "latent_probe.png",
        "latent_channels.png",
        "recon__images_grid.png",
        "pixel__images_step_00000200.png",
        "edit-pixel__images_step_00000000.png",
        "plugin-bench__images_view.png",
        "toy__tail.png",
        "curve_tail.png",
    ):
        assert name in figures, name
    assert "pixel__images_step_00000000.png" not in figures  # only the last sample grid
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no staging left


def test_metrics_csv_long_format(built) -> None:
    _, out = built
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [
        "run",
        "kind",
        "space",
        "metric",
        "value",
        "ci95_low",
        "ci95_high",
        "variant",
    ]
    psnr = {r["space"]: r for r in rows if r["run"] == "recon" and r["metric"] == "psnr"}
    assert float(psnr["pixel"]["value"]) == 40.0
    assert (psnr["pixel"]["ci95_low"], psnr["pixel"]["ci95_high"]) == ("39.5", "40.5")
    assert not [r for r in rows if r["metric"].endswith("ci95_low")]  # bounds are not metrics
    assert float(psnr[EVIL_SPACE]["value"]) == 28.5
    assert psnr["pixel"]["variant"] == "name: psnr; data_range: 255"
    fd = [r for r in rows if r["metric"] == "fd_inception"]
    assert {r["space"] for r in fd} == {"pixel", "semrec"}
    assert all("inception-v3-compat" in r["variant"] for r in fd)  # from the curve's extractor
    kinds = {r["run"]: r["kind"] for r in rows}
    assert kinds["recon"] == "recon" and kinds["plugin-bench"] == "my-plugin-bench"
    assert kinds["geneval-oracle"] == "eval-gen"
    assert not [r for r in rows if r["metric"].startswith("config")]  # settings are not results
    with open(out / "curves.csv", newline="") as f:
        curves = list(csv.DictReader(f))
    assert [c["step"] for c in curves if c["run"] == "pixel" and c["metric"] == "geneval"] == [
        "0",
        "100",
        "200",
    ]


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        ("psnr", Direction.HIGHER),
        ("eval/psnr", Direction.HIGHER),
        ("ssim", Direction.HIGHER),
        ("lpips_vgg", Direction.LOWER),
        ("rfid", Direction.LOWER),
        ("fid", Direction.LOWER),
        ("fd_dinov2", Direction.LOWER),
        ("latent/ifid", Direction.LOWER),
        ("geneval/counting", Direction.HIGHER),
        ("latent/probe_accuracy", Direction.HIGHER),
        ("latent/probe_majority_baseline", Direction.NONE),
        ("encode_images_per_s", Direction.HIGHER),
        ("train/loss", Direction.LOWER),
        ("train/lr", Direction.NONE),
        ("num_images", Direction.NONE),
        ("steps", Direction.NONE),
    ],
)
def test_direction_table(metric: str, expected: Direction) -> None:
    assert direction(metric) is expected


def _cells(page: str) -> list[tuple[str, str, str]]:
    """(class attribute, href, text) of every linked table cell."""
    pattern = r'<td data-column="[^"]*"( class="\w+")?><a href="([^"]+)" title="[^"]*">([^<]+)</a>'
    return re.findall(pattern, page)


def test_best_values_marked_only_beyond_intervals_and_linked(built) -> None:
    runs, out = built
    page = (out / "index.html").read_text()
    best = {text for cls, _, text in _cells(page) if cls == ' class="best"'}
    assert "40.00 \u00b1 0.50 \u2605" in best  # the higher PSNR, separated beyond the intervals
    assert not [t for t in best if t.startswith(("0.01", "0.5"))]  # LPIPS, rFID: no interval
    assert "PSNR (dB)\u2191" in page and "LPIPS\u2193" in page and "psnr\u2191" in page
    for _, link, _ in _cells(page):  # every number links to a copy inside the report
        target = (out / unquote(html.unescape(link))).resolve()
        assert target.is_file() and out.resolve() in target.parents, link
    links = {unquote(html.unescape(link)) for _, link, _ in _cells(page)}
    assert "sources/recon/metrics.json" in links
    assert (out / "sources" / "recon" / "metrics.json").read_bytes() == (
        runs["recon"] / "metrics.json"
    ).read_bytes()
    assert "name: psnr; data_range: 255" in page  # the variant, in a title and a footnote


def test_html_is_self_contained_and_escaped(built) -> None:
    _, out = built
    page = (out / "index.html").read_text()
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert "&lt;script&gt;document.title=" in page
    assert html.escape(EVIL_SPACE, quote=True) in page
    srcs = re.findall(r'src="([^"]*)"', page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.findall(r'(?:src|href)="(?:https?:)?//', page)
    readme = (out / "README.md").read_text()
    assert "<script" not in readme and "&lt;img src=x" in readme
    assert "![" in readme and "(figures/curve_fd_inception.png)" in readme


def test_run_kinds_and_sections(built) -> None:
    runs, _ = built
    loaded = {r.name: r for r in load_runs(runs.values())}
    names = {"recon", "pixel", "semrec", "edit-pixel", "geneval-oracle", "plugin-bench"}
    assert set(loaded) == names | {"semrec-s1", "toy"}
    assert loaded["semrec-s1"].kind is RunKind.TRAIN_TOKENIZER
    assert {s.space for s in loaded["semrec-s1"].scalars} == {"semrec-s1"}
    toy = {(s.space, s.metric): s.value for s in loaded["toy"].scalars}
    assert toy == {("2d", "final_tail"): 0.05, ("8d", "final_tail"): 0.1}
    assert {p.space for p in loaded["toy"].curves} == {"2d", "8d"}
    assert loaded["recon"].kind is RunKind.RECON
    assert loaded["pixel"].kind is RunKind.TRAIN_GEN
    assert loaded["plugin-bench"].kind is RunKind.GENERIC
    assert loaded["geneval-oracle"].kind is RunKind.GENEVAL
    assert [i.role for i in loaded["edit-pixel"].images] == [ImageRole.EDITS]
    assert [i.role for i in loaded["recon"].images] == [ImageRole.RECON]
    assert "taef2: skipped: weights not found" in loaded["recon"].notes
    # An unfinished run (no metrics.json) reports its last logged values.
    success = [s for s in loaded["edit-pixel"].scalars if s.metric == "edit/success"]
    assert success and success[0].value == 0.25 and "step 0" in success[0].variant
    assert loaded["recon"].vectors[(EVIL_SPACE, "latent/channel_std")] == [1.0, 0.5, 0.25]


def test_not_a_run_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    out = tmp_path / "report"
    with pytest.raises(UserError, match="is not a run folder"):
        write_report([tmp_path / "empty"], out)
    with pytest.raises(UserError, match="run folder not found"):
        write_report([tmp_path / "missing"], out)
    assert not out.exists()
    runs = make_runs(tmp_path / "runs")
    for bad in (runs["recon"], tmp_path / "runs"):  # would replace a run folder
        with pytest.raises(UserError, match="(is|holds) the input"):
            write_report([runs["recon"]], bad)
    assert (runs["recon"] / "metrics.json").is_file()
    code = "from latentbench.cli import main; main()"
    proc = subprocess.run(
        [sys.executable, "-c", code, "report", str(tmp_path / "empty"), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "not a run folder" in proc.stderr
    assert not out.exists()


def test_failed_report_leaves_previous_intact(built, tmp_path: Path, monkeypatch) -> None:
    runs, _ = built
    out = tmp_path / "report"
    write_report([runs["recon"]], out)
    before = (out / "index.html").read_text()

    def boom(*args, **kwargs):
        raise RuntimeError("plot failed")

    monkeypatch.setattr("latentbench.report.plots.probe", boom)
    with pytest.raises(RuntimeError, match="plot failed"):
        write_report([runs["recon"], runs["gen"]], out)
    assert (out / "index.html").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_report_is_read_only_on_runs(built, tmp_path: Path) -> None:
    """The run folders are not touched: same files, same bytes, after a report."""
    runs, _ = built

    def snapshot() -> dict[str, bytes]:
        return {
            str(p): p.read_bytes()
            for run in runs.values()
            for p in sorted(run.rglob("*"))
            if p.is_file()
        }

    before = snapshot()
    write_report(list(runs.values()), tmp_path / "again")
    assert snapshot() == before
    manifest = json.loads((runs["recon"] / "manifest.json").read_text())
    assert manifest["command"] == "recon"
