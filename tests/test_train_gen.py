"""train-gen end to end at toy scale: CLI, curves, two spaces, tasks, exact kill-and-resume."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from typer.testing import CliRunner

from latentbench.bench.generation import TrainGenConfig, load_config, train_generator
from latentbench.bench.generation_data import open_data
from latentbench.bench.generator_runs import load_generator
from latentbench.cli import app
from latentbench.data.shapes import ShapesEditsDataset
from latentbench.errors import UserError
from latentbench.gen.dit import EditLayout
from latentbench.gen.flow import FlowConfig
from latentbench.gen.generator import Generator
from latentbench.gen.sampling import Conditions, generate
from latentbench.spaces import build_space
from latentbench.train.generator import TaskKind
from latentbench.train.generator_eval import GenerationEval

TOY = {
    "data": "shapes:24",
    "image_size": 16,
    "steps": 6,
    "batch_size": 8,
    "eval_every": 3,
    "eval_samples": 6,
    "sample_steps": 2,
    "checkpoint_every": 3,
    "reference_images": 16,
    "fd_extractor": "none",
    "dit": {"width": 32, "depth": 2, "heads": 2, "grid": 4},
}


def _cfg(**kw) -> TrainGenConfig:
    return load_config(None, **{"space": "pixel", **TOY, **kw})


def test_cli_two_spaces_writes_curves_grids_and_summary(tmp_path):
    build_space("pixel", image_size=16, patch=2).save(tmp_path / "pix2")  # a 12-channel space
    config = tmp_path / "toy.yaml"
    toy = {**TOY, "fd_extractor": "efficientnet-lite0", "eval_every": 6, "reference_images": 8}
    config.write_text(yaml.safe_dump(toy))
    out = tmp_path / "runs"
    args = [
        "train-gen",
        "--space",
        f"pixel,{tmp_path / 'pix2'}",
        "--task",
        "t2i",
        "--config",
        str(config),
        "--out",
        str(out),
        "--sample-steps",
        "3",
        "--sampler",
        "heun",
        "--sample-shift",
        "1.5",
        "--guidance",
        "2.5",
        "--quiet",
        "--json",
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "metrics.json").read_text())
    assert set(summary) == {"pixel", "pix2"}
    assert summary["pixel"]["patch"] == 4 and summary["pix2"]["patch"] == 2
    assert summary["pixel"]["tokens"] == summary["pix2"]["tokens"] == 16
    rows = [
        json.loads(line)
        for line in (out / "pixel" / "metrics.jsonl").read_text().split("\n")
        if line
    ]
    fd = [r for r in rows if r["name"] == "fd_efficientnet-lite0"]
    assert [r["step"] for r in fd] == [0, 6]
    assert fd[0]["extractor"]["name"] == "efficientnet-lite0" and fd[0]["value"] > 0
    assert [r["step"] for r in rows if r["name"] == "geneval"] == [0, 6]
    assert {"geneval/counting", "train/loss"} <= {r["name"] for r in rows}
    assert (out / "pix2" / "images" / "step_00000006.png").is_file()
    manifest = json.loads((out / "pixel" / "manifest.json").read_text())
    flow = manifest["config"]["flow"]  # the sampling settings of the evaluations, as given
    assert (flow["sample_steps"], flow["sampler"], flow["sample_shift"]) == (3, "heun", 1.5)
    assert flow["guidance"] == 2.5 and summary["pixel"]["sample_shift"] == 1.5
    assert summary["pixel"]["sampler"] == "heun" and summary["pixel"]["guidance"] == 2.5
    # the dimension rule sqrt(N C p^2 / 4096) with N = 16 tokens of 3 channels x 4^2
    assert manifest["seed"] == 0 and manifest["config"]["shift"] == pytest.approx(
        (16 * 3 * 4**2 / 4096) ** 0.5
    )


def test_class_task_trains_a_generator_that_follows_its_labels(tmp_path):
    m = train_generator(_cfg(task=TaskKind.CLASS, steps=3), tmp_path / "run")
    assert m["steps"] == 3 and m["train_loss"] == _logged(tmp_path / "run", "train/loss")[-1]
    gen = load_generator(tmp_path / "run", device="cpu", use_ema=False).generator
    labels = {int(it["label"]) for it in open_data("shapes:24", TaskKind.CLASS, 16, 0)}
    assert gen.cond_spec.num_classes == max(labels) + 1  # + the null label
    one = FlowConfig(sample_steps=2, guidance=1.0)
    same = Conditions(labels=torch.tensor([0, 0]), num=2)
    other = Conditions(labels=torch.tensor([0, 1]), num=2)
    a = generate(gen, same, [0, 1], seed=0, flow=one)
    b = generate(gen, other, [0, 1], seed=0, flow=one)
    assert torch.equal(a[0], b[0]) and not torch.equal(a[1], b[1])  # the label is heard


@pytest.mark.parametrize(("editor", "success"), [("target", 0.9), ("source", 0.0)])
def test_edit_evaluation_scores_a_perfect_and_an_identity_editor(
    tmp_path, monkeypatch, editor, success
):
    """The edit scores of train-gen, with the sampler replaced by an editor that returns the
    true edited image (perfect) or the source (no edit): success and fidelity must tell them
    apart, so a misaligned eval set, a lost source or a wrong normalisation fails here."""
    size, n = 32, 12  # the Shapes detector needs 32 px
    edits = ShapesEditsDataset(n, size, seed=1)  # the eval set: seed + 1
    space = build_space("pixel", image_size=size)

    def fake_generate(generator, conditions, indices, **_):
        if editor == "source":
            return generator.normalize(conditions.sources[indices])
        return generator.normalize(space.encode(torch.stack([edits[i]["image"] for i in indices])))

    monkeypatch.setattr("latentbench.train.generator_eval.generate", fake_generate)
    cfg = _cfg(task=TaskKind.EDIT, data="shapes-edits:14", steps=1, eval_every=1, image_size=size)
    m = train_generator(replace(cfg, eval_samples=n), tmp_path / "run")
    if editor == "target":
        assert m["edit/success"] >= success and m["edit/psnr_outside"] > 60
    else:
        assert m["edit/success"] == success and m["edit/psnr_outside"] > 60
    assert _logged(tmp_path / "run", "edit/success")[-1] == m["edit/success"]


def _logged(run: Path, name: str) -> list[float]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().split("\n") if x]
    return [r["value"] for r in rows if r["name"] == name]


@pytest.mark.parametrize("layout", list(EditLayout))
def test_editors_of_both_layouts_train_and_sample(tmp_path, layout):
    dit = {**TOY["dit"], "edit_layout": layout.value}
    cfg = _cfg(task=TaskKind.EDIT, data="shapes-edits:14", steps=2, eval_every=2, dit=dit)
    train_generator(cfg, tmp_path / "run")
    gen = load_generator(tmp_path / "run", device="cpu")
    assert gen.generator.cfg.edit_layout is layout
    sources = torch.rand(2, 3, 16, 16) * 2 - 1
    edited = gen.edit(sources, ["make the circle red", "remove the star"])
    assert edited.shape == (2, 3, 16, 16) and torch.isfinite(edited).all()
    # a run folder written before generator/ and the setting existed: the manifest describes
    # it, and those editors put the text first; convert-run adds generator/ to it
    shutil.rmtree(tmp_path / "run" / "generator")
    path = tmp_path / "run" / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["config"]["dit"]["edit_layout"]
    path.write_text(json.dumps(manifest))
    legacy = load_generator(tmp_path / "run", device="cpu").generator.cfg.edit_layout
    assert legacy is EditLayout.TEXT_SOURCE_NOISY
    res = CliRunner().invoke(app, ["convert-run", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    converted = Generator.from_pretrained(str(tmp_path / "run" / "generator"))
    assert converted.cfg.edit_layout is EditLayout.TEXT_SOURCE_NOISY


def test_kill_and_resume_reproduces_the_uninterrupted_run(tmp_path, monkeypatch):
    cfg = _cfg(steps=8, checkpoint_every=4, eval_every=3)
    train_generator(cfg, tmp_path / "ref")

    real = GenerationEval.__call__

    def killed_at_6(self, loop, step):
        real(self, loop, step)
        if step == 6:
            raise KeyboardInterrupt

    monkeypatch.setattr(GenerationEval, "__call__", killed_at_6)
    with pytest.raises(KeyboardInterrupt):
        train_generator(cfg, tmp_path / "run")
    monkeypatch.setattr(GenerationEval, "__call__", real)
    with pytest.raises(UserError, match="already holds a run"):
        train_generator(cfg, tmp_path / "run")
    train_generator(cfg, tmp_path / "run", resume=True)

    for name in ("model.safetensors", "ema.safetensors"):
        a = load_file(tmp_path / "ref" / "checkpoints" / "step_00000008" / name)
        b = load_file(tmp_path / "run" / "checkpoints" / "step_00000008" / name)
        assert a.keys() == b.keys()
        for k in a:
            assert (a[k] == b[k]).all(), k

    def curve(run: Path) -> list[tuple]:
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().split("\n") if x]
        timing = "train/images_per_s"  # wall-clock: the one logged value that may differ
        return [(r["step"], r["name"], r["value"]) for r in rows if r["name"] != timing]

    assert curve(tmp_path / "run") == curve(tmp_path / "ref")
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert [h["resumed_from_step"] for h in manifest["history"]] == [4]
    ref_metrics = json.loads((tmp_path / "ref" / "metrics.json").read_text())
    run_metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    timing = {"train_images_per_s", "train_seconds"}
    assert {k: v for k, v in run_metrics.items() if k not in timing} == {
        k: v for k, v in ref_metrics.items() if k not in timing
    }

    # a resume that changes what the run is (here the seed) is one line, and writes nothing
    before = (tmp_path / "run" / "manifest.json").read_text(), curve(tmp_path / "run")
    with pytest.raises(UserError, match=r"changes what the run was started with \(.*seed: 0 -> 7"):
        train_generator(
            _cfg(steps=8, checkpoint_every=4, eval_every=3, seed=7), tmp_path / "run", resume=True
        )
    assert ((tmp_path / "run" / "manifest.json").read_text(), curve(tmp_path / "run")) == before

    # killed after the final checkpoint, before metrics.json: the resume trains no step and
    # writes the same results (the final evaluation computed again, not logged twice)
    (tmp_path / "run" / "metrics.json").unlink()
    train_generator(cfg, tmp_path / "run", resume=True)
    assert curve(tmp_path / "run") == curve(tmp_path / "ref")
    run_metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert run_metrics["train_loss"] == ref_metrics["train_loss"]
    assert {k: v for k, v in run_metrics.items() if k not in timing} == {
        k: v for k, v in ref_metrics.items() if k not in timing
    }

    # resuming with more steps: the manifest records the new step count, the old one in history
    train_generator(_cfg(steps=10, checkpoint_every=4, eval_every=3), tmp_path / "run", resume=True)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["config"]["loop"]["steps"] == 10
    assert [h["resumed_from_step"] for h in manifest["history"]] == [4, 8, 8]
    assert manifest["history"][2]["config"]["loop"]["steps"] == 8


def test_sampling_settings_default_to_the_preset_and_the_paper_at_xl():
    from latentbench.bench.generation import resolve

    tiny = resolve(_cfg()).flow
    assert tiny.sample_shift is None  # the training shift
    xl = resolve(load_config(None, space="pixel", preset="xl")).flow
    assert (xl.sample_steps, xl.sampler.value, xl.sample_shift, xl.guidance) == (
        50,
        "euler",
        3.0,
        6.5,
    )
    assert resolve(_cfg(preset="xl", sample_shift=2.0, guidance=1.0)).flow.sample_shift == 2.0
    with pytest.raises(UserError, match="--sample-shift: input should be greater than 0"):
        _cfg(sample_shift=0.0)
    with pytest.raises(UserError, match="--sample-steps: input should be greater than 0"):
        _cfg(sample_steps=0)
    with pytest.raises(UserError, match="'rk4' is not one of euler, heun"):
        _cfg(sampler="rk4")


def test_user_errors():
    with pytest.raises(UserError, match="unknown generator preset"):
        train_generator(_cfg(preset="huge"), "/nonexistent")
    with pytest.raises(UserError, match="unknown key 'stepz'"):
        load_config(None, stepz=3)
    with pytest.raises(UserError, match="needs Shapes edits"):
        train_generator(_cfg(task=TaskKind.EDIT, data="skimage"), "/nonexistent")
    with pytest.raises(UserError, match="DiT has no setting 'widht'"):
        train_generator(_cfg(dit={"widht": 3}), "/nonexistent")


def test_per_sample_draws_do_not_depend_on_the_process_split():
    from latentbench.train.generator import per_sample_draws

    whole = per_sample_draws((2, 3, 3), seed=1, step=5, positions=range(8), p_drop=0.5)
    for rank in range(2):
        part = per_sample_draws((2, 3, 3), 1, 5, range(rank, 8, 2), 0.5)
        assert torch.equal(part.noise, whole.noise[rank::2])
        assert torch.equal(part.normal, whole.normal[rank::2])
        assert torch.equal(part.drop, whole.drop[rank::2])
    other_step = per_sample_draws((2, 3, 3), 1, 6, range(8), 0.5)
    assert not torch.equal(other_step.noise, whole.noise)


def test_geneval_ceiling_is_one_for_a_lossless_space_and_low_for_a_broken_one():
    from latentbench.data.shapes import geneval_suite
    from latentbench.train.generator_scores import geneval_ceiling

    entries = geneval_suite(prompts_per_task=3, seed=0)
    lossless = geneval_ceiling(build_space("pixel", image_size=64), entries, seed=0)
    assert lossless["geneval_ceiling"] == 1.0
    assert set(lossless) == {"geneval_ceiling"} | {f"geneval_ceiling/{e['tag']}" for e in entries}
    torch.manual_seed(0)
    broken = build_space("taesd", pretrained=False, image_size=64)  # random decoder
    assert geneval_ceiling(broken, entries, seed=0)["geneval_ceiling"] < 0.2


def test_cli_space_options_reach_the_space_and_win_over_the_yaml(tmp_path):
    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump({**TOY, "steps": 1, "space_options": {"patch": 4}}))
    out = tmp_path / "runs"
    args = ["train-gen", "--space", "pixel", "--config", str(config), "-o", "patch=2"]
    res = CliRunner().invoke(app, [*args, "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "pixel" / "manifest.json").read_text())
    assert manifest["config"]["train_gen"]["space_options"] == {"patch": 2}
    assert manifest["config"]["space"]["spec"]["channels"] == 12  # 3 x 2 x 2
    res = CliRunner().invoke(app, [*args[:-2], "-o", "bogus=1", "--out", str(tmp_path / "x")])
    assert isinstance(res.exception, UserError)
    assert "no space here takes the option(s) bogus" in str(res.exception)


def test_cli_task_comes_from_the_config_unless_a_flag_names_it(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(
        "latentbench.bench.generation.train_generators", lambda names, cfg, **kw: seen.append(cfg)
    )
    config = tmp_path / "edit.yaml"
    config.write_text(yaml.safe_dump({"task": "edit", "preset": "tiny"}))
    for flags, task in (([], "edit"), (["--task", "t2i"], "t2i")):
        args = ["train-gen", "--space", "pixel", "--config", str(config), *flags, "--json"]
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 0, res.output
        assert seen.pop().task.value == task
    res = CliRunner().invoke(app, ["train-gen", "--space", "pixel", "--json"])
    assert res.exit_code == 0 and seen.pop().task.value == "t2i"  # the default


def test_shipped_train_gen_configs_load_by_name():
    assert load_config("tiny").preset == "tiny"
    with pytest.raises(UserError, match="train-gen config 'tinny' not found"):
        load_config("tinny")


def _hub_snapshot(cache: Path, repo_id: str, folder: Path) -> None:
    """Lay ``folder`` out as the hub cache holds a downloaded model repo (offline stand-in)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(folder, repo / "snapshots" / commit)


