"""A third-party space registers through the entry point and shows up everywhere."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

K_LOWRES = ("-k", "lowres")
PLUGIN = Path(__file__).resolve().parent.parent / "baselines" / "latentbench-lowres"


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("src") / PLUGIN.name  # a copy: builds leave files behind
    shutil.copytree(PLUGIN, source)
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    out = subprocess.run([*cmd, "--target", str(target), str(source)], capture_output=True)
    assert out.returncode == 0, out.stderr.decode()
    return target


def _run(plugin_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(plugin_path)}
    code = "from latentbench.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env
    )


def test_plugin_listed_with_spec(plugin_path, tmp_path):
    other = _distribution(
        tmp_path, "latentbench-other", "1.0", POOL.format(scale=1.0), {"other": "wrong_shape"}
    )
    out = _cli([str(plugin_path), other], "spaces", "--spec", "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["lowres"]["source"] == "plugin:latentbench-lowres"
    assert rows["lowres"]["latent_shape"] == [3, 32, 32]
    assert rows["pixel"]["source"] == "builtin"
    assert rows["other"]["latent_shape"] == [3, 8, 8]  # by its registered name, not its spec's


def test_plugin_passes_contract(plugin_path):
    env = {**os.environ, "PYTHONPATH": str(plugin_path)}
    tests = Path(__file__).resolve().parent / "test_contract.py"
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests), *K_LOWRES],
        capture_output=True,
        text=True,
        env=env,
    )
    assert out.returncode == 0, out.stdout[-2000:]
    assert "passed" in out.stdout


# -- plugins that go wrong: each is one line naming it, and hides nothing else -----------------
POOL = """
import torch
import torch.nn.functional as F
from latentbench.spaces import LatentSpace, LatentSpec

SCALE = {scale}


