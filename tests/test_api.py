"""The public Python API: ``import latentbench`` is cheap, every name resolves, and the README's
"Python API" example runs as written."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

import latentbench

REPO = Path(__file__).resolve().parent.parent
GENERATOR_RUNS = "latentbench.bench.generator_runs"


def readme_api_example() -> str:
    """The first ```python block under the README's "## Python API" heading."""
    section = (REPO / "README.md").read_text().split("## Python API", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "README: no python block under '## Python API'"
    return match.group(1)


def test_import_latentbench_loads_no_heavy_module() -> None:
    code = (
        "import sys, latentbench; print(sorted({'torch', 'numpy', 'pydantic'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", sorted(latentbench.API))
def test_every_api_name_resolves_to_its_target(name: str) -> None:
    module, _, attribute = latentbench.API[name].partition(":")
    if module == GENERATOR_RUNS and importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not in this tree yet (the generator checkpoint work adds it)")
    target = getattr(importlib.import_module(module), attribute)
    assert getattr(latentbench, name) is target
    assert name in dir(latentbench)


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        latentbench.no_such_thing  # noqa: B018


def test_readme_python_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_api_example(), "README.md:Python API", "exec"), {"__name__": "__main__"})
    out = capsys.readouterr().out
    assert "pixel (2, 48, 16, 16) max error 0.0e+00" in out
    assert (tmp_path / "runs/api/recon/metrics.json").is_file()
    assert (tmp_path / "runs/api/space").is_dir()