def test_a_trained_generator_round_trips_through_save_load_and_a_hub_folder(tmp_path):
    train_generator(_cfg(steps=2, eval_every=2), tmp_path / "run")
    trained = load_generator(tmp_path / "run", device="cpu")  # last checkpoint, EMA weights
    trained.generator.save_pretrained(tmp_path / "saved")
    _hub_snapshot(tmp_path / "hub", "someone/tiny-gen", tmp_path / "saved")
    loaded = {
        "run generator/": Generator.from_pretrained(str(tmp_path / "run" / "generator")),
        "save_pretrained": Generator.from_pretrained(str(tmp_path / "saved")),
        "hub id": Generator.from_pretrained(
            "someone/tiny-gen", cache_dir=tmp_path / "hub", local_files_only=True
        ),
    }
    prompts = Conditions(captions=["a red circle", "two blue squares", ""], num=3)
    want = generate(trained.generator, prompts, [0, 1, 2], seed=4)
    assert want.abs().sum() > 0
    for how, generator in loaded.items():
        assert generator.space_info["name"] == "pixel", how
        assert torch.equal(generate(generator, prompts, [0, 1, 2], seed=4), want), how
    images = load_generator(tmp_path / "saved", device="cpu").text_to_image(["a red circle"])
    assert torch.equal(images, trained.text_to_image(["a red circle"]))


def test_the_architecture_preset_is_separate_from_the_training_preset():
    from latentbench.bench.generation_config import dit_config

    def cfg(**kw):
        return load_config(None, space="pixel", **kw)

    assert dit_config(cfg(preset="small")).width == 384  # default: the same name
    mixed = cfg(preset="tiny", arch="xl")
    assert dit_config(mixed).ddt_width == 2048 and resolve_train(mixed).steps == 600
    assert dit_config(cfg(arch="xl", dit={"depth": 3})).depth == 3
    with pytest.raises(UserError, match="unknown DiT architecture preset 'huge'"):
        dit_config(cfg(arch="huge"))


def resolve_train(cfg: TrainGenConfig):
    from latentbench.bench.generation_config import resolve

    return resolve(cfg).train


def test_a_run_without_fd_records_no_reference_set():
    """fd_extractor none: no FD, so the manifest's train_preset names no reference set."""
    assert resolve_train(_cfg()).reference_images is None  # TOY: none, reference_images 16
    assert resolve_train(_cfg(fd_extractor="auto")).reference_images == 16
    assert resolve_train(load_config(None, space="pixel")).reference_images == 500