class Pool(LatentSpace):
    def __init__(self, image_size, pool=4, nan=False):
        super().__init__()
        self.image_size, self.pool, self.nan = image_size, pool, nan
        self.register_buffer("anchor", torch.zeros(()), persistent=False)

    @property
    def spec(self):
        return LatentSpec("pool", 3, self.image_size // 4, self.image_size)  # says 4x smaller

    def _encode(self, images, sample, generator):
        z = F.avg_pool2d(images, self.pool) * SCALE
        return z * float("nan") if self.nan else z

    def _decode(self, latents):
        return F.interpolate(latents / SCALE, size=self.image_size)


def pool(image_size: int = 32, pretrained: bool = True):
    return Pool(image_size)


def wrong_shape(image_size: int = 32, pretrained: bool = True):
    return Pool(image_size, pool=2)  # 2x smaller latents than its spec says


def nan(image_size: int = 32, pretrained: bool = True):
    return Pool(image_size, nan=True)


def raises(pretrained: bool = True):
    raise ValueError("weights checksum mismatch")
"""
RECON_CHEAP = ("--data", "shapes:4", "--image-size", "32", "--fd", "none", "--lpips", "none", "-q")


def _distribution(site: Path, dist: str, version: str, code: str, spaces: dict[str, str]) -> str:
    """Install a distribution into ``site`` as pip would, without pip: its module and a
    dist-info folder whose entry points register ``spaces`` (name -> attribute)."""
    module = dist.replace("-", "_")
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(code)
    info = site / f"{module}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "".join(f"{name} = {module}:{attr}\n" for name, attr in spaces.items())
    (info / "entry_points.txt").write_text(f"[latentbench.spaces]\n{lines}")
    return str(site)


def _cli(sites: list[str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sites), "HF_HUB_OFFLINE": "1"}
    code = "from latentbench.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=cwd
    )


def _one_error_line(out: subprocess.CompletedProcess) -> str:
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    return lines[0]


def test_a_new_release_of_a_plugin_is_another_space_that_results_name(tmp_path):
    """Its latents differ: its fingerprint (which keys the latent cache) differs, every result
    records the release, and an experiment runs the steps that use it again."""
    (tmp_path / "e.yaml").write_text(
        "name: e\nout: runs\nreport: rep\n"
        "recon: {spaces: [pool], data: 'shapes:4', image_size: 32, fd: [], lpips: [],"
        " diagnostics: 0}\n"
    )
    said, fingerprints = [], set()
    for version, scale in (("0.1.0", 1.0), ("0.1.0", 1.0), ("0.2.0", 0.5)):
        site = tmp_path / f"site-{version}"
        if not site.exists():
            _distribution(
                site, "latentbench-pool", version, POOL.format(scale=scale), {"pool": "pool"}
            )
        out = _cli([str(site)], "run", "e.yaml", cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        said.append("[recon] done already" in out.stdout + out.stderr)
        manifest = json.loads((tmp_path / "runs" / "recon" / "manifest.json").read_text())
        assert manifest["versions"]["latentbench-pool"] == version
        assert manifest["spaces"]["pool"]["source"] == f"plugin:latentbench-pool {version}"
        fingerprints.add(manifest["spaces"]["pool"]["fingerprint"])
    assert said == [False, True, False]  # the same release is done; a new one runs again
    assert len(fingerprints) == 2


def test_a_broken_plugin_is_one_line_for_its_name_and_hides_no_other_space(tmp_path):
    sites = [
        _distribution(
            tmp_path / "a",
            "latentbench-broken",
            "1.0",
            "raise RuntimeError('CUDA driver too old')\n",
            {"broken": "x"},
        ),
        _distribution(
            tmp_path / "b", "latentbench-badattr", "1.0", "", {"badattr": "no_such_factory"}
        ),
        _distribution(
            tmp_path / "c",
            "latentbench-pool",
            "1.0",
            POOL.format(scale=1.0),
            {"pool": "pool", "raises": "raises"},
        ),
    ]
    out = _cli(sites, "spaces", "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert "RuntimeError: CUDA driver too old" in rows["broken"]["error"]
    assert "AttributeError" in rows["badattr"]["error"]
    assert rows["pool"]["family"] == "plugin" and rows["pixel"]["source"] == "builtin"
    assert _cli(sites, "spaces").returncode == 0  # the table too
    line = _one_error_line(_cli(sites, "recon", "--space", "broken", *RECON_CHEAP, cwd=tmp_path))
    assert "plugin:latentbench-broken" in line and "CUDA driver too old" in line
    line = _one_error_line(_cli(sites, "recon", "--space", "raises", *RECON_CHEAP, cwd=tmp_path))
    assert "failed to build: ValueError: weights checksum mismatch" in line
    code = (
        "from latentbench.spaces import try_space, ready_space_names\n"
        "assert {'broken', 'badattr', 'pool'} <= set(ready_space_names())\n"
        "print(try_space('broken')[1]); print(try_space('raises')[1])"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sites)}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("broken: skipped:") and "raises: skipped:" in run.stdout


@pytest.mark.parametrize(
    ("factory", "says"),
    [
        (
            "wrong_shape",
            "encode gave latents (4, 3, 16, 16) for 32x32 images, where its spec says (B, 3, 8, 8)",
        ),
        ("nan", "encode gave non-finite latents"),
    ],
)
def test_a_plugin_that_breaks_its_own_spec_is_refused_not_scored(factory, says, tmp_path):
    site = _distribution(
        tmp_path / "s", "latentbench-pool", "1.0", POOL.format(scale=1.0), {"liar": factory}
    )
    out = _cli([site], "recon", "--space", "liar", *RECON_CHEAP, "--batch-size", "4", cwd=tmp_path)
    assert _one_error_line(out) == f"error: space 'liar': {says}"
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("metrics.json"))


def test_plugin_names_that_cannot_be_used_say_so(tmp_path):
    """A built-in's name, a reserved or unselectable name: ignored with a note; one name two
    distributions register: refused when used, naming both."""
    pool = POOL.format(scale=1.0)
    names = {
        "pixel": "pool",
        "all": "pool",
        "a,b": "pool",
        "my/space": "pool",
        "dup": "pool",
    }
    sites = [
        _distribution(tmp_path / "a", "latentbench-one", "1.0", pool, names),
        _distribution(tmp_path / "b", "latentbench-two", "1.0", pool, {"dup": "pool"}),
    ]
    out = _cli(sites, "spaces", "--json")
    assert out.returncode == 0, out.stderr
    for name in ("pixel", "all", "a,b", "my/space"):
        assert f"note: plugin:latentbench-one's space {name!r} is ignored" in out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["pixel"]["source"] == "builtin" and not {"all", "a,b", "my/space"} & set(rows)
    assert (
        "registered by both plugin:latentbench-one and plugin:latentbench-two"
        in rows["dup"]["error"]
    )
    out = _cli(sites, "recon", "--space", "dup", *RECON_CHEAP, cwd=tmp_path)
    assert out.returncode == 2 and "uninstall one" in out.stderr.splitlines()[-1]
